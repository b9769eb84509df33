"""The progress display of a bench run: problems and cells done, samples, tokens per second, ETA.

A live bar on a terminal; on a pipe or in CI, one plain line every `every_s` seconds and at the end, so
logs show progress without control characters.

Why it counts samples and tokens as they are generated: on a one-sequence backend (llama.cpp) one run
can decode for many minutes before its cells are done; a display that moved only then (`problems 0/5
cells 0/10 0 tok/s ETA -:--:--` for 20 minutes) looks hung. The backend feeds `on_backend` per token and
per finished sample (see ttscale.progress.watch_backend); the ETA credits finished samples of the runs in
flight, at the samples-per-candidate rate seen in the runs that finished.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ttscale.bench.grid import WorkItem

REFRESH_S = 0.2  # the bar's fields are rebuilt at most this often from per-token reports


class BenchProgress:
    def __init__(self, items: Iterable[WorkItem], console: Console, *, enabled: bool = True, every_s: float = 15.0) -> None:
        items = list(items)
        self.console = console
        self.enabled = enabled
        self.every_s = every_s
        self.remaining = Counter(i.problem_id for i in items)  # items left per problem
        self.problems_total = len(self.remaining)
        self.problems_done = 0
        self.cells_total = sum(len(i.emit) for i in items)
        self.cells_done = 0
        self.units_total = sum(i.run_budget for i in items)  # ETA runs on candidates, not on cells
        self.units_done = 0
        self.tokens = 0
        self.samples = 0  # completions the backend finished (or candidates of finished runs, without a hook)
        self._samples_at_finish = 0  # `samples` when the latest run finished
        self._live_samples = False  # the backend reports samples as they finish
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self._last_line = self.started
        self._last_bar = 0.0
        self._bar: Progress | None = None
        if enabled and console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]bench"), BarColumn(), TextColumn("problems {task.fields[problems]}"),
                TextColumn("cells {task.fields[cells]}"), TextColumn("samples {task.fields[samples]}"),
                TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                console=console,
            )
            self._task = self._bar.add_task("bench", total=self.units_total, **self._fields())
            self._bar.start()

    def _fields(self) -> dict[str, str]:
        return {"problems": f"{self.problems_done}/{self.problems_total}",
                "cells": f"{self.cells_done}/{self.cells_total}", "samples": str(self.samples),
                "tps": f"{self.tokens_per_second():.0f}", "eta": _clock(self.eta_seconds())}

    def restart_clock(self) -> None:
        """Start timing now (after Ray and the models are up), so tok/s and ETA measure the run."""
        self.started = self._last_line = time.perf_counter()
        if self._bar is not None:
            self._bar.reset(self._task, total=self.units_total, **self._fields())

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def progress_units(self) -> float:
        """Candidates done: those of finished runs, plus the samples finished since, converted at the
        samples-per-candidate rate of the finished runs (1 before any finished), short of the total."""
        if not self._live_samples:
            return float(self.units_done)
        rate = self._samples_at_finish / self.units_done if self.units_done and self._samples_at_finish else 1.0
        partial = (self.samples - self._samples_at_finish) / rate
        return self.units_done + min(partial, 0.99 * (self.units_total - self.units_done))

    def eta_seconds(self) -> float | None:
        done = self.progress_units()
        if done <= 0:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed * (self.units_total - done) / done

    def on_backend(self, tokens: int, samples: int = 0) -> None:
        """The backend's progress hook: `tokens` just generated, `samples` completions just finished."""
        with self._lock:
            self.tokens += tokens
            self.samples += samples
            self._live_samples = True
        self._refresh()

    def add_tokens(self, n: int) -> None:
        """Tokens of a finished round, for backends that report nothing while they decode."""
        with self._lock:
            self.tokens += n
        self._refresh()

    def item_done(self, item: WorkItem, cells: int, tokens: int | None = None) -> None:
        """`tokens`: pass the item's generated tokens when no per-round counts arrive (Ray workers)."""
        with self._lock:
            self.cells_done += cells
            self.units_done += item.run_budget
            if tokens:
                self.tokens += tokens
            if not self._live_samples:
                self.samples += item.run_budget
            self._samples_at_finish = self.samples
            self.remaining[item.problem_id] -= 1
            if self.remaining[item.problem_id] == 0:
                self.problems_done += 1
        self._refresh(force=True)

    def line(self) -> str:
        return (f"bench: problems {self.problems_done}/{self.problems_total}, cells {self.cells_done}/{self.cells_total}, "
                f"samples {self.samples}, {self.tokens_per_second():.0f} tok/s, "
                f"elapsed {time.perf_counter() - self.started:.0f} s, ETA {_clock(self.eta_seconds())}")

    def _refresh(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is not None:
            if force or now - self._last_bar >= REFRESH_S:
                self._last_bar = now
                self._bar.update(self._task, completed=self.progress_units(), **self._fields())
            return
        if now - self._last_line >= self.every_s:
            self._last_line = now
            self.console.print(self.line(), markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.progress_units(), **self._fields())
            self._bar.stop()
            self._bar = None
        if self.enabled:
            self.console.print(self.line(), markup=False, highlight=False)


def _clock(seconds: float | None) -> str:
    """H:MM:SS, or ? when nothing is done yet to estimate from."""
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
