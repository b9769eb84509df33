"""Verifiers that score candidates inside a search, registered by name.

A scorer is built once per engine (with the engine's backend, so the policy model can judge itself, and
the user's options for it, such as a PRM's path) and gets every `Score` request of one scheduler round
for its name at once, so a model-based scorer can batch them. It returns, per request, per candidate,
one score per step, plus the tokens it processed (they go into the ledger as verifier tokens).
"""

from __future__ import annotations

from typing import Callable, Protocol

from ttscale.registry import Registry
from ttscale.requests import Score

StepScores = list[float | None]


class Scorer(Protocol):
    def score_batch(self, requests: list[Score]) -> tuple[list[list[StepScores]], int]: ...


ScorerFactory = Callable[..., Scorer]  # (backend, **options) -> Scorer
scorers: Registry[ScorerFactory] = Registry("verifier")
register_scorer = scorers.register

# Built-in verifiers live in the standalone `verifiers` package; these factories import them on first use.
