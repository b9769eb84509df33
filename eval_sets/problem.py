"""The one record type every evaluation set produces.

Strategies, verifiers and bench only ever see `Problem`, whatever file, hub repo, generator or plugin the
rows came from, so the record is checked once, here, with an error that says where a bad row came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ttscale.errors import TTScaleError

SCHEMA_FIELDS = ("id", "problem", "answer", "level", "subject", "solution", "source")
REQUIRED_FIELDS = ("id", "problem", "answer")
SCHEMA_HINT = (
    '{"id": str, "problem": str, "answer": str, "level"?: int, "subject"?: str, "solution"?: str, "source"?: str}'
)


@dataclass(frozen=True)
class Problem:
    """One evaluation problem; `extra` keeps fields outside the common schema (url, upstream_id, ...)."""

    id: str
    problem: str
    answer: str
    level: int | None = None
    subject: str | None = None
    solution: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The flat record (schema fields first, then extras), the shape the JSONL files use."""
        out: dict[str, Any] = {k: getattr(self, k) for k in SCHEMA_FIELDS}
        out.update(self.extra)
        return out

    def canonical_json(self) -> str:
        """Key-sorted compact JSON: the bytes `dataset_checksum` hashes, stable across Python versions."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, row: Mapping[str, Any] | Problem, *, where: str = "row", default_source: str = "") -> Problem:
        """Validate one raw row; `where` ("file.jsonl:12") goes into the error so the fix is findable."""
        if isinstance(row, Problem):
            return row if row.source or not default_source else replace(row, source=default_source)
        if not isinstance(row, Mapping):
            raise TTScaleError(
                f"{where}: expected a JSON object, got {type(row).__name__}",
                f"make each row an object like {SCHEMA_HINT}",
            )
        missing = [k for k in REQUIRED_FIELDS if row.get(k) is None]
        if missing:
            raise TTScaleError(
                f"{where}: missing required field(s) {', '.join(missing)}",
                f"add them; each row needs {SCHEMA_HINT}",
            )
        return cls(
            id=_text(row["id"], "id", where, allow_int=True),
            problem=_text(row["problem"], "problem", where),
            answer=_text(row["answer"], "answer", where, allow_int=True),
            level=_level(row.get("level"), where),
            subject=_opt_text(row.get("subject"), "subject", where),
            solution=_opt_text(row.get("solution"), "solution", where),
            source=_opt_text(row.get("source"), "source", where) or default_source,
            extra={k: v for k, v in row.items() if k not in SCHEMA_FIELDS},
        )


def _text(value: Any, key: str, where: str, *, allow_int: bool = False) -> str:
    # Integer ids/answers are common in hand-written files; floats are not accepted (is 27.0 "27"?).
    if isinstance(value, str):
        return value
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TTScaleError(
        f"{where}: field {key!r} must be a string, got {type(value).__name__} {value!r:.40}",
        f"write it as a JSON string, e.g. \"{key}\": \"...\"",
    )


def _opt_text(value: Any, key: str, where: str) -> str | None:
    return None if value is None else _text(value, key, where)


def _level(value: Any, where: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TTScaleError(
        f"{where}: field 'level' must be an integer or null, got {type(value).__name__} {value!r:.40}",
        'write it as a bare integer, e.g. "level": 3',
    )
