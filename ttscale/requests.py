"""The messages between strategies, the scheduler and backends.

A strategy never calls a model: it yields a `Generate` (or a `Score`) and receives the result. Prompts
are token ids, so continuing a partial solution reuses the exact prefix the backend already saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator


@dataclass(frozen=True)
class Sampling:
    """Sampling settings for one request; `seed` makes a sample reproducible on backends that allow it."""

    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False  # log p of each sampled token
    top_logprobs: int = 0  # also the k most likely tokens at each position (verifiers read P("Yes") here)


@dataclass(frozen=True)
class GenRequest:
    """n completions of one token-id prefix: the unit a backend works on."""

    prompt_ids: tuple[int, ...]
    n: int
    sampling: Sampling
    # The chat messages `prompt_ids` were rendered from, when it is a fresh prompt: lets an HTTP backend
    # use a server's /v1/chat/completions (its own template) instead of raw token ids.
    messages: tuple[tuple[str, str], ...] | None = None


@dataclass
class Completion:
    """One sampled continuation, with what the backend knows about it.

    When a stop string ends it, `text` stops before the stop string, `stop` names it, and `token_ids`
    include the tokens that produced it: continuing from prompt + token_ids resumes after the delimiter.
    """

    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (EOS or stop string), "length"
    logprobs: list[float] | None = None  # log p of each generated token, when asked for
    top_logprobs: list[dict[int, float]] | None = None  # per position: token id -> log p, k most likely
    stop: str | None = None  # the stop string that ended it, if one did

    @property
    def mean_logprob(self) -> float | None:
        """Length-normalised sequence log-probability: a cheap confidence signal for scoring."""
        if not self.logprobs:
            return None
        return sum(self.logprobs) / len(self.logprobs)


@dataclass
class GenResult:
    """A backend's answer to one GenRequest: its n completions and what processing the prompt cost."""

    completions: list[Completion]
    prompt_tokens: int  # prompt tokens the backend actually computed (cached prefix tokens excluded)
    cached_prompt_tokens: int = 0  # prompt tokens served from a prefix/KV cache

    @property
    def generated_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions)


@dataclass(frozen=True)
class Generate:
    """Strategy request: sample `n` continuations of every prefix. Receives list[list[Completion]]."""

    prefixes: tuple[tuple[int, ...], ...]
    n: int
    sampling: Sampling
    per_prefix: tuple[Sampling, ...] = ()  # optional: one Sampling per prefix (e.g. per-particle temperature)
    messages: tuple[tuple[str, str], ...] | None = None  # see GenRequest.messages; for fresh-prompt requests


@dataclass(frozen=True)
class Score:
    """Strategy request: score candidates with a named verifier.

    Each candidate is a sequence of steps (a complete solution scored as a whole is one step). Receives,
    per candidate, one score in [0, 1] per step (None where the verifier could not decide).
    """

    verifier: str
    problem: str
    candidates: tuple[tuple[str, ...], ...]
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


Request = Generate | Score

# A verifier that needs the policy model, as a coroutine: it yields its prompts, receives their results,
# and returns the scores per request (per candidate, per step) and the tokens each request cost.
ScoreGen = Generator[list[GenRequest], list[GenResult], tuple[list[list[list[float | None]]], list[int]]]
