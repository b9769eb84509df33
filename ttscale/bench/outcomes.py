"""Finished strategy runs -> graded bench records (and the smaller best-of-N records derived from them).

Every candidate is graded, not only the chosen one, so the report can compute pass@k and maj@k and a
best-of-N curve can be cut from one large run. Grading goes through the answer checker's process pool
(math-verify with hard deadlines), one batch of distinct answers at a time.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from eval_sets import Problem
from ttscale.bench.grid import WorkItem
from ttscale.bench.manifest import problem_hash
from ttscale.bench.record import BenchRecord, CandidateRecord
from ttscale.ledger import Ledger
from ttscale.strategies.aggregate import aggregate, vote_share
from ttscale.strategies.base import Candidate, Outcome


class Checker(Protocol):
    def check_many(self, pairs: list[tuple[str, str]]) -> list[bool | None]: ...


class Grader:
    """gold vs extracted answer through the checker, remembering verdicts (answers repeat a lot)."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self._known: dict[tuple[str, str], bool | None] = {}

    def prefetch(self, pairs: list[tuple[str, str | None]]) -> None:
        todo = list(dict.fromkeys((g, a) for g, a in pairs if a is not None and (g, a) not in self._known))
        if todo:
            for pair, verdict in zip(todo, self.checker.check_many(todo)):
                self._known[pair] = verdict

    def grade(self, gold: str, answers: list[str | None]) -> list[bool | None]:
        self.prefetch([(gold, a) for a in answers])
        return [False if a is None else self._known[(gold, a)] for a in answers]


def subsample(outcome: Outcome, k: int) -> Outcome:
    """Best-of-k from the first k of N samples, aggregated the way the run was (search-and-learn style)."""
    how = outcome.details.get("aggregate", "majority")
    key = outcome.details.get("scorer")
    sub = aggregate(outcome.candidates[:k], how, score_key=key)
    sub.details = {**outcome.details, "subsampled_from": len(outcome.candidates)}
    return sub


def sub_ledger(ledger: Ledger, outcome: Outcome, k: int) -> tuple[Ledger, float]:
    """The share of a run's cost that its first k candidates account for (by generated tokens)."""
    tokens = [len(c.token_ids) for c in outcome.candidates]
    total = sum(tokens)
    part = sum(tokens[:k])
    share = part / total if total else k / max(len(tokens), 1)
    return replace(ledger, generated_tokens=part, candidates=k, wall_seconds=ledger.wall_seconds * share), share


def make_records(item: WorkItem, problem: Problem, strategy: str, outcome: Outcome, ledger: Ledger,
                 seconds: float, grader: Grader, log_samples: bool = False) -> list[BenchRecord]:
    """One record per budget in `item.emit`; budgets below the run's are subsampled from it.
    `log_samples`: keep each candidate's text (bench --log-samples)."""
    verdicts = grader.grade(problem.answer, [c.answer for c in outcome.candidates])
    out = []
    for budget in item.emit:
        if budget == item.run_budget:
            sub, led, secs = outcome, ledger, seconds
        else:
            sub = subsample(outcome, budget)
            led, share = sub_ledger(ledger, outcome, budget)
            secs = seconds * share
        out.append(record(item, problem, strategy, budget, sub, led, secs, verdicts[: len(sub.candidates)],
                          log_samples))
    return out


def record(item: WorkItem, problem: Problem, strategy: str, budget: int, outcome: Outcome, ledger: Ledger,
           seconds: float, verdicts: list[bool | None], log_samples: bool = False) -> BenchRecord:
    chosen: Candidate | None = outcome.candidates[outcome.chosen] if outcome.chosen is not None else None
    correct = verdicts[outcome.chosen] if outcome.chosen is not None and chosen and chosen.answer is not None else False
    return BenchRecord(
        problem_id=problem.id,
        label=item.label,
        budget=budget,
        seed=item.seed,
        strategy=strategy,
        level=problem.level,
        gold=problem.answer,
        answer=chosen.answer if chosen else None,
        correct=correct is True,
        confidence=round(vote_share(outcome), 4),
        votes=outcome.votes,
        candidates=[CandidateRecord(answer=c.answer, correct=v, cluster=c.cluster, scores=c.scores,
                                    tokens=len(c.token_ids), finish_reason=c.finish_reason,
                                    text=c.text if log_samples else None)
                    for c, v in zip(outcome.candidates, verdicts)],
        ledger=ledger.to_dict(),
        seconds=round(seconds, 4),
        subsampled_from=outcome.details.get("subsampled_from"),
        details={k: v for k, v in outcome.details.items() if k != "subsampled_from"},
        text=chosen.text if chosen else None,
        problem_hash=problem_hash(problem),
    )
