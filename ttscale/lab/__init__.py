"""Lab models: small models the project trains itself and ships inside the package.

`lab:arith` is a five-million-parameter Llama trained on the training families of the synthetic `arith`
problems: weak enough to make real mistakes (graded by level), fast enough to sample thousands of tokens
per second on a CPU, and never trained on any public benchmark. `lab:arith-prm` is a process reward model
in Qwen2.5-Math-PRM's format trained on that policy's own samples. `python -m ttscale.lab.train` and
`python -m ttscale.lab.train_prm` reproduce their weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from ttscale.errors import TTScaleError, unknown_name

_HERE = Path(__file__).resolve().parent
LAB_MODELS: dict[str, Path] = {"arith": _HERE / "arith", "arith-prm": _HERE / "arith-prm"}
TRAIN_COMMANDS = {"arith": "python -m ttscale.lab.train --out {path}",
                  "arith-prm": "python -m ttscale.lab.train_prm --out {path}"}
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def resolve_lab_model(name: str) -> Path:
    """The folder of lab model `name` ("lab:arith" or "arith")."""
    key = name.removeprefix("lab:")
    if key not in LAB_MODELS:
        raise unknown_name("lab model", name, [f"lab:{k}" for k in LAB_MODELS])
    path = LAB_MODELS[key]
    rebuild = TRAIN_COMMANDS[key].format(path=path)
    for name in REQUIRED_FILES:
        f = path / name
        if not f.is_file():
            raise TTScaleError(f"lab:{key} is missing {f}", f"reinstall ttscale, or rebuild it: {rebuild}")
    try:
        json.loads((path / "config.json").read_text())
        with (path / "model.safetensors").open("rb") as fh:  # a safetensors file opens with its header size
            size = int.from_bytes(fh.read(8), "little")
            json.loads(fh.read(size))
    except (ValueError, OSError, UnicodeDecodeError):
        raise TTScaleError(f"lab:{key} has a damaged file in {path} (config.json or model.safetensors)",
                           f"reinstall ttscale, or rebuild it: {rebuild}") from None
    return path
