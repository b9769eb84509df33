"""Datasets by name: the registry, `load`, and the checksum bench manifests record.

Built-in sets register through the same decorator users and plugins use, so the CLI, the API and bench
find every set the same way. Plugins (entry point group "ttscale.datasets") are imported only when their
name is asked for, so one broken plugin cannot break `list_datasets()` or the built-in sets.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from ttscale.errors import TTScaleError, unknown_name

from eval_sets.datadir import resolve_data_dir
from eval_sets.problem import Problem

ENTRY_POINT_GROUP = "ttscale.datasets"

# A loader takes any of these keyword arguments (only the ones it declares are passed) and returns rows
# (Problem or dicts in the common schema). Filtering by levels and `limit` happen in `load`, not here.
LoaderFn = Callable[..., Iterable[Problem | Mapping[str, Any]]]
F = TypeVar("F", bound=LoaderFn)
LOADER_ARGS = ("data_dir", "seed", "n", "levels", "split")

_REGISTRY: dict[str, LoaderFn] = {}
_PLUGINS: dict[str, metadata.EntryPoint] | None = None  # discovered once, imported on demand


def register_dataset(name: str, *, replace: bool = False) -> Callable[[F], F]:
    """Decorator: make `loader_fn` loadable as `name`. Re-registering a name needs `replace=True`."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise TTScaleError(f"invalid dataset name {name!r}", "use a non-empty name without surrounding spaces")

    def deco(fn: F) -> F:
        if not callable(fn):
            raise TTScaleError(f"dataset {name!r}: the registered loader is not callable", "decorate a function")
        old = _REGISTRY.get(name)
        if old is not None and old is not fn and not replace:
            raise TTScaleError(
                f"dataset {name!r} is already registered (by {_qualname(old)})",
                "pick another name, or pass replace=True to register_dataset",
            )
        _REGISTRY[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    """Every loadable name: registered ones plus installed plugins (not imported yet)."""
    return sorted(set(_REGISTRY) | set(_plugins()))


def get_loader(name: str) -> LoaderFn:
    """The loader for `name`, importing its plugin on first use; unknown names list the known ones.
    A name ending in .jsonl that is not registered is a user's own file (id, problem, answer per line)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    ep = _plugins().get(name)
    if ep is None and is_file_name(name):
        from eval_sets.jsonl import jsonl_file_loader

        return jsonl_file_loader(name)
    if ep is None:
        raise unknown_name("dataset", name, list_datasets())
    try:
        obj = ep.load()  # importing may itself call @register_dataset(name)
    except Exception as e:  # noqa: BLE001 - any import failure of third-party code
        raise TTScaleError(
            f"dataset plugin {name!r} ({ep.value}) failed to import: {type(e).__name__}: {_one_line(e)}",
            "fix or uninstall the package that provides it",
        ) from e
    if name not in _REGISTRY:
        if not callable(obj):
            raise TTScaleError(
                f"dataset plugin {name!r} ({ep.value}) is not a loader function",
                "point the ttscale.datasets entry point at a function returning problem dicts",
            )
        _REGISTRY[name] = obj
    return _REGISTRY[name]


def load(
    name: str,
    *,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    levels: Sequence[int] | None = None,
    seed: int = 0,
    n: int | None = None,
    split: str | None = None,
    offset: int = 0,
) -> list[Problem]:
    """Problems of set `name`: filtered to `levels` (sets with levels only), the first `offset` skipped,
    then the first `limit`. `name` may be the path of a JSONL file (see get_loader).

    `n` and `seed` are for generated sets (arith); `split` for sets that have splits (arith: "train"
    families, the default, or "heldout" families); `data_dir` overrides TTSCALE_DATA_DIR for file sets.
    """
    loader = get_loader(name)
    levels_t = _check_args(limit=limit, levels=levels, seed=seed, n=n)
    if not _is_int(offset) or offset < 0:
        raise TTScaleError(f"offset must be 0 or a positive integer, got {offset!r}", "pass e.g. offset=100")
    if split is not None and not isinstance(split, str):
        raise TTScaleError(f"split must be a name, got {split!r}", "pass e.g. split='heldout'")
    given = {"data_dir": resolve_data_dir(data_dir), "seed": seed, "n": n, "levels": levels_t, "split": split}
    kwargs = _kwargs_for(name, loader, given)
    rows = [
        Problem.from_dict(row, where=f"dataset {name!r} row {i}", default_source=name)
        for i, row in enumerate(loader(**kwargs))
    ]
    if levels_t is not None:
        rows = _filter_levels(name, rows, levels_t)
    if offset:
        if offset >= len(rows):
            raise TTScaleError(f"offset {offset} skips all {len(rows)} problems of dataset {name!r}",
                               f"pass an offset below {len(rows)}")
        rows = rows[offset:]
    return rows if limit is None else rows[:limit]


def dataset_checksum(name: str, **kwargs: Any) -> str:
    """sha256 (hex) of the loaded rows' canonical JSON, one per line: pins exactly what a bench ran on."""
    h = hashlib.sha256()
    for p in load(name, **kwargs):
        h.update(p.canonical_json().encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# -- helpers ---------------------------------------------------------------------------------------


def _check_args(*, limit: Any, levels: Any, seed: Any, n: Any) -> tuple[int, ...] | None:
    for key, value in (("limit", limit), ("n", n)):
        if value is not None and (not _is_int(value) or value < 1):
            raise TTScaleError(
                f"{key} must be a positive integer, got {value!r}", f"pass {key}=1 or more, or leave it out"
            )
    if not _is_int(seed):
        raise TTScaleError(f"seed must be an integer, got {seed!r}", "pass an integer seed, e.g. seed=0")
    if levels is None:
        return None
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
        raise TTScaleError(
            f"levels must be a list of integers, got {levels!r}", "pass e.g. levels=[1, 2] (CLI: --levels 1,2)"
        )
    out = tuple(levels)
    if not out or not all(_is_int(x) for x in out):
        raise TTScaleError(f"levels must be a non-empty list of integers, got {levels!r}", "pass e.g. levels=[4, 5]")
    return out


def _kwargs_for(name: str, loader: LoaderFn, given: dict[str, Any]) -> dict[str, Any]:
    """Pass a loader only the arguments it declares, so a three-line user loader needs no boilerplate."""
    try:
        params = inspect.signature(loader).parameters
    except (TypeError, ValueError):  # builtins / C callables: pass nothing
        params = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = {k for k in LOADER_ARGS if takes_all or k in params}
    if given["split"] is not None and "split" not in accepted:
        raise TTScaleError(f"dataset {name!r} has no splits", "drop split (--split) for this set; arith has "
                           "the splits train and heldout")
    if given["n"] is not None and "n" not in accepted:
        raise TTScaleError(
            f"dataset {name!r} has a fixed size; n only applies to generated sets such as arith",
            "drop n and use limit to take the first N problems",
        )
    return {k: given[k] for k in accepted if k != "split" or given[k] is not None}


def _filter_levels(name: str, rows: list[Problem], levels: tuple[int, ...]) -> list[Problem]:
    present = sorted({p.level for p in rows if p.level is not None})
    if not present:
        raise TTScaleError(
            f"dataset {name!r} has no difficulty levels, so it cannot be filtered by levels",
            "drop levels (--levels) for this set; math500 and arith have levels",
        )
    wanted = set(levels)
    kept = [p for p in rows if p.level in wanted]
    if not kept:
        raise TTScaleError(
            f"dataset {name!r} has no problems at levels {sorted(wanted)}",
            f"choose among the levels it has: {', '.join(map(str, present))}",
        )
    return kept


def _plugins() -> dict[str, metadata.EntryPoint]:
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = {ep.name: ep for ep in _entry_points()}
    return _PLUGINS


def _entry_points() -> Iterable[metadata.EntryPoint]:
    """Installed plugins; a separate function so tests can substitute their own."""
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def is_file_name(name: str) -> bool:
    """A dataset name that means a file: it ends in .jsonl."""
    return isinstance(name, str) and name.lower().endswith(".jsonl")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
