"""Figures for issue 5: multi-temperature voting, parallel thinking and refine against best-of-N.

    python benchmarks/more_strategies.py [--model lab:arith] [--backend transformers] [--n 60]
        [--levels 1,2,3] [--seeds 0,1,2] [--budgets 4,16] [--strategies ...] [--out results.jsonl]

For every (seed, budget, strategy) it solves the `arith` problems `load("arith", n, levels, seed)` as one
`solve_batch` (engine seed = the data seed) and grades each answer against the gold one with the
math-verify checker. Printed per budget and strategy: accuracy (mean over seeds, and the spread of the
per-seed accuracies), generated and prompt tokens per problem, candidates per problem, the share of the
budget left unspent (temperature's early exit, refine's accepted-early chains), backend calls per
batch, and seconds.

Strategies (all at the same budget, sampling temperature `--temperature` where one applies):
  best_of_n          N samples at one temperature, majority vote
  best_of_n_grid     best_of_n with the budget spread over the grid 0.3/0.6/0.9/1.2 (no early exit)
  temperature        the grid, sampled in waves with early exit, majority vote
  parallel_thinking  budget-1 paths + one synthesis, verified by --verifier, majority fallback
  parallel_thinking_plain  the same, but the synthesis prompt is only the paths, then the problem (for a
                     model trained on bare problems, which never saw an instruction to compare attempts)
  refine             1 chain x budget turns, verdicts from --verifier
  refine_restate     refine whose feedback turn only restates the problem (a model never trained to
                     revise just tries again, still stopping at the first accepted attempt)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

GRID = [0.3, 0.6, 0.9, 1.2]


def strategy_table(verifier: str) -> dict[str, dict]:
    return {
        "best_of_n": {"strategy": "best_of_n"},
        "best_of_n_grid": {"strategy": "best_of_n", "temperatures": GRID},
        "temperature": {"strategy": "temperature", "temperatures": GRID},
        "parallel_thinking": {"strategy": "parallel_thinking", "verifier": verifier},
        "parallel_thinking_plain": {"strategy": "parallel_thinking", "verifier": verifier,
                                    "synthesis_prompt": "{paths}\n\n{problem}"},
        "refine": {"strategy": "refine", "verifier": verifier},
        "refine_restate": {"strategy": "refine", "verifier": verifier, "feedback_prompt": "{problem}"},
    }


def ensure_verifier(name: str) -> None:
    """Use the registered verifier; `arith_steps` straight from `verifiers` if it is not registered yet."""
    from ttscale.scoring import register_scorer, scorers

    if name in scorers.names() or name == "none":
        return
    if name == "arith_steps":
        from verifiers.arith_steps import ArithStepsVerifier

        register_scorer("arith_steps")(lambda backend, **options: ArithStepsVerifier(**options))
        return
    scorers.get(name)  # a clear "unknown verifier" error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--backend", default="transformers", help="transformers | vllm | llamacpp")
    parser.add_argument("--n", type=int, default=60, help="problems per seed")
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", default="4,16")
    parser.add_argument("--strategies", default=",".join(strategy_table("x")))
    parser.add_argument("--verifier", default="arith_steps", help="for parallel_thinking and refine")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-tokens", type=int, default=None, help="per candidate (default: the model's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write one JSON line per (seed, budget, strategy, problem)")
    args = parser.parse_args()

    from eval_sets import load
    from ttscale import Engine
    from verifiers import get_checker

    levels = [int(x) for x in args.levels.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    budgets = [int(x) for x in args.budgets.split(",")]
    table = strategy_table(args.verifier)
    names = [s for s in args.strategies.split(",") if s]
    unknown = [s for s in names if s not in table]
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {list(table)}")
    ensure_verifier(args.verifier)
    checker = get_checker()
    backend_opts = {"threads": args.threads} if args.backend in ("transformers", "llamacpp") else {}
    engine = Engine(backend=args.backend, model=args.model, **backend_opts)
    out = open(args.out, "w") if args.out else None

    print(f"model {args.model} ({args.backend}), arith levels {levels}, {args.n} problems x seeds {seeds}, "
          f"budgets {budgets}, T={args.temperature}, verifier {args.verifier}")
    # (budget, strategy) -> per-seed accuracy, and per-problem rows
    acc: dict[tuple[int, str], list[float]] = defaultdict(list)
    rows: dict[tuple[int, str], list[dict]] = defaultdict(list)
    calls: dict[tuple[int, str], list[int]] = defaultdict(list)
    secs: dict[tuple[int, str], float] = defaultdict(float)
    for seed in seeds:
        problems = load("arith", n=args.n, levels=levels, seed=seed)
        for budget in budgets:
            for name in names:
                opts = dict(table[name])
                strategy = opts.pop("strategy")
                start = time.perf_counter()
                results = engine.solve_batch([p.problem for p in problems], strategy=strategy, budget=budget, seed=seed,
                                             temperature=args.temperature, max_tokens=args.max_tokens, **opts)
                secs[budget, name] += time.perf_counter() - start
                calls[budget, name].append(engine.last_batch_usage.backend_calls)
                correct = 0
                for p, r in zip(problems, results):
                    ok = bool(r.answer is not None and checker.equivalent(p.answer, r.answer))
                    correct += ok
                    d = r.details or {}
                    row = {"seed": seed, "budget": budget, "strategy": name, "id": p.id, "level": p.level,
                           "gold": p.answer, "answer": r.answer, "correct": ok,
                           "generated_tokens": r.ledger.generated_tokens, "prompt_tokens": r.ledger.prompt_tokens,
                           "cached_prompt_tokens": r.ledger.cached_prompt_tokens, "candidates": r.ledger.candidates,
                           "samples_saved": d.get("samples_saved", 0), "fallback": d.get("fallback"),
                           "synthesis_answer": (d.get("synthesis") or {}).get("answer"),
                           "synthesis_issue": (d.get("synthesis") or {}).get("issue")}
                    rows[budget, name].append(row)
                    if out:
                        out.write(json.dumps(row) + "\n")
                acc[budget, name].append(correct / len(problems))
                print(f"  seed {seed} budget {budget:>3} {name:<24} acc {correct / len(problems):.3f} "
                      f"({time.perf_counter() - start:.0f}s)", flush=True)

    print()
    header = (f"{'budget':>6} {'strategy':<24} {'acc':>6} {'±sd':>6} {'gen tok/prob':>12} {'prompt tok/prob':>15} "
              f"{'cands/prob':>10} {'unspent':>8} {'calls/batch':>11} {'seconds':>8}")
    print(header)
    for budget in budgets:
        for name in names:
            rs = rows[budget, name]
            a = acc[budget, name]
            sd = statistics.stdev(a) if len(a) > 1 else 0.0
            mean = lambda k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
            print(f"{budget:>6} {name:<24} {statistics.mean(a):>6.3f} {sd:>6.3f} {mean('generated_tokens'):>12.1f} "
                  f"{mean('prompt_tokens'):>15.1f} {mean('candidates'):>10.2f} {mean('samples_saved') / budget:>8.3f} "
                  f"{statistics.mean(calls[budget, name]):>11.1f} {secs[budget, name]:>8.0f}")
    for budget in budgets:
        for pt in [n for n in names if n.startswith("parallel_thinking")]:
            rs = rows[budget, pt]
            issues: dict[str, int] = defaultdict(int)
            for r in rs:
                issues[r["synthesis_issue"] or r["fallback"] or "accepted, among paths"] += 1
            print(f"{pt} budget {budget}: synthesis outcomes {dict(issues)}; "
                  f"fell back to the path majority on {sum(1 for r in rs if r['fallback'])}/{len(rs)}")
    if out:
        out.close()
    engine.close()


if __name__ == "__main__":  # vLLM starts worker processes: the guard is required
    main()
