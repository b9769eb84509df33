"""The strategy contract: a generator for ONE prompt that yields requests and returns candidates.

A strategy never touches a backend, so the scheduler can run hundreds of them at once and send all of
their requests to the model as one batch per round. Everything a strategy needs besides the model
(answer extraction, equivalence clustering, seeded randomness) arrives in its `Task`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Generator, TypeVar

import numpy as np

from ttscale.requests import Completion, Request, Sampling
from ttscale.strategies.options import parse_options

O = TypeVar("O")


@dataclass
class Candidate:
    """One complete solution a strategy produced, with everything used to judge it."""

    text: str
    token_ids: list[int]
    finish_reason: str
    answer: str | None = None
    cluster: int | None = None  # equal ids = equivalent answers
    scores: dict[str, float | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # strategy-specific: temperature, steps, lineage

    @classmethod
    def from_completion(cls, c: Completion, **meta: Any) -> "Candidate":
        return cls(text=c.text, token_ids=list(c.token_ids), finish_reason=c.finish_reason, meta=meta)

    def to_dict(self, with_tokens: bool = False) -> dict:
        d = asdict(self)
        if not with_tokens:
            d.pop("token_ids")
        d["tokens"] = len(self.token_ids)
        return d


@dataclass
class Outcome:
    """What a strategy returns: its candidates, the chosen one, and the vote that chose it."""

    candidates: list[Candidate]
    chosen: int | None  # index into candidates
    votes: dict[str, float] = field(default_factory=dict)  # representative answer -> vote weight
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    """Everything a strategy may use for one prompt. Built by the engine; fakes are easy in tests."""

    problem: str
    prompt_ids: tuple[int, ...]
    budget: int
    rng: np.random.Generator
    sampling: Sampling
    # (text, finish_reason=None) -> answer; a sample cut off at the token limit ("length") has an answer only
    # where its text states one, never its last number.
    extract: Callable[..., str | None]
    cluster: Callable[[list[str | None]], list[int | None]]
    options: dict[str, Any] = field(default_factory=dict)
    # Chat messages -> token ids with the model's own template, for strategies that write new prompts
    # (a synthesis over K paths, a revision turn). None where no tokenizer is available.
    render: Callable[[list[dict[str, str]]], tuple[int, ...]] | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # the chat messages prompt_ids came from
    context_length: int | None = None  # the model's context, so new prompts (synthesis, revision) can fit it
    # A strategy may keep its best outcome so far here; a deadline returns it as a partial answer.
    best_so_far: "Outcome | None" = None
    # Progress a strategy reports (candidates finished, steps scored, resampled); asolve forwards them.
    events: list[dict[str, Any]] = field(default_factory=list)
    # The strategy's typed options (see strategies/options.py), parsed and checked by the engine.
    opts: Any = None

    def options_as(self, cls: type[O], strategy: str) -> O:
        """This task's options as `cls`: the engine's parse, or (a task built by hand or handed on by
        `auto`) one made here from `options`, ignoring names that belong to other strategies."""
        if not isinstance(self.opts, cls):
            return parse_options(strategy, cls, self.options, strict=False)
        return self.opts

    def seed(self) -> int:
        """A fresh backend seed drawn from this prompt's generator: same task seed, same samples."""
        return int(self.rng.integers(0, 2**31 - 1))


StrategyGen = Generator[Request, Any, Outcome]
StrategyFn = Callable[[Task], StrategyGen]

from ttscale.strategies.registry import register_strategy, strategies  # noqa: E402,F401  (re-exported)


def start_together(strategy: StrategyFn, tasks: list[Task]) -> tuple[list[StrategyGen], bool]:
    """Coroutines for prompts submitted together, and whether they depend on each other. A strategy whose
    prompts share something (auto's budget pool) sets a `together(tasks)` attribute that builds them."""
    together = getattr(strategy, "together", None)
    if together is not None:
        return list(together(tasks)), True
    return [strategy(t) for t in tasks], False
