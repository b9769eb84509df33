"""Engine overhead: `solve_batch` of 16 arith prompts at best-of-N 8, against one direct backend call
that generates exactly the same requests (same token ids, n, sampling settings and seeds) in one call
(one per prompt on a one-sequence backend, as the engine does there).

Prints ttscale's wall time / raw wall time (goal <= 1.05). Runs alternate (raw, engine, raw, engine, ...)
so drift in machine load hits both sides alike; the median of each side is reported.

    python benchmarks/engine_overhead.py --backend llamacpp --max-tokens 48 --repeats 3
    python benchmarks/engine_overhead.py --backend vllm --model lab:arith --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time


class Recording:
    """Wraps a backend and keeps the requests of every call (and of every group added while others decode,
    on backends with continuous rounds), so they can be replayed raw."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[list] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests):
        self.calls.append(list(requests))
        return self.inner.generate(requests)

    def add(self, requests):
        self.calls.append(list(requests))
        return self.inner.add(requests)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--levels", default="1,2,3")
    args = ap.parse_args()

    from eval_sets import load
    from ttscale import Engine
    from ttscale.backends import make_backend

    levels = [int(x) for x in args.levels.split(",")]
    problems = [p.problem for p in load("arith", n=args.prompts, levels=levels, seed=0)]
    backend = Recording(make_backend(args.backend, args.model))
    engine = Engine(backend=backend)
    opts = dict(strategy="best_of_n", budget=args.budget, seed=0, max_tokens=args.max_tokens)

    engine.solve_batch(problems, **opts)  # warm-up: model caches, verifier workers, compile
    calls = list(backend.calls)
    assert engine.last_batch_usage.backend_calls == len(calls), (engine.last_batch_usage.backend_calls, len(calls))
    if getattr(backend, "slots", None) != 1:
        # Best-of-N is one round: on a batching backend the raw side makes it ONE call (the engine makes one
        # call, or with continuous rounds one group per prompt added at once).
        calls = [[r for call in calls for r in call]]

    raw_times, engine_times, tokens = [], [], 0
    for _ in range(args.repeats):
        t = time.perf_counter()
        raw = [r for call in calls for r in backend.inner.generate(call)]
        raw_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        results = engine.solve_batch(problems, **opts)
        engine_times.append(time.perf_counter() - t)
        tokens = sum(r.generated_tokens for r in raw)
        engine_tokens = sum(r.ledger.generated_tokens for r in results)
        assert engine_tokens == tokens, f"engine and raw runs must generate the same tokens ({engine_tokens} vs {tokens})"
    raw_s, eng_s = statistics.median(raw_times), statistics.median(engine_times)
    print(f"backend={args.backend} model={backend.model} prompts={args.prompts} best_of_n={args.budget} "
          f"max_tokens={args.max_tokens} repeats={args.repeats}")
    print(f"generated tokens per run: {tokens}")
    print(f"raw backend call   median {raw_s:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in raw_times)})")
    print(f"ttscale solve_batch median {eng_s:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in engine_times)})")
    print(f"overhead ratio (ttscale / raw): {eng_s / raw_s:.4f}")
    engine.close()


if __name__ == "__main__":
    main()
