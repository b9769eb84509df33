"""Best-of-N: sample `budget` complete solutions in one request, then vote.

Self-consistency is best-of-N with `aggregate="majority"`. `weighted` and `top` use a verifier score per
candidate; the default scorer `logprob` is the model's own length-normalised sequence probability,
which costs nothing extra because the backend returns logprobs with the samples.

`temperatures=[...]` (and `temperature_shares=[...]`) spread the N samples over a temperature grid, still
one Generate per wave (see `ttscale.strategies.temperature`); the vote pools them all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ttscale.requests import Generate
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.candidate_scores import LOGPROB_SCORER, score_candidates
from ttscale.strategies.base import Candidate, StrategyGen, Task, register_strategy
from ttscale.strategies.options import StrategyOptions

def wave_sizes(budget: int, waves: int) -> list[int]:
    """Split `budget` samples into `waves` near-equal requests (largest first)."""
    waves = max(1, min(int(waves), budget))
    return [budget // waves + (1 if i < budget % waves else 0) for i in range(waves)]


@dataclass(frozen=True)
class BestOfNOptions(StrategyOptions):
    aggregate: str = "majority"  # majority | weighted | top
    scorer: str = LOGPROB_SCORER  # what scores whole candidates for weighted / top: logprob or a verifier
    temperatures: tuple[float, ...] | None = None  # optional grid: the N samples spread over temperatures
    temperature_shares: tuple[float, ...] | None = None


@register_strategy("best_of_n", options=BestOfNOptions, subsample_options=frozenset({"aggregate", "scorer"}))
def best_of_n(task: Task) -> StrategyGen:
    """`waves` > 1 (set by asolve when a deadline is given) samples in several rounds and keeps the vote
    so far in `task.best_so_far`, so a deadline can return an answer before all N are done."""
    from ttscale.strategies.temperature import sample_at, temperature_grid  # (that module imports this one)

    o = task.options_as(BestOfNOptions, "best_of_n")
    how = check_aggregation(o.aggregate)
    scorer = o.scorer
    sampling = replace(task.sampling, seed=task.seed(), logprobs=task.sampling.logprobs or scorer == LOGPROB_SCORER)
    grid = temperature_grid(o)  # optional: the N samples spread over several temperatures
    order = grid.order(task.budget) if grid else []
    candidates: list[Candidate] = []
    outcome = None
    for w, size in enumerate(wave_sizes(task.budget, o.waves)):
        wave_sampling = replace(sampling, seed=sampling.seed + 104729 * w) if w else sampling
        if grid is None:
            [completions] = yield Generate(prefixes=(task.prompt_ids,), n=size, sampling=wave_sampling, messages=task.messages)
            temps = [sampling.temperature] * len(completions)
        else:  # still one Generate: the prompt once per temperature group, with per_prefix samplings
            wave = order[len(candidates): len(candidates) + size]
            samples = yield from sample_at(task.prompt_ids, wave, wave_sampling, messages=task.messages)
            completions, temps = [c for c, _ in samples], [t for _, t in samples]
        new = [Candidate.from_completion(c, temperature=t) for c, t in zip(completions, temps)]
        for c in new:
            c.answer = task.extract(c.text, c.finish_reason)
        yield from score_candidates(task, new, scorer, [c.mean_logprob for c in completions])
        candidates += new
        task.events.append({"type": "candidates_finished", "count": len(new), "answers": [c.answer for c in new]})
        for cand, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
            cand.cluster = cid
        outcome = aggregate(candidates, how, score_key=scorer)
        outcome.details = {"aggregate": how, "scorer": scorer, "temperature": sampling.temperature}
        if grid is not None:
            outcome.details.update(temperature=None, temperatures=list(grid.temperatures),
                                   temperature_counts=grid.split(task.budget))
        task.best_so_far = outcome
    return outcome
