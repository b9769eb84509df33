"""Training data for the lab model: arith problems from training-only seeds, some solutions with a slip.

Why slips: a model trained only on correct traces is either right or stuck; one trained with ~12% of
solutions carrying one off-by-a-little claim through to a wrong final answer makes the same kind of
mistake when sampled, so its traces disagree, and voting, verifiers and search have something to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval_sets.arith import LEVELS, make_problem

TRAIN_SEED_BASE = 1000  # training problems come from arith seeds >= 1000
EVAL_SEEDS = range(0, 100)  # evaluation uses seeds 0-99; training never contains those problems
PROBLEMS_PER_SEED = 2000  # training seed s holds indices 0..1999 of every level
SLIP_DELTAS = (-10, -2, -1, 1, 2, 10)


@dataclass(frozen=True)
class Example:
    problem: str
    solution: str
    level: int
    slipped: bool


def eval_problem_texts(per_level: int = 100, seeds: range = EVAL_SEEDS) -> set[str]:
    """Texts of the held-out problems (the first `per_level` of every level of each eval seed)."""
    return {make_problem(s, level, j).text for s in seeds for level in LEVELS for j in range(per_level)}


def training_examples(n: int, seed: int, slip_rate: float = 0.12, levels: tuple[int, ...] = LEVELS,
                      exclude: set[str] | None = None) -> list[Example]:
    """`n` examples spread evenly over `levels`, deterministic in `seed`, none of whose texts is in `exclude`."""
    rng = np.random.default_rng([seed, 7])
    out: list[Example] = []
    i = 0
    while len(out) < n:
        level = levels[i % len(levels)]
        j = i // len(levels)
        problem = make_problem(TRAIN_SEED_BASE + seed * 1000 + j // PROBLEMS_PER_SEED, level, j % PROBLEMS_PER_SEED)
        i += 1
        if exclude and problem.text in exclude:
            continue
        solved = None
        slipped = bool(rng.random() < slip_rate)
        if slipped:
            for _ in range(8):  # a slip may make a later division inexact: try another
                step = int(rng.integers(len(problem.steps)))
                solved = problem.solve(slip=(step, int(rng.choice(SLIP_DELTAS))))
                if solved is not None:
                    break
        if solved is None:
            slipped = False
            solved = problem.solve()
        assert solved is not None
        out.append(Example(problem.text, solved[0], level, slipped))
    return out
