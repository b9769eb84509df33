"""Output a user can trust (issue 19): clean extracted answers, cut-off samples that do not vote, and
ties that say how they were broken. Fast: direct calls and the scripted fake backend."""

from __future__ import annotations

import json

import pytest
from fakes import ExactChecker, FakeBackend
from typer.testing import CliRunner

from ttscale import Engine
from ttscale.strategies.aggregate import aggregate
from ttscale.strategies.base import Candidate
from verifiers import extract_answer

# -- what follows "the answer is" -------------------------------------------------------------------------


@pytest.mark.parametrize("text, answer", [
    ("The answer is indeed 50.", "50"),
    ("The answer is therefore $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("So the answer is simply 12 apples.", "12 apples"),
    ("The answer is 50, indeed.", "50"),
    ("The answer is 12, which is the total number of pens.", "12"),
    ("The answer is (3, 4), which is the point.", "(3, 4)"),  # the pair stays whole
    ("The answer is 1, 2, and 3.", "1, 2, and 3"),  # digits after the comma: part of the value
    ("... so the answer is 17 * 3 ≠ 51", None),
    ("... so the answer is 17 * 3 != 51.", None),
    ("The answer is indeed correct.", None),  # a remark about an answer, after the filler
    ("The answer is then", None),
])
def test_prose_around_the_value_is_not_the_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


# -- cut off at the token limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, answer", [
    ("First 3 + 4 = 7, then 7 * 2 = 1", None),  # unfinished work: its last number is no answer
    ("So the answer is 1", None),  # the statement itself may be cut ("... is 12.")
    ("So the answer is 14. Check: the answer is consis", "14"),  # a finished statement counts
    ("We get \\boxed{14} and then more wor", "14"),  # a closed box counts
    ("We get \\boxed{1", None),  # an open one does not
])
def test_cut_off_text_answers_only_where_it_said_so(text: str, answer: str | None) -> None:
    assert extract_answer(text, finish_reason="length") == answer


def test_a_finished_text_still_falls_back_to_its_last_number() -> None:
    text = "First 3 + 4 = 7, then 7 * 2 = 14"
    assert extract_answer(text) == extract_answer(text, finish_reason="stop") == "14"


def cand(text: str, answer: str | None, cluster: int | None, finish: str = "stop", score: float = 0.0) -> Candidate:
    return Candidate(text=text, token_ids=[], finish_reason=finish, answer=answer, cluster=cluster, scores={"v": score})


def test_engine_gives_no_vote_to_samples_cut_at_max_tokens() -> None:
    """Two of three samples run past max_tokens mid-work (their last number 7); the finished one says 5."""
    long = "Let us add: 3 + 4 = 7, and 7 + 0 = 7, and we keep going for a long while. " * 3

    def script(prompt, j, seed):
        return "The answer is \\boxed{5}" if j == 0 else long

    engine = Engine(backend=FakeBackend(script), checker=ExactChecker())
    r = engine.solve("q", budget=3, max_tokens=60)
    assert [c.finish_reason for c in r.candidates] == ["stop", "length", "length"]
    assert r.answer == "5" and r.votes == {"5": 1.0}
    assert [c.answer for c in r.candidates] == ["5", None, None]


@pytest.mark.parametrize("strategy,options", [("temperature", {}), ("particle", {"verifier": "arith_steps"}),
                                              ("beam", {"verifier": "arith_steps", "beam_width": 1})])
def test_every_strategy_extracts_with_the_finish_reason(strategy, options) -> None:
    """Sample 0 finishes with 5; the others run out of tokens mid-work: no strategy lets them vote 7."""
    long = "Let us add: 3 + 4 = 7, and 7 + 0 = 7, and we keep going for a long while. " * 3

    def script(prompt, j, seed):
        return "The answer is \\boxed{5}" if (seed or 0) % 3 == 0 and j == 0 else long

    engine = Engine(backend=FakeBackend(script), checker=ExactChecker())
    r = engine.solve("q", strategy=strategy, budget=3, max_tokens=60, **options)
    cut = [c for c in r.candidates if c.finish_reason == "length"]
    assert cut and all(c.answer is None for c in cut)
    assert "7" not in r.votes


