"""Recipes: YAML files that pin a benchmark setup, and the CLI flags that override their fields.

Both end in one mapping validated by `config_from_mapping`, so a flag and a recipe field with the same
meaning are checked by the same code and fail with the same message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ttscale.bench.config import BenchConfig, config_from_mapping
from ttscale.errors import TTScaleError


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a recipe file, with clear errors for a missing file or broken YAML."""
    p = Path(path)
    if not p.is_file():
        raise TTScaleError(f"recipe not found: {p}", "pass the path of a .yaml file, e.g. recipes/arith-embedded-cpu.yaml")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise TTScaleError(f"recipe {where}: not valid YAML ({getattr(e, 'problem', None) or e})",
                           "fix the YAML syntax at that line") from None
    except UnicodeDecodeError:
        raise TTScaleError(f"recipe {p}: not UTF-8 text", "save the recipe as UTF-8") from None
    if data is None:
        raise TTScaleError(f"recipe {p} is empty", "add dataset, strategies and budgets")
    return data


def load_recipe(path: str | Path) -> BenchConfig:
    """Read and validate a recipe file."""
    return config_from_mapping(read_recipe(path), where=f"recipe {path}")


def parse_int_list(flag: str, text: str, *, minimum: int) -> list[int]:
    """`--budgets 1,4,16` -> [1, 4, 16], or one line naming the bad item."""
    what = "positive integers" if minimum >= 1 else "non-negative integers"
    items = [t.strip() for t in text.split(",")]
    out = []
    for t in items:
        try:
            v = int(t)
        except ValueError:
            v = None
        if v is None or v < minimum:
            raise TTScaleError(f"{flag} must be a comma-separated list of {what}, got {t!r} in {text!r}",
                               f"pass e.g. {flag} 1,4,16")
        out.append(v)
    return out


# Flags that set a field inside a section of the recipe: flag -> (section, field).
SECTION_OF = {
    "dataset": ("dataset", "name"), "limit": ("dataset", "limit"), "levels": ("dataset", "levels"),
    "n": ("dataset", "n"), "data_dir": ("dataset", "data_dir"), "split": ("dataset", "split"), "dataset_seed": ("dataset", "seed"),
    "temperature": ("sampling", "temperature"), "top_p": ("sampling", "top_p"),
    "max_tokens": ("sampling", "max_tokens"), "system_prompt": ("sampling", "system_prompt"),
    "context_length": ("backend_options", "context_length"), "base_url": ("backend_options", "base_url"),
    "tokenizer": ("backend_options", "tokenizer"), "timeout_s": ("backend_options", "timeout_s"),
    "retries": ("backend_options", "retries"),
}


def merge(recipe: dict[str, Any] | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Lay CLI flags (None = not given) over a recipe's mapping, each into its section."""
    data: dict[str, Any] = dict(recipe or {})
    for key, value in flags.items():
        if value is None:
            continue
        if key not in SECTION_OF:
            data[key] = value
            continue
        section, field = SECTION_OF[key]
        current = data.get(section)
        if section == "dataset" and isinstance(current, str):
            current = {"name": current}
        sub = dict(current) if isinstance(current, dict) else {}
        sub[field] = value
        data[section] = sub
    return data


def resolve_config(recipe: str | None, flags: dict[str, Any]) -> BenchConfig:
    """The run's config: the recipe (if any) with flags on top, validated once."""
    base = read_recipe(recipe) if recipe else None
    if base is not None and not isinstance(base, dict):
        raise TTScaleError(f"recipe {recipe}: must be a mapping of fields, got {type(base).__name__}",
                           "write key: value pairs (dataset, strategies, budgets, ...)")
    data = merge(base, flags)
    if "dataset" not in data:
        raise TTScaleError("no dataset given", "pass --dataset NAME (e.g. arith, math500, gsm8k) or --recipe FILE")
    if "budgets" not in data:
        raise TTScaleError("no budgets given", "pass --budgets 1,4,16 or --recipe FILE")
    data.setdefault("strategies", ["best_of_n"])
    return config_from_mapping(data, where=f"recipe {recipe}" if recipe else "command line")
