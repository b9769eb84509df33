"""The transformers backend and the PRM runner on CUDA with the lab models, timed against the CPU of the
same machine (run on a GPU machine; on a machine without CUDA it times the CPU only).

    python benchmarks/gpu_lab_models.py [--prompts 16] [--n 16] [--solutions 512] [--cpu-threads 16]

Generation: `--prompts` held-out-family level-3 problems x n samples (T=0.8, up to 256 tokens) in one
`generate` call of the transformers backend with `lab:arith`; reported as generated tokens per second,
after one warm-up call. PRM: `lab:arith-prm` (Qwen2.5-Math-PRM format) scores `--solutions` generated
solutions step by step through `verifiers.prm.PRMVerifier` (the code a GPU user runs with
Qwen/Qwen2.5-Math-PRM-7B), batch 32; reported as solutions and steps per second, cache cold. Also prints
the largest difference between the CPU and GPU step scores (bf16 on the GPU, fp32 on the CPU).
"""

from __future__ import annotations

import argparse
import json
import time


def generation(device: str, prompts: int, n: int) -> tuple[float, list[tuple[str, str]]]:
    from ttscale.backends.hf import TransformersBackend
    from ttscale.lab.evaluate import held_out, problem_requests

    b = TransformersBackend("lab:arith", device=device, max_batch=4096)
    rows = held_out(3, prompts, split="heldout")
    reqs = problem_requests(b, rows, n, 0.8)
    b.generate(reqs[:1])
    _sync(device)
    t = time.perf_counter()
    results = b.generate(reqs)
    _sync(device)
    secs = time.perf_counter() - t
    tokens = sum(r.generated_tokens for r in results)
    texts = [(row["problem"], c.text) for row, res in zip(rows, results) for c in res.completions]
    b.close()
    return tokens / secs, texts


def prm(device: str, solutions: list[tuple[str, str]], batch: int = 32) -> tuple[float, float, list[list[float | None]]]:
    from eval_sets.arith import solution_steps
    from ttscale.lab import resolve_lab_model
    from ttscale.requests import Score
    from verifiers.prm import PRMVerifier

    v = PRMVerifier(model=str(resolve_lab_model("lab:arith-prm")), device=device, batch_size=batch)
    v.score(solutions[0][0], solution_steps(solutions[0][1]) or ["x"])  # warm-up
    v._cache.clear()
    reqs = [Score(verifier="prm", problem=p, candidates=(tuple(solution_steps(t) or [t]),)) for p, t in solutions]
    _sync(device)
    t = time.perf_counter()
    scores, _ = v.score_batch(reqs)
    _sync(device)
    secs = time.perf_counter() - t
    steps = sum(len(r.candidates[0]) for r in reqs)
    return len(reqs) / secs, steps / secs, [s[0] for s in scores]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--solutions", type=int, default=512)
    parser.add_argument("--cpu-threads", type=int, default=None)
    parser.add_argument("--prm-batch", type=lambda x: [int(v) for v in x.split(",")], default=[32],
                        help="PRM batch sizes to time, e.g. 32,256 (the first is the headline)")
    args = parser.parse_args()
    import torch

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}", flush=True)
    out = {}
    texts = None
    for d in devices:
        tps, sample = generation(d, args.prompts, args.n)
        texts = texts or sample
        out[d] = {"generate_tok_per_s": round(tps)}
        print(f"{d}: transformers backend, {args.prompts} prompts x n={args.n}: {tps:,.0f} generated tok/s", flush=True)
    solutions = (texts * (args.solutions // max(1, len(texts)) + 1))[: args.solutions]
    step_scores = {}
    for d in devices:
        for batch in args.prm_batch:
            sps, steps_ps, step_scores[d] = prm(d, solutions, batch)
            if batch == args.prm_batch[0]:
                out[d].update(prm_solutions_per_s=round(sps, 1), prm_steps_per_s=round(steps_ps))
            out[d][f"prm_steps_per_s_batch{batch}"] = round(steps_ps)
            print(f"{d}: PRM runner, {len(solutions)} solutions, batch {batch}: {sps:,.1f} solutions/s, "
                  f"{steps_ps:,.0f} steps/s", flush=True)
    if len(devices) == 2:
        diff = max(abs(a - b) for sa, sb in zip(step_scores["cpu"], step_scores["cuda"])
                   for a, b in zip(sa, sb) if a is not None and b is not None)
        out["max_step_score_diff_cpu_gpu"] = round(diff, 4)
        print(f"largest CPU/GPU step-score difference: {diff:.4f}")
        for key in ("generate_tok_per_s", "prm_steps_per_s"):
            print(f"{key}: GPU / CPU = {out['cuda'][key] / out['cpu'][key]:.1f}x")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
