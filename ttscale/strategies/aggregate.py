"""Turning scored candidates into one answer: majority, weighted vote, or top score.

Shared by every strategy that ends with a set of complete candidates, so "majority" means the same thing
in best-of-N, particle filtering and bench. A tied vote says how it was broken.
"""

from __future__ import annotations

from typing import Any

from ttscale.strategies.base import Candidate, Outcome
from ttscale.strategies.options import AGGREGATIONS, check_aggregation  # noqa: F401  (re-exported)


class Votes(dict[str, float]):
    """The tally (representative answer -> vote weight), plus `tie`: how a tied vote was decided, None when
    the winner led outright. To everything that reads the tally (JSON, `vote_share`, serve) it is a plain
    dict; the tie rides on it because strategies rebuild `Outcome.details` but hand the tally on, and
    `Result` lifts it into `details["tie"]`."""

    tie: dict[str, Any] | None = None


def aggregate(candidates: list[Candidate], how: str, score_key: str | None = None) -> Outcome:
    """Pick the answer. `score_key` names the entry of `Candidate.scores` that weighted/top use.

    Candidates without an extracted answer never win a vote (a sample cut off at the token limit has
    one only where its text states it: `Task.extract(text, finish_reason)`). Ties go to the
    cluster with the higher total score, then to the answer seen first, so the choice is deterministic;
    `Outcome.votes.tie` records which rule decided.
    """
    check_aggregation(how)

    def score(c: Candidate) -> float:
        s = c.scores.get(score_key) if score_key else None
        return float(s) if s is not None else 0.0

    votes: dict[int, float] = {}
    totals: dict[int, float] = {}
    counts: dict[int, int] = {}
    first_member: dict[int, int] = {}
    for i, c in enumerate(candidates):
        if c.cluster is None or c.answer is None:
            continue
        first_member.setdefault(c.cluster, i)
        totals[c.cluster] = totals.get(c.cluster, 0.0) + score(c)
        counts[c.cluster] = counts.get(c.cluster, 0) + 1
        if how == "majority":
            votes[c.cluster] = votes.get(c.cluster, 0.0) + 1.0
        elif how == "weighted":
            votes[c.cluster] = votes.get(c.cluster, 0.0) + score(c)
        else:  # top: a cluster's vote is its best single score
            votes[c.cluster] = max(votes.get(c.cluster, float("-inf")), score(c))

    answer_of = {k: candidates[first].answer or "" for k, first in first_member.items()}
    tally = Votes({answer_of[k]: round(v, 6) for k, v in votes.items()})
    if not votes:
        # Nothing had an answer: still return the most plausible text, but no answer.
        chosen = max(range(len(candidates)), key=lambda i: score(candidates[i]), default=None)
        return Outcome(candidates=candidates, chosen=chosen, votes=tally)
    # Votes and scores are compared at the tally's precision: sums of the same scores in another order
    # differ in the last bits, and that is a tie, not a win.
    totals = {k: round(t, 6) for k, t in totals.items()}
    ranked = sorted(votes, key=lambda k: (round(votes[k], 6), totals[k], -first_member[k]), reverse=True)
    winner = ranked[0]
    tied = [k for k in ranked if round(votes[k], 6) == round(votes[winner], 6)]
    if len(tied) > 1:
        tally.tie = _describe_tie(tied, how, score_key, round(votes[winner], 6), totals, counts, answer_of)
    members = [i for i, c in enumerate(candidates) if c.cluster == winner and c.answer is not None]
    chosen = max(members, key=lambda i: (score(candidates[i]), -i))
    return Outcome(candidates=candidates, chosen=chosen, votes=tally)


def _describe_tie(tied: list[int], how: str, score_key: str | None, vote: float, totals: dict[int, float],
                  counts: dict[int, int], answer_of: dict[int, str]) -> dict[str, Any]:
    """Which answers tied and the rule that chose the first of `tied` (the winner): the higher score
    (mean for majority, where counts are equal; total for top), else the answer seen first."""
    winner, rest = tied[0], tied[1:]
    names = [answer_of[k] for k in tied]
    by_score = score_key is not None and all(totals[winner] > totals[k] for k in rest)
    mean = how == "majority"  # equal counts: the higher total is the higher mean
    shown = {answer_of[k]: round(totals[k] / counts[k] if mean else totals[k], 6) for k in tied}
    each = (f"{vote:g} vote{'' if vote == 1 else 's'} each" if how == "majority"
            else f"{'weighted vote' if how == 'weighted' else 'top score'} {vote:.3g} each")
    head = f"tie between {_listed(names)} ({each}) broken by"
    if by_score:
        rule = "mean_score" if mean else "total_score"
        runner_up = max(rest, key=lambda k: totals[k])
        message = (f"{head} the higher {'mean' if mean else 'total'} {score_key} score "
                   f"({shown[answer_of[winner]]:.3g} vs {shown[answer_of[runner_up]]:.3g})")
    else:
        rule = "first_seen"
        same = f"equal {score_key} scores, " if score_key else ""
        message = f"{head} {same}the answer seen first ({names[0]})"
    return {"between": names, "vote": vote, "rule": rule, "score": score_key,
            "scores": shown if score_key else None, "message": message}


def _listed(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def vote_share(outcome: Outcome) -> float:
    """Fraction of the vote the chosen answer received: a simple confidence figure."""
    if outcome.chosen is None or not outcome.votes:
        return 0.0
    total = sum(abs(v) for v in outcome.votes.values())
    answer = outcome.candidates[outcome.chosen].answer or ""
    return abs(outcome.votes.get(answer, 0.0)) / total if total else 0.0
