"""Cheap per-prompt features that difficulty estimators read, computed the same way from live candidates
(during a solve) and from bench records (when `ttscale calibrate` fits a model), so a fitted estimator
sees at run time exactly what it was fitted on.

All features are in [0, 1] except `log_chars` and `log_tokens` (the probes' mean length: a problem that
takes more steps takes more tokens); a missing signal takes its neutral value (0.5).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Sequence

FEATURES = ("log_chars", "log_tokens", "agreement", "distinct", "no_answer", "logprob", "verifier", "pik")
NEUTRAL = 0.5


def _get(c: Any, name: str) -> Any:
    """A field of a Candidate or of a candidate dict in a bench record."""
    return c.get(name) if isinstance(c, dict) else getattr(c, name, None)


def vote_counts(candidates: Iterable[Any], key: str | None = None) -> list[tuple[Any, int]]:
    """(cluster, votes) for every answered cluster, in the order of the one leader rule that `auto` uses
    to stop, to give budget back and to answer: most votes, then the higher total `scores[key]` (the
    verifier's, or log-probability), then the cluster seen first. `aggregate(..., "majority",
    score_key=key)` breaks ties the same way, so the answer returned is the leader the stop rule saw."""
    counts: Counter = Counter()
    totals: dict[Any, float] = {}
    first: dict[Any, int] = {}
    for i, c in enumerate(candidates):
        cl = _get(c, "cluster")
        if _get(c, "answer") is not None and cl is not None:
            counts[cl] += 1
            first.setdefault(cl, i)
            s = (_get(c, "scores") or {}).get(key) if key else None
            totals[cl] = totals.get(cl, 0.0) + (float(s) if s is not None else 0.0)
    return sorted(counts.items(), key=lambda kv: (-kv[1], -totals[kv[0]], first[kv[0]]))


def generated_tokens(c: Any) -> int | None:
    """A candidate's generated tokens: `tokens` in a bench record, its token ids when live (None when
    the backend reported none: 0 is not a length any real completion has)."""
    n = _get(c, "tokens")
    if n is None:
        ids = _get(c, "token_ids")
        n = None if ids is None else len(ids)
    return int(n) if n else None


def leader_runner_up(candidates: Sequence[Any]) -> tuple[int, int]:
    counts = vote_counts(candidates)
    lead = counts[0][1] if counts else 0
    second = counts[1][1] if len(counts) > 1 else 0
    return lead, second


def mean_score(candidates: Iterable[Any], key: str | None, cluster: Any = None) -> float | None:
    """Mean of `scores[key]` over the candidates (of one cluster if given); None when nothing has it."""
    if not key:
        return None
    vals = []
    for c in candidates:
        if cluster is not None and _get(c, "cluster") != cluster:
            continue
        s = (_get(c, "scores") or {}).get(key)
        if s is not None:
            vals.append(float(s))
    return sum(vals) / len(vals) if vals else None


def probe_features(problem: str | int, candidates: Sequence[Any], verifier: str | None = None,
                   pik: float | None = None) -> dict[str, float]:
    """Features of one prompt from its probe samples. `problem`: its text (or its length in characters)."""
    k = max(len(candidates), 1)
    counts = vote_counts(candidates)
    lead = counts[0][1] if counts else 0
    answered = sum(1 for c in candidates if _get(c, "answer") is not None)
    chars = problem if isinstance(problem, int) else len(problem)
    lp = mean_score(candidates, "logprob")
    ver = mean_score(candidates, verifier)
    lengths = [n for n in (generated_tokens(c) for c in candidates) if n is not None]
    return {
        "log_chars": math.log1p(chars),
        "log_tokens": math.log1p(sum(lengths) / len(lengths)) if lengths else NEUTRAL,
        "agreement": lead / k,
        "distinct": len(counts) / k,
        "no_answer": 1.0 - answered / k,
        "logprob": NEUTRAL if lp is None else lp,
        "verifier": NEUTRAL if ver is None else ver,
        "pik": NEUTRAL if pik is None else float(pik),
        "verified": 0.0 if ver is None else 1.0,
        "k": float(len(candidates)),
    }
