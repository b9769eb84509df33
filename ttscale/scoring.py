"""Verifiers that score candidates inside a search, registered by name.

A scorer gets every `Score` request of one scheduler round for its name, so a model-based scorer
(a PRM, the policy judging itself) can batch them. It returns one list of scores per request and the
tokens it processed, which go into the ledger as verifier tokens.
"""

from __future__ import annotations

from typing import Protocol

from ttscale.backends.base import Backend
from ttscale.registry import Registry
from ttscale.requests import Score


class Scorer(Protocol):
    def score_batch(self, requests: list[Score], backend: Backend) -> tuple[list[list[float | None]], int]: ...


scorers: Registry[Scorer] = Registry("verifier")
register_scorer = scorers.register
