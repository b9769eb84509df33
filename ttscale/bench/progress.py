"""The progress display of a bench run: problems done / total, cells, tokens per second, ETA.

A live bar on a terminal; on a pipe or in CI, one plain line every `every_s` seconds and at the end, so
logs show progress without control characters.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ttscale.bench.grid import WorkItem


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
        self.started = time.perf_counter()
        self._last_line = self.started
        self._bar: Progress | None = None
        if enabled and console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]bench"), BarColumn(), TextColumn("problems {task.fields[problems]}"),
                TextColumn("cells {task.fields[cells]}"), TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
            )
            self._task = self._bar.add_task("bench", total=self.units_total, **self._fields())
            self._bar.start()

    def _fields(self) -> dict[str, str]:
        return {"problems": f"{self.problems_done}/{self.problems_total}",
                "cells": f"{self.cells_done}/{self.cells_total}", "tps": f"{self.tokens_per_second():.0f}"}

    def restart_clock(self) -> None:
        """Start timing now (after Ray and the models are up), so tok/s and ETA measure the run."""
        self.started = self._last_line = time.perf_counter()
        if self._bar is not None:
            self._bar.reset(self._task, total=self.units_total, **self._fields())

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def eta_seconds(self) -> float | None:
        if not self.units_done:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed * (self.units_total - self.units_done) / self.units_done

    def add_tokens(self, n: int) -> None:
        self.tokens += n
        self._refresh()

    def item_done(self, item: WorkItem, cells: int, tokens: int | None = None) -> None:
        """`tokens`: pass the item's generated tokens when no per-round counts arrive (Ray workers)."""
        self.cells_done += cells
        self.units_done += item.run_budget
        if tokens:
            self.tokens += tokens
        self.remaining[item.problem_id] -= 1
        if self.remaining[item.problem_id] == 0:
            self.problems_done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=item.run_budget, **self._fields())
        self._refresh()

    def line(self) -> str:
        eta = self.eta_seconds()
        eta_text = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        return (f"bench: problems {self.problems_done}/{self.problems_total}, cells {self.cells_done}/{self.cells_total}, "
                f"{self.tokens_per_second():.0f} tok/s, elapsed {time.perf_counter() - self.started:.0f} s, ETA {eta_text}")

    def _refresh(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, **self._fields())
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            self.console.print(self.line(), markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.enabled:
            self.console.print(self.line(), markup=False, highlight=False)
