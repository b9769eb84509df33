"""Ray scale-out speed-up: the same bench grid on 1 actor and on N actors of a local Ray instance.

Each configuration runs into a fresh folder; the figure is the run time after Ray and the models are
up (setup is printed apart), so it measures how the grid's work spreads over actors.

    python benchmarks/bench_ray_speedup.py                                   # embedded model, llama.cpp
    python benchmarks/bench_ray_speedup.py --recipe recipes/arith-lab-cpu.yaml --n 24 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TTSCALE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "eval_sets"))

from ttscale.bench.config import config_from_mapping  # noqa: E402
from ttscale.bench.recipe import resolve_config  # noqa: E402
from ttscale.bench.ray_exec import RaySettings  # noqa: E402
from ttscale.bench.run import run_bench  # noqa: E402


def _config(args: argparse.Namespace):
    return config_from_mapping({
        "model": args.model, "backend": args.backend, "verifier": args.verifier,
        "dataset": {"name": "arith", "levels": [1, 2, 3], "n": args.n},
        "strategies": args.strategies.split(","), "budgets": [int(b) for b in args.budgets.split(",")],
        "seeds": [int(s) for s in args.seeds.split(",")], "sampling": {"max_tokens": args.max_tokens},
        "max_inflight": args.max_inflight,
    }, where="benchmark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=None, help="run this recipe (with --n/--seeds/--budgets on top)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--strategies", default="best_of_n")
    ap.add_argument("--verifier", default=None)
    ap.add_argument("--n", type=int, default=8, help="arith problems (levels 1-3)")
    ap.add_argument("--budgets", default="1,4")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--actors", default="1,2", help="actor counts to compare")
    ap.add_argument("--cpus-per-actor", type=int, default=1)
    ap.add_argument("--max-inflight", type=int, default=64)
    args = ap.parse_args()
    if args.recipe:
        over = {"n": args.n, "seeds": [int(x) for x in args.seeds.split(",")]}
        if args.budgets != ap.get_default("budgets"):
            over["budgets"] = [int(b) for b in args.budgets.split(",")]
        if args.backend != ap.get_default("backend"):
            over["backend"] = args.backend
        cfg = resolve_config(args.recipe, over)
        args.model, args.backend, args.strategies = cfg.model, cfg.backend, ",".join(s.label for s in cfg.strategies)
        args.budgets, args.max_tokens = ",".join(map(str, cfg.budgets)), cfg.sampling.max_tokens
    else:
        cfg = _config(args)
    rows = []
    for actors in [int(a) for a in args.actors.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s = run_bench(cfg, Path(tmp) / "run", progress=False,
                          ray=RaySettings(actors=actors, cpus_per_actor=args.cpus_per_actor))
            total = time.perf_counter() - t0
        rows.append((actors, s.run_seconds, total - s.run_seconds, total, s.generated_tokens, s.cells_written))
        print(f"actors={actors}: run {s.run_seconds:.1f} s, setup {total - s.run_seconds:.1f} s, "
              f"{s.generated_tokens} tokens, {s.cells_written} records", flush=True)
    ones = [r[1] for r in rows if r[0] == 1]
    base = sum(ones) / len(ones) if ones else rows[0][1]  # mean 1-actor run time (repeat --actors 1,2,1,2 on noisy hosts)
    try:
        load = "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    print(f"\n{load} at the end; grid: arith n={args.n} levels 1-3, {args.strategies}, "
          f"budgets {args.budgets}, seeds {args.seeds}, "
          f"max_tokens {args.max_tokens}, model {args.model or 'embedded SmolLM2-135M'} ({args.backend}), "
          f"{args.cpus_per_actor} CPU per actor, host cores: {os.cpu_count()}")
    print("| actors | run s | setup s (Ray + model loads) | total s | tokens | tok/s | speed-up (run) |")
    print("|---|---|---|---|---|---|---|")
    for actors, run_s, setup_s, total, tokens, _ in rows:
        print(f"| {actors} | {run_s:.1f} | {setup_s:.1f} | {total:.1f} | {tokens} | {tokens / max(run_s, 1e-9):.0f} | "
              f"{base / max(run_s, 1e-9):.2f}x |")


if __name__ == "__main__":
    main()
