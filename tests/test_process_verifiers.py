"""Process verifiers without a reward model: `arith_steps` (rule-based claims) and `self_judge` (P(yes)).

arith_steps is checked against hand-written claims, against every solution of 200 generated arith
problems (true steps 1.0, a slipped step 0.0) and against hostile text. self_judge's batching and
caching run on a scripted backend; one slow test runs it on the real embedded model (llama.cpp).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from eval_sets.arith import LEVELS, make_problem, solution_steps
from fakes import CharTokenizer, ExactChecker, FakeBackend
from ttscale import TTScaleError
from ttscale.requests import Completion, GenRequest, GenResult, Score
from ttscale.scheduler import Scheduler, outcomes
from ttscale.scoring import scorers
from ttscale.strategies.base import Outcome
from verifiers.arith_steps import ArithStepsVerifier, find_claims, score_steps, step_score
from verifiers.self_judge import NEUTRAL, SelfJudgeVerifier, judge_text, p_yes

# -- arith_steps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("She has 4 + 3 = 7 stickers.", 1.0),
        ("She has 4 + 3 = 8 stickers.", 0.0),
        ("2 + 3 * 4 = 14", 1.0),  # precedence
        ("2 + 3 * 4 = 20", 0.0),
        ("12 / 4 = 3 = 3", 1.0),  # = chains
        ("4 + 3 = 7 = 8", 0.0),
        ("1,200 / 4 = 300 apples and 1,000 + 2,000 = 3,000.", 1.0),
        ("6 × 7 = 42", 1.0),
        ("6 · 7 = 42", 1.0),
        ("6 x 7 = 42", 1.0),
        ("6x7=42", 1.0),
        ("10 ÷ 4 = 2.5", 1.0),
        ("10 − 4 = 6", 1.0),
        ("3 \\times 4 = 12", 1.0),
        ("3 \\cdot 4 = 13", 0.0),
        ("$\\frac{3}{4} = 0.75$", 1.0),
        ("0.1 + 0.2 = 0.3", 1.0),  # exact, not floating point
        ("1/3 = 0.33", 1.0),  # a rounded decimal agrees to the places it shows
        ("7 / 2 = 3.4", 0.0),
        ("7 / 2 = 3", 0.0),
        ("10 / 3 ≈ 3.33", 1.0),
        ("2^10 = 1024 and 2**10 = 1024", 1.0),
        ("-2^2 = -4", 1.0),
        ("5 - -3 = 8", 1.0),
        ("The temperature is -3 + 5 = 2 degrees", 1.0),
        ("(2 + 3) * 4 = 20, and 5 * 2 = 11", 0.0),  # one false claim sinks the step
        ("(so 4 + 3 = 7)", 1.0),
        ("Let x = 4 x 3 = 12.", 1.0),
        ("y = 2 * 3 + 1 = 7", 1.0),
        ("50% * 20 = 10", 1.0),
        ("$3 + $4 = $7", 1.0),
        ("90° + 90° = 180°", 1.0),
        ("3 + 4 = 7\n8 * 2 = 16", 1.0),  # a newline ends a claim
        # Not claims: variables, factorials, function calls, bare numbers, undecidable
        ("2x + 3 = 7", None),
        ("x - 3 = 7", None),
        ("x^2 = 4", None),
        ("a_1 + 2 = 5", None),
        ("5! = 120", None),
        ("f(2) = 5", None),
        ("2 (3 + 4) = 14", None),
        ("3 groups of 4 = 12", None),
        ("1/0 = 5", None),
        ("9^999999 = 1", None),
        ("2^(1/2) = 1.41", None),
        ("The answer is 7.", None),
        ("", None),
    ],
)
def test_claims(text: str, expected: float) -> None:
    assert step_score(text) == expected, find_claims(text)


def test_claims_report_what_was_checked() -> None:
    [c] = find_claims("He has 12 + 5 = 18 marbles.")
    assert (c.left, c.right, c.ok) == ("12 + 5", "18", False)
    assert c.text == "12 + 5 = 18"


def test_generated_arith_solutions_true_steps_and_slips() -> None:
    """200 generated problems: every claim step scores 1.0, and so does the answer line (it states what the
    claims reached); a slipped step 0.0 while the later steps (consistent with the slip) still score 1.0."""
    rng = np.random.default_rng(0)
    slipped = 0
    for i in range(200):
        problem = make_problem(0, LEVELS[i % len(LEVELS)], i // len(LEVELS))
        text, _ = problem.solve()
        assert score_steps(solution_steps(text)) == [1.0] * len(problem.steps) + [1.0]
        k, delta = int(rng.integers(len(problem.steps))), int(rng.choice([-3, -2, -1, 1, 2, 3]))
        bad = problem.solve(slip=(k, delta))
        if bad is None:
            continue
        expected = [1.0] * len(problem.steps) + [1.0]
        expected[k] = 0.0
        assert score_steps(solution_steps(bad[0])) == expected, bad[0]
        slipped += 1
    assert slipped >= 150


@pytest.mark.parametrize(
    "text",
    [
        "9" * 5000 + " + 1 = 2",
        "2^99999999999 = 4",
        "(" * 3000 + "1" + ")" * 3000 + " + 1 = 2",
        "1 + " * 20000 + "1 = 3",
        "= " * 20000,
        "10^10^10^10^10 = 7",
        "__import__('os').system('echo hacked') = 0, 1 + 1 = 2",
        "\x00\ud7ff 3 + 4 = 7 🙂 ×÷−·",
        "1.5.5 + 2 = 3.5",
    ],
)
def test_hostile_text_is_safe_and_fast(text: str) -> None:
    start = time.perf_counter()
    score = step_score(text)
    assert score is None or 0.0 <= score <= 1.0
    assert time.perf_counter() - start < 2.0


def test_speed_thousands_of_steps_per_second() -> None:
    steps = [s for i in range(300) for s in solution_steps(make_problem(1, LEVELS[i % 5], i // 5).solve()[0])]
    verifier = ArithStepsVerifier()
    start = time.perf_counter()
    verifier.score_steps(steps)
    elapsed = time.perf_counter() - start
    assert len(steps) > 1000
    assert len(steps) / elapsed > 1000, f"{len(steps) / elapsed:.0f} steps/s"


def test_arith_scorer_batch_cache_and_options() -> None:
    verifier = scorers.get("arith_steps")(None, true_score=0.9, false_score=0.1, neutral_score=0.4)
    reqs = [Score("arith_steps", "p", (("1 + 1 = 2", "1 + 1 = 3"), ("no claim",))),
            Score("arith_steps", "q", (("1 + 1 = 2",),))]
    scores, tokens = verifier.score_batch(reqs)
    assert scores == [[[0.9, 0.1], [0.4]], [[0.9]]]
    assert tokens == 0
    assert (verifier.misses, verifier.hits) == (3, 1)  # "1 + 1 = 2" was checked once
    with pytest.raises(TTScaleError, match="unknown option"):
        scorers.get("arith_steps")(None, true_scor=1.0)
    with pytest.raises(TTScaleError, match="false_score"):
        ArithStepsVerifier(false_score=-1)


def test_scheduler_sends_one_score_batch_per_round_and_books_tokens() -> None:
    """Every Score of a round for one verifier reaches one score_batch call."""
    calls: list[int] = []

    class Counting(ArithStepsVerifier):
        def score_batch(self, requests):
            calls.append(len(requests))
            out, _ = super().score_batch(requests)
            return out, 10 * len(requests)

    verifier = Counting()
    seen = []

    def strategy(i: int):
        scores = yield Score("arith_steps", f"p{i}", ((f"{i} + 1 = {i + 1}", f"{i} * 2 = {2 * i + 1}"),))
        seen.append(scores)
        return Outcome(candidates=[], chosen=None)

    sched = Scheduler(FakeBackend(lambda *a: ""), lambda name: verifier)
    results = outcomes(sched.run([strategy(i) for i in range(4)]))
    assert calls == [4]
    assert seen == [[[1.0, 0.0]]] * 4
    assert all(ledger.verifier_tokens == 10 for _, ledger in results)
    assert sched.totals.verifier_tokens == 40


# -- self_judge on a scripted backend ---------------------------------------------------------------------

YES = {"Yes": 1000, " Yes": 1001, "yes": 1002, " yes": 1003}
NO = {"No": 2000, " No": 2001, "no": 2002, " no": 2003}


class JudgeTokenizer(CharTokenizer):
    """Characters, except that Yes/No words are single tokens (as in real vocabularies)."""

    def encode(self, text: str) -> list[int]:
        return [YES.get(text) or NO[text]] if text in YES or text in NO else super().encode(text)


class JudgeBackend(FakeBackend):
    """Answers a judge prompt with top-k log-probs: P(yes) 0.9 unless the judged step says `= 8`."""

    def __init__(self, context_length: int = 100_000, neither: bool = False) -> None:
        super().__init__(lambda *a: "Yes", context_length=context_length)
        self.tokenizer = JudgeTokenizer()
        self.neither = neither

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            prompt = self.tokenizer.decode(r.prompt_ids)
            judged = prompt.split("to judge")[-1].split("Proposed solution:")[-1]
            p = 0.1 if "= 8" in judged else 0.9
            top = {7: math.log(0.05)} if self.neither else {
                YES["Yes"]: math.log(p * 0.8), YES[" yes"]: math.log(p * 0.1),
                NO["No"]: math.log((1 - p) * 0.9), 7: math.log(0.01)}
            comp = Completion(token_ids=[YES["Yes"]], text="Yes", finish_reason="length", logprobs=[math.log(0.7)],
                              top_logprobs=[top])
            out.append(GenResult(completions=[comp], prompt_tokens=len(r.prompt_ids)))
        return out


PROBLEM = "Hana has 4 stickers. She gets 3 more. How many?"


def judge(backend: JudgeBackend | None = None, **options) -> tuple[SelfJudgeVerifier, JudgeBackend]:
    backend = backend or JudgeBackend()
    return scorers.get("self_judge")(backend, **options), backend


def test_p_yes_normalises_yes_against_no() -> None:
    assert p_yes({1: math.log(0.6), 2: math.log(0.2), 3: math.log(0.1)}, {1}, {2}) == pytest.approx(0.75)
    assert p_yes({1: math.log(0.3), 4: math.log(0.3), 2: math.log(0.2)}, {1, 4}, {2}) == pytest.approx(0.75)
    assert p_yes({3: 0.0}, {1}, {2}) == NEUTRAL


def test_self_judge_one_generate_call_and_scores() -> None:
    verifier, backend = judge()
    reqs = [Score("self_judge", PROBLEM, (("4 + 3 = 7.", "So 7."), ("4 + 3 = 8.",))),
            Score("self_judge", "Other problem", (("2 + 2 = 4.",),))]
    scores, tokens = verifier.score_batch(reqs)
    assert len(backend.calls) == 1  # every prompt of the batch in one backend call
    sent = backend.calls[0]
    assert len(sent) == 4
    for r in sent:
        assert (r.n, r.sampling.temperature, r.sampling.max_tokens, r.sampling.top_logprobs, r.sampling.logprobs) == \
            (1, 0.0, 1, 20, True)
    yes = (0.8 + 0.1) * 0.9 / ((0.8 + 0.1) * 0.9 + 0.9 * 0.1)
    no = (0.9 * 0.1) / (0.9 * 0.1 + 0.9 * 0.9)
    assert scores[0][0] == pytest.approx([yes, yes])
    assert scores[0][1] == pytest.approx([no])
    assert scores[1] == [pytest.approx([yes])]
    assert tokens == sum(len(r.prompt_ids) + 1 for r in sent)  # prompt tokens + the one generated token


def test_self_judge_caches_prefixes_and_dedupes() -> None:
    verifier, backend = judge()
    verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7.",),))])
    # Round 2: two children of the cached step, sharing it; only the two new steps are sent.
    scores, tokens = verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7.", "7 * 2 = 14."),
                                                                          ("4 + 3 = 7.", "7 * 2 = 8.")))])
    assert len(backend.calls) == 2 and len(backend.calls[1]) == 2
    assert all("4 + 3 = 7." in backend.tokenizer.decode(r.prompt_ids).split("Previous steps")[1] for r in backend.calls[1])
    assert scores[0][0][0] == scores[0][1][0] > 0.5 > scores[0][1][1]
    # Everything cached: no backend call, no tokens.
    again, tokens = verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7.", "7 * 2 = 14."),))])
    assert len(backend.calls) == 2 and tokens == 0
    assert again[0][0] == scores[0][0]
    # Two candidates with the same new step in one batch: judged once.
    verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7.", "so 7"), ("4 + 3 = 7.", "so 7")))])
    assert len(backend.calls[2]) == 1


def test_self_judge_last_step_mode() -> None:
    verifier, backend = judge(mode="last_step")
    scores, _ = verifier.score_batch([Score("self_judge", PROBLEM, (("a = b.", "4 + 3 = 8."),))])
    assert len(backend.calls[0]) == 1
    assert scores[0][0][0] is None and scores[0][0][1] == pytest.approx(0.1)
    scores, _ = verifier.score_batch([Score("self_judge", PROBLEM, (("a = b.",), ("a = b.", "4 + 3 = 8.", "c.")))])
    assert len(backend.calls[1]) == 2  # ("a = b.",) and the new third step
    assert scores[0][1][0] is not None and scores[0][1][1] == pytest.approx(0.1)


def test_self_judge_whole_solution_variant() -> None:
    verifier, backend = judge()
    verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7, so the answer is \\boxed{7}.",), ("4 + 3 = 7.",)))])
    texts = [backend.tokenizer.decode(r.prompt_ids) for r in backend.calls[0]]
    assert "Is this solution correct?" in texts[0] and "Proposed solution" in texts[0]
    assert "Is this step correct?" in texts[1]
    verifier.score_batch([Score("self_judge", PROBLEM, (("4 + 3 = 7.",),), options={"unit": "solution"})])
    assert "Is this solution correct?" in backend.tokenizer.decode(backend.calls[1][0].prompt_ids)


def test_self_judge_neutral_when_neither_token_in_top_k() -> None:
    verifier, _ = judge(JudgeBackend(neither=True))
    scores, _ = verifier.score_batch([Score("self_judge", PROBLEM, (("x",),))])
    assert scores == [[[NEUTRAL]]]


def test_self_judge_fits_the_context_or_gives_none() -> None:
    steps = tuple(f"Step text number {i} " + "." * 40 for i in range(8))
    full = len(judge_text("step", PROBLEM, steps[:-1], steps[-1])) + 40
    verifier, backend = judge(JudgeBackend(context_length=full - 150))
    verifier.score_batch([Score("self_judge", PROBLEM, (steps,))])
    longest = backend.tokenizer.decode(backend.calls[0][-1].prompt_ids)
    assert len(backend.calls[0][-1].prompt_ids) <= full - 150
    assert "Step text number 0" not in longest and "Step text number 6" in longest and "(step 8)" in longest
    verifier, _ = judge(JudgeBackend(context_length=60))
    assert verifier.score_batch([Score("self_judge", PROBLEM, (("x",),))]) == ([[[None]]], 0)


def test_self_judge_bad_options_and_tokenizers() -> None:
    with pytest.raises(TTScaleError, match="mode"):
        judge(mode="every_step")
    with pytest.raises(TTScaleError, match="unknown option"):
        judge(temperature=0.5)
    with pytest.raises(TTScaleError, match="Yes"):
        SelfJudgeVerifier(FakeBackend(lambda *a: ""))  # one token per character: no single-token "Yes"


def test_engine_builds_verifiers_by_name_with_options() -> None:
    from ttscale import Engine

    engine = Engine(backend=JudgeBackend(), checker=ExactChecker(), verifier_options={"self_judge": {"mode": "last_step"}})
    assert engine.scorer("self_judge").mode == "last_step"
    assert engine.scorer("self_judge") is engine.scorer("self_judge")
    assert isinstance(engine.scorer("arith_steps"), ArithStepsVerifier)


# -- self_judge on the real embedded model ------------------------------------------------------------------


@pytest.mark.slow
def test_self_judge_on_embedded_model() -> None:
    from ttscale.backends import make_backend

    backend = make_backend("llamacpp", context_length=1024)
    calls = []
    generate = backend.generate
    backend.generate = lambda reqs: calls.append(len(reqs)) or generate(reqs)  # type: ignore[method-assign]
    try:
        verifier = SelfJudgeVerifier(backend)
        cands = (("She has 4 + 3 = 7 stickers.", "The answer is 7."), ("She has 4 + 3 = 9 stickers.",))
        scores, tokens = verifier.score_batch([Score("self_judge", PROBLEM, cands)])
        assert calls == [3]
        assert [len(s) for s in scores[0]] == [2, 1]
        flat = [x for s in scores[0] for x in s]
        assert all(x is not None and 0.0 <= x <= 1.0 for x in flat)
        assert any(x != NEUTRAL for x in flat)  # Yes/No tokens are among the model's top 20
        assert tokens > 3 * 40
        again, tokens = verifier.score_batch([Score("self_judge", PROBLEM, cands[:1])])
        assert calls == [3] and tokens == 0 and again[0][0] == scores[0][0]
        fresh = SelfJudgeVerifier(backend).score_batch([Score("self_judge", PROBLEM, cands[1:])])[0]
        assert fresh[0][0] == pytest.approx(scores[0][1], abs=1e-3)  # greedy logprobs are deterministic
    finally:
        backend.close()
