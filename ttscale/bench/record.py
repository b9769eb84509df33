"""One bench record: a (problem, strategy label, budget, seed) cell's result, as one dataclass that
outcomes writes and metrics, reports and calibration read. The records file holds its `to_dict()`, one
JSON line each; fields this version does not know (stamps, hashes, the worker) ride along in `extra`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

Key = tuple[str, str, int, int]  # (problem_id, label, budget, seed)


@dataclass
class CandidateRecord:
    """One candidate as graded: its answer, the verdict, its vote cluster, scores and length."""

    answer: str | None
    correct: bool | None
    cluster: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    finish_reason: str = ""
    text: str | None = None  # the whole sample, kept only by `bench --log-samples`

    def to_dict(self) -> dict[str, Any]:
        """The record's form; `text` only when kept, so runs without --log-samples stay as small as before."""
        out = self.__dict__.copy()
        if out["text"] is None:
            del out["text"]
        return out

    def vote_key(self) -> Any:
        return self.cluster if self.cluster is not None else self.answer


@dataclass
class BenchRecord:
    problem_id: str
    label: str
    budget: int
    seed: int
    strategy: str = ""
    level: int | None = None
    gold: str | None = None
    answer: str | None = None
    correct: bool = False
    confidence: float = 0.0
    votes: dict[str, float] = field(default_factory=dict)
    candidates: list[CandidateRecord] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=dict)  # Ledger.to_dict()
    seconds: float = 0.0  # this cell's share of the backend's time (see the executor)
    subsampled_from: int | None = None  # the larger best-of-N run this one was cut from
    details: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    problem_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (str(self.problem_id), str(self.label), int(self.budget), int(self.seed))

    def spent(self, what: str) -> float:
        """A ledger entry (generated_tokens, verifier_tokens, ...); 0 when absent."""
        return float(self.ledger.get(what, 0) or 0)

    def majority_correct(self) -> bool:
        """Is the most frequent answer cluster among the candidates right? (ties: the one seen first)"""
        cands = [c for c in self.candidates if c.answer is not None]
        if not cands:
            return False
        counts = Counter(c.vote_key() for c in cands)
        top = max(counts.values())
        winner = next(c.vote_key() for c in cands if counts[c.vote_key()] == top)
        return next(c for c in cands if c.vote_key() == winner).correct is True

    def any_correct(self) -> bool:
        return any(c.correct is True for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("candidates", "extra")}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchRecord":
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        cand_names = {f.name for f in fields(CandidateRecord)}
        known["candidates"] = [CandidateRecord(**{k: v for k, v in c.items() if k in cand_names})
                               for c in d.get("candidates") or []]
        known["ledger"] = dict(d.get("ledger") or {})
        known["details"] = dict(d.get("details") or {})
        known["correct"] = d.get("correct") is True
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})


def as_records(items: Iterable[BenchRecord | Mapping[str, Any]]) -> list[BenchRecord]:
    """Records read from a file (dicts) or built in memory, as BenchRecords."""
    return [r if isinstance(r, BenchRecord) else BenchRecord.from_dict(r) for r in items]
