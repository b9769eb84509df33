"""`ttscale serve` under faults (issue 17), on real loopback sockets with a scripted backend: a client that
disconnects stops the spending, bad requests get JSON 4xx before any work, a chunked body over the limit is
refused at the limit, and one bad request in a batch does not fail the others."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import httpx
import pytest

from fakes import FakeBackend, SlowBackend, many_steps



def _post(base: str, body: bytes | dict, **kw) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{base}/v1/chat/completions", content=content, timeout=30,
                      headers={"Content-Type": "application/json"}, **kw)


MSG = [{"role": "user", "content": "What is 1 + 1?"}]


def test_disconnect_stops_spending_within_a_round(serve) -> None:
    backend = SlowBackend(many_steps, delay=0.2)
    base, port = serve(backend)
    body = json.dumps({"messages": MSG, "max_tokens": 2000,
                       "ttscale": {"strategy": "particle", "budget": 4, "verifier": "arith_steps"}}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)
    at_close = len(backend.calls)
    assert at_close >= 2  # the work had started
    time.sleep(1.5)
    assert len(backend.calls) <= at_close + 1  # at most the round in flight finishes
    stats = httpx.get(f"{base}/v1/ttscale/stats").json()
    assert stats["disconnects"] == 1


@pytest.mark.parametrize("body, needle", [
    ({"messages": MSG, "seed": -1}, "seed"),
    ({"messages": MSG, "ttscale": {"budget": True}}, "budget"),
    ({"messages": MSG, "max_tokens": False}, "max_tokens"),
    ({"messages": MSG, "ttscale": {"verifier": "nope"}}, "unknown verifier"),
    ({"messages": MSG, "ttscale": {"aggregate": "nope"}}, "aggregation"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_bad_requests_get_json_4xx_before_any_work(serve, body, needle) -> None:
    backend = FakeBackend(lambda p, j, s: "The answer is 2.")
    base, _ = serve(backend, max_body_bytes=1_000_000)
    r = _post(base, body)
    assert 400 <= r.status_code < 500, r.text
    assert needle in r.json()["error"]["message"]
    assert backend.calls == []


def test_unknown_routes_and_methods_are_json(serve) -> None:
    base, _ = serve(FakeBackend(lambda p, j, s: "x"))
    r = httpx.get(f"{base}/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    r = httpx.get(f"{base}/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json()


def test_chunked_body_over_the_limit_is_refused_while_reading(serve) -> None:
    base, port = serve(FakeBackend(lambda p, j, s: "x"), max_body_bytes=100_000)
    sent = 0
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.settimeout(5)
        try:
            while sent < 200_000_000:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
                s.setblocking(False)
                try:
                    if s.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
                    s.settimeout(5)
        except OSError:
            pass
        s.setblocking(True)
        reply = s.recv(4096)
    assert b" 413 " in reply.split(b"\r\n")[0]
    assert sent < 5_000_000  # refused near the limit, not after reading 200 MB


def test_one_bad_request_does_not_fail_the_others(serve) -> None:
    """4 valid particle requests and one with an unknown verifier, sent together: all 4 valid succeed."""
    backend = FakeBackend(lambda p, j, s: "2 + 2 = 4\n\nThe answer is 4.")
    base, _ = serve(backend)
    bodies = [{"messages": MSG, "ttscale": {"strategy": "particle", "budget": 2, "verifier": "arith_steps"}}] * 4
    bodies.insert(2, {"messages": MSG, "ttscale": {"strategy": "particle", "budget": 2, "verifier": "nope"}})
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda b: _post(base, b), bodies))
    assert [r.status_code for r in replies] == [200, 200, 400, 200, 200]
    assert all(r.json()["ttscale"]["answer"] == "4" for i, r in enumerate(replies) if i != 2)


def test_half_open_connections_are_closed(serve, monkeypatch) -> None:
    import ttscale.serve

    monkeypatch.setattr(ttscale.serve, "HEADER_TIMEOUT_S", 0.5)
    _, port = serve(FakeBackend(lambda p, j, s: "x"))
    for payload in (b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(payload)
            s.settimeout(10)
            assert s.recv(100) == b""  # closed by the server, no response


def test_cli_warns_without_a_key_off_loopback_and_checks_the_port_first() -> None:
    """Binding 0.0.0.0 without --api-key warns; a busy port is one line and exit 2, before any model loads."""
    from helpers import run_cli

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("serve", "--host", "0.0.0.0", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert "without --api-key" in proc.stderr and f"cannot listen on 0.0.0.0:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
