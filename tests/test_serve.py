"""`ttscale serve` on loopback with the embedded model, driven by the real `openai` client."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from helpers import free_port, wait_until_up

pytestmark = pytest.mark.slow
KEY = "test-key-123"


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = {**os.environ, "TTSCALE_SERVE_API_KEY": KEY}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ttscale"), "serve", "--port", str(port),
                             "--max-budget", "4", "--max-body-bytes", "20000"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/health", proc, "ttscale serve")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def client(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=300)


def ask(base: str, budget: int = 2, **extra):
    return client(base).chat.completions.create(
        model="ttscale", messages=[{"role": "system", "content": "You are concise."},
                                   {"role": "user", "content": "What is 2 + 3?"}],
        max_tokens=24, extra_body={"ttscale": {"strategy": "best_of_n", "budget": budget, **extra}})


def test_chat_completion_with_test_time_scaling(server):
    r = ask(server, budget=2)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    extra = r.model_extra["ttscale"]
    assert extra["budget"] == 2 and extra["ledger"]["candidates"] == 2 and extra["partial"] is False
    assert r.usage.completion_tokens == extra["ledger"]["generated_tokens"] > 0
    models = client(server).models.list()
    assert models.data[0].id.startswith("ttscale/")


def test_concurrent_requests_share_batches(server):
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: ask(server, budget=1), range(6)))
    sizes = httpx.get(f"{server}/v1/ttscale/stats", headers={"Authorization": f"Bearer {KEY}"}).json()["round_sizes"]
    assert max(sizes) > 1  # several callers were served by one backend call


def test_auth_required_except_health(server):
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").models.list()
    assert httpx.get(f"{server}/v1/models").status_code == 401
    assert httpx.get(f"{server}/health").status_code == 200


@pytest.mark.parametrize("body, status, needle", [
    (b"{not json", 400, "malformed JSON"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "bogus": 1}', 400, "bogus"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "ttscale": {"budget": 99}}', 400, "maximum of 4"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "ttscale": {"strategy": "nope"}}', 400, "unknown strategy"),
    (b'{"messages": []}', 400, "messages"),
    (b'{"messages": [{"role": "user", "content": "' + b"x" * 30000 + b'"}]}', 413, "body over"),
])
def test_bad_input_gets_json_errors_and_server_keeps_serving(server, body, status, needle):
    r = httpx.post(f"{server}/v1/chat/completions", content=body, timeout=60,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert httpx.get(f"{server}/health").status_code == 200


def test_disconnecting_client_does_not_break_the_server(server):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/v1/chat/completions", timeout=0.5, headers={"Authorization": f"Bearer {KEY}"},
                   json={"messages": [{"role": "user", "content": "Count to 50."}], "max_tokens": 200,
                         "ttscale": {"budget": 4}})
    r = ask(server, budget=1)  # still serving, and not stuck behind the abandoned request's full budget
    assert r.choices[0].message.content is not None
