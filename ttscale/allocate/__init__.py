"""Difficulty-aware compute allocation: spend the budget where it changes the answer.

    engine.solve_batch(problems, strategy="auto", budget=8)            # B x len(problems) candidates in all
    engine.solve(problem, strategy="auto", budget=16, policy="policy.json")
    ttscale calibrate --records runs/NAME --out policy.json            # fit estimator + policy from bench

Parts: difficulty estimators (`estimators.py`: probe, pik, learned), the policy (`policy.py`: difficulty
bins -> strategy and budget, with accuracy curves; `DEFAULT_POLICY`), the controller that moves budget
(`controller.py`), the per-prompt coroutine and its batch form (`prompt.py`, the registered strategy
`auto`; its Decide requests are one scheduler handler) and calibration from bench records (`calibrate.py`).
"""

from __future__ import annotations

from ttscale.allocate import pik as _pik  # noqa: F401  (registers the `pik` verifier)
from ttscale.allocate.estimators import estimators, make_estimator, register_estimator
from ttscale.allocate.policy import DEFAULT_POLICY, Policy, load_policy
from ttscale.strategies import auto as _auto  # noqa: F401  (registers the `auto` strategy)

__all__ = ["DEFAULT_POLICY", "Policy", "estimators", "load_policy", "make_estimator", "register_estimator",
           "register"]


def register(app) -> None:
    """Add `ttscale calibrate` to the CLI (called from ttscale/cli.py)."""
    from ttscale.allocate.commands import register as _register

    _register(app)
