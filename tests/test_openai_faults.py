"""The `openai` backend against a bad upstream on loopback (issue 17): garbage, `{}`, a JSON list, junk
choices, a server that stalls mid-body and one that never answers. Each is one clear error within the
configured time, never a traceback or an empty "(no answer)"; the CLI exits 2 with one line."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import json_reply, run_cli, serving
from ttscale import Engine, TTScaleError

MODES = {
    "not_json": (200, b"<html>hello</html>", "not JSON"),
    "list": (200, b"[1, 2, 3]", "not an object"),
    "empty": (200, b"{}", "without usable choices"),
    "junk_choices": (200, b'{"choices": [1, "x", null]}', "without usable choices"),
    "no_choices": (200, b'{"choices": []}', "without usable choices"),
}


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path.endswith("/models"):
            json_reply(self, 200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "x"}]})
        else:
            json_reply(self, 404, {"error": "no"})

    def do_POST(self):  # noqa: N802
        mode = self.path.split("/")[1]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if mode == "stall":  # headers and half a body, then nothing
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            time.sleep(30)
            return
        if mode == "hang":
            time.sleep(30)
            return
        code, body, _ = MODES[mode]
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    with serving(Upstream) as base:
        yield base.removesuffix("/v1")


@pytest.mark.parametrize("mode", list(MODES))
def test_garbage_replies_are_one_clear_error(upstream, mode) -> None:
    engine = Engine(backend="openai", model="m", base_url=f"{upstream}/{mode}/v1", tokenizer="lab:arith",
                    timeout_s=2, retries=0)
    with pytest.raises(TTScaleError, match=MODES[mode][2]):
        engine.solve("What is 1 + 1?", budget=1, max_tokens=8)


@pytest.mark.parametrize("mode", ["stall", "hang"])
def test_stalled_servers_fail_within_the_timeout(upstream, mode) -> None:
    engine = Engine(backend="openai", model="m", base_url=f"{upstream}/{mode}/v1", tokenizer="lab:arith",
                    timeout_s=1, retries=1)
    start = time.monotonic()
    with pytest.raises(TTScaleError, match="no complete answer within 1 s, 2 tries"):
        engine.solve("What is 1 + 1?", budget=1, max_tokens=8)
    assert time.monotonic() - start < 20  # bounded by 2 tries x 1 s and the backoff, not 600 s x 4


def test_cli_prints_one_line_and_exits_2(upstream) -> None:
    proc = run_cli("solve", "What is 1 + 1?", "--backend", "openai", "--base-url", f"{upstream}/empty/v1",
                   "--model", "m", "--tokenizer", "lab:arith", "--budget", "1", "--timeout", "2", "--retries", "0",
                   timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and "usable choices" in proc.stderr and "Traceback" not in proc.stderr
