"""Runs a bench grid through ONE scheduler, so the backend sees work from many problems, strategies,
budgets and seeds in every batch, and hands back each cell's records the round it finishes.

A rolling window keeps about `max_inflight` candidates in flight: when a run finishes, the next one is
admitted and joins the next round, so the batch stays full and records stream out steadily instead of
all at the end (what makes a killed run cheap to resume).
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from eval_sets import Problem
from ttscale.bench.config import BenchConfig
from ttscale.bench.grid import WorkItem
from ttscale.bench.manifest import record_stamp
from ttscale.bench.outcomes import Grader, make_records
from ttscale.engine import Engine, PreparedPrompt
from ttscale.ledger import Ledger
from ttscale.scheduler import Job, Scheduler
from ttscale.strategies import strategies
from ttscale.strategies.base import Task, start_together


@dataclass
class Finished:
    """One work item done: its records, and the generated tokens its run spent."""

    item: WorkItem
    records: list[dict[str, Any]]
    generated_tokens: int


@dataclass
class _Live:
    item: WorkItem
    seconds: float = 0.0  # this run's share of the rounds it took part in


def _work(ledger: Ledger) -> int:
    return ledger.generated_tokens + ledger.verifier_tokens


def make_task(engine: Engine, prep: PreparedPrompt, config: BenchConfig, label: str, budget: int, seed: int) -> Task:
    """The engine's own task for one cell. Uses Engine._task, the same builder solve_batch uses, so a bench
    cell and `engine.solve(...)` with the same settings are the same run."""
    spec = config.strategy(label)
    s = config.sampling
    return engine.task(prep, budget, seed, s.temperature, s.top_p, s.max_tokens, s.stop, config.options_for(spec),
                       spec.strategy)


class GridExecutor:
    """Streams `Finished` items for a list of work items on one engine."""

    def __init__(self, engine: Engine, config: BenchConfig, problems: Iterable[Problem], checker: Any = None,
                 on_tokens: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.config = config
        self.problems = {p.id: p for p in problems}
        self.grader = Grader(checker if checker is not None else engine.checker)
        self.on_tokens = on_tokens
        self.totals = Ledger()  # batch level: real backend calls made
        self._prepared: dict[str, PreparedPrompt] = {}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"  # which process made a record (Ray runs have several)

    def _start(self, scheduler: Scheduler, items: list[WorkItem]) -> list[Job]:
        """Start one item's run, or several together when the strategy shares work between prompts
        (`auto`'s budget pool): then a bench cell means what `solve_batch` over those problems means."""
        tasks = []
        for item in items:
            problem = self.problems[item.problem_id]
            if problem.id not in self._prepared:  # template once per problem, reused by every cell
                self._prepared[problem.id] = self.engine.prepare(problem.problem, self.config.sampling.system_prompt)
            tasks.append(make_task(self.engine, self._prepared[problem.id], self.config, item.label,
                                   item.run_budget, item.seed))
        gens, _ = start_together(strategies.get(self.config.strategy(items[0].label).strategy), tasks)
        return [scheduler.submit(g, tag=_Live(item)) for g, item in zip(gens, items)]

    def _next(self, queue: deque[WorkItem]) -> list[WorkItem]:
        """The next item, with every queued item of the same cell (label, budget, seed) when its strategy
        runs prompts together."""
        item = queue.popleft()
        if not hasattr(strategies.get(self.config.strategy(item.label).strategy), "together"):
            return [item]
        same = [q for q in queue if (q.label, q.run_budget, q.seed) == (item.label, item.run_budget, item.seed)]
        for q in same:
            queue.remove(q)
        return [item, *same]

    def _finish(self, done: list[Job]) -> Iterator[Finished]:
        for job in done:
            if job.error is not None:  # a bench run must not hide a broken strategy or verifier
                raise job.error
        self.grader.prefetch([(self.problems[j.tag.item.problem_id].answer, c.answer)
                              for j in done for c in j.outcome.candidates])  # type: ignore[union-attr]
        for job in done:
            item = job.tag.item
            spec = self.config.strategy(item.label)
            records = make_records(item, self.problems[item.problem_id], spec.strategy, job.outcome,  # type: ignore[arg-type]
                                   job.ledger, job.tag.seconds, self.grader, log_samples=self.config.log_samples)
            stamp = record_stamp(self.config, self.problems[item.problem_id], item.label)
            for rec in records:
                rec.extra.update(worker=self.worker, **stamp)
            yield Finished(item, [r.to_dict() for r in records], job.ledger.generated_tokens)

    def run(self, items: Iterable[WorkItem]) -> Iterator[Finished]:
        queue = deque(items)
        scheduler = self.engine.scheduler()  # with the engine's lock, like every other driver
        self.totals = scheduler.totals
        limit = self.config.max_inflight
        if getattr(self.engine.backend, "slots", None) == 1:
            # A one-sequence backend serves a round's prompts one after another: admitting one run at a
            # time costs nothing there, and each cell is written (and safe) the moment it finishes.
            limit = 1
        inflight = 0
        while queue or scheduler.live:
            instant: list[Job] = []
            while queue and (not scheduler.live or inflight + queue[0].run_budget <= limit):
                for job in self._start(scheduler, self._next(queue)):
                    if job.done:  # a strategy that needed no model call
                        instant.append(job)
                    else:
                        inflight += job.tag.item.run_budget
            yield from self._finish(instant)
            live = list(scheduler.live)
            if not live:
                continue
            before = [_work(j.ledger) for j in live]
            generated = [j.ledger.generated_tokens for j in live]
            started = time.perf_counter()
            done = scheduler.step()
            spent = time.perf_counter() - started
            # Split the round's time by the tokens each run produced in it (equally if none did).
            deltas = [_work(j.ledger) - b for j, b in zip(live, before)]
            total = sum(deltas)
            for j, d in zip(live, deltas):
                j.tag.seconds += spent * (d / total if total else 1 / len(live))
            if self.on_tokens:
                self.on_tokens(sum(j.ledger.generated_tokens - g for j, g in zip(live, generated)))
            if done:
                inflight -= sum(j.tag.item.run_budget for j in done)
                yield from self._finish(done)