# -- ties -------------------------------------------------------------------------------------------------


def test_majority_tie_broken_by_mean_score_says_so() -> None:
    cands = [cand("", "9", 0, score=0.2), cand("", "4", 1, score=0.8), cand("", "9", 0, score=0.3),
             cand("", "4", 1, score=0.6)]
    out = aggregate(cands, "majority", score_key="v")
    assert cands[out.chosen].answer == "4"  # not the first seen: the higher mean score
    tie = out.votes.tie
    assert tie["between"] == ["4", "9"] and tie["rule"] == "mean_score" and tie["vote"] == 2
    assert tie["scores"] == {"4": pytest.approx(0.7), "9": pytest.approx(0.25)}
    assert tie["message"] == "tie between 4 and 9 (2 votes each) broken by the higher mean v score (0.7 vs 0.25)"


def test_tie_without_scores_goes_to_the_first_seen_and_says_so() -> None:
    cands = [cand("", "9", 0), cand("", "4", 1), cand("", "7", 2)]
    out = aggregate(cands, "majority")
    assert cands[out.chosen].answer == "9"
    assert out.votes.tie["rule"] == "first_seen" and out.votes.tie["between"] == ["9", "4", "7"]
    assert out.votes.tie["message"] == "tie between 9, 4 and 7 (1 vote each) broken by the answer seen first (9)"


def test_weighted_tie_goes_to_the_first_seen() -> None:
    cands = [cand("", "9", 0, score=0.1), cand("", "9", 0, score=0.2), cand("", "4", 1, score=0.3)]
    out = aggregate(cands, "weighted", score_key="v")  # 0.1 + 0.2 and 0.3: equal to the tally's precision
    assert cands[out.chosen].answer == "9"
    assert out.votes.tie["rule"] == "first_seen"
    assert "equal v scores" in out.votes.tie["message"]


def test_top_tie_broken_by_total_score() -> None:
    cands = [cand("", "9", 0, score=0.9), cand("", "4", 1, score=0.9), cand("", "4", 1, score=0.5)]
    out = aggregate(cands, "top", score_key="v")
    assert cands[out.chosen].answer == "4"
    assert out.votes.tie["rule"] == "total_score" and "higher total v score (1.4 vs 0.9)" in out.votes.tie["message"]


def test_a_clear_winner_reports_no_tie() -> None:
    cands = [cand("", "9", 0), cand("", "9", 0), cand("", "4", 1)]
    out = aggregate(cands, "majority")
    assert out.votes.tie is None


def tie_script(prompt, j, seed):
    return f"Work.\n\nThe answer is \\boxed{{{['12', '14'][j % 2]}}}"


def test_result_details_carry_the_tie() -> None:
    engine = Engine(backend=FakeBackend(tie_script), checker=ExactChecker())
    r = engine.solve("q", budget=2)  # 1-1; the fake gives sample 0 the higher log-probability
    tie = r.details["tie"]
    assert r.answer == "12" and tie["between"] == ["12", "14"] and tie["rule"] == "mean_score"
    assert tie["score"] == "logprob"
    assert json.loads(json.dumps(r.to_dict()))["details"]["tie"] == tie
    assert "tie" not in engine.solve("q", budget=3).details  # 2-1: no tie


def test_cli_votes_line_says_how_a_tie_was_broken(monkeypatch) -> None:
    import ttscale.engine
    from ttscale.cli import app

    real = ttscale.engine.Engine
    monkeypatch.setattr(ttscale.engine, "Engine",
                        lambda **kw: real(backend=FakeBackend(tie_script), checker=ExactChecker()))
    res = CliRunner().invoke(app, ["solve", "q", "--budget", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "12"
    votes = next(line for line in res.stderr.splitlines() if line.startswith("votes:"))
    assert "tie between 12 and 14 (1 vote each) broken by the higher mean logprob score" in votes
