"""Turning scored candidates into one answer: majority, weighted vote, or top score.

Shared by every strategy that ends with a set of complete candidates, so "majority" means the same thing
in best-of-N, particle filtering and bench.
"""

from __future__ import annotations

from ttscale.strategies.base import Candidate, Outcome
from ttscale.strategies.options import AGGREGATIONS, check_aggregation  # noqa: F401  (re-exported)


def aggregate(candidates: list[Candidate], how: str, score_key: str | None = None) -> Outcome:
    """Pick the answer. `score_key` names the entry of `Candidate.scores` that weighted/top use.

    Candidates without an extracted answer never win a vote. Ties go to the cluster with the higher
    total score, then to the answer seen first, so the choice is deterministic.
    """
    check_aggregation(how)

    def score(c: Candidate) -> float:
        s = c.scores.get(score_key) if score_key else None
        return float(s) if s is not None else 0.0

    votes: dict[int, float] = {}
    totals: dict[int, float] = {}
    first_member: dict[int, int] = {}
    for i, c in enumerate(candidates):
        if c.cluster is None or c.answer is None:
            continue
        first_member.setdefault(c.cluster, i)
        totals[c.cluster] = totals.get(c.cluster, 0.0) + score(c)
        if how == "majority":
            votes[c.cluster] = votes.get(c.cluster, 0.0) + 1.0
        elif how == "weighted":
            votes[c.cluster] = votes.get(c.cluster, 0.0) + score(c)
        else:  # top: a cluster's vote is its best single score
            votes[c.cluster] = max(votes.get(c.cluster, float("-inf")), score(c))

    tally = {candidates[first_member[k]].answer or "": round(v, 6) for k, v in votes.items()}
    if not votes:
        # Nothing had an answer: still return the most plausible text, but no answer.
        chosen = max(range(len(candidates)), key=lambda i: score(candidates[i]), default=None)
        return Outcome(candidates=candidates, chosen=chosen, votes={})
    winner = max(votes, key=lambda k: (votes[k], totals[k], -first_member[k]))
    members = [i for i, c in enumerate(candidates) if c.cluster == winner and c.answer is not None]
    chosen = max(members, key=lambda i: (score(candidates[i]), -i))
    return Outcome(candidates=candidates, chosen=chosen, votes=tally)


def vote_share(outcome: Outcome) -> float:
    """Fraction of the vote the chosen answer received: a simple confidence figure."""
    if outcome.chosen is None or not outcome.votes:
        return 0.0
    total = sum(abs(v) for v in outcome.votes.values())
    answer = outcome.candidates[outcome.chosen].answer or ""
    return abs(outcome.votes.get(answer, 0.0)) / total if total else 0.0
