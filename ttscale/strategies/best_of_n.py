"""Best-of-N: sample `budget` complete solutions in one request, then vote.

Self-consistency is best-of-N with `aggregate="majority"`. `weighted` and `top` use a verifier score per
candidate; the default scorer `logprob` is the model's own length-normalised sequence probability,
which costs nothing extra because the backend returns logprobs with the samples.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ttscale.requests import Generate, Score
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Candidate, StrategyGen, Task, register_strategy

LOGPROB_SCORER = "logprob"


def score_candidates(task: Task, candidates: list[Candidate], scorer: str, completions_logprob: list[float | None]):
    """Fill `Candidate.scores[scorer]`: from logprobs in hand, or by yielding a Score request."""
    if scorer == LOGPROB_SCORER:
        for c, lp in zip(candidates, completions_logprob):
            c.scores[scorer] = math.exp(lp) if lp is not None else None
        return
    scores = yield Score(verifier=scorer, problem=task.problem, candidates=tuple((c.text,) for c in candidates))
    for c, s in zip(candidates, scores):
        c.scores[scorer] = s[-1] if s else None


@register_strategy("best_of_n")
def best_of_n(task: Task) -> StrategyGen:
    how = check_aggregation(task.options.get("aggregate", "majority"))
    scorer = task.options.get("scorer", LOGPROB_SCORER)
    sampling = replace(task.sampling, seed=task.seed(), logprobs=task.sampling.logprobs or scorer == LOGPROB_SCORER)
    [completions] = yield Generate(prefixes=(task.prompt_ids,), n=task.budget, sampling=sampling, messages=task.messages)
    candidates = [Candidate.from_completion(c, temperature=sampling.temperature) for c in completions]
    for c in candidates:
        c.answer = task.extract(c.text)
    for cand, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
        cand.cluster = cid
    yield from score_candidates(task, candidates, scorer, [c.mean_logprob for c in completions])
    outcome = aggregate(candidates, how, score_key=scorer)
    outcome.details = {"aggregate": how, "scorer": scorer, "temperature": sampling.temperature}
    return outcome
