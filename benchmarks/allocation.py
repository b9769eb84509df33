"""Difficulty-aware allocation (`auto`) against the uniform strategies at equal tokens, on held-out wording.

    python benchmarks/allocation.py --backend vllm --out runs/allocation                  # fit, then judge
    python benchmarks/allocation.py --backend vllm --policy ttscale/lab/arith/policy.json # judge a given policy
    python benchmarks/allocation.py --backend vllm --policy ttscale/lab/arith/policy.json \
        --dataset my_problems.jsonl --out runs/allocation-mine                             # ... on your problems

1. Fit (unless --policy): the bench grid of --recipe (recipes/arith-lab-policy.yaml: arith *training*
   families, levels 1-5; best_of_n, particle, beam, parallel_thinking, refine at budgets 2-32) through
   run_bench -> OUT/fit, then calibrate with P(IK) features -> OUT/policy.json. The same two steps as the
   recipe's own commands, which make the policy lab:arith ships.
2. The same grid on the *held-out* families (--eval-seed, every seed of --seeds), or on --dataset (a set's
   name or a JSONL file of id, problem, answer) -> OUT/eval: the uniform baselines.
3. `auto` on those problems at every budget and seed: engine.solve_batch over all of them (one shared
   batch budget of B x prompts) -> OUT/auto/, one file per (budget, seed).
4. Figures: per strategy and budget, accuracy with its 95% bootstrap interval over problems, and generated
   tokens per problem; per budget, whether auto is at least as accurate as the best of the uniform
   BASELINES with at most its tokens, and auto minus that baseline with a paired 95% interval
   over problems; the tokens auto needs to reach uniform best_of_n@<largest budget>'s accuracy (and their
   share of best_of_n's); per estimator, Spearman between estimated difficulty and the observed solve
   rate, and its AUROC for "majority@4 solves it" (and, for reference, the same for the probe's samples
   judged with the gold answer); the room a per-bin choice leaves (one uniform cell per auto bin, picked
   with hindsight, within the best uniform's tokens: an upper bound for choosing a strategy by bin
   alone); one plot of accuracy vs tokens. OUT/summary.json,
   OUT/summary.md. A rerun resumes: bench cells and auto runs already done are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

# the uniform strategies auto must match at equal tokens (best_of_n_weighted: the same samples voted by
# their sequence probabilities, a line of the lab recipe since auto may vote that way per bin)
BASELINES = ("best_of_n", "best_of_n_weighted", "beam", "particle")
HELD_OUT = "held-out arith levels 1-5"  # what the eval grid holds unless --dataset names other problems
ORACLE = "oracle_probe"  # the reference beside the estimators: the probe's samples judged with the gold answer


def grid_config(args: argparse.Namespace, split: str, seed: int, seeds: list[int], name: str,
                budgets: list[int] | None, dataset: str | None = None):
    """The recipe's grid on `split`; `budgets` (None: the recipe's) limits every line, those with their own too.
    `dataset` (a set's name or a JSONL file) replaces the recipe's problems, the generator's n, seed,
    split and levels with them."""
    from ttscale.bench.config import DatasetSpec
    from ttscale.bench.recipe import resolve_config

    flags = {"name": name, "backend": args.backend, "model": args.model, "n": args.n, "split": split,
             "dataset_seed": seed, "seeds": seeds, "budgets": budgets, "threads": args.threads,
             "temperature": args.temperature, "max_tokens": args.max_tokens}
    config = resolve_config(args.recipe, flags)
    if dataset:
        config = replace(config, dataset=DatasetSpec(name=dataset))
    lines = tuple(replace(s, budgets=tuple(b for b in s.budgets if budgets is None or b in budgets)) if s.budgets else s
                  for s in config.strategies)
    keep = set(args.strategies.split(",")) if args.strategies else None
    return replace(config, strategies=tuple(s for s in lines if (s.budgets is None or s.budgets)
                                            and (keep is None or s.label in keep)))


def run_grid(engine, config, folder: Path, force: bool = False):
    from rich.console import Console

    from ttscale.bench.records import read_records
    from ttscale.bench.run import load_problems, run_bench

    t = time.perf_counter()
    summary = run_bench(config, folder, force=force, engine=engine, progress=False, console=Console(stderr=True))
    print(f"[bench {folder.name}] {summary.line()} ({time.perf_counter() - t:.0f} s)", flush=True)
    problems, _ = load_problems(config)
    return problems, read_records(folder / "records.jsonl").records


def paired_difference(mine: dict[str, float], theirs: dict[str, float], n_boot: int = 2000) -> dict[str, Any] | None:
    """Mean accuracy difference over the problems both were run on, with its 95% paired bootstrap
    interval (each resample takes a problem's two means together): the same problems make the two
    accuracies move together, so this interval is narrower and fairer than comparing the two cells' own."""
    ids = sorted(set(mine) & set(theirs))
    if not ids:
        return None
    mean, lo, hi = bootstrap({i: mine[i] - theirs[i] for i in ids}, n_boot=n_boot)
    return {"difference": mean, "ci": [lo, hi], "problems": len(ids)}


def per_problem_means(per_problem: dict[str, list[float]]) -> dict[str, float]:
    """A problem's accuracy over its seeds: the unit every interval resamples."""
    return {k: float(np.mean(v)) for k, v in per_problem.items()}


def bootstrap(means: dict[str, float], n_boot: int = 2000) -> tuple[float, float, float]:
    """Mean and 95% percentile interval of accuracy, resampling problems (seeds of a problem stay together)."""
    from ttscale.bench.metrics import bootstrap_ci

    values = np.array(list(means.values()), dtype=float)
    lo, hi = bootstrap_ci(values, n_boot=n_boot)
    return float(values.mean()), float(lo), float(hi)


def uniform_cells(records: list[dict]) -> dict[str, dict[int, dict[str, Any]]]:
    """label -> budget -> accuracy (with interval) and generated tokens per problem, over problems and seeds."""
    correct: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tokens: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in records:
        key = (r["label"], int(r["budget"]))
        correct[key][str(r["problem_id"])].append(float(bool(r["correct"])))
        tokens[key].append(r["ledger"]["generated_tokens"])
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for (label, budget), per in sorted(correct.items()):
        means = per_problem_means(per)
        acc, lo, hi = bootstrap(means)
        out[label][budget] = {"accuracy": acc, "ci": [lo, hi], "tokens": float(np.mean(tokens[(label, budget)])),
                              "n": sum(len(v) for v in per.values()), "per_problem": means}
    return dict(out)


def policy_digest(policy: Any) -> str:
    """Names a policy's auto runs in OUT/auto/: another policy, other files."""
    return hashlib.sha256(json.dumps(policy.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def run_auto(engine, args, problems, budget: int, seed: int, policy, out: Path) -> dict[str, Any]:
    """auto over all the judged problems at one average budget and seed; cached in OUT/auto/ (a cached run
    of other problems, left from another eval grid in the same OUT, is run again)."""
    from ttscale.bench.outcomes import Grader

    path = out / "auto" / f"b{budget}_s{seed}_{policy_digest(policy)}.json"  # another policy: another file
    if path.is_file():
        cached = json.loads(path.read_text())
        if [x["id"] for x in cached["problems"]] == [p.id for p in problems]:
            return cached
    t = time.perf_counter()
    results = engine.solve_batch([p.problem for p in problems], strategy="auto", budget=budget, seed=seed,
                                 verifier="arith_steps", policy=policy, temperature=args.temperature,
                                 max_tokens=args.max_tokens)
    seconds = time.perf_counter() - t
    grader = Grader(engine.checker)
    per = []
    for p, r in zip(problems, results):
        a = r.details["allocation"]
        per.append({"id": p.id, "level": p.level, "answer": r.answer, "gold": p.answer,
                    "correct": bool(r.answer is not None and grader.grade(p.answer, [r.answer])[0]),
                    "generated_tokens": r.ledger.generated_tokens, "verifier_tokens": r.ledger.verifier_tokens,
                    "candidates": len(r.candidates), "difficulty": a["difficulty"], "bin": a["bin"],
                    "strategy": a["strategy"], "reason": a["reason"]})
    run = {"budget": budget, "seed": seed, "seconds": round(seconds, 1), "problems": per,
           "candidates": sum(x["candidates"] for x in per), "pool": budget * len(problems)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run))
    acc = sum(x["correct"] for x in per) / len(per)
    print(f"[auto @{budget} seed {seed}] accuracy {acc:.3f}, "
          f"{sum(x['generated_tokens'] for x in per) / len(per):.0f} tokens/problem, {seconds:.0f} s", flush=True)
    return run


def auto_cells(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """budget -> accuracy (with interval), tokens per problem, and the strategies auto chose."""
    out: dict[int, dict[str, Any]] = {}
    for budget in sorted({r["budget"] for r in runs}):
        per: dict[str, list[float]] = defaultdict(list)
        toks, chosen = [], defaultdict(int)
        for r in (r for r in runs if r["budget"] == budget):
            assert r["candidates"] <= r["pool"], "auto spent more than B x prompts"
            for x in r["problems"]:
                per[x["id"]].append(float(x["correct"]))
                toks.append(x["generated_tokens"])
                chosen[x["strategy"]] += 1
        means = per_problem_means(per)
        acc, lo, hi = bootstrap(means)
        out[budget] = {"accuracy": acc, "ci": [lo, hi], "tokens": float(np.mean(toks)), "n": len(toks),
                       "chosen": dict(sorted(chosen.items(), key=lambda kv: -kv[1])), "per_problem": means}
    return out


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


def accuracy_at_tokens(cells: dict[int, dict], tokens: float) -> float:
    """A uniform strategy's accuracy at `tokens` per problem on its measured curve: the policy's own
    interpolation (linear in log between its points; outside them its nearest point, so below its
    cheapest point in its favour), with tokens in place of budgets."""
    from ttscale.allocate.policy import interpolate

    return float(interpolate({c["tokens"]: c["accuracy"] for c in cells.values()}, tokens))


def at_least(mine: float, theirs: float) -> bool:
    """mine >= theirs for accuracies that are means of per-problem means: the same runs solved can sum
    in another order and differ in the last bits, and that is a tie."""
    return mine >= theirs - 1e-9


def verdicts(uniform: dict[str, dict[int, dict]], auto: dict[int, dict]) -> dict[int, dict[str, Any]]:
    """Per budget: the most accurate uniform baseline at that budget, and whether auto is at least as
    accurate with at most its generated tokens (`auto_wins`, the issue's test); and, at equal tokens,
    whether auto is at least as accurate as every baseline's curve at auto's own token count
    (`auto_wins_at_equal_tokens`: strategies at one budget spend a few percent apart); and auto minus
    that best baseline with its paired 95% interval over problems (`paired`), when both cells carry
    their per-problem accuracies."""
    out = {}
    for budget, a in auto.items():
        rivals = [(round(uniform[label][budget]["accuracy"], 9), -uniform[label][budget]["tokens"], label)
                  for label in BASELINES if budget in uniform.get(label, {})]
        if not rivals:
            continue
        _, _, label = max(rivals)  # equal accuracy: the cheaper rival, the harder one to match on tokens
        best = uniform[label][budget]["accuracy"]
        rival_tokens = uniform[label][budget]["tokens"]
        level, level_label = max((accuracy_at_tokens(uniform[lab], a["tokens"]), lab) for lab in BASELINES if uniform.get(lab))
        out[budget] = {"best_uniform": label, "best_uniform_accuracy": best, "best_uniform_tokens": rival_tokens,
                       "auto_accuracy": a["accuracy"], "auto_tokens": a["tokens"],
                       "auto_wins": bool(at_least(a["accuracy"], best) and a["tokens"] <= rival_tokens),
                       "best_at_equal_tokens": level_label, "best_at_equal_tokens_accuracy": level,
                       "auto_wins_at_equal_tokens": bool(at_least(a["accuracy"], level)),
                       "paired": paired_difference(a.get("per_problem", {}), uniform[label][budget].get("per_problem", {}))}
    return out


def verdict_lines(wins: dict[int, dict[str, Any]]) -> list[str]:
    """The verdicts of `verdicts`, one line per reading, for summary.md and the pooled report alike."""
    return [f"auto >= best uniform ({', '.join(BASELINES)}) at <= tokens: "
            + ", ".join(f"@{b} {'yes' if w['auto_wins'] else 'no'} (vs {w['best_uniform']} {w['best_uniform_accuracy']:.3f}, "
                        f"{w['auto_tokens']:,.0f} vs {w['best_uniform_tokens']:,.0f} tokens)" for b, w in wins.items()),
            "auto >= every uniform curve at auto's own tokens (linear in log tokens between its points): "
            + ", ".join(f"@{b} {'yes' if w['auto_wins_at_equal_tokens'] else 'no'} (vs {w['best_at_equal_tokens']} "
                        f"{w['best_at_equal_tokens_accuracy']:.3f})" for b, w in wins.items()),
            "auto minus the best uniform, paired over problems [95% CI]: "
            + ", ".join(f"@{b} {w['paired']['difference']:+.3f} [{w['paired']['ci'][0]:+.3f}, {w['paired']['ci'][1]:+.3f}]"
                        if w["paired"] else f"@{b} n/a" for b, w in wins.items())]


def without_per_problem(cells: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Cells as summary.json shows them: the per-problem accuracies are for the paired intervals only."""
    return {b: {k: v for k, v in c.items() if k != "per_problem"} for b, c in cells.items()}


def hindsight_bins(runs: list[dict[str, Any]], records: list[dict], budget: int) -> dict[str, Any] | None:
    """The most any choice of ONE uniform cell (strategy, budget) per auto bin could have solved here, with
    hindsight of these very outcomes, within the best uniform rival's tokens at `budget`: how much room
    a per-bin choice of strategy leaves over uniform (auto's per-prompt stops and waves are not in it)."""
    bin_of = {(x["id"], r["seed"]): x["bin"] for r in runs if r["budget"] == budget for x in r["problems"]
              if x["bin"] is not None}
    cells: dict[tuple[str, int], dict[tuple[str, int], tuple[bool, float]]] = defaultdict(dict)
    for r in records:
        cells[(r["label"], int(r["budget"]))][(str(r["problem_id"]), int(r["seed"]))] = \
            (bool(r["correct"]), float(r["ledger"]["generated_tokens"]))
    rivals = [(sum(ok for k, (ok, _) in cells[(lab, budget)].items() if k in bin_of), lab)
              for lab in BASELINES if (lab, budget) in cells]
    if not bin_of or not rivals:
        return None
    solved, rival = max(rivals)
    limit = sum(t for k, (_, t) in cells[(rival, budget)].items() if k in bin_of)
    groups: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for k, b in bin_of.items():
        groups[b].append(k)
    options = {b: [(key, sum(cells[key][k][0] for k in ks), sum(cells[key][k][1] for k in ks))
                   for key in cells if key[0] in BASELINES and all(k in cells[key] for k in ks)]
               for b, ks in groups.items()}
    if not all(options.values()):  # a bin no uniform cell covers: no bound to give
        return None
    best = (-1, 0.0, ())
    for combo in itertools.product(*(options[b] for b in sorted(options))):
        n, t = sum(o[1] for o in combo), sum(o[2] for o in combo)
        if t <= limit and n > best[0]:
            best = (n, t, combo)
    if best[0] < 0:
        return None
    return {"runs": len(bin_of), "best_uniform": rival, "best_uniform_solved": solved,
            "hindsight_solved": best[0], "choice": {str(b): f"{o[0][0]}@{o[0][1]}" for b, o in zip(sorted(options), best[2])}}


def majority_correct(candidates: list[dict]) -> bool:
    """Whether the plurality answer of `candidates` is right (ties: the answer seen first)."""
    counts: dict[Any, list] = {}
    for c in candidates:
        counts.setdefault(c.get("answer"), []).append(bool(c.get("correct")))
    answer, oks = max(counts.items(), key=lambda kv: len(kv[1]))  # max keeps the first of equals
    return answer is not None and oks[0]


def largest_best_of_n(records: list[dict]) -> dict[tuple[str, int], dict]:
    """The best-of-N record with the most candidates per (problem, seed): the smaller cells are cut from
    it, so its first k samples are what auto's probe would have drawn, and the rest its target."""
    top: dict[tuple[str, int], dict] = {}
    for r in records:
        key = (str(r["problem_id"]), int(r["seed"]))
        if r["label"] == "best_of_n" and len(r["candidates"]) > len(top.get(key, {}).get("candidates", [])):
            top[key] = r
    return top


def estimator_quality(policy, problems, records, pik: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per estimator, on the judged problems: the AUROC of its easiness (1 - difficulty, from the first k
    best-of-N samples, as auto's probe sees them) for "majority@4 solves it", the majority taken over the
    next 4 samples (not the probe's own); and Spearman between difficulty and the solve rate over all the
    samples after the probe (negative is right). Apart from them, under "reference", ORACLE: the share of
    the probe's samples that are wrong, read with the gold answer. No estimator can know it; it shows how
    well k samples alone can foretell the solve rate (an estimator may still beat it with what the samples
    do not show, such as how long the solutions are)."""
    from ttscale.allocate.estimators import make_estimator
    from ttscale.allocate.features import probe_features
    from ttscale.allocate.stats import auroc, spearman, spearman_ci

    k = policy.probe_k
    text = {p.id: p.problem for p in problems}
    top = largest_best_of_n(records)
    names = ["probe", "pik", "learned"] if policy.learned else ["probe", "pik"]
    estimators = {n: make_estimator(n, policy) for n in names if n != "pik" or "pik" in policy.calibration}
    d: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    rate: dict[str, list[float]] = defaultdict(list)
    for (pid, _), r in top.items():
        probe, rest = r["candidates"][:k], r["candidates"][k:]
        if len(rest) < 4:
            continue
        f = probe_features(text[pid], probe, "arith_steps", pik.get(pid, {}).get("pik"))
        solved = majority_correct(rest[:4])
        for name, est in estimators.items():
            e = est.estimate(f)
            d[name][pid].append(e)
            rows[name].append((1.0 - e, solved))
        wrong = 1.0 - float(np.mean([bool(c["correct"]) for c in probe]))
        d[ORACLE][pid].append(wrong)
        rows[ORACLE].append((1.0 - wrong, solved))
        rate[pid] += [float(bool(c["correct"])) for c in rest]
    ids = sorted(rate)

    def quality(name: str) -> dict[str, Any]:
        x, y = [float(np.mean(d[name][i])) for i in ids], [float(np.mean(rate[i])) for i in ids]
        return {"spearman": spearman(x, y), "spearman_ci": spearman_ci(x, y),
                "auroc_majority@4": auroc([x for x, _ in rows[name]], [y for _, y in rows[name]])}

    return {"problems": len(ids), "probe_k": k, **{name: quality(name) for name in estimators},
            "reference": {ORACLE: quality(ORACLE)}}


def plot(path: Path, uniform: dict[str, dict[int, dict]], auto: dict[int, dict], target: float | None,
         problems: str = HELD_OUT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    series = {f"uniform {lab}": cells for lab, cells in uniform.items()}
    series["auto (fitted policy)"] = auto
    for label, cells in series.items():
        pts = sorted((c["tokens"], c["accuracy"], c["ci"], b) for b, c in cells.items())
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = np.array([[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]])
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=2, label=label,
                    linewidth=2.5 if label.startswith("auto") else 1.2)
        for x, y, _, b in pts:
            ax.annotate(str(b), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="uniform best_of_n at the largest budget")
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel(f"accuracy, {problems} (95% CI)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/arith-lab-policy.yaml", help="the fit grid (strategies, budgets)")
    ap.add_argument("--model", default=None, help="default: the recipe's (lab:arith)")
    ap.add_argument("--backend", default=None, help="default: the recipe's (vllm)")
    ap.add_argument("--threads", type=int, default=None, help="transformers/llamacpp threads")
    ap.add_argument("--policy", default=None, help="judge this policy file instead of fitting one")
    ap.add_argument("--n", type=int, default=100, help="problems per set (levels 1-5, 20 each at 100)")
    ap.add_argument("--fit-seed", type=int, default=0, help="generator seed of the training-family problems")
    ap.add_argument("--eval-seed", type=int, default=0, help="generator seed of the held-out-family problems")
    ap.add_argument("--dataset", default=None,
                    help="judge on these problems instead of the held-out families: a dataset name or a JSONL "
                         "file (id, problem, answer per line), e.g. benchmarks/data/fresh_wording.jsonl")
    ap.add_argument("--seeds", default="0,1,2", help="sampling seeds of the held-out runs")
    ap.add_argument("--budgets", default="4,8,16,32")
    ap.add_argument("--strategies", default=None,
                    help="only these labels of the recipe, e.g. best_of_n,beam,particle (default: all)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--out", default="runs/allocation")
    ap.add_argument("--force", action="store_true",
                    help="a grid folder of other settings (say, a strategy line added): keep its valid records, run the rest")
    args = ap.parse_args()
    args.budgets = sorted({int(b) for b in args.budgets.split(",")})
    seeds = [int(s) for s in args.seeds.split(",")]

    from ttscale.allocate import load_policy
    from ttscale.bench.ray_exec import build_engine
    from ttscale.allocate.calibrate import calibrate, pik_features, summary_lines, write_policy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    eval_config = grid_config(args, "heldout", args.eval_seed, seeds, "eval", args.budgets, args.dataset)
    engine = build_engine(eval_config)

    if args.policy:
        policy = load_policy(args.policy)
    else:
        fit_config = grid_config(args, "train", args.fit_seed, [0], "fit", None)  # the recipe's budgets
        run_grid(engine, fit_config, out / "fit", args.force)
        manifests = [json.loads((out / "fit" / "manifest.json").read_text())]
        cal = calibrate([out / "fit"], manifests=manifests, extra_features=pik_features(manifests, engine))
        write_policy(cal, out / "policy.json")
        print("\n".join(summary_lines(cal)), flush=True)
        policy = cal.policy

    problems, records = run_grid(engine, eval_config, out / "eval", args.force)
    records = [r for r in records if int(r["budget"]) in args.budgets]
    uniform = uniform_cells(records)
    runs = [run_auto(engine, args, problems, b, s, policy, out) for b in args.budgets for s in seeds]
    auto = auto_cells(runs)
    pik = pik_features([json.loads((out / "eval" / "manifest.json").read_text())], engine)

    largest = max(args.budgets)
    target = uniform.get("best_of_n", {}).get(largest)
    reach = None
    if target:
        t = tokens_to_reach([(c["tokens"], c["accuracy"]) for c in auto.values()], target["accuracy"])
        reach = {"target": f"best_of_n@{largest}", "accuracy": target["accuracy"], "its_tokens": target["tokens"],
                 "auto_tokens": t, "share": None if t is None else t / target["tokens"]}
    wins = verdicts(uniform, auto)
    room = {b: hindsight_bins(runs, records, b) for b in args.budgets}
    corr = estimator_quality(policy, problems, records, pik)
    judged_on = args.dataset or HELD_OUT
    plot(out / "accuracy_vs_tokens.png", uniform, auto, target["accuracy"] if target else None, judged_on)

    summary = {"model": eval_config.model, "backend": eval_config.backend, "n": len(problems), "seeds": seeds,
               "fit_seed": args.fit_seed, "eval_seed": None if args.dataset else args.eval_seed,
               "dataset": args.dataset, "budgets": args.budgets, "policy": args.policy or str(out / "policy.json"),
               "uniform": {lab: without_per_problem(cells) for lab, cells in uniform.items()},
               "auto": without_per_problem(auto),
               "auto_vs_best_uniform": wins, "hindsight_per_bin": room, "reach": reach, "estimators": corr,
               "policy_fit": policy.fit, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    def num(x: float | None) -> str:
        return "n/a" if x is None or x != x else f"{x:.2f}"

    def interval(q: dict[str, Any]) -> str:
        ci = q.get("spearman_ci")
        return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "[n/a]"

    def cell(c: dict | None) -> str:
        return "-" if c is None else f"{c['accuracy']:.2f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] ({c['tokens']:,.0f})"

    lines = [f"# auto vs uniform, {judged_on} ({eval_config.model}, {len(problems)} problems x "
             f"seeds {args.seeds}); accuracy [95% CI] (generated tokens per problem)", "",
             "| strategy | " + " | ".join(f"@{b}" for b in args.budgets) + " |", "|---|" + "---|" * len(args.budgets)]
    for label, cells in uniform.items():
        lines.append(f"| uniform {label} | " + " | ".join(cell(cells.get(b)) for b in args.budgets) + " |")
    lines.append("| **auto** | " + " | ".join(cell(auto.get(b)) for b in args.budgets) + " |")
    estimators = {k: v for k, v in corr.items() if isinstance(v, dict) and k != "reference"}
    lines += ["", *verdict_lines(wins),
              f"tokens for auto to reach {reach['target']} ({reach['accuracy']:.2f}): "
              + (f"{reach['auto_tokens']:.0f} = {reach['share']:.3f} of its {reach['its_tokens']:.0f}"
                 if reach and reach["auto_tokens"] is not None else "not reached") if reach else "no best_of_n baseline",
              "estimators on the judged problems (Spearman of difficulty vs solve rate [95% CI], -1 is perfect; "
              "AUROC for majority@4 solving it): " + ", ".join(f"{k} {num(v['spearman'])} {interval(v)} / "
                                                              f"{num(v['auroc_majority@4'])}" for k, v in estimators.items())
              + f"; for reference, the probe's own samples judged with the gold answer (no estimator can read "
                f"them): {num(corr['reference'][ORACLE]['spearman'])} / {num(corr['reference'][ORACLE]['auroc_majority@4'])}",
              "auto chose: " + "; ".join(f"@{b} {c['chosen']}" for b, c in auto.items()),
              "room for a per-bin choice (one uniform cell per auto bin, picked with hindsight of these outcomes, "
              "within the best uniform's tokens), runs solved: " + "; ".join(
                  f"@{b} {h['hindsight_solved']} of {h['runs']} vs {h['best_uniform']} {h['best_uniform_solved']} "
                  f"({', '.join(f'bin {k} {v}' for k, v in h['choice'].items())})" for b, h in room.items() if h),
              f"{time.perf_counter() - t0:.0f} s"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
