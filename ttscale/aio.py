"""Async solving for agent loops: many concurrent `asolve` callers share one batching loop.

Every caller's strategy coroutine joins one live set; a single loop runs scheduler rounds over all of
them, so 50 concurrent callers at best-of-N 4 make one backend call per round, not 50. A round runs in a
worker thread (backends are blocking); callers that arrive meanwhile join the next round. Deadlines are
checked between rounds: a caller past its deadline gets the best answer found so far, marked partial,
and its strategy stops spending. A cancelled caller's pending work is dropped before the next round (and,
with continuous rounds, its requests still decoding are cancelled in the backend).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from ttscale.ledger import Ledger
from ttscale.scheduler import Job, Scheduler
from ttscale.strategies.base import Outcome, Task

EventCallback = Callable[[dict[str, Any]], Any]


@dataclass
class Caller:
    """What the async layer keeps for one `asolve` call (the job's tag)."""

    task: Task | None
    future: asyncio.Future
    deadline: float | None = None  # time.monotonic() value
    on_event: EventCallback | None = None
    cancelled: bool = False
    last_best: str | None = None
    last_request: int = 0  # id of the request the job waited on after the previous round


class AsyncScheduler:
    """One batching loop per engine and event loop, over the engine's one Scheduler."""

    def __init__(self, scheduler: Scheduler, batch_window_s: float = 0.002) -> None:
        self.scheduler = scheduler
        self.batch_window_s = batch_window_s  # lets callers started in the same tick share the first round
        self.round_sizes: list[int] = []  # jobs per round: what tests and figures read
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None

    async def run(self, task: Task, gen: Any, deadline_s: float | None, on_event: EventCallback | None) -> tuple[Outcome, Ledger, bool]:
        loop = asyncio.get_running_loop()
        caller = Caller(task, loop.create_future(), None if deadline_s is None else time.monotonic() + deadline_s,
                        on_event)
        job = self.scheduler.submit(gen, tag=caller)
        if job.done:
            return self._result(job)
        self._wake.set()
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._loop())
        try:
            await asyncio.shield(caller.future)
        except asyncio.CancelledError:
            caller.cancelled = True  # dropped before the next round; nothing more is generated
            raise
        return self._result(job)

    @staticmethod
    def _result(job: Job) -> tuple[Outcome, Ledger, bool]:
        if job.error is not None:
            raise job.error
        return job.outcome, job.ledger, job.tag.future.result() if job.tag.future.done() else False  # type: ignore[return-value]

    def _mine(self) -> list[Job]:
        return [j for j in self.scheduler.live if isinstance(j.tag, Caller)]

    async def _loop(self) -> None:
        while True:
            if not self._mine():
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                except asyncio.TimeoutError:
                    if not self._mine():
                        return
                continue
            await asyncio.sleep(self.batch_window_s)
            self._expire()
            for job in self._mine():
                if job.tag.cancelled:
                    self.scheduler.drop(job)
            batch = self._mine()  # callers arriving during the round join the next one
            if not batch:
                continue
            self.round_sizes.append(len(batch))
            ended: list[Job] = []
            try:
                ended = await asyncio.to_thread(self.scheduler.step)
            except Exception as e:  # a bug in a round fails the callers of that round, not the loop
                for job in batch:
                    self.scheduler.drop(job)
                    job.error = e
            # A caller submitted after `batch` was picked but before the worker's round began is served in
            # that round too; if it ended there, it must hear so now (it is no longer live).
            for job in dict.fromkeys(batch + [j for j in ended if isinstance(j.tag, Caller)]):
                self._after_round(job)

    def _after_round(self, job: Job) -> None:
        caller: Caller = job.tag
        if caller.cancelled:
            return
        if caller.task is not None:
            for event in caller.task.events:
                _emit(caller, event)
            caller.task.events.clear()
        best = caller.task.best_so_far if caller.task else None
        if caller.on_event and best is not None and best.chosen is not None:
            answer = best.candidates[best.chosen].answer
            if answer != caller.last_best:
                caller.last_best = answer
                _emit(caller, {"type": "answer_changed", "answer": answer})
        if job.done:
            _emit(caller, {"type": "done" if job.error is None else "failed"})
            if not caller.future.done():
                caller.future.set_result(False)
        elif id(job.pending) != caller.last_request:  # with continuous rounds a job may wait through several
            caller.last_request = id(job.pending)
            _emit(caller, {"type": "round", "next": type(job.pending).__name__})

    def _expire(self) -> None:
        """Finish callers whose deadline passed with their best answer so far."""
        now = time.monotonic()
        for job in self._mine():
            caller: Caller = job.tag
            if caller.deadline is not None and now >= caller.deadline:
                best = caller.task.best_so_far if caller.task else None
                self.scheduler.drop(job, best if best is not None else Outcome(candidates=[], chosen=None))
                _emit(caller, {"type": "deadline"})
                if not caller.future.done():
                    caller.future.set_result(True)


def _emit(caller: Caller, event: dict[str, Any]) -> None:
    if caller.on_event is not None:
        try:
            caller.on_event(event)
        except Exception:  # a broken progress callback must not break solving
            pass
