"""Multi-temperature voting, parallel thinking and refine: logic on the scripted fake backend, then end
to end on the embedded model (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError
from ttscale.requests import Sampling
from ttscale.scheduler import Scheduler, outcomes
from ttscale.scoring import register_scorer
from ttscale.strategies.base import Task
from ttscale.strategies.parallel_thinking import compact, parallel_thinking
from ttscale.strategies.refine import refine
from ttscale.strategies.temperature import grid_request, interleave, split_budget, temperature_grid

GRID = [0.3, 0.6, 0.9, 1.2]


class BadStepScorer:
    """Step score 0 for steps containing 'bad', 1 otherwise; remembers what it was asked."""

    requests: list = []

    def __init__(self, backend, **options) -> None:
        pass

    def score_batch(self, requests):
        BadStepScorer.requests += requests
        return [[[0.0 if "bad" in s else 1.0 for s in cand] for cand in r.candidates] for r in requests], 0


class RejectAllScorer:
    def __init__(self, backend, **options) -> None:
        pass

    def score_batch(self, requests):
        return [[[0.0 for _ in cand] for cand in r.candidates] for r in requests], 0


register_scorer("bad_step")(BadStepScorer)
register_scorer("reject_all")(RejectAllScorer)


def text_of(ids) -> str:
    return "".join(chr(i) for i in ids)


def sequence_script(answers):
    """The k-th sample drawn, in backend order, answers answers[k % len]."""
    state = {"k": 0}

    def script(prompt_ids, j, seed):
        a = answers[state["k"] % len(answers)]
        state["k"] += 1
        return f"Work.\n\nThe answer is \\boxed{{{a}}}"
    return script


def engine_for(script, **kw):
    backend = FakeBackend(script, **kw)
    return Engine(backend=backend, checker=ExactChecker()), backend


def temps_of(call):
    return [r.sampling.temperature for r in call]


# -- the temperature grid ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n, shares, counts", [
    (16, [1, 1, 1, 1], [4, 4, 4, 4]),
    (4, [1, 1, 1, 1], [1, 1, 1, 1]),
    (6, [1, 1, 1, 1], [2, 2, 1, 1]),  # ties in the remainder go to the earlier temperature
    (1, [1, 1, 1, 1], [1, 0, 0, 0]),
    (8, [1, 0, 1, 2], [2, 0, 2, 4]),
    (10, [3, 1], [8, 2]),
])
def test_split_budget(n, shares, counts):
    assert split_budget(n, shares) == counts


def test_interleave_is_balanced_at_every_prefix():
    assert interleave([2, 2, 1, 1]) == [0, 1, 2, 3, 0, 1]
    assert interleave([4, 0, 2]) == [0, 2, 0, 0, 2, 0]
    order = interleave([4, 4, 4, 4])
    assert all(sorted(order[i: i + 4]) == [0, 1, 2, 3] for i in range(0, 16, 4))


def test_grid_request_groups_by_temperature():
    req, temps = grid_request((1, 2), [0.3, 0.6, 0.3, 0.6], Sampling(seed=5))
    assert req.n == 2 and temps == [0.3, 0.6] and req.prefixes == ((1, 2), (1, 2))
    assert [s.temperature for s in req.per_prefix] == [0.3, 0.6]
    req, temps = grid_request((1,), [0.3, 0.3, 0.6], Sampling())
    assert req.n == 1 and temps == [0.3, 0.3, 0.6]  # unequal groups: one sample per prefix


@pytest.mark.parametrize("options, needle", [
    ({"temperatures": "a,b"}, "list of numbers"),
    ({"temperatures": [0.3, -1]}, "non-negative"),
    ({"temperatures": [0.3, 0.6], "temperature_shares": [1]}, "1 temperature_shares for 2"),
    ({"temperatures": [0.3], "temperature_shares": [0]}, "positive sum"),
])
def test_grid_bad_input(options, needle):
    with pytest.raises(TTScaleError, match=needle):
        temperature_grid(options)


def test_grid_from_command_line_strings():
    grid = temperature_grid({"temperatures": "0.2, 0.9", "temperature_shares": "1,3"})
    assert grid.temperatures == (0.2, 0.9) and grid.split(8) == [2, 6]
    assert temperature_grid({}) is None and temperature_grid({}, default=GRID).temperatures == tuple(GRID)


# -- temperature: waves and early exit --------------------------------------------------------------------
def test_temperature_waves_are_one_generate_each_with_per_prefix_samplings():
    engine, backend = engine_for(sequence_script(["1", "2"]))  # never settled: no early exit
    r = engine.solve("q", strategy="temperature", budget=16, temperatures=GRID)
    assert len(backend.calls) == 4  # 4 waves of one sample per temperature
    for call in backend.calls:
        assert temps_of(call) == GRID and all(q.n == 1 for q in call)
        assert len({q.sampling.seed for q in call}) == 4  # distinct seeds per prefix
    assert r.details["samples_saved"] == 0 and not r.details["early_exit"]
    assert [g["generated"] for g in r.details["grid"]] == [4, 4, 4, 4]
    assert len(r.candidates) == 16 and r.ledger.candidates == 16 and r.ledger.backend_calls == 4
    assert sorted({c.meta["temperature"] for c in r.candidates}) == GRID
    assert r.votes == {"1": 8.0, "2": 8.0} and r.answer == "1"


def test_temperature_early_exit_once_the_winner_is_certain():
    engine, backend = engine_for(sequence_script(["7"]))
    r = engine.solve("q", strategy="temperature", budget=16)  # default grid of 4
    # After 2 waves 8 votes vs 0 with 8 to come: not yet certain. After 3: 12 > 0 + 4.
    assert len(backend.calls) == 3
    assert r.details["early_exit"] and r.details["samples_saved"] == 4
    assert len(r.candidates) == 12 and r.ledger.candidates == 12 and r.answer == "7"
    assert [g["planned"] for g in r.details["grid"]] == [4, 4, 4, 4]
    assert [g["generated"] for g in r.details["grid"]] == [3, 3, 3, 3]


def test_temperature_early_exit_counts_the_runner_up():
    # Waves of 4: 7 7 7 3 | 7 7 7 7 -> after wave 2: 7 has 7, 3 has 1, 8 remain: 6 > 8? no.
    # After wave 3 (all 7): 11 - 1 = 10 > 4 -> stop.
    engine, backend = engine_for(sequence_script(["7", "7", "7", "3"] + ["7"] * 12))
    r = engine.solve("q", strategy="temperature", budget=16, wave_size=4)
    assert len(backend.calls) == 3 and r.details["samples_saved"] == 4


def test_temperature_no_early_exit_when_disabled_or_top():
    for kw in ({"early_exit": False}, {"early_exit": "false"}, {"aggregate": "top"}):
        engine, backend = engine_for(sequence_script(["7"]))
        r = engine.solve("q", strategy="temperature", budget=16, **kw)
        assert len(backend.calls) == 4 and r.details["samples_saved"] == 0, kw


def test_temperature_weighted_vote_exits_early_too():
    engine, backend = engine_for(sequence_script(["7"]))
    r = engine.solve("q", strategy="temperature", budget=16, aggregate="weighted")
    assert r.details["early_exit"] and len(backend.calls) == 3
    assert all(0 < c.scores["logprob"] <= 1 for c in r.candidates)


def test_temperature_verifier_weighted_vote():
    # Two samples say 9 with a bad step, one says 5 cleanly: the verifier outweighs the majority.
    def script(prompt_ids, j, seed):
        return "bad step\n\n\\boxed{9}" if seed % 3 else "fine\n\n\\boxed{5}"
    engine, _ = engine_for(script)
    r = engine.solve("q", strategy="temperature", budget=6, temperatures=[0.5, 1.0], aggregate="weighted",
                     scorer="bad_step", early_exit=False, seed=3)
    answers = [c.answer for c in r.candidates]
    assert "5" in answers and "9" in answers
    assert r.answer == "5"


def test_temperature_wave_size_and_shares():
    engine, backend = engine_for(sequence_script(["1", "2"]))
    r = engine.solve("q", strategy="temperature", budget=8, temperatures=[0.5, 1.0], temperature_shares=[3, 1],
                     wave_size=8)
    assert len(backend.calls) == 1
    # 6 and 2 samples: n = gcd = 2 per prefix, the prompt 3 times at 0.5 and once at 1.0
    assert sorted(temps_of(backend.calls[0])) == [0.5] * 3 + [1.0] and all(q.n == 2 for q in backend.calls[0])
    assert r.details["grid"][0]["planned"] == 6


def test_temperature_same_seed_same_run():
    def script(prompt_ids, j, seed):
        return f"\\boxed{{{seed % 4}}}"
    a = engine_for(script)[0].solve("q", strategy="temperature", budget=8, seed=2)
    b = engine_for(script)[0].solve("q", strategy="temperature", budget=8, seed=2)
    assert [c.text for c in a.candidates] == [c.text for c in b.candidates]


def test_temperature_batch_shares_backend_calls():
    engine, backend = engine_for(sequence_script(["1", "2"]))
    engine.solve_batch([f"p{i}" for i in range(5)], strategy="temperature", budget=8)
    assert len(backend.calls) == 2 and len(backend.calls[0]) == 5 * 4


# -- the grid inside best_of_n and particle ---------------------------------------------------------------
def test_best_of_n_with_a_temperature_grid_is_one_generate():
    engine, backend = engine_for(sequence_script(["4"]))
    r = engine.solve("q", strategy="best_of_n", budget=8, temperatures=GRID)
    assert len(backend.calls) == 1
    assert temps_of(backend.calls[0]) == GRID and all(q.n == 2 for q in backend.calls[0])
    assert sorted(c.meta["temperature"] for c in r.candidates) == sorted(GRID * 2)
    assert r.details["temperatures"] == GRID and r.details["temperature_counts"] == [2, 2, 2, 2]
    engine, backend = engine_for(sequence_script(["4"]))
    engine.solve("q", strategy="best_of_n", budget=8, temperatures=[0.2, 0.7, 1.1], temperature_shares=[1, 1, 2])
    call = backend.calls[0]
    assert sorted(temps_of(call)) == [0.2, 0.7, 1.1, 1.1] and all(q.n == 2 for q in call)


def test_best_of_n_without_grid_is_unchanged():
    engine, backend = engine_for(sequence_script(["4"]))
    r = engine.solve("q", strategy="best_of_n", budget=8, temperature=0.5)
    assert len(backend.calls[0]) == 1 and backend.calls[0][0].n == 8
    assert r.details["temperature"] == 0.5 and "temperatures" not in r.details


def steps_script(prompt_ids, j, seed):
    done = text_of(prompt_ids).split("<assistant>", 1)[1].count("\n\n")
    return f"step {done}\n\nmore" if done < 2 else "The answer is \\boxed{5}"


def test_particle_carries_a_temperature_per_particle():
    engine, backend = engine_for(steps_script)
    r = engine.solve("q", strategy="particle", budget=6, verifier="bad_step", temperatures="0.2,0.9")
    first = backend.calls[0]
    assert temps_of(first) == [0.2, 0.9, 0.2, 0.9, 0.2, 0.9] and all(q.n == 1 for q in first)
    assert all(set(temps_of(call)) <= {0.2, 0.9} for call in backend.calls)
    assert all(c.meta["temperature"] in (0.2, 0.9) for c in r.candidates)
    # Each request's temperature is the one its particle carries.
    for call in backend.calls:
        for q in call:
            owner = [c for c in r.candidates if c.token_ids[: len(q.prompt_ids) - len(first[0].prompt_ids)]
                     == list(q.prompt_ids[len(first[0].prompt_ids):])]
            assert any(c.meta["temperature"] == q.sampling.temperature for c in owner)
    assert r.answer == "5"


def test_particle_temperature_shares():
    engine, backend = engine_for(steps_script)
    engine.solve("q", strategy="particle", budget=4, verifier="bad_step", temperatures=[0.4, 1.0],
                 temperature_shares=[3, 1])
    assert sorted(temps_of(backend.calls[0])) == [0.4, 0.4, 0.4, 1.0]


# -- parallel thinking ------------------------------------------------------------------------------------
SYNTH_MARK = "independent attempts"


def pt_script(path_answers, synthesis="The paths agree.\n\nThe answer is \\boxed{5}"):
    state = {"k": 0}

    def script(prompt_ids, j, seed):
        if SYNTH_MARK in text_of(prompt_ids):
            return synthesis
        a = path_answers[state["k"] % len(path_answers)]
        state["k"] += 1
        return f"Path work {a}.\n\nThe answer is \\boxed{{{a}}}"
    return script


def test_parallel_thinking_paths_then_synthesis():
    BadStepScorer.requests = []
    engine, backend = engine_for(pt_script(["5", "3", "5"]))
    r = engine.solve("q", strategy="parallel_thinking", budget=4, verifier="bad_step")
    assert len(backend.calls) == 2
    assert len(backend.calls[0]) == 1 and backend.calls[0][0].n == 3  # K = budget - 1 paths, one request
    [synth_req] = backend.calls[1]
    prompt = text_of(synth_req.prompt_ids)
    assert all(f"Path work {a}." in prompt for a in ("5", "3")) and "Attempt 3:" in prompt and "q" in prompt
    assert r.answer == "5" and r.details["fallback"] is None
    roles = [c.meta["role"] for c in r.candidates]
    assert roles == ["path"] * 3 + ["synthesis"] and r.candidates[3] is r.candidates[-1]
    assert r.text == r.candidates[-1].text and r.ledger.candidates == 4
    assert r.details["synthesis"]["accepted"] and r.details["synthesis"]["compacted_to_chars"] is None
    assert len(BadStepScorer.requests) == 1 and BadStepScorer.requests[0].candidates == (
        ("The paths agree.", "The answer is \\boxed{5}"),)
    d = r.to_dict()
    assert d["details"]["synthesis"]["messages"][-1]["content"].count("Attempt") == 3
    assert r.votes == {"5": 3.0, "3": 1.0} and r.confidence == pytest.approx(0.75)  # the synthesis votes too


def test_parallel_thinking_falls_back_when_synthesis_is_not_among_paths():
    script = pt_script(["5", "3", "5"], synthesis="New idea.\n\n\\boxed{42}")
    r = engine_for(script)[0].solve("q", strategy="parallel_thinking", budget=4, verifier="bad_step")
    assert r.answer == "5" and r.details["fallback"] == "not_among_paths"
    assert r.candidates[-1].answer == "42"
    r = engine_for(script)[0].solve("q", strategy="parallel_thinking", budget=4, verifier="bad_step", fallback=False)
    assert r.answer == "42" and r.details["fallback"] is None
    assert r.details["synthesis"]["issue"] == "not_among_paths"


def test_parallel_thinking_falls_back_when_the_verifier_rejects():
    script = pt_script(["5", "3", "5", "3", "3"], synthesis="bad step\n\n\\boxed{5}")
    r = engine_for(script)[0].solve("q", strategy="parallel_thinking", budget=6, verifier="bad_step")
    assert r.details["synthesis"]["accepted"] is False and r.details["fallback"] == "rejected"
    assert r.answer == "3"  # the paths' majority, not the rejected synthesis
    r = engine_for(script)[0].solve("q", strategy="parallel_thinking", budget=6, verifier="none")
    assert r.answer == "5" and r.details["fallback"] is None  # no verifier: nothing rejects it


def test_parallel_thinking_no_answer_falls_back():
    script = pt_script(["5"], synthesis="I am not sure.")
    r = engine_for(script)[0].solve("q", strategy="parallel_thinking", budget=3, verifier="bad_step")
    assert r.answer == "5" and r.details["fallback"] == "no_answer"


def test_parallel_thinking_budget_accounting():
    engine, backend = engine_for(pt_script(["5"]))
    r = engine.solve("q", strategy="parallel_thinking", budget=8, paths=3, verifier="none")
    assert backend.calls[0][0].n == 3 and len(r.candidates) == 4
    r = engine.solve("q", strategy="parallel_thinking", budget=1, verifier="none")
    assert len(r.candidates) == 1 and r.details["synthesis"] is None and r.answer == "5"
    with pytest.raises(TTScaleError, match="need a budget of 5"):
        engine.solve("q", strategy="parallel_thinking", budget=4, paths=4)
    with pytest.raises(TTScaleError, match="no {paths} field"):
        engine.solve("q", strategy="parallel_thinking", budget=4, synthesis_prompt="Solve {problem}")


def test_parallel_thinking_custom_prompt_and_batch():
    engine, backend = engine_for(pt_script(["5"]))
    engine.solve_batch(["a", "b", "c"], strategy="parallel_thinking", budget=3, verifier="none",
                       synthesis_prompt="{paths}\n\nindependent attempts at: {problem} ({k})")
    assert len(backend.calls) == 2 and len(backend.calls[1]) == 3  # one synthesis round for the batch
    assert text_of(backend.calls[1][0].prompt_ids).endswith("independent attempts at: a (2)<assistant>")


def make_task(options, budget, context_length=None, max_tokens=100):
    backend = FakeBackend(lambda p, j, s: "")
    task = Task(problem="q", prompt_ids=tuple(backend.tokenizer.chat_prompt([{"role": "user", "content": "q"}])),
                budget=budget, rng=np.random.default_rng(0), sampling=Sampling(max_tokens=max_tokens),
                extract=__import__("verifiers").extract_answer, cluster=ExactChecker().cluster, options=options,
                render=lambda m: tuple(backend.tokenizer.chat_prompt(m)), messages=(("user", "q"),))
    task.context_length = context_length  # set by the engine from the backend
    return task


def run(backend, gen):
    [(outcome, ledger)] = outcomes(Scheduler(backend, lambda name: {"bad_step": BadStepScorer,
                                                                    "reject_all": RejectAllScorer}[name](backend)).run([gen]))
    return outcome, ledger


def test_compact_keeps_head_and_tail():
    text = "HEAD" + "x" * 200 + "The answer is 7."
    short = compact(text, 60)
    assert len(short) <= 60 and short.startswith("HEAD") and short.endswith("answer is 7.") and "[...]" in short
    assert compact("short", 60) == "short" and compact(text, None) == text


def test_parallel_thinking_compacts_paths_to_fit_the_context():
    long_path = "Step " + "blah " * 30 + "\n\nThe answer is \\boxed{5}"  # fits max_tokens, not 4 times

    def script(prompt_ids, j, seed):
        return "Synthesis.\n\n\\boxed{5}" if SYNTH_MARK in text_of(prompt_ids) else long_path
    backend = FakeBackend(script)
    task = make_task({"verifier": "none"}, budget=5, context_length=1200, max_tokens=200)
    outcome, _ = run(backend, parallel_thinking(task))
    synth = outcome.details["synthesis"]
    assert synth["compacted_to_chars"] is not None and synth["prompt_tokens"] <= 1200 - 200
    [req] = backend.calls[1]
    assert len(req.prompt_ids) + req.sampling.max_tokens <= 1200
    assert text_of(req.prompt_ids).count("boxed{5}") == 4  # every path kept its tail
    assert outcome.candidates[outcome.chosen].meta["role"] == "synthesis"
    # A context that cannot hold even the tails: vote over the paths instead.
    task = make_task({"verifier": "none"}, budget=5, context_length=500, max_tokens=200)
    backend = FakeBackend(script)
    outcome, _ = run(backend, parallel_thinking(task))
    assert outcome.details["fallback"] == "paths_do_not_fit_context" and len(backend.calls) == 1
    assert outcome.candidates[outcome.chosen].answer == "5"


def test_synthesis_shows_one_path_per_answer_when_all_do_not_fit():
    answers = ["5"] * 6 + ["3"] * 3
    state = {"k": 0}

    def script(prompt_ids, j, seed):
        if SYNTH_MARK in text_of(prompt_ids):
            return "Synthesis.\n\n\\boxed{5}"
        a = answers[state["k"]]
        state["k"] += 1
        return "Step " + "blah " * 30 + f"\n\nThe answer is \\boxed{{{a}}}"
    backend = FakeBackend(script)
    task = make_task({"verifier": "none"}, budget=10, context_length=750, max_tokens=200)
    outcome, _ = run(backend, parallel_thinking(task))
    synth = outcome.details["synthesis"]
    assert synth["paths_shown"] == [0, 6]  # the 6-path answer first, then the 3-path one
    prompt = text_of(backend.calls[1][0].prompt_ids)
    assert "(6 of the 9 attempts reached this answer)" in prompt and "(3 of the 9 attempts" in prompt
    assert len(backend.calls[1][0].prompt_ids) <= 750 - 200


def test_synthesis_leaves_room_for_an_answer_as_long_as_twice_the_longest_path():
    def script(prompt_ids, j, seed):
        return "Synthesis.\n\n\\boxed{5}" if SYNTH_MARK in text_of(prompt_ids) else "Short.\n\n\\boxed{5}"
    backend = FakeBackend(script)
    # max_tokens 900 would leave no room for the prompt; the paths are ~20 tokens, so 64 are reserved.
    task = make_task({"verifier": "none"}, budget=4, context_length=1000, max_tokens=900)
    outcome, _ = run(backend, parallel_thinking(task))
    [req] = backend.calls[1]
    assert outcome.details["synthesis"]["compacted_to_chars"] is None
    assert len(req.prompt_ids) + req.sampling.max_tokens == 1000 and req.sampling.max_tokens >= 64


# -- refine -----------------------------------------------------------------------------------------------
FEEDBACK_MARK = "A checker rejected"


def refine_script(good_after: int = 1, answers=("9", "5")):
    """Attempt t (0-based, read from the prompt) is bad until `good_after` revisions have been asked for."""
    def script(prompt_ids, j, seed):
        turn = text_of(prompt_ids).count(FEEDBACK_MARK)
        if turn < good_after:
            return f"Try {turn}: 2 + 2 = 5 bad\n\nThe answer is \\boxed{{{answers[0]}}}"
        return f"Try {turn}: 2 + 3 = 5\n\nThe answer is \\boxed{{{answers[1]}}}"
    return script


def test_refine_stops_when_the_verifier_accepts():
    engine, backend = engine_for(refine_script(good_after=1))
    r = engine.solve("q", strategy="refine", budget=4, verifier="bad_step")
    assert len(backend.calls) == 2  # first attempt, one revision, then accepted
    assert r.answer == "5" and r.details["samples_saved"] == 2 and r.details["turns_used"] == 2
    assert [(a["turn"], a["accepted"]) for a in r.details["attempts"]] == [(1, False), (2, True)]
    assert r.details["chains"][0]["stopped"] == "accepted" and r.ledger.candidates == 2
    revision = text_of(backend.calls[1][0].prompt_ids)
    # The revision prompt holds the problem, the previous attempt and the verdict, naming the doubted step.
    assert "<user>q" in revision and "Try 0: 2 + 2 = 5 bad" in revision
    assert FEEDBACK_MARK in revision and 'doubts this step: "Try 0: 2 + 2 = 5 bad"' in revision
    assert revision.index("<assistant>Try 0") < revision.index(FEEDBACK_MARK)
    assert r.candidates[0].meta["feedback"].startswith(FEEDBACK_MARK)


def test_refine_sees_all_previous_attempts_and_uses_all_turns_if_never_accepted():
    engine, backend = engine_for(refine_script(good_after=99))
    r = engine.solve("q", strategy="refine", budget=3, verifier="bad_step")
    assert len(backend.calls) == 3 and r.details["samples_saved"] == 0
    last = text_of(backend.calls[2][0].prompt_ids)
    assert "Try 0:" in last and "Try 1:" in last and last.count(FEEDBACK_MARK) == 2
    assert r.details["chains"][0]["stopped"] == "turns" and r.answer == "9"
    engine, backend = engine_for(refine_script(good_after=99))
    engine.solve("q", strategy="refine", budget=3, verifier="bad_step", memory=1)
    last = text_of(backend.calls[2][0].prompt_ids)
    assert "Try 0:" not in last and "Try 1:" in last


def test_refine_width_and_turns():
    # Chain 0's first attempt is good (sample j=0), chain 1's is bad; only chain 1 is revised.
    def script(prompt_ids, j, seed):
        text = text_of(prompt_ids)
        if FEEDBACK_MARK in text or j == 0:
            return "2 + 3 = 5\n\n\\boxed{5}"
        return "bad\n\n\\boxed{9}"
    engine, backend = engine_for(script)
    r = engine.solve("q", strategy="refine", budget=5, width=2, turns=2, verifier="bad_step")
    assert backend.calls[0][0].n == 2 and len(backend.calls[0]) == 1
    assert len(backend.calls) == 2 and len(backend.calls[1]) == 1 and backend.calls[1][0].n == 1
    assert r.details["width"] == 2 and r.details["turns"] == 2 and r.details["samples_saved"] == 1
    assert [c.meta["chain"] for c in r.candidates] == [0, 1, 1]
    assert r.answer == "5" and r.votes == {"5": 2.0}


@pytest.mark.parametrize("kw, expected", [
    ({}, (1, 6)), ({"width": 2}, (2, 3)), ({"turns": 4}, (1, 4)), ({"width": 3, "turns": 2}, (3, 2)),
])
def test_refine_budget_split(kw, expected):
    engine, _ = engine_for(refine_script(good_after=99))
    r = engine.solve("q", strategy="refine", budget=6, verifier="bad_step", **kw)
    assert (r.details["width"], r.details["turns"]) == expected
    assert len(r.candidates) == expected[0] * expected[1] <= 6


@pytest.mark.parametrize("kw, needle", [
    ({"width": 3, "turns": 3}, "needs a budget of 9"),
    ({"width": 7}, "needs a budget"),
    ({"turns": 0}, "at least 1"),
    ({"verifier": "none"}, "needs a verifier"),
    ({"accept_threshold": 2}, "accept_threshold"),
])
def test_refine_bad_input(kw, needle):
    engine, _ = engine_for(refine_script())
    with pytest.raises(TTScaleError, match=needle):
        engine.solve("q", strategy="refine", budget=6, **{"verifier": "bad_step", **kw})


def test_refine_drops_old_attempts_to_fit_the_context():
    def script(prompt_ids, j, seed):
        return f"bad {'word ' * 40}\n\n\\boxed{{{text_of(prompt_ids).count(FEEDBACK_MARK)}}}"
    backend = FakeBackend(script)
    task = make_task({"verifier": "reject_all"}, budget=4, context_length=900, max_tokens=300)
    outcome, _ = run(backend, refine(task))
    assert len(backend.calls) == 4
    shown = [a["attempts_shown"] for a in outcome.details["attempts"]]
    assert shown[0] == 0 and shown[1] == 1 and shown[-1] < 3  # the oldest no longer fit
    assert all(len(q.prompt_ids) + q.sampling.max_tokens <= 900 for call in backend.calls for q in call)


# -- end to end on the embedded model ---------------------------------------------------------------------
PROBLEM = "What is 12 + 7?"


@pytest.fixture(scope="module")
def real_engine():
    pytest.importorskip("llama_cpp")
    with Engine(backend="llamacpp", context_length=2048) as engine:
        yield engine


@pytest.mark.slow
def test_temperature_on_the_embedded_model(real_engine):
    r = real_engine.solve(PROBLEM, strategy="temperature", budget=3, max_tokens=48, temperatures=[0.3, 1.0], seed=1)
    assert 1 <= len(r.candidates) <= 3 and r.ledger.candidates == len(r.candidates)
    assert {c.meta["temperature"] for c in r.candidates} <= {0.3, 1.0}
    assert r.details["samples_saved"] == 3 - len(r.candidates)
    assert r.ledger.generated_tokens == sum(len(c.token_ids) for c in r.candidates) > 0
    b = real_engine.solve(PROBLEM, strategy="best_of_n", budget=3, max_tokens=48, temperatures=[0.3, 1.0], seed=1)
    assert len(b.candidates) == 3 and b.ledger.backend_calls == 1


@pytest.mark.slow
def test_parallel_thinking_on_the_embedded_model(real_engine):
    r = real_engine.solve(PROBLEM, strategy="parallel_thinking", budget=3, max_tokens=48, verifier="none", seed=1)
    assert [c.meta["role"] for c in r.candidates] == ["path", "path", "synthesis"]
    assert r.ledger.backend_calls == 2 and r.ledger.candidates == 3
    synth = r.details["synthesis"]
    assert synth["prompt_tokens"] > sum(len(c.token_ids) for c in r.candidates[:2])
    assert r.candidates[0].text.strip()[:20] in synth["messages"][-1]["content"]
    assert r.to_dict()["details"]["synthesis"]["messages"]


@pytest.mark.slow
def test_refine_on_the_embedded_model(real_engine):
    r = real_engine.solve(PROBLEM, strategy="refine", budget=3, max_tokens=48, verifier="reject_all", seed=1)
    assert len(r.candidates) == 3 and [c.meta["turn"] for c in r.candidates] == [1, 2, 3]
    assert r.ledger.backend_calls == 3 and r.details["samples_saved"] == 0
    assert [a["attempts_shown"] for a in r.details["attempts"]] == [0, 1, 2]
    assert r.details["attempts"][2]["prompt_tokens"] > r.details["attempts"][1]["prompt_tokens"]
