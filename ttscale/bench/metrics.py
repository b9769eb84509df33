"""Accuracy and its uncertainty from bench records, per strategy x budget (and per difficulty level).

Accuracy is averaged over seeds within a problem first, then over problems, and its 95% interval is a
percentile bootstrap over problems (problems are the sampling unit; seeds of one problem are not
independent draws). maj@k and pass@k come from the candidates' graded answers: the most common answer
among the k candidates, and whether any of them is right.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from ttscale.bench.record import BenchRecord, as_records


def majority_correct(rec: BenchRecord | dict[str, Any]) -> bool:
    """Is the most frequent answer cluster among the candidates right? (ties: the one seen first)"""
    return as_records([rec])[0].majority_correct()


def any_correct(rec: BenchRecord | dict[str, Any]) -> bool:
    return as_records([rec])[0].any_correct()


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling the entries of `values` (one per problem)."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    if len(values) == 1 or n_boot <= 0:
        m = float(values.mean())
        return (m, m)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


@dataclass
class Row:
    label: str
    budget: int
    problems: int
    records: int
    accuracy: float
    ci_low: float
    ci_high: float
    maj_at_k: float
    pass_at_k: float
    generated_tokens: float  # per problem (mean over records)
    verifier_tokens: float
    seconds: float  # per problem: the record's share of backend time
    subsampled: bool  # records derived from a larger best-of-N run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_problem(recs: list[BenchRecord], fn) -> np.ndarray:
    by_problem: dict[str, list[float]] = defaultdict(list)
    for r in recs:
        by_problem[r.problem_id].append(float(fn(r)))
    return np.array([np.mean(v) for v in by_problem.values()])


def summarize(records: Iterable[BenchRecord | dict[str, Any]], order: list[str] | None = None,
              n_boot: int = 2000) -> list[Row]:
    """One row per (label, budget), labels in `order` (then any others), budgets ascending."""
    groups: dict[tuple[str, int], list[BenchRecord]] = defaultdict(list)
    for r in as_records(records):
        groups[(r.label, int(r.budget))].append(r)
    rank = {name: i for i, name in enumerate(order or [])}
    rows = []
    for (label, budget), recs in sorted(groups.items(), key=lambda kv: (rank.get(kv[0][0], len(rank)), kv[0][0], kv[0][1])):
        acc = _per_problem(recs, lambda r: r.correct)
        lo, hi = bootstrap_ci(acc, n_boot=n_boot)
        rows.append(Row(
            label=label, budget=budget, problems=len(acc), records=len(recs), accuracy=float(acc.mean()),
            ci_low=lo, ci_high=hi,
            maj_at_k=float(_per_problem(recs, BenchRecord.majority_correct).mean()),
            pass_at_k=float(_per_problem(recs, BenchRecord.any_correct).mean()),
            generated_tokens=float(np.mean([r.spent("generated_tokens") for r in recs])),
            verifier_tokens=float(np.mean([r.spent("verifier_tokens") for r in recs])),
            seconds=float(np.mean([r.seconds for r in recs])),
            subsampled=any(r.subsampled_from for r in recs),
        ))
    return rows


def by_level(records: Iterable[BenchRecord | dict[str, Any]]) -> dict[tuple[str, int], dict[int, tuple[float, int]]]:
    """(label, budget) -> level -> (accuracy, problems); empty when no record has a level."""
    groups: dict[tuple[str, int, int], list[BenchRecord]] = defaultdict(list)
    for r in as_records(records):
        if r.level is not None:
            groups[(r.label, int(r.budget), int(r.level))].append(r)
    out: dict[tuple[str, int], dict[int, tuple[float, int]]] = defaultdict(dict)
    for (label, budget, level), recs in sorted(groups.items()):
        acc = _per_problem(recs, lambda r: r.correct)
        out[(label, budget)][level] = (float(acc.mean()), len(acc))
    return dict(out)
