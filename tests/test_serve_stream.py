"""`ttscale serve` streaming (`stream=true`, SSE chunks) and its serve flags (issue 19), on a real loopback
server with the scripted backend: progress, the answer, the ttscale block, [DONE]; errors after the stream
began as an error chunk; disconnects; --served-model-name, --strategy/--budget defaults, upstream flags."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from fakes import ExactChecker, FakeBackend, SlowBackend, many_steps
from helpers import free_port

from ttscale import Engine
from ttscale.errors import TTScaleError

MSG = [{"role": "user", "content": "What is 2 + 2?"}]
SOLVED = "2 + 2 = 4\n\nThe answer is 4."



def stream_lines(base: str, body: dict, timeout: float = 30) -> tuple[httpx.Response, list[str]]:
    """POST with stream=true; the non-empty SSE lines as they came."""
    with httpx.stream("POST", f"{base}/v1/chat/completions", json={**body, "stream": True}, timeout=timeout) as r:
        return r, [line for line in r.iter_lines() if line]


def chunks(lines: list[str]) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: {")]


def test_stream_sends_progress_then_the_answer_and_the_ttscale_block(serve) -> None:
    backend = FakeBackend(lambda p, j, s: SOLVED)
    base, _ = serve(backend)
    body = {"messages": MSG, "seed": 3, "ttscale": {"budget": 3}}
    r, lines = stream_lines(base, body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    got = chunks(lines)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == got[0]["id"] for c in got)
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in got)
    assert "3 candidate(s) finished" in reasoning and "leading answer: 4" in reasoning
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in got)
    last = got[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and "usage" not in last
    assert all(c["choices"][0]["finish_reason"] is None for c in got[:-1])
    plain = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30).json()
    assert content == plain["choices"][0]["message"]["content"] == SOLVED
    block = last["ttscale"]
    assert block["answer"] == "4" and block["votes"] == plain["ttscale"]["votes"] == {"4": 3}
    assert block["ledger"]["candidates"] == 3 and block["budget"] == 3 and block["partial"] is False


def test_progress_lines_name_what_happened_and_skip_silent_rounds() -> None:
    from ttscale.serve_stream import progress_line

    state: dict = {}
    said = [progress_line(e, state) for e in (
        {"type": "round", "next": "Score"},
        {"type": "steps_scored", "verifier": "arith_steps", "last_step_scores": [0.5, None]},
        {"type": "round", "next": "Generate"},
        {"type": "mine", "x": [1, 2]},
        {"type": "steps_scored", "verifier": "v", "last_step_scores": ["odd"]},
        {"type": "round", "next": "Decide"}, {"type": "round", "next": "Generate"}, {"type": "done"})]
    assert said == ["round 1 done; next: scoring\n", "arith_steps scored the last steps: 0.50, -\n", None,
                    'mine: {"x": [1, 2]}\n', "steps_scored\n", None, "round 4 done; next: generating\n", None]


def test_include_usage_adds_a_usage_chunk_last(serve) -> None:
    base, _ = serve(FakeBackend(lambda p, j, s: SOLVED))
    _, lines = stream_lines(base, {"messages": MSG, "ttscale": {"budget": 2},
                                   "stream_options": {"include_usage": True}})
    got = chunks(lines)
    *before, last = got
    assert last["choices"] == [] and all(c["usage"] is None for c in before)
    assert before[-1]["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["completion_tokens"] == last["ttscale"]["ledger"]["generated_tokens"] == 2 * len(SOLVED)
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


def test_the_openai_client_streams_and_sees_errors_after_the_start(serve) -> None:
    class DiesOnSecondCall(FakeBackend):
        def generate(self, requests):
            if self.calls:
                raise RuntimeError("upstream went away")
            return super().generate(requests)

    base, _ = serve(FakeBackend(lambda p, j, s: SOLVED))
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=30)
    stream = client.chat.completions.create(model="ttscale", messages=MSG, stream=True,
                                            extra_body={"ttscale": {"budget": 2}})
    parts = list(stream)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == SOLVED
    assert parts[-1].model_extra["ttscale"]["answer"] == "4"

    backend = DiesOnSecondCall(many_steps)
    base, _ = serve(backend)
    _, lines = stream_lines(base, {"messages": MSG, "ttscale": {"strategy": "particle", "budget": 2,
                                                                "verifier": "arith_steps"}})
    got = chunks(lines)
    assert "reasoning_content" in got[1]["choices"][0]["delta"]  # progress went out before the failure
    assert "upstream went away" in got[-1]["error"]["message"] and got[-1]["error"]["code"] == 500
    assert lines[-1] == "data: [DONE]"
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=30)
    with pytest.raises(openai.APIError, match="upstream went away"):
        list(client.chat.completions.create(model="ttscale", messages=MSG, stream=True, extra_body={
            "ttscale": {"strategy": "particle", "budget": 2, "verifier": "arith_steps"}}))
    assert httpx.get(f"{base}/health").status_code == 200


@pytest.mark.parametrize("body, status, needle", [
    ({"messages": MSG, "ttscale": {"strategy": "nope"}}, 400, "unknown strategy"),
    ({"messages": [{"role": "system", "content": "Be brief."}]}, 400, "no non-empty user message"),
    ({"messages": MSG, "stream_options": {"include_usage": "yes"}}, 400, "include_usage"),
    ({"messages": MSG, "model": "gpt-4o"}, 404, "not served here"),
])
def test_stream_errors_known_before_work_are_json_4xx(serve, body, status, needle) -> None:
    backend = FakeBackend(lambda p, j, s: SOLVED)
    base, _ = serve(backend)
    r = httpx.post(f"{base}/v1/chat/completions", json={**body, "stream": True}, timeout=30)
    assert r.status_code == status and needle in r.json()["error"]["message"], r.text
    assert backend.calls == []


def test_disconnect_during_a_stream_stops_spending(serve) -> None:
    backend = SlowBackend(many_steps, delay=0.2)
    base, _ = serve(backend)
    body = {"messages": MSG, "max_tokens": 2000, "stream": True,
            "ttscale": {"strategy": "particle", "budget": 4, "verifier": "arith_steps"}}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=30) as r:
        seen = 0
        for line in r.iter_lines():
            seen += "reasoning_content" in line
            if seen >= 2:
                break
    at_close = len(backend.calls)
    time.sleep(1.5)
    assert len(backend.calls) <= at_close + 1  # at most the round in flight finishes
    assert httpx.get(f"{base}/v1/ttscale/stats").json()["disconnects"] == 1


def test_silence_is_filled_with_sse_comments(serve, monkeypatch) -> None:
    import ttscale.serve_stream

    monkeypatch.setattr(ttscale.serve_stream, "HEARTBEAT_S", 0.05)
    base, _ = serve(SlowBackend(lambda p, j, s: SOLVED, delay=0.5))
    _, lines = stream_lines(base, {"messages": MSG, "ttscale": {"budget": 1}})
    assert any(line.startswith(": ") for line in lines) and lines[-1] == "data: [DONE]"


def test_served_model_name_is_listed_carried_and_enforced(serve) -> None:
    backend = FakeBackend(lambda p, j, s: SOLVED)
    base, _ = serve(backend, model_name="house-math")
    assert [m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]] == ["house-math"]
    for name in ("house-math", "ttscale", None):
        r = httpx.post(f"{base}/v1/chat/completions", json={"messages": MSG, "model": name}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == "house-math", r.text
    calls = len(backend.calls)
    r = httpx.post(f"{base}/v1/chat/completions", json={"messages": MSG, "model": "gpt-4o"}, timeout=30)
    assert r.status_code == 404 and "'house-math'" in r.json()["error"]["message"]
    assert len(backend.calls) == calls


def test_server_defaults_fill_what_the_request_leaves_out(serve) -> None:
    base, _ = serve(FakeBackend(lambda p, j, s: SOLVED), default_strategy="particle", default_budget=3,
                    max_budget=4)

    def ask(ttscale: dict | None) -> httpx.Response:
        body = {"messages": MSG, **({} if ttscale is None else {"ttscale": ttscale})}
        return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)

    plain = ask(None).json()["ttscale"]
    assert plain["strategy"] == "particle" and plain["budget"] == 3
    own = ask({"strategy": "best_of_n", "budget": 4}).json()["ttscale"]  # the request's own block wins
    assert own["strategy"] == "best_of_n" and own["budget"] == 4 and own["ledger"]["candidates"] == 4
    part = ask({"budget": 2}).json()["ttscale"]  # a block without a strategy: the server's strategy
    assert part["strategy"] == "particle" and part["budget"] == 2
    r = ask({"budget": 5})
    assert r.status_code == 400 and "maximum of 4" in r.json()["error"]["message"]


def test_bad_server_defaults_fail_at_start() -> None:
    engine = Engine(backend=FakeBackend(lambda p, j, s: SOLVED), checker=ExactChecker())
    from ttscale.serve import create_app

    with pytest.raises(TTScaleError, match="over --max-budget 4"):
        create_app(engine, default_budget=8, max_budget=4)
    with pytest.raises(TTScaleError, match="unknown strategy"):
        create_app(engine, default_strategy="nope")


@pytest.fixture()
def no_model(monkeypatch):
    """`ttscale serve` in this process with Engine replaced: records its arguments, never loads a model."""
    import ttscale.engine

    seen: dict = {}

    def engine(**kwargs):
        seen.update(kwargs)
        raise TTScaleError("stand-in engine", "none")

    monkeypatch.setattr(ttscale.engine, "Engine", engine)
    monkeypatch.delenv("TTSCALE_API_KEY", raising=False)
    return seen


@pytest.mark.parametrize("args, needle", [
    (["--strategy", "nope"], "unknown strategy"),
    (["--budget", "8", "--max-budget", "4"], "over --max-budget 4"),
    (["--budget", "0"], "budget must be a positive integer"),
    (["--tokenizer", "gpt2"], "are for --backend openai"),
    (["--upstream-api-key", "k"], "are for --backend openai"),
    (["--served-model-name", " "], "--served-model-name is empty"),
])
def test_cli_checks_serve_flags_before_loading_a_model(no_model, capsys, args, needle) -> None:
    from ttscale.cli import main

    assert main(["serve", "--port", str(free_port()), *args]) == 2
    assert needle in capsys.readouterr().err
    assert no_model == {}


def test_cli_passes_the_upstream_key_and_tokenizer(no_model, capsys, monkeypatch) -> None:
    from ttscale.cli import main

    argv = ["serve", "--port", str(free_port()), "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    assert main([*argv, "--upstream-api-key", "up-key", "--tokenizer", "gpt2"]) == 2
    assert no_model["api_key"] == "up-key" and no_model["tokenizer"] == "gpt2"
    monkeypatch.setenv("TTSCALE_API_KEY", "env-key")
    assert main(argv) == 2
    assert no_model["api_key"] == "env-key"
    no_model.clear()
    assert main(["serve", "--port", str(free_port())]) == 2  # the env key alone is no error for llamacpp
    assert "stand-in engine" in capsys.readouterr().err and "api_key" not in no_model
