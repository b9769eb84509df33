"""Training data for the lab model: arith problems from training-only seeds, some solutions with a slip.

Why slips: a model trained only on correct traces is either right or stuck; one trained with ~12% of
solutions carrying one off-by-a-little claim through to a wrong final answer makes the same kind of
mistake when sampled, so its traces disagree, and voting, verifiers and search have something to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval_sets.arith import LEVELS, make_problem, parse_claim

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
    facts: tuple[str, ...]  # the correct claims of the problem ("12 - 3 = 9"), for arithmetic drills


def eval_problem_texts(per_level: int = 100, seeds: range = EVAL_SEEDS) -> set[str]:
    """Texts of the held-out problems (the first `per_level` of every level of each eval seed)."""
    return {make_problem(s, level, j).text for s in seeds for level in LEVELS for j in range(per_level)}


def training_examples(n: int, seed: int, slip_rate: float = 0.12, levels: tuple[int, ...] = LEVELS,
                      exclude: set[str] | None = None) -> list[Example]:
    """`n` examples cycling through `levels` (repeat a level to weight it), deterministic in `seed`,
    none of whose texts is in `exclude`."""
    rng = np.random.default_rng([seed, 7])
    out: list[Example] = []
    used = dict.fromkeys(levels, 0)  # problems drawn so far per level
    i = 0
    while len(out) < n:
        level = levels[i % len(levels)]
        j = used[level]
        used[level] += 1
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
        correct = problem.solve()
        assert correct is not None
        facts = tuple(c for c in (_claim_text(s) for s in correct[0].split("\n\n")) if c)
        out.append(Example(problem.text, solved[0], level, slipped, facts))
    return out


def _claim_text(step: str) -> str | None:
    claim = parse_claim(step)
    return f"{claim[0]} {claim[1]} {claim[2]} = {claim[3]}" if claim else None


def drills(examples: list[Example], n: int, per_drill: int, seed: int,
           level_weights: tuple[float, ...] = (1, 1, 1, 1, 1)) -> list[list[str]]:
    """`n` drills of `per_drill` true claims each, drawn from the examples' solutions, each claim from a
    level chosen with `level_weights` (small-number facts first: they decide level-1 accuracy).

    Why: learning arithmetic only from whole word problems costs ~100 tokens per claim; a drill line
    costs ~10, so the tiny model sees each kind of sum many more times within the CPU budget.
    """
    rng = np.random.default_rng([seed, 13])
    pools = {level: [f for e in examples if e.level == level for f in e.facts] for level in LEVELS}
    levels = [lv for lv in LEVELS if pools[lv] and lv <= len(level_weights) and level_weights[lv - 1] > 0]
    weights = np.array([level_weights[lv - 1] for lv in levels], dtype=float)
    out = []
    for _ in range(n):
        picks = rng.choice(len(levels), size=per_drill, p=weights / weights.sum())
        out.append([pools[levels[k]][int(rng.integers(len(pools[levels[k]])))] for k in picks])
    return out
