"""Particle filtering for inference-time scaling (Puri et al., "A Probabilistic Inference Approach to
Inference-Time Scaling of LLMs using Particle-Based Monte Carlo Methods").

N particles (N = budget). Each round every unfinished particle grows by one step, a process verifier
scores it, scores become weights (softmax of logit(score) / temperature), and the particles are
resampled systematically when the effective sample size drops below the threshold (by default every
round, as in the paper).

The weight rule: a particle's score is `step_aggregate` of ALL its step scores so far (default `min`:
one false step marks the whole trajectory), skipping steps the verifier scores None ("no claim here",
such as a closing "The answer is 12." that `arith_steps` cannot check). Live and finished particles are
scored by the same rule on the same scale, so a finished particle keeps the weight of its whole
trajectory and competes with the live ones in every resampling; a finished particle with a false step
cannot take the slots of live particles whose steps all hold, and a finished correct one keeps its own.
The answer is `aggregate` over the final weights (default `top`: the best-weighted particle's answer,
ties to the answer with the larger total weight). `step_aggregate=last` weighs by the last informative
step instead, as the paper's PRM-last setting does.

`temperatures=[...]` (optionally `temperature_shares=[...]`) gives every particle its own sampling
temperature, spread over the grid by share; a resampled particle keeps its parent's temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ttscale.errors import TTScaleError
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Candidate, Outcome, StrategyGen, Task, register_strategy
from ttscale.strategies.options import StepSearchOptions
from ttscale.strategies.steps import Path, aggregate_steps, check_step_aggregation, extend, score_paths, step_limits
from ttscale.strategies.temperature import temperature_grid

EPS = 1e-6
DEFAULT_STEP_AGGREGATE = "min"  # chosen by measurement: see the README's particle weighting table


def log_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """logit(p) / temperature: the paper's weighting of PRM probabilities."""
    p = np.clip(scores, EPS, 1 - EPS)
    return (np.log(p) - np.log1p(-p)) / temperature


def normalise(logw: np.ndarray) -> np.ndarray:
    w = np.exp(logw - logw.max())
    return w / w.sum()


def effective_sample_size(weights: np.ndarray) -> float:
    return float(1.0 / np.sum(weights**2))


def systematic_resample(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of N draws with one uniform offset: lower variance than multinomial resampling."""
    n = len(weights)
    positions = (rng.random() + np.arange(n)) / n
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, positions, side="right").clip(0, n - 1)


@dataclass(frozen=True)
class ParticleOptions(StepSearchOptions):
    step_aggregate: str = DEFAULT_STEP_AGGREGATE
    weight_temperature: float = 1.0  # particle weight = exp(score / weight_temperature)
    ess_threshold: float = 1.0 + EPS  # resample when ESS < this x N (> 1: every round)
    temperatures: tuple[float, ...] | None = None  # optional sampling temperatures spread over the particles
    temperature_shares: tuple[float, ...] | None = None


@register_strategy("particle", options=ParticleOptions, needs_verifier=True)
def particle(task: Task) -> StrategyGen:
    o = task.options_as(ParticleOptions, "particle")
    verifier = o.verifier
    how_steps = check_step_aggregation(o.step_aggregate)
    how_final = check_aggregation(o.aggregate)
    temperature = o.weight_temperature
    ess_threshold = o.ess_threshold
    if temperature <= 0:
        raise TTScaleError("weight_temperature must be positive", "pass e.g. 1.0")
    limits = step_limits(task, o)
    grid = temperature_grid(o)  # optional: sampling temperatures spread over the particles by share

    n = task.budget
    particles = [Path(temperature=t) for t in (grid.order(n) if grid else [None] * n)]
    logw = np.zeros(n)
    history: list[dict] = []
    rounds = 0
    while not all(p.done for p in particles) and rounds < limits.max_steps:
        rounds += 1
        live = [i for i, p in enumerate(particles) if not p.done]
        children = yield from extend(task, [particles[i] for i in live], 1, limits)
        for i, kids in zip(live, children):
            particles[i] = kids[0]
        yield from score_paths(task, [particles[i] for i in live], verifier)
        for i in live:  # finished particles keep the weight of their whole trajectory
            logw[i] = log_weights(np.array([aggregate_steps(particles[i].scores, how_steps)]), temperature)[0]
        weights = normalise(logw)
        ess = effective_sample_size(weights)
        event = {"round": rounds, "ess": round(ess, 3), "weights": [round(float(w), 4) for w in weights]}
        if ess < ess_threshold * n and not all(p.done for p in particles):
            parents = systematic_resample(weights, task.rng)
            particles = [replace(particles[j], steps=list(particles[j].steps), scores=list(particles[j].scores)) for j in parents]
            logw = logw[parents]
            event["parents"] = [int(j) for j in parents]
            task.events.append({"type": "resampled", "round": rounds, "parents": event["parents"]})
        history.append(event)
        if o.waves:  # a deadline is set: keep an answer ready from the particles so far
            task.best_so_far = _outcome(task, particles, logw, verifier, how_steps, how_final)

    outcome = _outcome(task, particles, logw, verifier, how_steps, how_final)
    outcome.details = {"verifier": verifier, "step_aggregate": how_steps, "aggregate": how_final,
                       "weight_temperature": temperature, "rounds": rounds, "resampling": history}
    return outcome


def _outcome(task: Task, particles: list[Path], logw: np.ndarray, verifier: str, how_steps: str,
             how_final: str) -> Outcome:
    """Candidates from the particles as they stand, and the answer they choose."""
    weights = normalise(logw)
    candidates: list[Candidate] = []
    for i, p in enumerate(particles):
        c = p.to_candidate(particle=i, weight=round(float(weights[i]), 6), temperature=p.temperature)
        c.scores[verifier] = aggregate_steps(p.scores, how_steps)
        c.scores["weight"] = float(weights[i])
        c.answer = task.extract(c.text, c.finish_reason)
        candidates.append(c)
    for c, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
        c.cluster = cid
    return aggregate(candidates, how_final, score_key="weight")
