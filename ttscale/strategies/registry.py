"""Strategies by name, each with its options class (apart from base.py, which holds what a strategy
works with, so that options can look classes up without importing strategies)."""

from __future__ import annotations

from typing import Any, Callable

from ttscale.registry import Registry

StrategyFn = Callable[..., Any]  # Task -> StrategyGen (see strategies/base.py)

strategies: Registry[StrategyFn] = Registry("strategy")


def register_strategy(name: str, options: type | None = None, *, needs_verifier: bool = False,
                      subsample_options: frozenset[str] | None = None) -> Callable[[StrategyFn], StrategyFn]:
    """Register a strategy under `name` with what it declares:
    - `options`: its options dataclass (strategies/options.py); the API, the CLI's --opt, bench recipes
      and `ttscale serve` all check options against it;
    - `needs_verifier`: it cannot run without a process verifier (allocation only picks it with one);
    - `subsample_options`: its samples are independent, so bench may cut a budget-k run out of a larger
      one, as long as only these options are set.
    """
    def add(fn: StrategyFn) -> StrategyFn:
        fn.options = options  # type: ignore[attr-defined]
        fn.needs_verifier = needs_verifier  # type: ignore[attr-defined]
        fn.subsample_options = subsample_options  # type: ignore[attr-defined]
        return strategies.register(name)(fn)
    return add


def options_class(strategy: str) -> type | None:
    """The options class strategy `strategy` registered (None: it takes a free-form dict)."""
    return getattr(strategies.get(strategy), "options", None)
