"""The little statistics allocation needs, in numpy: logistic regression, Platt scaling, rank correlation
(and its bootstrap interval).

Why not scikit-learn/scipy: they are not dependencies of ttscale, and what is needed here is a few lines:
a Newton solve of an L2-regularised logistic regression that accepts fractional targets (a problem's
observed solve rate, weighted by how many samples it rests on), and Spearman/Pearson correlations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

EPS = 1e-6
MIN_CI_PAIRS = 10  # spearman_ci: fewer pairs give no interval


def sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def logit(p: np.ndarray | float) -> np.ndarray | float:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, l2: float = 1e-2,
                 iters: int = 50) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of P(y=1|x) = sigmoid(x @ w + b), by Newton's method.

    `y` may be fractional (a rate in [0, 1]); `weights` scale each row (e.g. samples behind a rate).
    The intercept is not regularised.
    """
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    w_row = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    a = np.hstack([x, np.ones((len(y), 1))])
    theta = np.zeros(a.shape[1])
    theta[-1] = float(logit(np.clip(np.average(y, weights=w_row), 0.01, 0.99)))
    reg = np.full(a.shape[1], l2 * max(w_row.sum(), 1.0) / max(len(y), 1))
    reg[-1] = 0.0
    def loss(t: np.ndarray) -> float:
        z = a @ t
        return float(np.sum(w_row * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(reg * t * t))

    current = loss(theta)
    for _ in range(iters):
        p = sigmoid(a @ theta)
        grad = a.T @ (w_row * (p - y)) + reg * theta
        h = (a * (w_row * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(h, grad)
        scale = 1.0
        while scale > 1e-4:  # backtracking: a separable or degenerate sample must not run off to infinity
            trial = theta - scale * step
            new = loss(trial)
            if new <= current + 1e-12:
                break
            scale /= 2
        else:
            break
        theta, moved, current = trial, float(np.max(np.abs(scale * step))), new
        if moved < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def log_loss(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(ll, weights=weights))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    v = np.asarray(v, dtype=float)
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative), ties half: the Mann-Whitney form (nan without both)."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = _ranks(np.asarray(scores, dtype=float)) + 1  # 1-based average ranks
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 3:
        return None
    return pearson(_ranks(np.asarray(a)), _ranks(np.asarray(b)))


def spearman_ci(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0) -> list[float] | None:
    """95% percentile interval of Spearman, resampling the pairs (one per problem): with 100 problems a
    goal such as -0.8 is met or missed only within this interval's width. None below MIN_CI_PAIRS pairs,
    where resampling says little. It covers which problems were drawn, not the samples behind each pair."""
    if len(a) < MIN_CI_PAIRS:
        return None
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    draws = [spearman(x[i], y[i]) for i in np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))]
    return [float(v) for v in np.percentile([v for v in draws if v is not None], [2.5, 97.5])]


@dataclass
class Standardised:
    """A logistic model over named features, with the scaling it was fitted with (JSON round-trips)."""

    features: list[str]
    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    fit: dict = field(default_factory=dict)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        z = (np.asarray(rows, dtype=float) - np.asarray(self.mean)) / np.asarray(self.std)
        return sigmoid(z @ np.asarray(self.coef) + self.intercept)

    def to_dict(self) -> dict:
        return {"features": self.features, "mean": self.mean, "std": self.std, "coef": self.coef,
                "intercept": self.intercept, "fit": self.fit}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardised":
        return cls(list(d["features"]), [float(v) for v in d["mean"]], [float(v) for v in d["std"]],
                   [float(v) for v in d["coef"]], float(d["intercept"]), dict(d.get("fit", {})))


def fit_standardised(names: list[str], x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                     l2: float = 1e-2) -> Standardised:
    x = np.asarray(x, dtype=float)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    coef, b = fit_logistic((x - mean) / std, y, weights, l2=l2)
    return Standardised(list(names), mean.tolist(), std.tolist(), coef.tolist(), b)
