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
from ttscale.strategies.base import Task


@dataclass
class Finished:
    """One work item done: its records, and the generated tokens its run spent."""

    item: WorkItem
    records: list[dict[str, Any]]
    generated_tokens: int


@dataclass
class _Live:
    job: Job
    item: WorkItem
    seconds: float = 0.0  # this run's share of the rounds it took part in


def _work(ledger: Ledger) -> int:
    return ledger.generated_tokens + ledger.verifier_tokens


def make_task(engine: Engine, prep: PreparedPrompt, config: BenchConfig, label: str, budget: int, seed: int) -> Task:
    """The engine's own task for one cell. Uses Engine._task, the same builder solve_batch uses, so a bench
    cell and `engine.solve(...)` with the same settings are the same run."""
    spec = config.strategy(label)
    s = config.sampling
    return engine.task(prep, budget, seed, s.temperature, s.top_p, s.max_tokens, s.stop, config.options_for(spec))


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

    def _start(self, item: WorkItem) -> _Live:
        problem = self.problems[item.problem_id]
        if problem.id not in self._prepared:  # template once per problem, reused by every cell
            self._prepared[problem.id] = self.engine.prepare(problem.problem, self.config.sampling.system_prompt)
        task = make_task(self.engine, self._prepared[problem.id], self.config, item.label, item.run_budget, item.seed)
        job = Job(strategies.get(self.config.strategy(item.label).strategy)(task))
        job.advance(None)
        return _Live(job, item)

    def _finish(self, done: list[_Live]) -> Iterator[Finished]:
        self.grader.prefetch([(self.problems[e.item.problem_id].answer, c.answer)
                              for e in done for c in e.job.outcome.candidates])  # type: ignore[union-attr]
        for e in done:
            spec = self.config.strategy(e.item.label)
            records = make_records(e.item, self.problems[e.item.problem_id], spec.strategy, e.job.outcome,  # type: ignore[arg-type]
                                   e.job.ledger, e.seconds, self.grader)
            stamp = record_stamp(self.config, self.problems[e.item.problem_id], e.item.label)
            for rec in records:
                rec["worker"] = self.worker
                rec.update(stamp)
            yield Finished(e.item, records, e.job.ledger.generated_tokens)

    def run(self, items: Iterable[WorkItem]) -> Iterator[Finished]:
        queue = deque(items)
        live: list[_Live] = []
        inflight = 0
        scheduler = Scheduler(self.engine.backend, self.engine.scorer)
        self.totals = scheduler.totals
        limit = self.config.max_inflight
        if getattr(self.engine.backend, "slots", None) == 1:
            # A one-sequence backend serves a round's prompts one after another: admitting one run at a
            # time costs nothing there, and each cell is written (and safe) the moment it finishes.
            limit = 1
        while queue or live:
            instant: list[_Live] = []
            while queue and (not live or inflight + queue[0].run_budget <= limit):
                entry = self._start(queue.popleft())
                if entry.job.outcome is not None:  # a strategy that needed no model call
                    instant.append(entry)
                    continue
                live.append(entry)
                inflight += entry.item.run_budget
            yield from self._finish(instant)
            if not live:
                continue
            before = [_work(e.job.ledger) for e in live]
            generated = [e.job.ledger.generated_tokens for e in live]
            started = time.perf_counter()
            scheduler.round([e.job for e in live])
            spent = time.perf_counter() - started
            # Split the round's time by the tokens each run produced in it (equally if none did).
            deltas = [_work(e.job.ledger) - b for e, b in zip(live, before)]
            total = sum(deltas)
            for e, d in zip(live, deltas):
                e.seconds += spent * (d / total if total else 1 / len(live))
            if self.on_tokens:
                self.on_tokens(sum(e.job.ledger.generated_tokens - g for e, g in zip(live, generated)))
            done = [e for e in live if e.job.outcome is not None]
            if done:
                live = [e for e in live if e.job.outcome is None]
                inflight -= sum(e.item.run_budget for e in done)
                yield from self._finish(done)
