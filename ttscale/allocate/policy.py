"""The allocation policy: difficulty bins, and per bin which strategy and how much budget pays off.

A policy is JSON (`ttscale calibrate` writes one from bench records; `DEFAULT_POLICY` ships for when none
was fitted):

    {"bins": [0.2, 0.45, 0.65, 1.0],                       # upper edges of the difficulty bins
     "table": {"0": {"strategy": "best_of_n", "budget": 4, "settings": {},
                     "curves": {"best_of_n": {"1": 0.93, "4": 0.99, ...}}}, ...},
     "strategies": {"best_of_n": {"strategy": "best_of_n", "settings": {}}, ...},
     "estimator": "probe", "probe_k": 4, "calibration": {...}, "learned": {...}, ...thresholds}

`curves` are a bin's accuracy at each budget, per strategy label: the allocator reads the gain of more
candidates off them (the envelope over strategies it can run), and picks the label that is best at the
budget a prompt ends up with. A hand-written policy may leave curves out: then `budget` is the bin's
target and gains fall to zero beyond it.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ttscale.errors import TTScaleError

FORMAT = 1
SEARCH_NEEDS_VERIFIER = "best_of_n"  # every other strategy is a step-level search that needs a verifier


@dataclass
class BinEntry:
    strategy: str  # label of the preferred strategy (a key of Policy.strategies)
    budget: int  # the bin's compute-optimal budget (candidates per prompt)
    settings: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, dict[int, float]] = field(default_factory=dict)  # label -> budget -> accuracy
    tokens: dict[str, dict[int, float]] = field(default_factory=dict)  # label -> budget -> generated tokens
    problems: int = 0  # how many problems the bin was fitted on (0: hand-written)


@dataclass
class Policy:
    bins: list[float]
    table: dict[str, BinEntry]
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> {strategy, settings}
    estimator: str = "probe"
    probe_k: int = 4
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)  # estimator -> Platt {a, b}
    learned: dict[str, Any] | None = None  # ttscale.allocate.stats.Standardised.to_dict()
    # Stopping and allocation thresholds (see ttscale.allocate.controller).
    settle_verifier: float = 0.5  # unanimous samples settle a prompt when the leader's mean verifier score >= this
    accept_score: float = 0.95  # a leader holding half the votes whose verifier mean >= this is accepted
    consensus_share: float = 0.8  # stop once the leader has this share of the votes ...
    consensus_votes: int = 6  # ... and at least this many votes
    min_gain: float = 0.001  # expected accuracy gained per extra candidate below which no curve claims budget
    spend_leftover: bool = True  # what no curve claims goes round the open prompts (false: give it back)
    cap_factor: float = 4.0  # a prompt may receive at most cap_factor x the average budget ...
    max_per_prompt: int = 64  # ... and never more than this
    min_particles: int = 4  # a search gets at least this many particles, else more samples instead
    hopeless_scale: float = 0.25  # gains of hopeless prompts (no two samples agree, verifier low) count this much
    hopeless_verifier: float = 0.2  # mean verifier score below which a prompt's samples look hopeless
    source: str = "default"
    fit: dict[str, Any] = field(default_factory=dict)  # what calibrate measured (for the record)

    # -- lookup -----------------------------------------------------------------------------------------
    def bin_of(self, difficulty: float) -> int:
        return min(bisect.bisect_left(self.bins, float(difficulty)), len(self.bins) - 1)

    def entry(self, b: int) -> BinEntry:
        return self.table[str(b)]

    def strategy_of(self, label: str) -> tuple[str, dict[str, Any]]:
        spec = self.strategies.get(label, {"strategy": label})
        return str(spec.get("strategy", label)), dict(spec.get("settings", {}))

    def usable(self, label: str, verifier: str | None) -> bool:
        """A strategy auto can run (AutoOptions.passes_to), and has what it declared it needs."""
        from ttscale.strategies.registry import options_class, strategies

        name, _ = self.strategy_of(label)
        if name not in getattr(options_class("auto"), "passes_to", ()):
            return False
        return verifier is not None or not getattr(strategies.get(name), "needs_verifier", False)

    def curve(self, b: int, label: str) -> dict[int, float]:
        e = self.entry(b)
        if label in e.curves:
            return e.curves[label]
        if label == e.strategy:  # hand-written: rise to the bin's budget, flat after
            return {1: 0.0, max(e.budget, 2): 1.0}
        return {}

    def labels(self, b: int, verifier: str | None) -> list[str]:
        e = self.entry(b)
        names = list(dict.fromkeys([e.strategy, *e.curves]))
        return [n for n in names if self.usable(n, verifier) and self.curve(b, n)] or ["best_of_n"]

    def accuracy(self, b: int, budget: float, verifier: str | None) -> float:
        """The bin's expected accuracy at `budget` candidates: the best usable strategy, non-decreasing."""
        best = 0.0
        for label in self.labels(b, verifier):
            curve = self.curve(b, label) or default_curve_for(self, b)
            best = max(best, monotone_at(curve, budget))
        return best

    def choose(self, b: int, total: int, verifier: str | None) -> tuple[str, str, dict[str, Any]]:
        """(label, strategy, settings) to run for a prompt of bin `b` that will hold `total` candidates.

        The usable label with the highest accuracy at `total` wins; ties go to the bin's preferred label."""
        e = self.entry(b)
        labels = self.labels(b, verifier)
        scored = [(round(monotone_at(self.curve(b, lab) or default_curve_for(self, b), total), 4),
                   lab == e.strategy, -i, lab) for i, lab in enumerate(labels)]
        label = max(scored)[3]
        name, settings = self.strategy_of(label)
        if label == e.strategy:
            settings = {**settings, **e.settings}
        return label, name, settings

    def vote(self, b: int, total: int, verifier: str | None) -> tuple[str, str | None]:
        """(aggregate, scorer) for a prompt of bin `b` answered from `total` samples: those of the bin's
        best-of-N line that is most accurate at `total` (a fit may hold several that vote the same
        samples differently, e.g. weighted by sequence probability), among the lines whose scores the
        samples carry (log-probability, or `verifier`'s); ties, and a policy without such lines, vote by
        majority."""
        scored = []
        for i, label in enumerate(self.labels(b, verifier)):
            name, settings = self.strategy_of(label)
            vote = str(settings.get("aggregate", "majority"))
            scorer = str(settings.get("scorer", "logprob"))  # best_of_n's own default scorer
            if name != SEARCH_NEEDS_VERIFIER or not self.curve(b, label) or (
                    vote != "majority" and scorer not in ("logprob", verifier)):
                continue
            scored.append((round(monotone_at(self.curve(b, label), total), 4), vote == "majority", -i, vote, scorer))
        best = max(scored, default=None)
        return ("majority", None) if best is None or best[3] == "majority" else (best[3], best[4])

    # -- JSON -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        for e in d["table"].values():
            e["curves"] = {k: {str(b): round(v, 4) for b, v in c.items()} for k, c in e["curves"].items()}
            e["tokens"] = {k: {str(b): round(v, 1) for b, v in c.items()} for k, c in e["tokens"].items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "policy") -> "Policy":
        try:
            bins = [float(x) for x in d["bins"]]
            table = {}
            for key, raw in dict(d["table"]).items():
                table[str(key)] = BinEntry(
                    strategy=str(raw["strategy"]), budget=int(raw["budget"]), settings=dict(raw.get("settings", {})),
                    curves={lab: {int(b): float(v) for b, v in c.items()} for lab, c in dict(raw.get("curves", {})).items()},
                    tokens={lab: {int(b): float(v) for b, v in c.items()} for lab, c in dict(raw.get("tokens", {})).items()},
                    problems=int(raw.get("problems", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise TTScaleError(f"{where}: not a valid policy ({type(e).__name__}: {e})",
                               "write {bins: [upper edges], table: {bin: {strategy, budget, settings}}}, "
                               "or make one with `ttscale calibrate`") from None
        if not bins or sorted(bins) != bins or bins[-1] < 1.0:
            raise TTScaleError(f"{where}: bins must be increasing upper edges ending at 1.0, got {bins}",
                               "e.g. bins: [0.2, 0.45, 0.65, 1.0]")
        missing = [str(i) for i in range(len(bins)) if str(i) not in table]
        if missing:
            raise TTScaleError(f"{where}: table has no entry for bin(s) {', '.join(missing)}",
                               f"add one entry per bin, keys 0..{len(bins) - 1}")
        known = {f.name for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
        extra = {k: v for k, v in d.items() if k in known and k not in ("bins", "table")}
        return cls(bins=bins, table=table, **extra)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def interpolate(curve: Mapping[int, float], budget: float) -> float:
    """Accuracy at `budget`, linear in log2(budget) between fitted points, flat outside them."""
    pts = sorted((int(b), float(v)) for b, v in curve.items())
    if not pts:
        return 0.0
    if budget <= pts[0][0]:
        return pts[0][1]
    for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
        if budget <= b1:
            t = (math.log2(budget) - math.log2(b0)) / (math.log2(b1) - math.log2(b0))
            return v0 + t * (v1 - v0)
    return pts[-1][1]


def monotone_at(curve: Mapping[int, float], budget: float) -> float:
    """`interpolate` on the running maximum of the curve: more candidates never lower the value."""
    pts = sorted((int(b), float(v)) for b, v in curve.items())
    run, best = {}, float("-inf")
    for b, v in pts:
        best = max(best, v)
        run[b] = best
    return interpolate(run, budget)


# -- the default policy ---------------------------------------------------------------------------------

BUDGET_GRID = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_BINS = [0.2, 0.45, 0.65, 1.0]
WRONG_MODE_SHARE = 0.6  # in the vote model: the commonest wrong answer's share of wrong samples (slips repeat)


@lru_cache(maxsize=256)
def vote_accuracy(b: int, p: float, wrong_mode: float = WRONG_MODE_SHARE) -> float:
    """P(plurality vote of b samples is right) when a sample is right w.p. p, the commonest wrong answer
    has w.p. (1-p)*wrong_mode and other wrong answers never repeat. Ties count half."""
    q = (1 - p) * wrong_mode
    r = max(1 - p - q, 0.0)
    total = 0.0
    for x in range(b + 1):
        for y in range(b - x + 1):
            s = b - x - y
            logp = (math.lgamma(b + 1) - math.lgamma(x + 1) - math.lgamma(y + 1) - math.lgamma(s + 1)
                    + (x * math.log(p) if x else 0.0) + (y * math.log(q) if y else 0.0)
                    + (s * math.log(r) if s else 0.0)) if (p > 0 or x == 0) and (q > 0 or y == 0) and (r > 0 or s == 0) else None
            if logp is None:
                continue
            if x > y and (x >= 2 or s == 0):
                win = 1.0
            elif x == y and x >= 1:
                win = 0.5
            elif x == 1 and y == 0:  # one right answer among s one-off wrong ones
                win = 1.0 / (1 + s)
            else:
                win = 0.0
            total += win * math.exp(logp)
    return total


def model_curve(p: float) -> dict[int, float]:
    return {b: round(vote_accuracy(b, round(p, 4)), 4) for b in BUDGET_GRID}


def default_curve_for(policy: Policy, b: int) -> dict[int, float]:
    lo = policy.bins[b - 1] if b else 0.0
    return model_curve(1.0 - (lo + policy.bins[b]) / 2)


def _default_policy() -> Policy:
    bins = list(DEFAULT_BINS)
    prefs = [("best_of_n", 4), ("best_of_n", 16), ("particle", 16), ("best_of_n", 4)]
    table = {}
    for i, (label, budget) in enumerate(prefs):
        lo = bins[i - 1] if i else 0.0
        curve = model_curve(1.0 - (lo + bins[i]) / 2)
        curves = {"best_of_n": curve}
        if label == "particle":
            curves["particle"] = dict(curve)  # no measurements: equal, and the preference breaks the tie
        table[str(i)] = BinEntry(strategy=label, budget=budget, curves=curves)
    return Policy(bins=bins, table=table,
                  strategies={"best_of_n": {"strategy": "best_of_n", "settings": {}},
                              "particle": {"strategy": "particle", "settings": {}}})


DEFAULT_POLICY = _default_policy()


def load_policy(policy: Any = None) -> Policy:
    """A Policy from a Policy, a dict, a JSON file path, or None / "default" (the built-in policy)."""
    if policy is None or policy == "default":
        return DEFAULT_POLICY
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return Policy.from_dict(policy)
    if isinstance(policy, (str, os.PathLike)):
        path = Path(policy).expanduser()
        if not path.is_file():
            raise TTScaleError(f"policy file not found: {policy}",
                               "pass a file written by `ttscale calibrate --out FILE`, or leave --policy out")
        stat = path.stat()
        return _load_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    raise TTScaleError(f"policy must be a path, a dict or a Policy, got {type(policy).__name__}", "pass a JSON path")


@lru_cache(maxsize=16)
def _load_file(path: str, _mtime: int, _size: int) -> Policy:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:
        raise TTScaleError(f"{path} is not JSON ({e})", "write it with `ttscale calibrate`") from None
    if not isinstance(data, dict):
        raise TTScaleError(f"{path} is not a policy (a JSON object)", "write it with `ttscale calibrate`")
    return Policy.from_dict(data, where=path)


def with_overrides(policy: Policy, **changes: Any) -> Policy:
    return replace(policy, **{k: v for k, v in changes.items() if v is not None})
