"""The its_hub side of benchmarks/vs_its_hub.py: particle filtering with its_hub against an OpenAI server.

Run with the interpreter of a SEPARATE venv that has `its-hub` (+ its `[lm]` extra: openai, aiohttp,
backoff, certifi, requests), never ttscale's venv:

    /tmp/itsvenv/bin/python benchmarks/its_hub_side.py --base-url http://127.0.0.1:PORT/v1 \
        --problems problems.json --out result.json

What it runs is what an its_hub user writes:

    lm = OpenAICompatibleLanguageModel(endpoint=base_url, api_key="none", model_name=...)
    sg = StepGeneration(max_steps, step_token="\\n\\n", stop_token="\\\\boxed", temperature=0.8)
    pf = ParticleFiltering(sg, prm)
    pf.infer(lm, prompt, budget=8)                 # --mode sequential (one problem after another)
    await asyncio.gather(*(pf.ainfer(lm, p, 8) ...))  # --mode gather (its documented async API)

with the process reward model being ttscale's rule-based `arith_steps` verifier (pure Python, imported
from the repo by path) behind its_hub's `AbstractProcessRewardModel` interface, aggregated "last".

Two small, documented adjustments make the settings match ttscale's (disable with --as-shipped):
  * llama-cpp-python's server ignores `max_completion_tokens` (the only length field its_hub sends), so
    without help an its_hub step is uncapped; we also send `max_tokens` = the per-step cap.
  * its_hub sends no `top_p` (the server then uses 0.95); ttscale sends top_p=1.0, so we send it too.
Both only add fields to the request body; its_hub's algorithm and request pattern are untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from its_hub.api import AbstractProcessRewardModel, ChatMessages, GenerationUsage  # noqa: E402
from its_hub.core.algorithms.particle_gibbs import ParticleFiltering  # noqa: E402
from its_hub.core.lms.openai_lm import OpenAICompatibleLanguageModel  # noqa: E402
from its_hub.core.lms.step_generation import StepGeneration  # noqa: E402


def _import_arith_steps():
    """verifiers/arith_steps.py is pure Python but does `from ttscale.requests import Score` at import time,
    which runs ttscale/__init__ -> engine -> backends -> httpx/llama_cpp (absent here). Register `ttscale`
    as a bare namespace so only ttscale/requests.py (dataclasses only) is loaded."""
    import types

    if "ttscale" not in sys.modules:
        pkg = types.ModuleType("ttscale")
        pkg.__path__ = [str(REPO / "ttscale")]
        sys.modules["ttscale"] = pkg
    from verifiers.arith_steps import ArithStepsVerifier

    return ArithStepsVerifier


ArithStepsVerifier = _import_arith_steps()

PROMPT_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


class ArithStepsPRM(AbstractProcessRewardModel):
    """ttscale's `arith_steps` verifier as an its_hub process reward model.

    its_hub's particle filter calls `ascore(prompt, [response, ...])` with each particle's steps joined by
    the step token; we split them back into steps (stripped, empty ones dropped, as ttscale does), score
    every step and aggregate with "last" (ttscale's default `--step-aggregate last`).
    """

    def __init__(self, step_token: str = "\n\n") -> None:
        self.step_token = step_token
        self.verifier = ArithStepsVerifier()
        self.calls = 0
        self.seconds = 0.0

    def _one(self, response: str) -> float:
        steps = [s.strip() for s in response.split(self.step_token)]
        steps = [s for s in steps if s]
        # As ttscale's "last" aggregation reads them: the last informative step's score; steps with no claim
        # (None) carry no evidence; a path without any is neutral.
        scores = [s for s in self.verifier.score_steps(steps) if s is not None] if steps else []
        return float(scores[-1]) if scores else 0.5

    def score(self, prompt_or_messages, response_or_responses):
        t = time.perf_counter()
        self.calls += 1
        single = isinstance(response_or_responses, str)
        out = [self._one(r) for r in ([response_or_responses] if single else response_or_responses)]
        self.seconds += time.perf_counter() - t
        return out[0] if single else out

    async def ascore(self, prompt_or_messages, response_or_responses):
        return self.score(prompt_or_messages, response_or_responses)


class CountingLM(OpenAICompatibleLanguageModel):
    """its_hub's OpenAI LM, counting requests and usage (and, unless as_shipped, sending max_tokens/top_p)."""

    def __init__(self, *args, step_tokens: int | None = None, top_p: float | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.usage = GenerationUsage()
        self.requests = 0
        self._step_tokens = step_tokens
        self._top_p = top_p

    def _prepare_request_data(self, *args, **kw) -> dict:
        data = super()._prepare_request_data(*args, **kw)
        self.requests += 1
        if self._step_tokens is not None:
            data.setdefault("max_tokens", data.get("max_completion_tokens", self._step_tokens))
        if self._top_p is not None:
            data["top_p"] = self._top_p
        return data

    async def agenerate(self, *args, **kw):
        kw.setdefault("usage_accumulator", self.usage)
        return await super().agenerate(*args, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--problems", required=True, help="JSON file: a list of problem texts")
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=8, help="steps per particle at most (as ttscale counts)")
    ap.add_argument("--step-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--mode", choices=["sequential", "gather"], default="sequential")
    ap.add_argument("--stop-token", default="\\boxed", help="its_hub's particle-finished marker ('' for none)")
    ap.add_argument("--as-shipped", action="store_true", help="no max_tokens/top_p added to its_hub's requests")
    ap.add_argument("--warmup", type=int, default=1, help="problems solved (untimed) before the timed run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    problems = json.loads(Path(args.problems).read_text())
    prompts = [PROMPT_TEMPLATE.format(problem=p) for p in problems]
    random.seed(args.seed)
    np.random.seed(args.seed)

    # The per-step cap is the LM's default max_completion_tokens (StepGeneration sends none of its own
    # when it splits on a step token).
    lm = CountingLM(
        endpoint=args.base_url, api_key="none", model_name="smollm2", max_completion_tokens=args.step_tokens,
        step_tokens=None if args.as_shipped else args.step_tokens,
        top_p=None if args.as_shipped else 1.0,
    )
    # its_hub's StepGeneration marks a particle stopped when len(steps_so_far) >= max_steps, i.e. only
    # after generating step max_steps + 1; pass max_steps - 1 so both sides stop at the same step count.
    sg = StepGeneration(max_steps=args.max_steps - 1, step_token="\n\n", stop_token=args.stop_token or None,
                        temperature=args.temperature)
    prm = ArithStepsPRM("\n\n")
    pf = ParticleFiltering(sg, prm)

    for p in prompts[: args.warmup]:
        pf.infer(lm, p, budget=args.budget)
    lm.usage, lm.requests, prm.calls, prm.seconds = GenerationUsage(), 0, 0, 0.0

    c0, t0 = time.process_time(), time.perf_counter()
    per_problem: list[float] = []
    if args.mode == "sequential":
        results = []
        for p in prompts:
            t = time.perf_counter()
            results.append(pf.infer(lm, p, budget=args.budget, return_response_only=False))
            per_problem.append(time.perf_counter() - t)
    else:
        async def run_all():
            try:
                return await asyncio.gather(*(pf.ainfer(lm, p, budget=args.budget, return_response_only=False)
                                              for p in prompts))
            finally:
                await lm.close()

        results = asyncio.run(run_all())
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - c0

    steps = [sum(r.steps_used_lst) for r in results]
    out = {
        "side": "its_hub",
        "mode": args.mode,
        "as_shipped": args.as_shipped,
        "wall_seconds": wall,
        "client_cpu_s": client_cpu,
        "per_problem_seconds": per_problem,
        "requests": lm.requests,
        "usage_calls": lm.usage.num_calls,
        "prompt_tokens": lm.usage.prompt_tokens,
        "completion_tokens": lm.usage.completion_tokens,
        "prm_calls": prm.calls,
        "prm_seconds": prm.seconds,
        "particle_steps": sum(steps),
        "answers": [r.the_one.get("content") or "" for r in results],
        "heavy_modules_loaded": sorted(m for m in ("torch", "transformers", "llama_cpp", "httpx", "math_verify")
                                       if m in sys.modules),
        "pid": os.getpid(),
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k not in ("answers", "per_problem_seconds")}))


if __name__ == "__main__":
    main()
