"""Difficulty estimators: each maps a prompt's cheap features to a difficulty in [0, 1].

Difficulty means the chance that one sample is wrong (1 - the prompt's solve rate), so an estimate can be
checked against what bench observes. Built-ins:

- `probe`: agreement of the k probe samples (shrunk towards 1/2 by k) averaged with their mean verifier
  score when a verifier ran. Costs the probe samples, which stay in the vote as ordinary candidates.
- `pik`: 1 - P(IK), the model's own P("Yes") to "Can you solve this problem correctly?" (see pik.py).
  Costs one judge prompt per problem (verifier tokens).
- `learned`: a logistic regression on the features of what the model did (probe length, agreement,
  answer spread, logprob and verifier scores, P(IK)), fitted from bench records by `ttscale calibrate`;
  not on the prompt's length, which measures its wording (calibrate.py: SURFACE_FEATURES). A feature
  the records lack is left out of the fit: the sequence log-probability is in them only when best-of-N
  scored with `logprob`, so the shipped lab fit (scored with `arith_steps`) has none. Measured on three
  held-out sets and hand-written wording, adding it gains at most 0.016 Spearman in-sample
  (benchmarks/estimator_ceiling.py --logprob).

`probe` and `pik` take Platt scaling from a policy's `calibration` when calibrate fitted one. Register
your own with `@register_estimator("name")` (a class taking the Policy) or entry point group
`ttscale.estimators`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ttscale.allocate.features import NEUTRAL
from ttscale.allocate.policy import Policy
from ttscale.allocate.stats import Standardised, logit, sigmoid
from ttscale.errors import TTScaleError
from ttscale.registry import Registry


class Estimator(Protocol):
    name: str
    needs_pik: bool

    def raw(self, features: dict[str, float]) -> float: ...

    def estimate(self, features: dict[str, float]) -> float: ...


estimators: Registry[Any] = Registry("estimator")
register_estimator = estimators.register


class _Base:
    name = "base"
    needs_pik = False

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.platt = policy.calibration.get(self.name)

    def raw(self, features: dict[str, float]) -> float:
        raise NotImplementedError

    def estimate(self, features: dict[str, float]) -> float:
        d = float(np.clip(self.raw(features), 0.0, 1.0))
        if self.platt:
            d = float(sigmoid(self.platt["a"] * logit(d) + self.platt["b"]))
        return d


@register_estimator("probe")
class ProbeEstimator(_Base):
    name = "probe"

    def raw(self, f: dict[str, float]) -> float:
        k = max(f.get("k", 1.0), 1.0)
        agree = (f["agreement"] * k + 0.5) / (k + 1.0)  # 4/4 agree -> 0.9, 2/4 -> 0.5, no answers -> 0.1
        if f.get("verified", 0.0) > 0:
            agree = (agree + f["verifier"]) / 2.0
        return 1.0 - agree


@register_estimator("pik")
class PIKEstimator(_Base):
    name = "pik"
    needs_pik = True

    def raw(self, f: dict[str, float]) -> float:
        return 1.0 - f.get("pik", NEUTRAL)


@register_estimator("learned")
class LearnedEstimator(_Base):
    name = "learned"

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        if not policy.learned:
            raise TTScaleError("estimator 'learned' needs a fitted model, and this policy has none",
                               "fit one: ttscale calibrate --records runs/NAME --out policy.json, then pass --policy policy.json")
        self.model = Standardised.from_dict(policy.learned)
        self.needs_pik = "pik" in self.model.features
        self.platt = None  # the regression is calibrated by construction

    def raw(self, f: dict[str, float]) -> float:
        row = np.array([[f.get(name, NEUTRAL) for name in self.model.features]])
        return 1.0 - float(self.model.predict(row)[0])


def make_estimator(name: str, policy: Policy) -> Estimator:
    return estimators.get(name)(policy)
