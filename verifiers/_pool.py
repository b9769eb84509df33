"""A small process pool whose every call has a hard deadline.

Why not concurrent.futures: ProcessPoolExecutor cannot kill one stuck task, and a
sympy call on an adversarial answer can run for hours. Here each worker is a
separate Python interpreter talking to the parent over a socket; when a call
misses its deadline (or the worker dies), the parent kills that one worker,
starts a fresh one in its slot, and reports "no result". Other calls go on.

Why not multiprocessing's "spawn" Process: spawn re-imports the parent's
``__main__`` module in every child (a script that loads a model at top level
would load it again, or fail to bootstrap). We start ``python -c`` running
``verifiers._worker.main`` instead: like spawn, a fresh interpreter and no fork
of a threaded parent, but only the worker's own modules are imported. The pipe
is a multiprocessing ``Connection`` on a socketpair, so messages are pickled
exactly as multiprocessing would.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

log = logging.getLogger(__name__)

# The folder that holds the ``verifiers`` package, so the child can import it
# even when the project is not pip-installed (e.g. running from the repo root).
_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# What the child runs (``-c`` rather than ``-m verifiers._worker``, which would import the
# module twice: once as ``__main__``, once by name when the package imports it).
_WORKER_BOOT = "import sys; from verifiers._worker import main; main(sys.argv[1:])"


class WorkerStartError(RuntimeError):
    """A worker could not start at all (e.g. math-verify is not installed)."""


@dataclass(eq=False)  # identity hash: kept in a set
class _Worker:
    """One child process and the parent's end of its pipe."""

    proc: subprocess.Popen
    conn: Connection

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - kernel is slow to reap
            log.warning("verifier worker %s did not exit after SIGKILL", self.proc.pid)
        self.conn.close()


class DeadlinePool:
    """``workers`` long-lived child processes; ``call`` runs one function in one of them.

    Thread-safe: any number of threads may call ``call`` at once; each takes an idle
    worker (waiting for one if all are busy), so at most ``workers`` calls run at a time.
    A worker enters the idle queue only once it has imported its libraries (a boot
    thread waits for its "ready"), so a replacement that is still starting never
    delays a call while another worker is free, and start-up never counts in a deadline.
    """

    def __init__(
        self,
        workers: int,
        memory_limit_mb: int | None = 4096,
        start_timeout_s: float = 120.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._memory_limit_mb = memory_limit_mb
        self._start_timeout_s = start_timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()  # started and not yet killed: booting, idle or busy
        self._closed_event = threading.Event()  # shared with the finalizer, which may run first at exit
        self._start_error: str | None = None
        self.restarts = 0  # how many workers were killed and replaced (for tests and stats)
        # Kill the children even if nobody calls close(): at garbage collection or exit.
        self._finalizer = weakref.finalize(self, _kill_all, self._live, self._lock, self._closed_event)
        for _ in range(workers):
            self._start_worker()

    @property
    def _closed(self) -> bool:
        return self._closed_event.is_set()

    # -- worker lifecycle -------------------------------------------------------------

    def _start_worker(self) -> None:
        """Launch a child; a boot thread puts it in the idle queue once it says "ready"."""
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PKG_PARENT, env.get("PYTHONPATH")) if p)
        args = [sys.executable, "-c", _WORKER_BOOT, str(child_sock.fileno())]
        if self._memory_limit_mb:
            args.append(str(self._memory_limit_mb))
        try:
            proc = subprocess.Popen(
                args, pass_fds=[child_sock.fileno()], stdin=subprocess.DEVNULL, env=env
            )
        finally:
            child_sock.close()
        worker = _Worker(proc, Connection(parent_sock.detach()))
        with self._lock:
            self._live.add(worker)
        threading.Thread(target=self._boot, args=(worker,), name="verifier-boot", daemon=True).start()

    def _boot(self, worker: _Worker) -> None:
        try:
            ok = worker.conn.poll(self._start_timeout_s)
            msg = worker.conn.recv() if ok else ("error", "no ready message in time")
        except (EOFError, OSError) as exc:
            msg = ("error", f"worker exited during start ({exc!r}, rc={worker.proc.poll()})")
        if msg == ("ready", None) and not self._closed:
            self._idle.put(worker)
            return
        if not self._closed:  # a broken install: no retry, callers get WorkerStartError
            self._start_error = str(msg[1])
            log.error("verifier worker failed to start: %s", msg[1])
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def _retire(self, worker: _Worker) -> None:
        """Kill ``worker`` and start a fresh one in its slot (unless the pool is closed)."""
        worker.kill()
        with self._lock:
            self._live.discard(worker)
            closed = self._closed
            self.restarts += 0 if closed else 1
        if not closed:
            self._start_worker()

    def _take_idle(self, end: float) -> _Worker | None:
        """An idle worker, or None when none is free before `end` (time.monotonic())."""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                return self._idle.get(timeout=min(0.2, left))
            except queue.Empty:
                if self._closed:
                    raise RuntimeError("pool is closed") from None
                if self._start_error is not None and not self._live:
                    raise WorkerStartError(f"verifier worker failed to start: {self._start_error}")

    def wait_all_idle(self, timeout_s: float) -> bool:
        """Block until every worker is started and idle (e.g. before timing something)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self._start_error is not None and not self._live:
                raise WorkerStartError(f"verifier worker failed to start: {self._start_error}")
            with self._lock:
                live = len(self._live)
            if self._idle.qsize() >= live:
                return True
            time.sleep(0.02)
        return False

    # -- the one operation --------------------------------------------------------------

    def call(self, fn: Callable[..., Any], args: tuple, deadline_s: float) -> tuple[bool, Any]:
        """Run ``fn(*args)`` in a worker; return ``(True, value)`` or ``(False, reason)``.

        The deadline bounds the whole call, waiting for a free worker included: under load (every
        worker busy, or restarting after a hostile input) a call gives up instead of queueing.
        ``(False, ...)`` means: deadline passed (worker killed and replaced if it was running the
        call), worker died (replaced), or ``fn`` raised (worker kept). ``fn`` must be importable by
        name. Raises ``WorkerStartError`` if no worker can start, ``RuntimeError`` once closed.
        """
        if self._closed:
            raise RuntimeError("pool is closed")
        end = time.monotonic() + deadline_s
        worker = self._take_idle(end)
        if worker is None:
            return False, f"no worker free within {deadline_s}s"
        if end - time.monotonic() < min(0.25 * deadline_s, 0.5):  # too little left to run it fairly
            self._idle.put(worker)
            return False, "no time left after waiting for a worker"
        healthy = False
        try:
            try:
                worker.conn.send((fn, args))
                if not worker.conn.poll(max(0.0, end - time.monotonic())):
                    return False, f"deadline {deadline_s}s passed"
                status, value = worker.conn.recv()
            except (EOFError, OSError) as exc:
                return False, f"worker died ({exc!r}, rc={worker.proc.poll()})"
            healthy = True
            return (True, value) if status == "ok" else (False, value)
        finally:
            if healthy and not self._closed:
                self._idle.put(worker)
            else:
                self._retire(worker)

    def close(self) -> None:
        """Stop every worker. Calls in flight in other threads get ``(False, ...)``."""
        self._finalizer()


def _kill_all(live: set[_Worker], lock: threading.Lock, closed: threading.Event) -> None:
    closed.set()
    with lock:
        workers = list(live)
        live.clear()
    for worker in workers:
        worker.kill()
