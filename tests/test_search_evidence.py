"""Search chooses by evidence (issue 20): particle weights at the final step, answer lines checked, and
`auto`'s stop rule and final vote agreeing on the leader. Scripted backend, exact arith_steps verifier."""

from __future__ import annotations

import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import Engine
from ttscale.allocate.features import vote_counts
from ttscale.allocate.prompt import leader_key
from ttscale.strategies.aggregate import aggregate
from ttscale.strategies.base import Candidate
from ttscale.strategies.steps import aggregate_steps
from verifiers.arith_steps import ArithStepsVerifier, score_steps


def _generated(prompt_ids) -> str:
    return "".join(chr(i) for i in prompt_ids).split("<assistant>", 1)[1]


def test_answer_line_is_checked_against_the_claims() -> None:
    assert score_steps(["She has 4 + 3 = 7 apples.", "The answer is 5."]) == [1.0, 0.0]
    assert score_steps(["She has 4 + 3 = 7 apples.", "The answer is 7."]) == [1.0, 1.0]
    assert score_steps(["4 * 3 = 12", "So the total is \\boxed{12}"]) == [1.0, 1.0]
    assert score_steps(["2 + 2 = 5", "The answer is 5."]) == [0.0, 1.0]  # consistent with a false claim
    assert score_steps(["The answer is 5."]) == [None]  # nothing to check it against
    assert score_steps(["Let us think.", "4 + 3 = 7"]) == [None, 1.0]  # no claim here: None, not 0.5
    # A number given as a neutral score still works for callers that want one.
    assert ArithStepsVerifier(neutral_score=0.5).score_steps(["Let us think."]) == [0.5]


@pytest.mark.parametrize("scores, how, expected", [
    ([0.0, 0.0, None], "last", 0.0),  # the claim-free closing step does not erase the evidence
    ([1.0, None], "last", 1.0),
    ([None, None], "last", 0.5),
    ([1.0, None, 0.0], "min", 0.0),
    ([0.5, None, 0.5], "prod", 0.25),
    ([1.0, None, 0.0], "mean", 0.5),
])
def test_step_aggregation_skips_steps_without_evidence(scores, how, expected) -> None:
    assert aggregate_steps(scores, how) == pytest.approx(expected)


def _engine(script) -> Engine:
    return Engine(backend=FakeBackend(script), checker=ExactChecker())


def test_finished_particles_are_weighted_by_their_whole_trajectory() -> None:
    """Three particles end with the same claim-free style of answer line; two of them made a false claim
    on the way. Without resampling the final pick is decided by the weights alone: the true lineage wins
    although the false answer has two copies to one."""
    def script(prompt_ids, j, seed):
        text = _generated(prompt_ids)
        lineage = (seed or 0) % 3 if not text else (0 if "= 4" in text else 1)
        if not text:
            return "Two and two: 2 + 2 = 4.\n\nx" if lineage == 0 else "Two and two: 2 + 2 = 5.\n\nx"
        return "The answer is 4." if lineage == 0 else "The answer is 5."
    engine = _engine(script)
    seen = set()
    for seed in range(12):
        r = engine.solve("p", strategy="particle", budget=3, verifier="arith_steps", ess_threshold=0.0, seed=seed)
        answers = sorted(c.answer for c in r.candidates)
        seen.add(tuple(answers))
        if answers == ["4", "5", "5"]:
            assert r.answer == "4", r.details
            weights = {c.answer: c.scores["weight"] for c in r.candidates}
            assert weights["4"] > 0.99
            return
    pytest.fail(f"no seed gave one true and two false lineages: {seen}")


def test_a_finished_false_particle_does_not_take_the_live_slots() -> None:
    """Particle 0 finishes at once after a false claim; the others keep making true claims. Resampling
    must not hand the finished false particle the live particles' slots."""
    def script(prompt_ids, j, seed):
        text = _generated(prompt_ids)
        if not text:
            return "3 + 3 = 7\n\nThe answer is 7." if (seed or 0) % 4 == 0 else "3 + 3 = 6\n\nx"
        if text.count("\n\n") < 2:
            return "6 + 1 = 7\n\nx"
        return "The answer is 7."
    engine = _engine(script)
    for seed in range(8):
        r = engine.solve("p", strategy="particle", budget=4, verifier="arith_steps", seed=seed)
        false_finished = [c for c in r.candidates if "3 + 3 = 7" in c.text]
        assert len(false_finished) <= 1
        assert any("6 + 1 = 7" in c.text for c in r.candidates)


def _cand(answer: str, cluster: int, verifier: float, logprob: float) -> Candidate:
    c = Candidate(text=f"The answer is {answer}.", token_ids=[], finish_reason="stop")
    c.answer, c.cluster = answer, cluster
    c.scores = {"arith_steps": verifier, "logprob": logprob}
    return c


def test_one_leader_rule_for_the_stop_rule_and_the_final_vote() -> None:
    """2-2 between 13 (seen first, higher log-probability, verifier rejects) and 12 (verifier accepts)."""
    cands = [_cand("13", 0, 0.0, -0.1), _cand("12", 1, 1.0, -0.5), _cand("13", 0, 0.0, -0.1), _cand("12", 1, 1.0, -0.5)]
    key = leader_key("arith_steps")
    assert vote_counts(cands, key)[0] == (1, 2)
    assert _answer(aggregate(cands, "majority", score_key=key)) == "12"
    # Without a verifier the same rule falls back to log-probability, for both.
    assert vote_counts(cands, leader_key(None))[0] == (0, 2)
    assert _answer(aggregate(cands, "majority", score_key=leader_key(None))) == "13"


def _answer(outcome) -> str | None:
    return None if outcome.chosen is None else outcome.candidates[outcome.chosen].answer


def test_auto_returns_the_leader_it_stopped_on() -> None:
    """Probe samples split 2-2 between `6 + 6 = 12` (accepted) and `6 + 6 = 13` (rejected), the wrong one
    sampled first and more likely: `auto` stops on the accepted leader and answers 12."""
    def script(prompt_ids, j, seed):
        return "6 + 6 = 13\n\nThe answer is 13." if j % 2 == 0 else "6 + 6 = 12\n\nThe answer is 12."
    r = _engine(script).solve("q", strategy="auto", budget=4, verifier="arith_steps", seed=0)
    assert r.answer == "12", r.details
    assert "verifier-accepted" in r.details.get("reason", "") or "verifier-accepted" in str(r.details)


def test_auto_does_not_call_a_split_probe_hopeless() -> None:
    """All four probe samples differ (unfamiliar wording): that alone is no evidence that more samples do
    not help, so the prompt gets more than its probes."""
    def script(prompt_ids, j, seed):
        k = ((seed or 0) + j) % 7
        return f"{k} + 1 = {k + 1}\n\nThe answer is {k + 1}."
    r = _engine(script).solve("q", strategy="auto", budget=16, verifier="arith_steps", seed=0)
    assert len(r.candidates) > 4, r.details
