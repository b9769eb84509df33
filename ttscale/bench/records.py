"""The records file: one JSON line per (problem, strategy, budget, seed), appended as each finishes.

Why it is built this way: a bench run may be killed at any moment (`kill -9`, a preempted node), and the
rerun must lose nothing and duplicate nothing. So each record is written with one `os.write` of a whole
line on an O_APPEND descriptor, the file is the only state (the set of keys present is what is done),
a partial last line left by a crash is cut off and kept aside on the next start, and a lock file stops
two runs from writing into one folder at once.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ttscale.errors import TTScaleError

RECORDS_FILE = "records.jsonl"
PARTIAL_SUFFIX = ".partial"
from ttscale.bench.record import Key  # noqa: E402  (one definition, with the record it keys)


def record_key(rec: dict[str, Any]) -> Key:
    return (str(rec["problem_id"]), str(rec["label"]), int(rec["budget"]), int(rec["seed"]))


def to_json_line(rec: dict[str, Any]) -> bytes:
    return (json.dumps(rec, ensure_ascii=False, separators=(",", ":"), default=jsonable) + "\n").encode("utf-8")


def jsonable(obj: Any) -> Any:
    """numpy scalars and arrays, sets and dataclasses in strategy details become plain JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    return str(obj)


@dataclass
class ReadReport:
    """What reading a records file found besides good records: everything a user should hear about."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # complete lines that are not records (skipped)
    duplicates: int = 0  # repeated keys (the first is kept)
    partial_bytes: int = 0  # an unterminated last line, as a crash leaves it
    partial_saved_to: Path | None = None

    def messages(self, path: Path) -> list[str]:
        out = []
        if self.partial_bytes:
            saved = f", kept in {self.partial_saved_to}" if self.partial_saved_to else ""
            out.append(f"{path}: recovered {len(self.records)} complete records; dropped an unfinished last line "
                       f"of {self.partial_bytes} bytes (a run was killed mid-write{saved}); its cell will be rerun")
        if self.bad_lines:
            shown = ", ".join(map(str, self.bad_lines[:5])) + (" ..." if len(self.bad_lines) > 5 else "")
            out.append(f"{path}: skipped {len(self.bad_lines)} line(s) that are not records (line {shown})")
        if self.duplicates:
            out.append(f"{path}: ignored {self.duplicates} duplicate record(s) (kept the first of each key)")
        return out


def read_records(path: Path, *, repair: bool = False) -> ReadReport:
    """Parse a records file. With `repair`, cut an unfinished last line off the file (saved beside it)."""
    report = ReadReport()
    if not path.exists():
        return report
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    body, tail = data[:end], data[end:]
    seen: set[Key] = set()

    def take(raw: bytes, lineno: int) -> bool:
        try:
            rec = json.loads(raw.decode("utf-8"))
            key = record_key(rec)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return False
        if key in seen:
            report.duplicates += 1
        else:
            seen.add(key)
            report.records.append(rec)
        return True

    lines = body.split(b"\n")[:-1] if body else []
    for i, raw in enumerate(lines, start=1):
        if raw.strip() and not take(raw, i):
            report.bad_lines.append(i)
    if tail.strip():
        if take(tail, len(lines) + 1):  # complete JSON missing only its newline: keep it
            if repair:
                _append_bytes(path, b"\n")
        else:
            report.partial_bytes = len(tail)
            if repair:
                saved = path.with_name(path.name + PARTIAL_SUFFIX)
                with saved.open("ab") as f:
                    f.write(tail + b"\n")
                os.truncate(path, end)
                report.partial_saved_to = saved
    return report


def _append_bytes(path: Path, blob: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _write_all(fd, blob)
    finally:
        os.close(fd)


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class FolderLock:
    """One writer per run folder. flock dies with its process, so a kill -9 never leaves a stale lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def __enter__(self) -> "FolderLock":
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TTScaleError(f"another ttscale bench (pid {holder}) is writing to {self.folder}",
                               "wait for it to finish, or use another --out folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RecordStore:
    """The records of one run folder: the done keys, and appending new records exactly once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RECORDS_FILE
        self._fd: int | None = None
        self.done: set[Key] = set()
        self.report = ReadReport()

    def open(self) -> "RecordStore":
        """Recover the file (cut an unfinished last line) and get ready to append."""
        self.report = read_records(self.path, repair=True)
        self.done = {record_key(r) for r in self.report.records}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write records whose key is not there yet; one write of whole lines, then fsync. Returns how many."""
        assert self._fd is not None, "open() the store first"
        fresh = []
        for rec in records:
            key = record_key(rec)
            if key not in self.done:
                self.done.add(key)
                fresh.append(to_json_line(rec))
        if fresh:
            _write_all(self._fd, b"".join(fresh))
            os.fsync(self._fd)
        return len(fresh)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RecordStore":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
