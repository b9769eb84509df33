"""Accuracy of a model on held-out arith problems: greedy, pass@k and majority vote at several budgets.

Why here: the training script, the lab-model tests and benchmarks/lab_model_profile.py all need the same
measurement, and one N=16 sampling run per problem yields every budget by subsampling (no reruns).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from eval_sets.arith import extract_answer, generate
from ttscale.backends.base import Backend
from ttscale.requests import GenRequest, Sampling

EVAL_SEED = 0  # held out: training uses arith seeds >= 1000


def held_out(level: int, n: int, seed: int = EVAL_SEED, split: str = "train") -> list[dict]:
    """The first `n` level-`level` problems of an evaluation seed: "train" families (in distribution,
    problems never trained on) or "heldout" families (sentence structures never trained on)."""
    return generate(n, levels=(level,), seed=seed, split=split)


def problem_requests(backend: Backend, rows: Sequence[dict], n: int, temperature: float, max_tokens: int = 256,
                     seed: int = 0) -> list[GenRequest]:
    """One request of `n` samples per problem, its chat prompt as the model was trained on it; problem i
    samples with seed `seed + i`, so results do not depend on how the rows are batched."""
    return [GenRequest(tuple(backend.tokenizer.chat_prompt([{"role": "user", "content": r["problem"]}])), n,
                       Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed + i))
            for i, r in enumerate(rows)]


def solutions(backend: Backend, rows: Sequence[dict], n: int, temperature: float, max_tokens: int = 256,
              seed: int = 0, chunk: int = 16) -> list[list[str]]:
    """`n` generated solutions per problem, with per-problem sampling seeds."""
    out: list[list[str]] = []
    for start in range(0, len(rows), chunk):
        reqs = problem_requests(backend, rows[start:start + chunk], n, temperature, max_tokens, seed + start)
        out += [[c.text for c in res.completions] for res in backend.generate(reqs)]
    return out


def answers(backend: Backend, rows: Sequence[dict], n: int, temperature: float, max_tokens: int = 256,
            seed: int = 0, chunk: int = 16) -> list[list[str | None]]:
    """`n` extracted answers per problem (`The answer is N.`), with per-problem sampling seeds."""
    return [[extract_answer(t) for t in texts]
            for texts in solutions(backend, rows, n, temperature, max_tokens, seed, chunk)]


@dataclass
class LevelProfile:
    level: int
    greedy: float
    pass_at: dict[int, float]
    majority_at: dict[int, float]


def majority(votes: Sequence[str | None]) -> str | None:
    """Most common extracted answer (first seen wins ties); None when no sample gave an answer."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(v for v in votes if v is not None and counts[v] == top)


def subsample_scores(samples: list[list[str | None]], gold: list[str], k: int, draws: int = 32,
                     seed: int = 0) -> tuple[float, float]:
    """(pass@k, maj@k) averaged over `draws` random size-k subsets of each problem's samples."""
    rng = np.random.default_rng(seed)
    passed = voted = 0.0
    for votes, answer in zip(samples, gold):
        for _ in range(draws):
            pick = [votes[i] for i in rng.choice(len(votes), size=k, replace=False)]
            passed += answer in pick
            voted += majority(pick) == answer
    total = draws * len(gold)
    return passed / total, voted / total


def profile(backend: Backend, levels: Sequence[int] = (1, 2, 3, 4, 5), per_level: int = 100, n: int = 16,
            temperature: float = 0.8, budgets: Sequence[int] = (1, 4, 16), split: str = "train") -> list[LevelProfile]:
    """Greedy accuracy, pass@k and majority@k per level on evaluation problems of `split`."""
    result = []
    for level in levels:
        rows = held_out(level, per_level, split=split)
        gold = [r["answer"] for r in rows]
        greedy = answers(backend, rows, 1, 0.0)
        g = sum(a[0] == b for a, b in zip(greedy, gold)) / len(gold)
        samples = answers(backend, rows, n, temperature, seed=1000 * level) if n else []
        scores = {k: subsample_scores(samples, gold, k) for k in budgets if 0 < k <= n}
        result.append(LevelProfile(level, g, {k: s[0] for k, s in scores.items()},
                                   {k: s[1] for k, s in scores.items()}))
    return result
