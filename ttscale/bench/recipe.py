"""Recipes: YAML files that pin a benchmark setup, and the CLI flags that override their fields.

Both end in one mapping validated by `config_from_mapping`, so a flag and a recipe field with the same
meaning are checked by the same code and fail with the same message.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

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


# Flags that set a field inside the recipe: flag -> path of the field (section, ..., field).
SECTION_OF: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset", "name"), "limit": ("dataset", "limit"), "levels": ("dataset", "levels"),
    "n": ("dataset", "n"), "data_dir": ("dataset", "data_dir"), "split": ("dataset", "split"), "dataset_seed": ("dataset", "seed"),
    "offset": ("dataset", "offset"),
    "temperature": ("sampling", "temperature"), "top_p": ("sampling", "top_p"),
    "max_tokens": ("sampling", "max_tokens"), "system_prompt": ("sampling", "system_prompt"), "stop": ("sampling", "stop"),
    "context_length": ("backend_options", "context_length"), "base_url": ("backend_options", "base_url"),
    "tokenizer": ("backend_options", "tokenizer"), "timeout_s": ("backend_options", "timeout_s"),
    "retries": ("backend_options", "retries"), "threads": ("backend_options", "threads"),
    "prm_model": ("verifier_options", "prm", "model"), "prm_engine": ("verifier_options", "prm", "engine"),
    "prm_format": ("verifier_options", "prm", "format"),
}


def for_other_backend(recipe: dict[str, Any], backend: str | None, where: str,
                       notes: list[str] | None) -> dict[str, Any]:
    """A recipe run with `--backend` naming another backend than its own: its backend options that the
    other backend does not take (vLLM's max_num_seqs on transformers) are left out, and said so. Why: a
    recipe's tuning belongs to its backend; switching backends should not need a copy of the recipe."""
    from ttscale.backends import backends
    from ttscale.backends.registry import backend_option_names

    own = recipe.get("backend")
    options = recipe.get("backend_options")
    if not backend or backend == own or not isinstance(options, Mapping) or backend not in backends.names():
        return recipe
    takes = backend_option_names(backend)
    dropped = sorted(k for k in options if takes is not None and k not in takes)
    if not dropped:
        return recipe
    if notes is not None:
        notes.append(f"{where}: backend option(s) {', '.join(dropped)} of {own} left out for --backend {backend}")
    return {**recipe, "backend_options": {k: v for k, v in options.items() if k not in dropped}}


def merge(recipe: dict[str, Any] | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Lay CLI flags (None = not given) over a recipe's mapping, each into its section."""
    data: dict[str, Any] = dict(recipe or {})
    for key, value in flags.items():
        if value is not None:
            data = _set(data, SECTION_OF.get(key, (key,)), value)
    return data


def _set(mapping: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `mapping` with the field at `path` set, creating the sections on the way."""
    out = dict(mapping)
    head, rest = path[0], path[1:]
    if not rest:
        out[head] = value
        return out
    current = out.get(head)
    if head == "dataset" and isinstance(current, str):  # `dataset: arith` is short for {name: arith}
        current = {"name": current}
    out[head] = _set(current if isinstance(current, Mapping) else {}, rest, value)
    return out


def apply_options(config: BenchConfig, pairs: Mapping[str, str]) -> BenchConfig:
    """`--opt key=value` over the recipe's strategy options: each key goes to every strategy line whose
    strategy takes it (`--opt LABEL.key=value`: that line only), converted to the option's type so a flag
    and the same recipe field make the same config. A key no line takes is refused."""
    from ttscale.strategies.options import convert

    specs = list(config.strategies)
    labels = {s.label.replace("-", "_"): s.label for s in specs}  # parse_cli turned - into _ in the key
    for raw_key, value in pairs.items():
        label, _, key = raw_key.rpartition(".")
        label = labels.get(label, label)
        if label and label not in labels.values():
            raise TTScaleError(f"--opt {raw_key}: the run has no strategy line {label!r}",
                               f"use one of: {', '.join(s.label for s in specs)} (or drop the prefix)")
        hits = 0
        for i, spec in enumerate(specs):
            if label and spec.label != label:
                continue
            kind = _option_types(spec.strategy)
            if kind is not None and key not in kind:
                continue
            converted = value if kind is None else convert(spec.strategy, key, value, kind[key])
            if isinstance(converted, tuple):  # as YAML gives it, so flag and recipe hash alike
                converted = list(converted)
            specs[i] = replace(spec, options={**spec.options, key: converted})
            hits += 1
        if not hits:
            where = f"strategy line {label!r}" if label else "no strategy of this run"
            names = ", ".join(sorted({s.strategy for s in specs if not label or s.label == label}))
            raise TTScaleError(f"--opt {raw_key}: {where} takes the option {key!r} ({names})",
                               "`ttscale strategies` lists each strategy's options")
    return replace(config, strategies=tuple(specs))


def _option_types(strategy: str) -> dict[str, Any] | None:
    """Option name -> type for `strategy` (with the options it passes on, as auto does); None: unchecked."""
    from ttscale.strategies.options import accepted_options, options_class

    cls = options_class(strategy)
    return None if cls is None else accepted_options(cls)


def check_prm(config: BenchConfig) -> None:
    """A run that scores with the PRM needs its model: say so now, not after the policy model loaded."""
    uses = any("prm" in (opts.get("verifier"), opts.get("scorer")) for opts in map(config.options_for, config.strategies))
    if (uses or "prm" in config.verifier_options) and not (config.verifier_options.get("prm") or {}).get("model"):
        raise TTScaleError("the prm verifier needs a model",
                           "pass --prm-model (e.g. lab:arith-prm or Qwen/Qwen2.5-Math-PRM-7B) or set "
                           "verifier_options: {prm: {model: ...}} in the recipe")


def resolve_config(recipe: str | None, flags: dict[str, Any], options: Mapping[str, str] | None = None,
                   notes: list[str] | None = None) -> BenchConfig:
    """The run's config: the recipe (if any) with flags on top, validated once; `options` are --opt pairs.
    What the user should know about the merge (options dropped) is appended to `notes`."""
    base = read_recipe(recipe) if recipe else None
    if base is not None and not isinstance(base, dict):
        raise TTScaleError(f"recipe {recipe}: must be a mapping of fields, got {type(base).__name__}",
                           "write key: value pairs (dataset, strategies, budgets, ...)")
    if base is not None:
        base = for_other_backend(base, flags.get("backend"), recipe or "", notes)
    data = merge(base, flags)
    if "dataset" not in data:
        raise TTScaleError("no dataset given", "pass --dataset NAME (e.g. arith, math500, gsm8k) or --recipe FILE")
    if "budgets" not in data:
        raise TTScaleError("no budgets given", "pass --budgets 1,4,16 or --recipe FILE")
    data.setdefault("strategies", ["best_of_n"])
    config = config_from_mapping(data, where=f"recipe {recipe}" if recipe else "command line")
    if options:
        config = apply_options(config, options)
    check_prm(config)
    return config
