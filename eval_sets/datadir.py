"""Where local evaluation data lives: the flag, else TTSCALE_DATA_DIR, else nowhere.

No other paths are guessed: a run that silently picked up some other copy of MATH-500 would make its
numbers unreproducible, so an unset data dir means "use the hub or say so".
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TTSCALE_DATA_DIR"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """`data_dir` if given (non-empty), else $TTSCALE_DATA_DIR if set (non-empty), else None."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else None


def describe(data_dir: Path) -> str:
    """Name the setting a directory came from, for error messages ("TTSCALE_DATA_DIR=... " or "--data-dir ...")."""
    env = os.environ.get(ENV_VAR, "")
    if env and Path(env).expanduser() == data_dir:
        return f"{ENV_VAR}={data_dir}"
    return f"data dir {data_dir}"
