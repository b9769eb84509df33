"""Scores on whole candidates, shared by best-of-N, multi-temperature sampling and `auto`: the model's
own sequence probability (free: it comes with the samples) or a verifier's, asked for with one Score."""

from __future__ import annotations

import math

from ttscale.requests import Score
from ttscale.strategies.base import Candidate, Task
from ttscale.strategies.steps import aggregate_steps

LOGPROB_SCORER = "logprob"


def score_candidates(task: Task, candidates: list[Candidate], scorer: str, completions_logprob: list[float | None]):
    """Fill `Candidate.scores[scorer]`: from logprobs in hand, or by yielding a Score request."""
    if scorer == LOGPROB_SCORER:
        for c, lp in zip(candidates, completions_logprob):
            c.scores[scorer] = math.exp(lp) if lp is not None else None
        return
    scores = yield Score(verifier=scorer, problem=task.problem, candidates=tuple((c.text,) for c in candidates),
                         options={"unit": "solution"})
    for c, s in zip(candidates, scores):
        c.scores[scorer] = aggregate_steps(list(s), "last") if s else None  # "no claim here": neutral, not 0
