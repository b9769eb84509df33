"""Problems and text as users hand them to the CLI: a file or stdin (JSONL or one problem per line), and
stop strings typed in a shell ("\\n\\n"), so `solve` and `bench` read them the same way."""

from __future__ import annotations

import codecs
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ttscale.errors import TTScaleError

FORMAT_HINT = 'write one problem per line, or JSON Lines with a "problem" field ({"id": "1", "problem": "..."})'


@dataclass(frozen=True)
class ProblemInput:
    """One problem to solve; `id` comes from a JSONL row that has one, and is echoed in --json output."""

    text: str
    id: str | None = None


def gather_problems(argument: str | None, file: str | Path | None, stdin: TextIO | None = None) -> list[ProblemInput]:
    """The problems of one `solve` call: the argument's text, `-` (read stdin), or `--file PATH`."""
    if argument is not None and file is not None:
        raise TTScaleError("both a problem argument and --file were given", "pass one of them")
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise TTScaleError(f"problem file not found: {path}", "pass the path of a text or JSONL file to --file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TTScaleError(f"{path} is not UTF-8 text", "save it as UTF-8") from None
        return parse_problems(text, str(path))
    if argument == "-":
        return parse_problems((stdin or sys.stdin).read(), "stdin")
    if argument is None:
        raise TTScaleError("no problem given", "pass the problem text, --file PATH, or - to read problems from stdin")
    return [ProblemInput(argument)]


def parse_problems(text: str, where: str) -> list[ProblemInput]:
    """JSONL when the first non-blank line is a JSON object (then every line must be), else one problem per
    non-blank line. Errors name `where:line`."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise TTScaleError(f"{where} holds no problem", FORMAT_HINT)
    if not _is_object(first):
        return [ProblemInput(ln.strip()) for ln in lines if ln.strip()]
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TTScaleError(f"{at}: malformed JSON ({e.msg} at column {e.colno})", FORMAT_HINT) from None
        if not isinstance(row, dict):
            raise TTScaleError(f"{at}: expected a JSON object, got {type(row).__name__}", FORMAT_HINT)
        problem = row.get("problem")
        if problem is None:
            raise TTScaleError(f"{at}: missing the \"problem\" field (fields: {', '.join(map(str, row)) or 'none'})",
                               FORMAT_HINT)
        if not isinstance(problem, str) or not problem.strip():
            raise TTScaleError(f"{at}: \"problem\" must be non-empty text, got {problem!r:.40}", FORMAT_HINT)
        pid = row.get("id")
        out.append(ProblemInput(problem, None if pid is None else str(pid)))
    return out


def unescape(text: str, flag: str = "--stop") -> str:
    """Backslash escapes as typed in a shell (`\\n`, `\\t`, `\\\\`) -> the characters; other text unchanged."""
    try:
        return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError as e:
        raise TTScaleError(f"{flag} {text!r}: bad backslash escape ({e.reason})",
                           "write \\n for a newline and \\\\ for a backslash") from None


def _is_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return True  # a broken JSON object: parse it as JSONL so the error names the line
