"""Particle filtering, beam search and DVTS logic on the scripted fake backend and a fake verifier."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError
from ttscale.scoring import register_scorer
from ttscale.strategies.particle import effective_sample_size, log_weights, normalise, systematic_resample
from ttscale.strategies.steps import aggregate_steps


class KeywordScorer:
    """Step score 0 for steps containing 'bad', 1 otherwise; counts calls to check batching."""

    calls = 0

    def __init__(self, backend, **options) -> None:
        pass

    def score_batch(self, requests):
        KeywordScorer.calls += 1
        return [[[0.0 if "bad" in s else 1.0 for s in cand] for cand in r.candidates] for r in requests], 0


register_scorer("keyword")(KeywordScorer)


def steps_script(n_steps: int = 3, bad_every: int = 0, answer_of=lambda j, seed: "5"):
    """Sample j continues a solution: numbered steps separated by blank lines, then a boxed answer.

    With `bad_every`, samples whose seed-derived draw hits it write a 'bad' step and answer 9."""
    def script(prompt_ids, j, seed):
        text = "".join(chr(i) for i in prompt_ids)
        done = text.split("<assistant>", 1)[1].count("\n\n")
        bad = bad_every and ((seed or 0) + j) % bad_every == 0
        if done < n_steps:
            return f"step {done} {'bad' if bad else 'ok'}\n\nmore text"
        return f"The answer is \\boxed{{{'9' if 'bad' in text else answer_of(j, seed)}}}"
    return script


def engine_for(script):
    backend = FakeBackend(script)
    return Engine(backend=backend, checker=ExactChecker()), backend


def test_systematic_resampling_proportions():
    w = np.array([0.5, 0.25, 0.25, 0.0])
    for seed in range(20):
        idx = systematic_resample(w, np.random.default_rng(seed))
        assert np.bincount(idx, minlength=4).tolist() == [2, 1, 1, 0]


def test_weights_and_ess():
    logw = log_weights(np.array([0.9, 0.5, 0.1]), temperature=1.0)
    assert logw[1] == pytest.approx(0.0) and logw[0] == pytest.approx(-logw[2])
    w = normalise(logw)
    assert w.sum() == pytest.approx(1.0) and w[0] > w[1] > w[2]
    assert effective_sample_size(np.full(4, 0.25)) == pytest.approx(4.0)
    assert effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1.0)
    # Lower weight temperature sharpens the distribution.
    assert normalise(log_weights(np.array([0.9, 0.5]), 0.5))[0] > w[0] / (w[0] + w[1])


@pytest.mark.parametrize("how, expected", [("last", 0.2), ("min", 0.2), ("prod", 0.9 * 0.2), ("mean", 0.55)])
def test_step_aggregation(how, expected):
    assert aggregate_steps([0.9, 0.2], how) == pytest.approx(expected)


def test_particle_one_generate_per_step_for_a_whole_batch():
    engine, backend = engine_for(steps_script(n_steps=3))
    results = engine.solve_batch([f"p{i}" for i in range(16)], strategy="particle", budget=8, verifier="keyword")
    # 3 delimited steps + the final step: 4 rounds, each ONE backend call for all 16 x 8 particles.
    assert len(backend.calls) == 4
    assert all(len(call) == 16 * 8 for call in backend.calls[:1])
    assert all(r.answer == "5" for r in results)
    assert all(len(c.meta["steps"]) == 4 for c in results[0].candidates)


def test_particle_resampling_removes_bad_particles():
    engine, _ = engine_for(steps_script(n_steps=3, bad_every=3))
    r = engine.solve("p", strategy="particle", budget=8, verifier="keyword", seed=1)
    assert r.answer == "5"
    history = r.details["resampling"]
    # Every round resamples except the last, after which all particles have finished.
    assert len(history) == 4 and all("parents" in h for h in history[:-1]) and "parents" not in history[-1]
    # After resampling no surviving particle carries a bad step.
    assert all("bad" not in c.text for c in r.candidates)


def test_particle_ess_threshold_zero_never_resamples():
    engine, _ = engine_for(steps_script(n_steps=2, bad_every=3))
    r = engine.solve("p", strategy="particle", budget=6, verifier="keyword", ess_threshold=0.0)
    assert all("parents" not in h for h in r.details["resampling"])
    assert any("bad" in c.text for c in r.candidates)  # nothing was filtered out


def test_particle_same_seed_same_result():
    engine, _ = engine_for(steps_script(n_steps=3, bad_every=2))
    a = engine.solve("p", strategy="particle", budget=6, verifier="keyword", seed=4)
    b = engine.solve("p", strategy="particle", budget=6, verifier="keyword", seed=4)
    assert a.details["resampling"] == b.details["resampling"]
    assert [c.text for c in a.candidates] == [c.text for c in b.candidates]


def test_finished_particles_are_kept():
    # Sample 0 of every request finishes at once; the others take 2 steps.
    def script(prompt_ids, j, seed):
        text = "".join(chr(i) for i in prompt_ids).split("<assistant>", 1)[1]
        if j == 0 and not text:
            return "The answer is \\boxed{3}"
        return "s ok\n\nx" if text.count("\n\n") < 2 else "The answer is \\boxed{3}"
    engine, _ = engine_for(script)
    r = engine.solve("p", strategy="particle", budget=4, verifier="keyword", ess_threshold=0.0)
    assert len(r.candidates) == 4 and all(c.answer == "3" for c in r.candidates)


def test_beam_keeps_the_top_and_expands_width_ways():
    engine, backend = engine_for(steps_script(n_steps=2, bad_every=2))
    r = engine.solve("p", strategy="beam", budget=8, beam_width=4, verifier="keyword")
    first, second = backend.calls[0], backend.calls[1]
    assert len(first) == 1 and first[0].n == 8  # N first steps from the prompt
    assert len(second) == 2 and all(q.n == 4 for q in second)  # N/M beams, M ways each
    assert r.details["kept_scores"][0] == [1.0, 1.0]  # only clean beams were kept
    assert r.answer == "5"


def test_dvts_subtrees():
    engine, backend = engine_for(steps_script(n_steps=2, bad_every=2))
    r = engine.solve("p", strategy="dvts", budget=8, beam_width=4, verifier="keyword")
    assert r.details["subtrees"] == 2 and len(r.candidates) == 2
    assert len(backend.calls[0]) == 2 and all(q.n == 4 for q in backend.calls[0])
    assert r.answer == "5"


@pytest.mark.parametrize("kwargs, needle", [
    (dict(strategy="beam", budget=2, beam_width=4), "smaller than the beam width"),
    (dict(strategy="particle", step_aggregate="median"), "unknown step score aggregation"),
    (dict(strategy="particle", verifier="nope"), "unknown verifier"),
    (dict(strategy="particle", weight_temperature=0), "weight_temperature"),
])
def test_step_search_bad_input(kwargs, needle):
    engine, _ = engine_for(steps_script())
    with pytest.raises(TTScaleError, match=needle):
        engine.solve("p", **{"budget": 4, "verifier": "keyword", **kwargs})


def test_delimiter_that_never_occurs_is_capped():
    engine, backend = engine_for(lambda p, j, s: "x" * 10_000)
    r = engine.solve("p", strategy="particle", budget=2, verifier="keyword", max_tokens=100, step_tokens=30)
    assert all(len(c.token_ids) <= 100 + 30 for c in r.candidates)
    assert len(backend.calls) <= 5


def test_a_step_that_states_the_answer_ends_the_path_even_if_the_server_reports_the_delimiter():
    """llama.cpp's server says "stop" for EOS and for a stop string alike, so the openai backend may report
    the step delimiter after the final step; the path must still end there, not ramble on."""
    def script(prompt_ids, j, seed):
        text = "".join(chr(i) for i in prompt_ids).split("<assistant>", 1)[1]
        return "s ok\n\nx" if not text else "The answer is 7.\n\nand then more rambling\n\n"
    engine, backend = engine_for(script)
    r = engine.solve("p", strategy="particle", budget=4, verifier="keyword")
    assert all(c.answer == "7" and c.meta["steps"][-1] == "The answer is 7." for c in r.candidates)
    assert r.details["rounds"] == 2 and len(backend.calls) == 2


def test_states_final_answer_is_strict():
    from verifiers.extract import states_final_answer

    assert states_final_answer("The answer is 9.") and states_final_answer(r"so \boxed{\frac12}")
    assert states_final_answer(r"The answer is $\frac{3}{4}$.")
    assert not states_final_answer("She has 12 - 3 = 9 nuts left.")
    assert not states_final_answer("the answer is not obvious yet")
    # A few words of unit after the number still state it; arithmetic or a long clause does not.
    assert states_final_answer("5. The final answer is: 21 nuts.")
    assert states_final_answer("I use 3 of them. The answer is 4 nuts at the end.")
    assert not states_final_answer("The answer is 12 + 3*12 = 84 nuts Ivy used up in the end")
    assert not states_final_answer("the answer is 2 times bigger than the one we found before")
