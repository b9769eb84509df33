"""Difficulty-aware allocation (`auto`) on arith: fit on one seed set of problems, evaluate on another.

    python benchmarks/allocation.py --model lab:arith --backend transformers --n 100 --out runs/allocation

1. `ttscale bench` (the real harness, through run_bench) on fit set A (arith levels 1-5, generator seed
   --fit-seed): best_of_n (majority vote, candidates scored by arith_steps) at every budget (small N cut
   from the largest run) and particle (arith_steps) at every budget.
2. P(IK) of every problem of A and B (one batched call each; no signal where the tokenizer has no
   single-token Yes/No).
3. `ttscale calibrate` on A's records (+ P(IK)) -> OUT/policy.json.
4. The same bench grid on the held-out set B (--eval-seed): the uniform baselines.
5. `auto` on B at every budget: engine.solve_batch over all of B (one shared batch budget of B x n),
   with the fitted policy, and with the built-in default policy.
6. Figures: accuracy vs generated tokens per problem (OUT/accuracy_vs_tokens.png), the token ratio at which
   auto first reaches uniform best_of_n@16's accuracy, and per estimator the Spearman/Pearson correlation
   between estimated difficulty and observed solve rate on B (solve rate from best-of-N samples beyond the
   probe's). Everything in OUT/summary.json and OUT/summary.md. Rerunning resumes (bench cells and auto
   runs already done are kept).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def bench_config(args: argparse.Namespace, seed: int, name: str):
    from ttscale.bench.config import config_from_mapping

    strategies: dict[str, Any] = {"best_of_n": {"scorer": "arith_steps"}}
    if not args.no_particle:
        strategies["particle"] = {}
    return config_from_mapping({
        "name": name, "model": args.model, "backend": args.backend, "verifier": "arith_steps",
        "dataset": {"name": "arith", "levels": [1, 2, 3, 4, 5], "n": args.n, "seed": seed},
        "strategies": strategies, "budgets": args.budgets, "seeds": [0],
        "sampling": {"temperature": args.temperature, "max_tokens": args.max_tokens},
        "max_inflight": args.max_inflight,
    }, where=name)


def run_grid(engine, args, seed: int, folder: Path):
    from rich.console import Console

    from ttscale.bench.records import read_records
    from ttscale.bench.run import load_problems, run_bench

    config = bench_config(args, seed, folder.name)
    t = time.perf_counter()
    summary = run_bench(config, folder, engine=engine, progress=False, console=Console(stderr=True))
    print(f"[bench] {summary.line()} ({time.perf_counter() - t:.0f} s)", flush=True)
    problems, _ = load_problems(config)
    return problems, read_records(folder / "records.jsonl").records


def pik_scores(engine, problems) -> dict[str, float | None]:
    from ttscale.requests import Score

    scorer = engine.scorer("pik")
    res, _ = scorer.score_batch([Score("pik", p.problem, (("",),)) for p in problems])
    return {p.id: r[0][0] for p, r in zip(problems, res)}


def uniform_curves(records: list[dict], n: int) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    for r in records:
        cell = out.setdefault(r["label"], {}).setdefault(int(r["budget"]), {"correct": 0, "tokens": 0, "n": 0})
        cell["correct"] += bool(r["correct"])
        cell["tokens"] += r["ledger"]["generated_tokens"]
        cell["n"] += 1
    return {lab: {b: {"accuracy": c["correct"] / c["n"], "tokens": c["tokens"] / c["n"], "n": c["n"]}
                  for b, c in sorted(cells.items())} for lab, cells in out.items()}


def run_auto(engine, args, problems, budget: int, policy, tag: str, out: Path) -> dict[str, Any]:
    """auto over all of B at one average budget; cached in OUT/auto/<tag>_b<budget>.json."""
    from ttscale.bench.outcomes import Grader

    path = out / "auto" / f"{tag}_b{budget}.json"
    if path.is_file():
        return json.loads(path.read_text())
    t = time.perf_counter()
    results = engine.solve_batch([p.problem for p in problems], strategy="auto", budget=budget, seed=0,
                                 verifier="arith_steps", policy=policy, temperature=args.temperature,
                                 max_tokens=args.max_tokens)
    seconds = time.perf_counter() - t
    grader = Grader(engine.checker)
    per = []
    for p, r in zip(problems, results):
        ok = bool(r.answer is not None and grader.grade(p.answer, [r.answer])[0])
        a = r.details["allocation"]
        per.append({"id": p.id, "level": p.level, "correct": ok, "answer": r.answer, "gold": p.answer,
                    "generated_tokens": r.ledger.generated_tokens, "verifier_tokens": r.ledger.verifier_tokens,
                    "candidates": len(r.candidates), "difficulty": a["difficulty"], "strategy": a["strategy"],
                    "reason": a["reason"], "bin": a["bin"]})
    n = len(problems)
    summary = {"budget": budget, "tag": tag, "accuracy": sum(x["correct"] for x in per) / n,
               "tokens": sum(x["generated_tokens"] for x in per) / n,
               "verifier_tokens": sum(x["verifier_tokens"] for x in per) / n,
               "candidates": sum(x["candidates"] for x in per) / n, "seconds": round(seconds, 1),
               "backend_calls": engine.last_batch_usage.backend_calls,
               "searched": sum("particle" in x["strategy"] for x in per), "problems": per}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))
    print(f"[auto {tag} @{budget}] accuracy {summary['accuracy']:.3f}, {summary['tokens']:.0f} tokens/problem, "
          f"{summary['candidates']:.1f} candidates/problem, {seconds:.0f} s", flush=True)
    return summary


def tokens_to_reach(points: list[tuple[float, float]], target: float) -> float | None:
    """Fewest tokens at which a curve of (tokens, accuracy) points first reaches `target` (interpolated)."""
    points = sorted(points)
    if not points:
        return None
    if points[0][1] >= target:
        return points[0][0]
    for (t0, a0), (t1, a1) in zip(points, points[1:]):
        if a0 < target <= a1:
            return t0 + (t1 - t0) * (target - a0) / (a1 - a0)
    return None


def estimator_correlations(policy, problems, records, pik: dict, k: int) -> dict[str, Any]:
    """Per estimator: correlation between difficulty (from the first k best-of-N samples, as a probe)
    and the solve rate over the remaining samples of the same problem."""
    from ttscale.allocate.estimators import make_estimator
    from ttscale.allocate.features import probe_features
    from ttscale.allocate.policy import DEFAULT_POLICY
    from ttscale.allocate.stats import pearson, spearman

    text = {p.id: p.problem for p in problems}
    top: dict[str, dict] = {}
    for r in records:
        if r["label"] == "best_of_n" and len(r["candidates"]) > len(top.get(r["problem_id"], {}).get("candidates", [])):
            top[r["problem_id"]] = r
    rows = []
    for pid, r in top.items():
        probe, rest = r["candidates"][:k], r["candidates"][k:]
        if not rest:
            continue
        f = probe_features(text[pid], probe, "arith_steps", pik.get(pid))
        rows.append((f, sum(bool(c["correct"]) for c in rest) / len(rest)))
    out: dict[str, Any] = {"problems": len(rows), "probe_k": k}
    estimators = {"probe (default, uncalibrated)": make_estimator("probe", DEFAULT_POLICY),
                  "probe": make_estimator("probe", policy), "pik": make_estimator("pik", policy)}
    if policy.learned:
        estimators["learned"] = make_estimator("learned", policy)
    rates = [y for _, y in rows]
    for name, est in estimators.items():
        d = [est.estimate(f) for f, _ in rows]
        out[name] = {"spearman": spearman(d, rates), "pearson": pearson(d, rates)}
    out["pik_available"] = any(v is not None for v in pik.values())
    return out


def plot(path: Path, curves: dict[str, list[tuple[float, float, int]]], target: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in curves.items():
        pts = sorted(pts)
        ax.plot([t for t, _, _ in pts], [a for _, a, _ in pts], marker="o", label=label)
        for t, a, b in pts:
            ax.annotate(str(b), (t, a), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="best_of_n@16 accuracy")
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("accuracy (held-out arith, levels 1-5)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lab:arith")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--threads", type=int, default=None, help="transformers/llamacpp threads")
    ap.add_argument("--n", type=int, default=100, help="problems per seed set (levels 1-5, 20 each at 100)")
    ap.add_argument("--fit-seed", type=int, default=0)
    ap.add_argument("--eval-seed", type=int, default=1)
    ap.add_argument("--budgets", default="2,4,8,16,32")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-inflight", type=int, default=512)
    ap.add_argument("--no-particle", action="store_true", help="skip the particle baseline (faster)")
    ap.add_argument("--out", default="runs/allocation")
    args = ap.parse_args()
    args.budgets = sorted({int(b) for b in args.budgets.split(",")})

    from ttscale import Engine
    from ttscale.allocate import DEFAULT_POLICY
    from ttscale.allocate.calibrate import calibrate, summary_lines, write_policy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"threads": args.threads} if args.threads else {}
    t0 = time.perf_counter()
    engine = Engine(backend=args.backend, model=args.model, **opts)

    fit_problems, fit_records = run_grid(engine, args, args.fit_seed, out / "fit")
    eval_problems, eval_records = run_grid(engine, args, args.eval_seed, out / "eval")
    pik_fit, pik_eval = pik_scores(engine, fit_problems), pik_scores(engine, eval_problems)
    extra = {pid: {"pik": v} for pid, v in pik_fit.items() if v is not None}

    cal = calibrate([out / "fit"], records=fit_records, manifests=[json.loads((out / "fit" / "manifest.json").read_text())],
                    extra_features=extra)
    write_policy(cal, out / "policy.json")
    print("\n".join(summary_lines(cal)), flush=True)
    policy = cal.policy

    uniform = uniform_curves(eval_records, len(eval_problems))
    auto = {"auto (fitted policy)": [run_auto(engine, args, eval_problems, b, policy, "fitted", out) for b in args.budgets],
            "auto (default policy)": [run_auto(engine, args, eval_problems, b, DEFAULT_POLICY, "default", out)
                                      for b in args.budgets]}

    target = uniform.get("best_of_n", {}).get(16)
    curves: dict[str, list[tuple[float, float, int]]] = {
        f"uniform {lab}": [(c["tokens"], c["accuracy"], b) for b, c in cells.items()] for lab, cells in uniform.items()}
    for tag, runs in auto.items():
        curves[tag] = [(r["tokens"], r["accuracy"], r["budget"]) for r in runs]
    ratios = {}
    if target:
        for tag in auto:
            t = tokens_to_reach([(x, a) for x, a, _ in curves[tag]], target["accuracy"])
            ratios[tag] = {"tokens": t, "ratio": None if t is None else t / target["tokens"]}
    corr = estimator_correlations(policy, eval_problems, eval_records, pik_eval, policy.probe_k)
    plot(out / "accuracy_vs_tokens.png", curves, target["accuracy"] if target else None)

    summary = {
        "model": args.model, "backend": args.backend, "n": args.n, "fit_seed": args.fit_seed, "eval_seed": args.eval_seed,
        "budgets": args.budgets, "max_tokens": args.max_tokens, "temperature": args.temperature,
        "uniform": uniform,
        "auto": {tag: [{k: v for k, v in r.items() if k != "problems"} for r in runs] for tag, runs in auto.items()},
        "best_of_n@16": target, "token_ratio_to_match_best_of_n@16": ratios,
        "estimator_correlation": corr, "policy_fit": policy.fit, "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    lines = [f"# auto vs uniform on held-out arith ({args.model}, {args.n} problems, levels 1-5)", "",
             "| strategy | " + " | ".join(f"@{b}" for b in args.budgets) + " |",
             "|---|" + "---|" * len(args.budgets)]
    for label, pts in curves.items():
        by_b = {b: (t, a) for t, a, b in pts}
        lines.append(f"| {label} | " + " | ".join(f"{by_b[b][1]:.3f} ({by_b[b][0]:.0f} tok)" if b in by_b else "-"
                                                 for b in args.budgets) + " |")
    lines += ["", f"best_of_n@16: {target}", f"tokens for auto to reach it: {ratios}", "",
              "difficulty vs solve rate (held-out): " + json.dumps(corr)]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
