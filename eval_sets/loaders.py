"""The built-in sets: five JSONL files (data dir, else the hub) and the `arith` generator.

They register with the public decorator like any plugin. `read_jsonl` is public so a user's own file set
is a three-line loader with the same line-numbered errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.errors import TTScaleError

from eval_sets import hub
from eval_sets.datadir import ENV_VAR, describe
from eval_sets.jsonl import read_jsonl  # noqa: F401  (public here too: plugins import it from loaders)
from eval_sets.problem import Problem
from eval_sets.registry import register_dataset

FILES: dict[str, str] = {
    "math500": "math500.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
}
ARITH_DEFAULT_N = 100
ARITH_LEVELS = (1, 2, 3, 4, 5)


def _file_set(name: str, filename: str) -> None:
    """Register `name`: `filename` in the data dir, else the pinned hub copy, else one clear error."""

    def loader(data_dir: Path | None) -> list[Problem]:
        if data_dir is not None:
            if not data_dir.is_dir():
                raise TTScaleError(
                    f"{describe(data_dir)} is not a directory",
                    f"point --data-dir or {ENV_VAR} at the folder holding {filename} (e.g. ../shared/eval_sets)",
                )
            path = data_dir / filename
            if path.is_file():
                return read_jsonl(path)
            missing = f"{filename} is not in {describe(data_dir)}"
        else:
            missing = f"no data directory is set (--data-dir or {ENV_VAR})"
        reason = hub.unavailable_reason()
        if reason is None:
            tag = hub.SOURCES[name].tag
            return [Problem.from_dict(r, where=f"{tag} row {i}") for i, r in enumerate(hub.fetch(name))]
        raise TTScaleError(
            f"cannot load {name}: {missing}, and the Hugging Face hub is unavailable ({reason})",
            f"pass --data-dir DIR or set {ENV_VAR} to a folder with {filename} "
            "(the Makefile uses ../shared/eval_sets), or install 'ttscale[hub]' and go online",
        )

    loader.__name__ = loader.__qualname__ = f"load_{name}"
    loader.__doc__ = f"{name}: {filename} from the data dir, else {hub.SOURCES[name].tag} from the hub."
    register_dataset(name)(loader)


for _name, _filename in FILES.items():
    _file_set(_name, _filename)


@register_dataset("arith")
def load_arith(n: int | None = None, levels: Sequence[int] | None = None, seed: int = 0,
               split: str = "train") -> list[dict[str, Any]]:
    """Seeded synthetic arithmetic word problems (eval_sets/arith.py); needs no data and no network.
    `split="heldout"` renders them only with sentence structures the lab model never trained on."""
    try:
        from eval_sets import arith
    except ModuleNotFoundError as e:
        if e.name != "eval_sets.arith":
            raise
        raise TTScaleError("the arith generator is not available (eval_sets/arith.py is missing)",
                           "reinstall ttscale or pick another dataset") from e
    known = tuple(getattr(arith, "LEVELS", ARITH_LEVELS))
    wanted = tuple(dict.fromkeys(levels)) if levels else known  # duplicates would repeat problems
    bad = [lv for lv in wanted if lv not in known]
    if bad:
        raise TTScaleError(f"arith has no level {', '.join(map(str, bad))}",
                           f"choose levels among {', '.join(map(str, known))}")
    splits = tuple(getattr(arith, "SPLITS", ("train",)))
    if split not in splits:
        raise TTScaleError(f"arith has no split {split!r}", f"choose one of: {', '.join(splits)}")
    return arith.generate(ARITH_DEFAULT_N if n is None else n, levels=wanted, seed=seed, split=split)
