"""Load on `ttscale serve`: 32 concurrent clients at best-of-N 4, against the same 32 requests one at a time.

Starts the server on loopback, sends real OpenAI-client requests, prints requests per second and
p50 / p95 latency for both runs. Bounded: 32 requests each way, then the server is stopped.

    python benchmarks/serve_load.py --max-tokens 32
    python benchmarks/serve_load.py --backend vllm --model lab:arith --max-tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def one(client: openai.AsyncOpenAI, problem: str, budget: int, max_tokens: int) -> float:
    t = time.perf_counter()
    await client.chat.completions.create(model="ttscale", messages=[{"role": "user", "content": problem}],
                                         max_tokens=max_tokens, extra_body={"ttscale": {"budget": budget}})
    return time.perf_counter() - t


async def run(base: str, problems: list[str], budget: int, max_tokens: int, concurrent: bool) -> tuple[float, list[float]]:
    async with openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=3600) as client:
        t = time.perf_counter()
        if concurrent:
            lat = await asyncio.gather(*(one(client, p, budget, max_tokens) for p in problems))
        else:
            lat = [await one(client, p, budget, max_tokens) for p in problems]
        return time.perf_counter() - t, list(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--model", default=None)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()

    from eval_sets import load

    problems = [p.problem for p in load("arith", n=args.clients, levels=[1, 2, 3], seed=0)]
    cmd = [str(Path(sys.executable).parent / "ttscale"), "serve", "--backend", args.backend, "--port", str(args.port),
           "--max-budget", str(args.budget)]
    if args.model:
        cmd += ["--model", args.model]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        asyncio.run(run(base, problems[:2], args.budget, args.max_tokens, True))  # warm-up
        print(f"backend={args.backend} model={args.model or 'embedded'} clients={args.clients} "
              f"best_of_n={args.budget} max_tokens={args.max_tokens}")
        for label, conc in (("one at a time", False), (f"{args.clients} concurrent", True)):
            wall, lat = asyncio.run(run(base, problems, args.budget, args.max_tokens, conc))
            print(f"{label:>14}: {len(lat) / wall:.3f} req/s, wall {wall:.1f} s, p50 {statistics.median(lat):.2f} s, "
                  f"p95 {percentile(lat, 0.95):.2f} s")
        sizes = httpx.get(f"{base}/v1/ttscale/stats").json()["round_sizes"]
        print(f"callers per backend round in the concurrent run: max {max(sizes)}, rounds {len(sizes)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
