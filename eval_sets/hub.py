"""Fallback: the built-in sets from the Hugging Face hub, at pinned revisions, mapped to our schema.

Only used when no local file is found. Kept apart and small because it cannot be exercised offline: the
row mappers below are plain functions (tested with hub-shaped rows); `fetch` is the only network code.
`datasets` stays an optional dependency (`pip install 'ttscale[hub]'`) and is imported only here.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttscale.errors import TTScaleError

Row = dict[str, Any]


@dataclass(frozen=True)
class HubSource:
    """One pinned hub dataset and the function turning its row i into our schema."""

    repo: str
    revision: str  # a commit sha: the rows must not change under a bench run
    split: str
    config: str | None
    to_row: Callable[[Row, int], Row]

    @property
    def tag(self) -> str:
        return f"{self.repo}@{self.revision}"


def _int_str(x: Any) -> str:
    """AIME/AMC answers arrive as 25, 27.0 or "025"; the local files write them as "25"."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    s = str(x).strip()
    if re.fullmatch(r"\d+(\.0+)?", s):
        return str(int(float(s))) if "." in s else str(int(s))
    return s


def _math500(r: Row, i: int) -> Row:
    level = r.get("level")
    if isinstance(level, str):  # some mirrors write "Level 3"
        m = re.search(r"\d+", level)
        level = int(m.group()) if m else None
    return {"id": r["unique_id"], "problem": r["problem"], "answer": r["answer"], "solution": r.get("solution"),
            "subject": r.get("subject"), "level": level}


def _aime24(r: Row, i: int) -> Row:
    m = re.search(r"(\d{4})_AIME_(I{1,2})_Problems/Problem_(\d+)", r.get("url") or "")
    rid = f"{m.group(1)}-{m.group(2)}-{int(m.group(3))}" if m else f"aime24-{i}"
    return {"id": rid, "problem": r["problem"], "answer": _int_str(r["answer"]), "solution": r.get("solution"),
            "upstream_id": r.get("id"), "url": r.get("url")}


def _aime25(r: Row, i: int) -> Row:
    # MathArena numbers the combined set 1-30: AIME I problems 1-15, then AIME II problems 1-15.
    idx = int(r.get("problem_idx") or i + 1)
    rid = f"2025-I-{idx}" if idx <= 15 else f"2025-II-{idx - 15}"
    out = {"id": rid, "problem": r["problem"], "answer": _int_str(r["answer"])}
    if r.get("problem_type") is not None:
        out["problem_type"] = r["problem_type"]
    return out


def _amc23(r: Row, i: int) -> Row:
    m = re.search(r"(\d{4})_AMC_12([AB])_Problems/Problem_(\d+)", r.get("url") or "")
    rid = f"{m.group(1)}-12{m.group(2)}-{int(m.group(3))}" if m else f"amc23-{i}"
    return {"id": rid, "problem": r.get("problem") or r["question"], "answer": _int_str(r["answer"]),
            "upstream_id": r.get("id"), "url": r.get("url")}


def _gsm8k(r: Row, i: int) -> Row:
    final = r["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
    return {"id": f"gsm8k-test-{i}", "problem": r["question"], "answer": final, "solution": r["answer"]}


# Revisions as pinned by other public eval code (the sha is what `load_dataset(revision=...)` fetches).
SOURCES: dict[str, HubSource] = {
    "math500": HubSource("HuggingFaceH4/MATH-500", "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", "test", None, _math500),
    "aime24": HubSource("HuggingFaceH4/aime_2024", "2fe88a2f1091d5048c0f36abc874fb997b3dd99a", "train", None, _aime24),
    "aime25": HubSource("MathArena/aime_2025", "c94da77eb22bbd6439e62a323bec18493a421302", "train", None, _aime25),
    "amc23": HubSource("math-ai/amc23", "56929da58f5de03e3c4ada30a2eec359303bf155", "test", None, _amc23),
    "gsm8k": HubSource("openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", "test", "main", _gsm8k),
}

_TRUTHY = {"1", "true", "yes", "on"}


def unavailable_reason() -> str | None:
    """Why the hub cannot be used right now, or None if it may be tried."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUTHY:
            return f"{var} is set"
    if importlib.util.find_spec("datasets") is None:
        return "the 'datasets' package is not installed"
    return None


def fetch(name: str) -> list[Row]:
    """Rows of built-in set `name` from the hub at its pinned revision, in our schema."""
    src = SOURCES[name]
    try:
        from datasets import load_dataset

        ds = load_dataset(src.repo, src.config, split=src.split, revision=src.revision)
        return [{**src.to_row(dict(r), i), "source": src.tag} for i, r in enumerate(ds)]
    except Exception as e:  # noqa: BLE001 - network, auth, schema drift: all end the same way for the user
        msg = " ".join(str(e).split())[:300]
        raise TTScaleError(
            f"could not load {name} from the Hugging Face hub ({src.tag}): {type(e).__name__}: {msg}",
            "check the network, or use local files with --data-dir / TTSCALE_DATA_DIR",
        ) from e
