"""Lab models: small models the project trains itself and ships inside the package.

`lab:arith` is a few-million-parameter Llama trained on the synthetic `arith` problems: weak enough to
make real mistakes, fast enough to sample thousands of tokens per second on a CPU, and never trained
on any public benchmark. `ttscale.lab.train` reproduces its weights.
"""

from __future__ import annotations

from pathlib import Path

from ttscale.errors import TTScaleError, unknown_name

LAB_MODELS: dict[str, Path] = {"arith": Path(__file__).resolve().parent / "arith"}


def resolve_lab_model(name: str) -> Path:
    """The folder of lab model `name` ("lab:arith" or "arith")."""
    key = name.removeprefix("lab:")
    if key not in LAB_MODELS:
        raise unknown_name("lab model", name, [f"lab:{k}" for k in LAB_MODELS])
    path = LAB_MODELS[key]
    if not (path / "config.json").is_file():
        raise TTScaleError(f"the weights of lab:{key} are missing from {path}",
                           f"reinstall ttscale, or rebuild them: python -m ttscale.lab.train --out {path}")
    return path
