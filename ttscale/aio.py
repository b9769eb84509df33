"""Async solving for agent loops: many concurrent `asolve` callers share one batching loop.

Every caller's strategy coroutine joins one live set; a single loop runs scheduler rounds over all of
them, so 50 concurrent callers at best-of-N 4 make one backend call per round, not 50. A round runs in a
worker thread (backends are blocking); callers that arrive meanwhile join the next round. Deadlines are
checked between rounds: a caller past its deadline gets the best answer found so far, marked partial,
and its strategy stops spending. A cancelled caller's pending work is dropped before the next round.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ttscale.ledger import Ledger
from ttscale.scheduler import Job, Scheduler
from ttscale.strategies.base import Outcome, Task

EventCallback = Callable[[dict[str, Any]], Any]


@dataclass
class AsyncJob(Job):
    task: Task | None = None
    deadline: float | None = None  # time.monotonic() value
    future: asyncio.Future | None = None
    on_event: EventCallback | None = None
    partial: bool = False
    cancelled: bool = False
    last_best: str | None = field(default=None, repr=False)


class AsyncScheduler:
    """One batching loop per engine and event loop."""

    def __init__(self, scheduler: Scheduler, batch_window_s: float = 0.002) -> None:
        self.scheduler = scheduler
        self.batch_window_s = batch_window_s  # lets callers started in the same tick share the first round
        self.live: list[AsyncJob] = []
        self.round_sizes: list[int] = []  # jobs per round: what tests and figures read
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None

    async def run(self, task: Task, gen: Any, deadline_s: float | None, on_event: EventCallback | None) -> tuple[Outcome, Ledger, bool]:
        loop = asyncio.get_running_loop()
        job = AsyncJob(gen=gen, task=task, future=loop.create_future(), on_event=on_event,
                       deadline=None if deadline_s is None else time.monotonic() + deadline_s)
        job.advance(None)
        if job.outcome is not None:
            return job.outcome, job.ledger, False
        self.live.append(job)
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._loop())
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.cancelled = True  # dropped (and closed) before the next round; nothing more is generated
            raise

    async def _loop(self) -> None:
        while True:
            if not self.live:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                except asyncio.TimeoutError:
                    if not self.live:
                        return
                continue
            await asyncio.sleep(self.batch_window_s)
            self._expire()
            for j in self.live:
                if j.cancelled:
                    j.gen.close()  # safe here: no round is running
            self.live = [j for j in self.live if not j.cancelled and j.outcome is None]
            batch = list(self.live)  # a snapshot: callers arriving during the round wait for the next
            if not batch:
                continue
            self.round_sizes.append(len(batch))
            try:
                await asyncio.to_thread(self.scheduler.round, batch)
            except Exception as e:  # a backend failure fails the callers of this round, not the loop
                for j in batch:
                    self.live.remove(j)
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j in batch:
                self._after_round(j)

    def _after_round(self, job: AsyncJob) -> None:
        if job.cancelled:
            return
        if job.task is not None:
            for event in job.task.events:
                _emit(job, event)
            job.task.events.clear()
        best = job.task.best_so_far if job.task else None
        if job.on_event and best is not None and best.chosen is not None:
            answer = best.candidates[best.chosen].answer
            if answer != job.last_best:
                job.last_best = answer
                _emit(job, {"type": "answer_changed", "answer": answer})
        if job.outcome is not None:
            self.live.remove(job)
            _emit(job, {"type": "done"})
            if not job.future.done():
                job.future.set_result((job.outcome, job.ledger, False))
        else:
            _emit(job, {"type": "round", "next": type(job.pending).__name__})

    def _expire(self) -> None:
        """Finish callers whose deadline passed with their best answer so far."""
        now = time.monotonic()
        for job in list(self.live):
            if job.deadline is not None and now >= job.deadline and job.outcome is None:
                job.gen.close()
                best = job.task.best_so_far if job.task else None
                job.outcome = best if best is not None else Outcome(candidates=[], chosen=None)
                job.ledger.wall_seconds = time.perf_counter() - job.started
                job.ledger.candidates = len(job.outcome.candidates)
                self.live.remove(job)
                _emit(job, {"type": "deadline"})
                if not job.future.done():
                    job.future.set_result((job.outcome, job.ledger, True))


def _emit(job: AsyncJob, event: dict[str, Any]) -> None:
    if job.on_event is not None:
        try:
            job.on_event(event)
        except Exception:  # a broken progress callback must not break solving
            pass
