"""Incremental generation: add requests while others are still decoding, collect each group when it ends.

Why: with one blocking `generate` per round, every prompt waits for the slowest request of every other
prompt (a global barrier), and the device idles at the tail of each round and while steps are scored.
A backend that can take work while it decodes lets the scheduler advance each prompt as soon as its own
requests are answered (continuous rounds, see ttscale/scheduler.py).

- vLLM does it natively (`VLLMBackend.add/poll` over `LLMEngine.add_request/step`);
- a server that decodes many sequences at once (OpenAI-compatible HTTP) gets it from concurrent calls:
  `ThreadedTickets` runs each group's blocking `generate` in its own thread;
- one-sequence backends (llama.cpp, a one-slot server) and the transformers backend keep lockstep rounds:
  they gain nothing from overlap and keep their order.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, runtime_checkable

from ttscale.requests import GenRequest, GenResult

Finished = list[tuple[int, "list[GenResult] | BaseException"]]


@runtime_checkable
class Tickets(Protocol):
    """A backend's incremental side: `add` a group of requests (a ticket), `poll` for finished groups."""

    def add(self, requests: list[GenRequest]) -> int:
        """Start decoding `requests` now, next to whatever is in flight; returns the group's ticket."""
        ...

    def poll(self) -> Finished:
        """Block until at least one group ends (if any is in flight); its results in request order, or
        the exception that failed it."""
        ...

    def cancel(self, ticket: int) -> None:
        """Stop a group's decoding (its caller is gone); it is never returned by `poll`."""
        ...


class ThreadedTickets:
    """Tickets over a blocking `generate` that is safe to call from several threads at once (an HTTP
    client to a batching server): each group is one call in a worker thread."""

    def __init__(self, backend, workers: int = 64) -> None:
        self.backend = backend
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ttscale-call")
        self._futures: dict[Future, int] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def add(self, requests: list[GenRequest]) -> int:
        ticket = next(self._ids)
        future = self._pool.submit(self.backend.generate, requests)
        with self._lock:
            self._futures[future] = ticket
        return ticket

    def poll(self) -> Finished:
        with self._lock:
            futures = list(self._futures)
        if not futures:
            return []
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        out: Finished = []
        with self._lock:
            for future in done:
                ticket = self._futures.pop(future, None)
                if ticket is not None:
                    error = future.exception()
                    out.append((ticket, error if error is not None else future.result()))
        return out

    def cancel(self, ticket: int) -> None:
        with self._lock:
            for future, t in list(self._futures.items()):
                if t == ticket:
                    future.cancel()  # a call already running ends on its own; its answer is dropped
                    del self._futures[future]


def tickets_for(backend) -> Tickets | None:
    """The backend's incremental side, or None where lockstep rounds are the better schedule."""
    if isinstance(backend, Tickets):
        return backend
    if getattr(backend, "concurrent_calls", False) and getattr(backend, "slots", None) != 1:
        return ThreadedTickets(backend)
    return None
