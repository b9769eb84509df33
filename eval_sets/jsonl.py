"""JSON Lines files of problems: the parser every file set uses, and a loader for a user's own file.

Its own module (not loaders.py) so the registry can turn `--dataset path/to/file.jsonl` into a loader
without importing the registered sets, which import the registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttscale.errors import TTScaleError

from eval_sets.problem import SCHEMA_HINT, Problem


def read_jsonl(path: str | Path) -> list[Problem]:
    """Parse a JSONL file of problems; any bad line fails with `path:line`, what is wrong, and the fix."""
    path = Path(path)
    rows: list[Problem] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TTScaleError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})",
                                   "re-save the file as UTF-8") from e
            if not text.strip():
                continue  # blank lines (e.g. a trailing one) carry nothing
            try:
                obj: Any = json.loads(text)
            except json.JSONDecodeError as e:
                raise TTScaleError(
                    f"{where}: malformed JSON ({e.msg} at column {e.colno})",
                    f"fix or delete that line; each line must be one JSON object like {SCHEMA_HINT}",
                ) from e
            rows.append(Problem.from_dict(obj, where=where))
    return rows


def jsonl_file_loader(path: str | Path) -> Callable[[], list[Problem]]:
    """A loader for a user's own JSONL file (`--dataset path/to/file.jsonl`): rows with id, problem and
    answer (level, subject, ... optional); a missing field fails naming the file, line and field."""
    path = Path(path)

    def loader() -> list[Problem]:
        if not path.is_file():
            raise TTScaleError(f"dataset file not found: {path}",
                               f"pass an existing .jsonl file whose rows look like {SCHEMA_HINT}, or a set's name")
        rows = read_jsonl(path)
        if not rows:
            raise TTScaleError(f"dataset file {path} holds no problems", f"add rows like {SCHEMA_HINT}")
        return rows

    loader.__name__ = loader.__qualname__ = "load_jsonl_file"
    return loader
