"""Figures for issue 17: what a client's disconnect still costs `ttscale serve`, and how long each bad
upstream takes to turn into an error in the `openai` backend.

    python benchmarks/faults.py [--timeout 2] [--retries 1]

Serve: a particle request (budget 4, a run that would take 32 rounds) on a backend whose every call takes
0.2 s; the client closes its socket after 1 s. Printed: backend calls made before the close and after it.
Upstream: a loopback server that answers garbage, `{}`, a JSON list, junk choices, stalls mid-body, or
never answers; printed per case: seconds until `solve` raised, and the one-line message.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ttscale import Engine, TTScaleError
from ttscale.requests import Completion, GenResult

REPLIES = {"not_json": b"<html>hi</html>", "list": b"[1, 2]", "empty": b"{}", "junk_choices": b'{"choices": [1]}'}


class SlowScriptedBackend:
    """Every call takes 0.2 s and continues every prefix by one arithmetic step that never ends the run."""

    name, model, model_path, context_length = "slow", "scripted", None, 100_000

    def __init__(self) -> None:
        from ttscale.backends.base import Tokenizer  # noqa: F401  (the protocol this mimics)

        class Chars:
            def encode(self, text):
                return [ord(c) for c in text]

            def decode(self, ids, special=False):
                return "".join(chr(i) for i in ids)

            def chat_prompt(self, messages):
                return self.encode("".join(m["content"] for m in messages))

        self.tokenizer = Chars()
        self.calls = 0

    def generate(self, requests):
        time.sleep(0.2)
        self.calls += 1
        step = "1 + 1 = 2"
        return [GenResult([Completion(self.tokenizer.encode(step + "\n\n"), step, "stop", stop="\n\n")
                           for _ in range(r.n)], len(r.prompt_ids)) for r in requests]

    def close(self) -> None:
        pass


def serve_disconnect() -> tuple[int, int]:
    import uvicorn

    from ttscale.serve import create_app, server_config

    backend = SlowScriptedBackend()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(Engine(backend=backend)), "127.0.0.1", port))
    threading.Thread(target=server.run, daemon=True).start()
    time.sleep(1.5)
    body = json.dumps({"messages": [{"role": "user", "content": "1 + 1?"}], "max_tokens": 4000,
                       "ttscale": {"strategy": "particle", "budget": 4, "verifier": "arith_steps"}}).encode()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)
    before = backend.calls
    time.sleep(2.0)
    server.should_exit = True
    return before, backend.calls - before


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._send(200, json.dumps({"data": [{"id": "m", "owned_by": "x"}]}).encode())

    def do_POST(self):  # noqa: N802
        mode = self.path.split("/")[1]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if mode == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            time.sleep(60)
        elif mode == "hang":
            time.sleep(60)
        else:
            self._send(200, REPLIES[mode])

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--retries", type=int, default=1)
    args = parser.parse_args()
    before, after = serve_disconnect()
    print(f"serve: {before} backend calls before the client left, {after} after it (0.2 s per call)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"openai backend, --timeout {args.timeout:g} --retries {args.retries}:")
    for mode in [*REPLIES, "stall", "hang"]:
        engine = Engine(backend="openai", model="m", base_url=f"{base}/{mode}/v1", tokenizer="lab:arith",
                        timeout_s=args.timeout, retries=args.retries)
        t = time.perf_counter()
        try:
            engine.solve("What is 1 + 1?", budget=1, max_tokens=8)
            message = "no error (!)"
        except TTScaleError as e:
            message = str(e).splitlines()[0][:110]
        print(f"  {mode:13} {time.perf_counter() - t:6.2f} s  {message}")
    server.shutdown()


if __name__ == "__main__":
    main()
