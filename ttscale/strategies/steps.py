"""Partial solutions as token ids, extended one step at a time: what every step-level search shares.

A step is the text up to the step delimiter (default a blank line). A path keeps the exact token ids
the model produced, so the next step continues from prompt + ids with nothing re-templated or
re-tokenized, and backends reuse the shared prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generator

import numpy as np

from ttscale.errors import TTScaleError
from ttscale.requests import Completion, Generate, Sampling, Score
from ttscale.strategies.options import (  # noqa: F401  (the checks are re-exported)
    DEFAULT_STEP_DELIMITER,
    STEP_AGGREGATIONS,
    StepSearchOptions,
    check_step_aggregation,
)
from ttscale.strategies.base import Candidate, Task
from verifiers.extract import states_final_answer

NEUTRAL_STEP_SCORE = 0.5  # a path with no informative step


@dataclass
class Path:
    """One partial (or finished) solution."""

    ids: tuple[int, ...] = ()  # generated token ids after the prompt
    text: str = ""  # exact generated text, delimiters included
    steps: list[str] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)  # one per step, from the verifier
    done: bool = False
    finish: str = ""
    temperature: float | None = None

    def child(self, c: Completion, limits: "StepLimits") -> "Path":
        """This path extended by completion `c` (one step)."""
        step = c.text.strip()
        ids = self.ids + tuple(c.token_ids)
        ended_by_delimiter = c.stop is not None
        done = (
            not ended_by_delimiter and c.finish_reason == "stop"  # EOS: the model finished
            or not step  # an empty step means nothing more is coming
            or states_final_answer(step)  # "The answer is 9." or \boxed{9}: the solution is complete
            or len(self.steps) + 1 >= limits.max_steps
            or len(ids) >= limits.max_tokens
        )
        return Path(ids=ids, text=self.text + c.text + (c.stop or ""), steps=self.steps + ([step] if step else []),
                    scores=list(self.scores), done=done, finish="stop" if done and c.finish_reason == "stop" else c.finish_reason,
                    temperature=self.temperature)

    def to_candidate(self, **meta: Any) -> Candidate:
        return Candidate(text=self.text.strip(), token_ids=list(self.ids), finish_reason=self.finish,
                         meta={"steps": list(self.steps), "step_scores": list(self.scores), **meta})


@dataclass(frozen=True)
class StepLimits:
    delimiter: str
    step_tokens: int  # per step
    max_steps: int
    max_tokens: int  # per path, all steps together


def step_limits(task: Task, o: StepSearchOptions) -> StepLimits:
    limits = StepLimits(
        delimiter=o.step_delimiter or DEFAULT_STEP_DELIMITER,
        step_tokens=o.step_tokens if o.step_tokens is not None else min(256, task.sampling.max_tokens),
        max_steps=o.max_steps,
        max_tokens=task.sampling.max_tokens,
    )
    if limits.step_tokens < 1 or limits.max_steps < 1:
        raise TTScaleError("step_tokens and max_steps must be at least 1", "pass positive values")
    return limits


def step_sampling(task: Task, limits: StepLimits) -> Sampling:
    return replace(task.sampling, stop=(limits.delimiter,) + tuple(task.sampling.stop), max_tokens=limits.step_tokens,
                   seed=task.seed())


def extend(task: Task, paths: list[Path], n: int, limits: StepLimits) -> Generator[Any, Any, list[list[Path]]]:
    """Sample `n` next steps for every path in ONE Generate; returns the children per path."""
    if not paths:
        return []
    sampling = step_sampling(task, limits)
    per_prefix = ()
    if any(p.temperature is not None for p in paths):  # per-path temperatures, still one request
        per_prefix = tuple(replace(sampling, temperature=sampling.temperature if p.temperature is None else p.temperature)
                           for p in paths)
    results = yield Generate(prefixes=tuple(task.prompt_ids + p.ids for p in paths), n=n, sampling=sampling,
                             per_prefix=per_prefix)
    return [[p.child(c, limits) for c in comps] for p, comps in zip(paths, results)]


def score_paths(task: Task, paths: list[Path], verifier: str) -> Generator[Any, Any, None]:
    """Ask the verifier for per-step scores of every path (it caches prefixes it has seen)."""
    if not paths:
        return
    scores = yield Score(verifier=verifier, problem=task.problem, candidates=tuple(tuple(p.steps) for p in paths))
    for p, s in zip(paths, scores):
        p.scores = list(s)
    task.events.append({"type": "steps_scored", "verifier": verifier,
                        "last_step_scores": [p.scores[-1] if p.scores else None for p in paths]})


def aggregate_steps(scores: list[float | None], how: str) -> float:
    """One number for a path from its step scores. Steps scored None ("no claim here", or undecided)
    carry no evidence and are skipped: "last" is the last informative step, min/prod/mean run over the
    informative ones; a path without any informative step is neutral (0.5)."""
    vals = [float(s) for s in scores if s is not None]
    if not vals:
        return NEUTRAL_STEP_SCORE
    if how == "last":
        return vals[-1]
    if how == "min":
        return min(vals)
    if how == "prod":
        return float(np.prod(vals))
    return float(np.mean(vals))
