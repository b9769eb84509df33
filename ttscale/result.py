"""The record every solve returns: the answer, every candidate, the vote, and what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttscale.ledger import Ledger
from ttscale.strategies.base import Candidate


@dataclass
class Result:
    problem: str
    strategy: str
    budget: int
    seed: int
    answer: str | None  # the chosen candidate's extracted answer
    text: str | None  # the chosen candidate's full solution
    confidence: float  # vote share of the chosen answer, 0..1
    candidates: list[Candidate]
    votes: dict[str, float]
    ledger: Ledger
    details: dict[str, Any] = field(default_factory=dict)
    partial: bool = False  # True when a deadline stopped the search: the best answer found so far
    backend: str = ""  # which backend and model produced it
    model: str = ""

    def __post_init__(self) -> None:
        # A tied vote says how it was broken (`aggregate.Votes.tie`): the answer alone would hide that it
        # won by a tie-break rule rather than by votes.
        tie = getattr(self.votes, "tie", None)
        if tie and "tie" not in self.details:
            self.details = {**self.details, "tie": tie}

    def to_dict(self, with_tokens: bool = False) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "strategy": self.strategy,
            "budget": self.budget,
            "seed": self.seed,
            "answer": self.answer,
            "text": self.text,
            "confidence": round(self.confidence, 4),
            "votes": self.votes,
            "candidates": [c.to_dict(with_tokens) for c in self.candidates],
            "usage": self.ledger.to_dict(),
            "details": self.details,
            "partial": self.partial,
            "backend": self.backend,
            "model": self.model,
        }
