"""Progress of long work while it runs: a token meter fed by the backend, and the `ttscale solve` display.

Why: on a CPU backend one call can decode for minutes, and counts that move only when the call returns
look like a hang. Backends with the `on_tokens` hook (backends/base.py) feed the meter per token; for
blocking backends `watch_backend` counts each call's results as they come back; on vLLM, whose requests
go in as groups (tickets), the scheduler counts each group as it comes back (`Engine.on_results`).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ttscale.backends.base import TokenHook
from ttscale.backends.tickets import Tickets


class TokenMeter:
    """Generated tokens and finished samples, safe to feed from backend threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens = 0
        self.samples = 0
        self.started = time.perf_counter()

    def __call__(self, tokens: int, samples: int = 0) -> None:
        with self._lock:
            self.tokens += tokens
            self.samples += samples

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def tokens_per_second(self) -> float:
        return self.tokens / max(self.elapsed(), 1e-9)


@contextmanager
def watch_backend(backend: Any, hook: TokenHook) -> Iterator[bool]:
    """Feed `hook(tokens, samples)` from `backend` while the block runs; yields whether anything will.

    A backend with the `on_tokens` attribute reports as it decodes. Otherwise its blocking `generate` is
    wrapped to report each call's results when they return (also when called from ticket threads).
    Backends with their own incremental side (vLLM's add/poll) report nothing here: their generate is
    built on poll, so counting either would count some results twice; callers then count per round.
    """
    if hasattr(backend, "on_tokens"):
        saved = backend.on_tokens
        backend.on_tokens = hook
        try:
            yield True
        finally:
            backend.on_tokens = saved
        return
    if isinstance(backend, Tickets) or not callable(getattr(backend, "generate", None)):
        yield False
        return
    original = backend.generate
    own = "generate" in getattr(backend, "__dict__", {})

    def generate(requests: list) -> list:
        results = original(requests)
        hook(sum(r.generated_tokens for r in results), sum(len(r.completions) for r in results))
        return results

    try:
        backend.generate = generate
    except AttributeError:  # __slots__ or a read-only attribute: nothing to hook into
        yield False
        return
    try:
        yield True
    finally:
        if own:
            backend.generate = original
        else:
            del backend.generate


def plain_schedule(first_s: float = 10.0, factor: float = 3.0) -> Iterator[float]:
    """Seconds at which a non-terminal display prints: 10, 40, 130, 400, ... a few lines even for hours."""
    at, step = first_s, first_s
    while True:
        yield at
        step *= factor
        at += step


class SolveProgress:
    """`ttscale solve`'s live line on stderr: tokens generated, tok/s, samples done, elapsed.

    On a terminal a one-line rich display that disappears when the solve ends (the summary follows);
    elsewhere a few plain lines at growing intervals, no control characters. stdout is never touched.
    """

    def __init__(self, console: Console, *, enabled: bool = True, schedule: Iterator[float] | None = None) -> None:
        """`schedule`: seconds after the start at which plain lines are due (default `plain_schedule()`)."""
        self.console = console
        self.enabled = enabled
        self.meter = TokenMeter()
        self.counting = True  # whether the backend feeds the meter (see watch_backend)
        self._live: Live | None = None
        self._schedule = schedule if schedule is not None else plain_schedule()
        self._next_line = next(self._schedule, float("inf"))
        self._lock = threading.Lock()

    def line(self) -> str:
        m = self.meter
        if not self.counting:
            return f"solving: {m.elapsed():.0f} s (this backend reports its tokens when the solve ends)"
        return (f"solving: {m.tokens} tokens generated, {m.tokens_per_second():.1f} tok/s, "
                f"{m.samples} samples done, {m.elapsed():.0f} s")

    def __call__(self, tokens: int, samples: int = 0) -> None:
        """The backend hook: count, and on a pipe print a line when the next one is due."""
        self.meter(tokens, samples)
        if self.enabled and self._live is None and self.meter.elapsed() >= self._next_line:
            with self._lock:
                if self.meter.elapsed() >= self._next_line:
                    self._next_line = next(self._schedule, float("inf"))
                    self.console.print(self.line(), markup=False, highlight=False)

    def __rich__(self) -> Text:
        return Text(self.line(), style="dim")

    def __enter__(self) -> "SolveProgress":
        self.meter.started = time.perf_counter()
        if self.enabled and self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


@contextmanager
def solve_progress(engine: Any, console: Console, *, enabled: bool = True) -> Iterator[SolveProgress]:
    """The solve display fed by `engine`'s backend while the block runs. On Ctrl-C one line says what
    was lost (a solve keeps no partial state) before the interrupt goes on to the CLI (exit 130)."""
    display = SolveProgress(console, enabled=enabled)
    saved = getattr(engine, "on_results", None)
    try:
        with display, watch_backend(engine.backend, display) as counting:
            if not counting and hasattr(engine, "on_results"):
                engine.on_results = display  # counted as each request group comes back (vLLM's tickets)
                counting = True
            display.counting = counting
            yield display
    except KeyboardInterrupt:
        m = display.meter
        console.print(f"interrupted after {m.tokens} generated tokens and {m.samples} samples in {m.elapsed():.0f} s; "
                      "a solve keeps nothing, so rerun the command to start again", markup=False, highlight=False)
        raise
    finally:
        if hasattr(engine, "on_results"):
            engine.on_results = saved
