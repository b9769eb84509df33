"""What was spent: one record type on every result, per prompt and for a whole batch.

"Budget" means the number of complete candidate solutions a strategy may produce for one prompt
(step-level strategies spend it as particles or beams). The ledger records what that budget cost in
tokens, backend calls and seconds, so results from different strategies compare on the same axis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Ledger:
    prompt_tokens: int = 0  # prompt tokens the backend computed (cache hits excluded)
    cached_prompt_tokens: int = 0  # prompt tokens served from a prefix cache
    generated_tokens: int = 0
    verifier_tokens: int = 0  # tokens a model-based verifier processed
    backend_calls: int = 0  # backend calls this prompt took part in (batch-level: calls made)
    candidates: int = 0  # complete candidate solutions produced (what `budget` bounds)
    wall_seconds: float = 0.0

    def add(self, other: "Ledger") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["wall_seconds"] = round(self.wall_seconds, 4)
        return d
