"""Running the real `ttscale` CLI and real local servers from tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN = Path(sys.executable).parent


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`ttscale ARGS` as a user runs it: the installed console script, in a child process."""
    return subprocess.run([str(BIN / "ttscale"), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def solve_json(*args: str, timeout: float = 900) -> dict:
    proc = run_cli("solve", *args, "--json", timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    """Poll `url` until it answers 200; fail early if the server process dies."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start")
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not start in {timeout:.0f} s")


@contextmanager
def llama_cpp_server(model_path: str, n_ctx: int = 2048) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on loopback; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(f"{base}/models", proc, "llama.cpp server")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def json_reply(handler: BaseHTTPRequestHandler, code: int, body: dict) -> None:
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]):
    """A threaded loopback server with `handler`; yields its /v1 base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()


@contextmanager
def serving_engine(engine, **options) -> Iterator[tuple[str, int]]:
    """`ttscale serve`'s app for `engine` on a loopback port, in a thread; yields (base URL, port)."""
    import uvicorn

    from ttscale.serve import create_app, server_config

    port = free_port()
    server = uvicorn.Server(server_config(create_app(engine, **options), "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield base, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
