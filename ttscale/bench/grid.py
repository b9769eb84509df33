"""The work of a bench run: which (problem, strategy, budget, seed) cells are missing, as runnable items.

Best-of-N draws its N samples independently, so any k of them are distributed as a best-of-k run: one
item at the largest budget yields the records of every smaller budget (as search-and-learn does), when
the strategy declares its samples independent (`subsample_options` at registration: best-of-N with only
`aggregate` and `scorer` set). Every other cell is its own item.
"""

from __future__ import annotations

from dataclasses import dataclass

from eval_sets import Problem
from ttscale.bench.config import BenchConfig, StrategySpec
from ttscale.bench.records import Key

@dataclass(frozen=True)
class WorkItem:
    """One strategy run for one problem and seed; `emit` lists the budgets it writes records for."""

    problem_id: str
    label: str
    run_budget: int
    seed: int
    emit: tuple[int, ...]


def subsample_valid(spec: StrategySpec) -> bool:
    """The strategy declared its samples independent, and only the options it allows then are set."""
    from ttscale.strategies.registry import strategies

    safe = getattr(strategies.get(spec.strategy), "subsample_options", None)
    return safe is not None and set(spec.options) <= safe


def grid_keys(config: BenchConfig, problems: list[Problem]) -> set[Key]:
    return {(p.id, s.label, b, seed) for p in problems for s in config.strategies for b in config.budgets_for(s)
            for seed in config.seeds}


def plan(config: BenchConfig, problems: list[Problem], done: set[Key]) -> list[WorkItem]:
    """Items for the cells not in `done`, problem by problem so records complete a problem at a time
    and one problem's prompt stays hot in the prefix cache."""
    items: list[WorkItem] = []
    for p in problems:
        for seed in config.seeds:
            for spec in config.strategies:
                budgets = config.budgets_for(spec)
                missing = tuple(b for b in budgets if (p.id, spec.label, b, seed) not in done)
                if not missing:
                    continue
                if config.subsample_best_of_n and subsample_valid(spec):
                    items.append(WorkItem(p.id, spec.label, max(budgets), seed, missing))
                else:
                    items.extend(WorkItem(p.id, spec.label, b, seed, (b,)) for b in missing)
    return items
