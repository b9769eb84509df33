"""Code that runs inside a verifier worker process.

Started by ``_pool.DeadlinePool`` as a fresh interpreter running ``main([FD, MEMORY_MB])``;
it imports the ``verifiers`` package, so keep that package's ``__init__`` light.
math-verify's own timeouts use ``signal.alarm``, which fails outside the main
thread; we turn them off (``parsing_timeout=None``, ``timeout_seconds=None``) and
let the parent enforce the deadline by killing this process instead.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

# Options that grader cases carry (math-verify's test helper ``compare_strings``).
Options = tuple[tuple[str, Any], ...]  # a dict as sorted items, so it can be a cache key


@functools.lru_cache(maxsize=8)
def _configs(match_types: tuple[str, ...] | None) -> list:
    """Extraction configs: math-verify's defaults, or the ones its test helper builds."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    if match_types is None:
        return [LatexExtractionConfig(), ExprExtractionConfig()]
    configs: list = []
    for kind in match_types:
        if kind == "latex":
            configs.append(LatexExtractionConfig(boxed_match_priority=0))
        elif kind == "expr":
            configs.append(ExprExtractionConfig())
        else:
            raise ValueError(f"unknown match type {kind!r}")
    return configs


@functools.lru_cache(maxsize=4096)
def _parse(text: str, match_types: tuple[str, ...] | None) -> list:
    """math-verify ``parse`` without its signal timeout, cached: clustering re-uses answers."""
    from math_verify import parse

    return parse(text, _configs(match_types), parsing_timeout=None)


def verify_texts(gold: str, pred: str, options: Options = ()) -> bool:
    """``verify(parse(gold), parse(pred))`` on free text, as math-verify's own tests grade.

    ``options`` may hold ``match_types`` (list of "latex"/"expr"), ``precision``
    (float rounding), ``strict`` and ``allow_set_relation_comp``.
    """
    from math_verify import verify

    opts = dict(options)
    match_types = opts.get("match_types")
    key = tuple(match_types) if match_types is not None else None
    return bool(
        verify(
            _parse(gold, key),
            _parse(pred, key),
            float_rounding=opts.get("precision", 6),
            strict=opts.get("strict", True),
            allow_set_relation_comp=opts.get("allow_set_relation_comp", False),
            timeout_seconds=None,
        )
    )


RELATIVE_TOLERANCE = 1e-6


def verify_answers(gold: str, pred: str) -> bool:
    """Compare two bare extracted answers (no ``$``): wrap each as inline math first.

    math-verify rounds numbers to 6 decimal places, an absolute tolerance under which 1e-7 and 2e-7 are
    equal. When both answers parse to plain numbers, "equal" must also hold relatively (1e-6)."""
    if not verify_texts(_as_math(gold), _as_math(pred)):
        return False
    a, b = _number(gold), _number(pred)
    if a is None or b is None or a == b:
        return True
    return bool(abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b)))


def _number(answer: str) -> Any:
    """The answer's exact sympy value when math-verify parses it to a single plain number, else None
    (exact: floats would overflow to inf or underflow to 0 and compare equal)."""
    try:
        import sympy

        parsed = _parse(_as_math(answer), None)
        if parsed and isinstance(parsed[0], sympy.Number) and parsed[0].is_finite:
            return sympy.Rational(parsed[0])
    except (TypeError, ValueError, OverflowError):
        pass
    return None


def _as_math(answer: str) -> str:
    # Inline math is what math-verify's LaTeX extraction reads whole; it does not span
    # lines, hence the spaces. (Wrapping in \boxed{} instead scored the same on MATH-500
    # answers and worse on "12." style answers.)
    return "$" + " ".join(answer.split()) + "$"


def _warm_up() -> None:
    """Import and exercise math-verify once so the first real call is not slow."""
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.ERROR)
    verify_answers("\\frac{1}{2}", "0.5")
    verify_texts("$x^2+1$", "The answer is $1+x^2$.")
    _parse.cache_clear()


def _limit_memory(megabytes: int) -> None:
    """Cap address space so a runaway sympy computation raises MemoryError, not OOM-kills."""
    import resource

    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[0]))
    try:
        if len(argv) > 1:
            _limit_memory(int(argv[1]))
        _warm_up()
    except BaseException as exc:  # tell the parent why, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent went away
            return
        if msg is None:
            return
        fn, args = msg
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:  # RecursionError, MemoryError, sympy errors...
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        conn.send(reply)
