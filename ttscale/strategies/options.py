"""Typed strategy options: each strategy registers a frozen dataclass, and everything that passes options
(the API, `ttscale solve --opt key=value`, bench recipes, `ttscale serve`) goes through `parse_options`,
so a misspelt option is one clear error before any work, and every default lives in one place.

A strategy registered without an options class takes any options as a plain dict (`task.options`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Union

from ttscale.errors import TTScaleError, unknown_name
from ttscale.strategies.registry import options_class

# Options the engine itself fills in for every strategy (from the model and the call), not the user.
ENGINE_OPTIONS = ("step_delimiter", "waves")
DEFAULT_VERIFIER = "arith_steps"  # the process verifier strategies use unless told otherwise
DEFAULT_STEP_DELIMITER = "\n\n"  # a blank line ends a step, unless the model's defaults say otherwise
AGGREGATIONS = ("majority", "weighted", "top")  # candidates -> one answer
STEP_AGGREGATIONS = ("last", "min", "prod", "mean")  # a path's step scores -> one score


def check_aggregation(name: str) -> str:
    if name not in AGGREGATIONS:
        raise unknown_name("aggregation", name, list(AGGREGATIONS))
    return name


def check_step_aggregation(name: str) -> str:
    if name not in STEP_AGGREGATIONS:
        raise unknown_name("step score aggregation", name, list(STEP_AGGREGATIONS))
    return name


# Options whose values come from a fixed set, whatever strategy declares them: checked on parsing.
FIELD_CHECKS = {"aggregate": check_aggregation, "step_aggregate": check_step_aggregation}


@dataclass(frozen=True)
class StrategyOptions:
    """Options every strategy takes."""

    # Text that ends a reasoning step (the engine fills in the model's own; "\n\n" otherwise).
    step_delimiter: str = DEFAULT_STEP_DELIMITER
    # Sample in this many rounds, so a deadline has an answer to return early (asolve sets it; 0: at once).
    waves: int = 0


@dataclass(frozen=True)
class StepSearchOptions(StrategyOptions):
    """Options of the step-level searches (beam, dvts, particle)."""

    verifier: str = DEFAULT_VERIFIER  # process verifier that scores every step
    step_aggregate: str = "last"  # step scores -> path score: last | min | prod | mean
    aggregate: str = "top"  # final answer over the finished candidates: majority | weighted | top
    step_tokens: int | None = None  # most tokens per step (default: min(256, max_tokens))
    max_steps: int = 32  # most steps per solution

    def __post_init__(self) -> None:
        if (self.step_tokens is not None and self.step_tokens < 1) or self.max_steps < 1:
            raise TTScaleError("step_tokens and max_steps must be at least 1", "pass positive values")


def fields_of(cls: type) -> dict[str, Any]:
    """Option name -> type, for a registered options class."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def accepted_options(cls: type) -> dict[str, Any]:
    """Option name -> type a strategy accepts: its own fields, and those of the strategies it passes
    options on to (`passes_to`: the strategies `auto` may run)."""
    out: dict[str, Any] = {}
    for name in getattr(cls, "passes_to", ()):
        out.update(fields_of(options_class(name) or StrategyOptions))
    out.update(fields_of(cls))
    return out


def parse_options(strategy: str, cls: type | None, given: Mapping[str, Any], *, strict: bool = True) -> Any:
    """`given` as an instance of `cls` (strings from a command line converted to the field's type).

    Unknown names (with `strict`) and values of the wrong type are refused with the valid choices.
    Names the class passes on (`passes_to`: the strategies `auto` may run) are accepted and dropped.
    """
    if cls is None:
        return None
    known = fields_of(cls)
    unknown = sorted(set(given) - set(accepted_options(cls)))
    if unknown and strict:
        valid = ", ".join(sorted(k for k in known if k not in ENGINE_OPTIONS))
        raise TTScaleError(f"unknown option(s) {', '.join(unknown)} for strategy {strategy!r}",
                           f"valid options: {valid}")
    values = {k: convert(strategy, k, v, known[k]) for k, v in given.items() if k in known}
    for k, v in values.items():
        if k in FIELD_CHECKS and v is not None:
            FIELD_CHECKS[k](v)
    return cls(**values)


def convert(strategy: str, name: str, value: Any, kind: Any) -> Any:
    """`value` as type `kind` (int, float, bool, str, tuple[float, ...], X | None, Any)."""
    def bad(expected: str) -> TTScaleError:
        return TTScaleError(f"option {name} of strategy {strategy!r} must be {expected}, got {value!r:.60}",
                            f"pass e.g. {name}={_example(kind)}")

    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        if len(args) == 1:
            return convert(strategy, name, value, args[0])
        for a in args:
            try:
                return convert(strategy, name, value, a)
            except TTScaleError:
                continue
        raise bad(" or ".join(getattr(a, "__name__", str(a)) for a in args))
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return tuple(convert(strategy, name, v, item) for v in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad("true or false")
    if kind is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise bad("an integer")
    if kind is float:
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
    if kind is str:
        if not isinstance(value, str):
            raise bad("text")
        return value
    return value  # a type the options class leaves open (a Policy, a dict): the strategy checks it


def _example(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    if origin is tuple:
        return "0.3,0.7"
    return {int: "4", float: "0.5", bool: "true", str: "NAME"}.get(kind, "VALUE")


def parse_cli(pairs: list[str]) -> dict[str, str]:
    """`--opt key=value` pairs (repeatable) -> {key: value}; values are converted by `parse_options`."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TTScaleError(f"--opt {pair!r} is not key=value", "write e.g. --opt beam_width=4")
        out[key.strip().replace("-", "_")] = value
    return out
