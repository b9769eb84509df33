"""Scheduler batching and best-of-N aggregation, on the scripted fake backend."""

from __future__ import annotations

import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError
from ttscale.strategies.aggregate import aggregate
from ttscale.strategies.base import Candidate


def answers_script(answers: list[str]):
    """Sample j answers answers[j % len]: a fixed, known vote."""
    return lambda prompt, j, seed: f"Some work.\nThe answer is \\boxed{{{answers[j % len(answers)]}}}"


def engine_for(script, **kw) -> tuple[Engine, FakeBackend]:
    backend = FakeBackend(script, **kw)
    return Engine(backend=backend, checker=ExactChecker()), backend


def test_batch_of_16_prompts_makes_one_backend_call():
    engine, backend = engine_for(answers_script(["7", "7", "3"]))
    results = engine.solve_batch([f"problem {i}" for i in range(16)], strategy="best_of_n", budget=8)
    assert len(backend.calls) == 1
    assert len(backend.calls[0]) == 16 and all(r.n == 8 for r in backend.calls[0])
    assert engine.last_batch_usage.backend_calls == 1
    assert all(r.answer == "7" for r in results)
    assert all(r.ledger.backend_calls == 1 and r.ledger.candidates == 8 for r in results)


def test_majority_vote_and_tally():
    engine, _ = engine_for(answers_script(["3", "5", "5", "3", "5"]))
    r = engine.solve("q", budget=5)
    assert r.answer == "5"
    assert r.votes == {"3": 2.0, "5": 3.0}
    assert r.confidence == pytest.approx(0.6)


def test_ledger_counts_tokens():
    engine, backend = engine_for(lambda p, j, s: "x" * (10 + j) + " \\boxed{1}")
    r = engine.solve("q", budget=3)
    expected = sum(len("x" * (10 + j) + " \\boxed{1}") for j in range(3))
    assert r.ledger.generated_tokens == expected
    assert r.ledger.prompt_tokens == len(backend.calls[0][0].prompt_ids)


def test_same_seed_same_samples_different_seed_different():
    seen = []
    engine, backend = engine_for(lambda p, j, s: (seen.append(s), f"\\boxed{{{s % 3}}}")[1])
    a = engine.solve("q", budget=4, seed=1)
    b = engine.solve("q", budget=4, seed=1)
    c = engine.solve("q", budget=4, seed=2)
    assert [x.text for x in a.candidates] == [x.text for x in b.candidates]
    assert backend.calls[0][0].sampling.seed == backend.calls[1][0].sampling.seed
    assert backend.calls[0][0].sampling.seed != backend.calls[2][0].sampling.seed


def cand(answer, cluster, score):
    return Candidate(text="", token_ids=[], finish_reason="stop", answer=answer, cluster=cluster, scores={"v": score})


def test_weighted_vote_can_overrule_majority():
    cands = [cand("1", 0, 0.1), cand("1", 0, 0.1), cand("2", 1, 0.9)]
    assert cands[aggregate(cands, "majority", "v").chosen].answer == "1"
    assert cands[aggregate(cands, "weighted", "v").chosen].answer == "2"


def test_top_picks_best_single_score():
    cands = [cand("1", 0, 0.5), cand("1", 0, 0.5), cand("1", 0, 0.5), cand("2", 1, 0.6)]
    assert cands[aggregate(cands, "top", "v").chosen].answer == "2"
    assert cands[aggregate(cands, "weighted", "v").chosen].answer == "1"


def test_no_answers_means_no_answer():
    cands = [cand(None, None, 0.3), cand(None, None, 0.9)]
    out = aggregate(cands, "majority", "v")
    assert out.votes == {} and out.chosen == 1


def test_tie_goes_to_first_seen_answer():
    cands = [cand("9", 0, 0.0), cand("4", 1, 0.0)]
    assert cands[aggregate(cands, "majority", "v").chosen].answer == "9"


@pytest.mark.parametrize("how", ["weighted", "top"])
def test_logprob_scorer_requests_logprobs(how):
    engine, backend = engine_for(answers_script(["1", "2"]))
    r = engine.solve("q", budget=2, aggregate=how)
    assert backend.calls[0][0].sampling.logprobs
    # The fake gives sample 0 higher logprobs, so its answer wins.
    assert r.answer == "1"
    assert all(c.scores["logprob"] is not None for c in r.candidates)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(strategy="nope"), "unknown strategy"),
        (dict(budget=0), "budget"),
        (dict(budget=2.5), "budget"),
        (dict(aggregate="median"), "unknown aggregation"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, needle):
    engine, _ = engine_for(answers_script(["1"]))
    with pytest.raises(TTScaleError, match=needle):
        engine.solve("q", **kwargs)


def test_empty_and_too_long_prompts():
    engine, _ = engine_for(answers_script(["1"]), context_length=50)
    with pytest.raises(TTScaleError, match="empty"):
        engine.solve("   ")
    with pytest.raises(TTScaleError, match="context"):
        engine.solve("x" * 100)


@pytest.mark.parametrize("kw, needle", [
    ({"temperature": -1}, "temperature must be between 0 and 10"),
    ({"top_p": 5}, "top_p must be in"),
    ({"max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"stop": [""]}, "stop must be a list of non-empty strings"),
    ({"budget": 10**9}, "over the limit"),
])
def test_bad_sampling_settings_are_refused_before_any_work(kw, needle):

    backend = FakeBackend(lambda p, j, s: "The answer is 2.")
    engine = Engine(backend=backend, checker=ExactChecker())
    with pytest.raises(TTScaleError, match=needle):
        engine.solve("q", **{"budget": 1, **kw})
    assert backend.calls == []


def test_a_stop_string_is_one_stop_string():

    backend = FakeBackend(lambda p, j, s: "The answer is 2.")
    Engine(backend=backend, checker=ExactChecker()).solve("q", budget=1, stop="answer")
    assert backend.calls[0][0].sampling.stop == ("answer",)
