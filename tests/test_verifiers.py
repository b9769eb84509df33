"""Tests for verifiers/: extraction, math-verify equivalence in the deadline pool, clustering.

The checker tests start real worker processes running math-verify (about 1.5 s to
start); the module shares one checker to keep the file well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from verifiers import AnswerChecker, extract_answer, get_checker, grade_many, is_correct, normalize
from verifiers import _worker
from verifiers._pool import DeadlinePool
from verifiers.checker import _answer_task

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 2.0
SLACK_S = 1.0  # kill + relaunch of a worker, thread hand-offs; starting a worker is not counted


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(workers=2, deadline_s=DEADLINE_S) as c:
        c.warm_up()  # start the workers outside any timed test
        yield c


# -- extraction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("nested: \\boxed{\\frac{a}{b^{2}}} done", "\\frac{a}{b^{2}}"),
        ("escaped braces \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("first \\boxed{1}, then \\boxed{2}", "2"),
        ("\\fbox{7} is it", "7"),
        ("\\boxed{3} and a truncated \\boxed{\\frac{4}{", "3"),
        ("\\boxed 5 is the answer", "5"),
        ("\\boxed{12} beats the answer is 13", "12"),
        ("The answer is 11.", "11"),
        ("So the final answer is $\\frac{3}{4}$, as claimed.", "\\frac{3}{4}"),
        ("Answer: 42\nwhich we checked", "42"),
        ("**Answer:** $x^2$", "x^2"),
        ("the answer is\n\n7", "7"),
        ("we had 3 apples and then 12,345 pears", "12345"),
        ("so x = -7", "-7"),
        ("5-3 leaves 2 and the ratio is 3/4", "3/4"),
        ("it costs 2.50 dollars", "2.50"),
        ("roughly .5 of them", ".5"),
        ("no digits here", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        ("Let us think step by step. " * 4000)[:100_000] + " The answer is 7.",
        "\\boxed" + "{" * 10_000 + "1" + "}" * 10_000,
        "\\boxed{" * 15_000,
        "1," * 50_000,
        "-" * 100_000 + "1",
        "the answer is " * 8_000,
        "$" * 100_000,
    ],
    ids=["100kB-prose", "10k-nested-box", "15k-open-boxes", "commas", "minuses", "answer-is", "dollars"],
)
def test_extract_answer_linear_on_hostile_text(text: str) -> None:
    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 5.0  # a guard against quadratic blow-up (minutes here), not a timing


def test_normalize_only_cosmetic() -> None:
    assert normalize("\\left( 3, \\dfrac{\\pi}{2} \\right).") == normalize("(3,\\frac{\\pi}{2})")
    assert normalize("1/2") != normalize("1/3")


# -- equivalence ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold,pred,expected",
    [
        ("1/2", "0.5", True),
        ("\\frac{1}{2}", "1/2", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("2", "2.0", True),
        ("1000", "1,000", True),
        ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
        ("[-2, 7)", "(-2, 7)", False),
        ("3", "4", False),
        ("-3", "3", False),
        ("\\text{even}", "\\text{odd}", False),
    ],
)
def test_equivalent(checker: AnswerChecker, gold: str, pred: str, expected: bool) -> None:
    assert checker.equivalent(gold, pred) is expected


@pytest.mark.parametrize(
    "gold,pred",
    [("7", "7"), ("007", "7"), ("-0", "0"), ("12", "13"), ("123456789", "123456788"), ("-5", "5"),
     ("1/2", "0.5"), ("0.50", "1/2"), ("3/4", ".75"), ("-3/4", "-0.75"), ("10", "10.0"), ("2", "4/2")],
)
def test_in_process_number_fast_path_agrees_with_math_verify(checker: AnswerChecker, gold: str, pred: str) -> None:
    quick = _answer_task(gold, pred)
    assert isinstance(quick, bool), "expected a decision without a worker"
    pool, _ = checker._ensure_pool()
    assert pool.call(_worker.verify_answers, (gold, pred), 30.0) == (True, quick)


def test_check_many_keeps_order(checker: AnswerChecker) -> None:
    pairs = [("1/2", "0.5"), ("3", "3"), ("3", "4"), ("\\pi", "3.14"), ("x", "x")]
    assert checker.check_many(pairs) == [True, True, False, False, True]
    assert checker.check_many([]) == []


def test_cluster(checker: AnswerChecker) -> None:
    assert checker.cluster(["1/2", "0.5", "\\frac{1}{2}", "3", None]) == [0, 0, 0, 1, None]
    assert checker.cluster([None, "4", "3", "3.0", " 3 ", "\\dfrac{8}{2}", None]) == [
        None, 0, 1, 1, 1, 0, None,
    ]
    assert checker.cluster([]) == []


def test_cluster_fast_path_needs_no_pool() -> None:
    c = AnswerChecker()
    try:
        assert c.cluster(["5", " 5", "$5$", None, "5."]) == [0, 0, 0, None, 0]
        assert c._pool is None  # identical normal forms never started a worker
    finally:
        c.close()


def test_is_correct_and_grade_many(checker: AnswerChecker) -> None:
    assert is_correct("... so it is $\\boxed{\\frac12}$.", "0.5", checker) is True
    assert is_correct("The answer is 7.", "8", checker) is False
    assert is_correct("I do not know.", "1", checker) is False
    texts = ["so \\boxed{4}", "the answer is 5", "nothing", "we get 2/4"]
    assert grade_many(texts, ["4", "6", "1", "1/2"], checker) == [True, False, False, True]


def test_shared_checker_is_one_instance() -> None:
    assert get_checker() is get_checker()


def test_safe_from_threads_and_asyncio(checker: AnswerChecker) -> None:
    pairs = [(f"{k}/2", f"{k / 2}") for k in range(1, 9)] + [("1", "2")] * 4
    expected = [True] * 8 + [False] * 4
    with ThreadPoolExecutor(4) as threads:
        assert list(threads.map(lambda p: checker.equivalent(*p), pairs)) == expected

    async def main() -> list[bool | None]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(None, checker.equivalent, *p) for p in pairs))

    assert asyncio.run(main()) == expected


def test_closed_checker_refuses() -> None:
    with AnswerChecker() as c:
        pass
    with pytest.raises(RuntimeError):
        c.equivalent("1", "2")


# -- adversarial input and the deadline ----------------------------------------------------

NESTED = "{" * 10_000 + "1" + "}" * 10_000
PROSE = ("Let us think about 3 apples. " * 4000)[:100_000]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.equivalent("5", "10^{10^{10}}"),  # sympy would compute 10^(10^10)
        lambda c: c.equivalent("10^{10^{10}}", "5"),
        lambda c: c.equivalent("5", NESTED),
        lambda c: c.equivalent("5", PROSE),
        lambda c: c.equivalent_text("$5$", PROSE),
        lambda c: c.equivalent_text("$5$", "$" + NESTED + "$"),
        lambda c: is_correct(PROSE + " so \\boxed{10^{10^{10}}}", "5", c),
    ],
    ids=["power-tower-pred", "power-tower-gold", "nested-braces", "100kB", "100kB-text", "nested-text", "is_correct"],
)
def test_adversarial_input_returns_within_deadline(checker: AnswerChecker, call) -> None:
    checker.warm_up()  # a worker killed by an earlier case may still be starting: not timed here
    start = time.perf_counter()
    verdict = call(checker)
    elapsed = time.perf_counter() - start
    assert verdict in (None, False)
    assert elapsed < DEADLINE_S + SLACK_S
    assert checker.equivalent("1/2", "0.5") is True  # the pool still works afterwards


def test_pool_kills_a_stuck_call_and_replaces_the_worker() -> None:
    pool = DeadlinePool(1)
    try:
        assert pool.call(operator.add, (1, 2), 60.0) == (True, 3)  # waits for the start
        start = time.perf_counter()
        ok, reason = pool.call(time.sleep, (60,), 0.5)
        assert not ok and "deadline" in reason
        assert time.perf_counter() - start < 0.5 + SLACK_S
        assert pool.restarts == 1
        assert pool.call(operator.add, (2, 2), 60.0) == (True, 4)
    finally:
        pool.close()


def test_pool_survives_a_worker_crash_and_an_exception() -> None:
    pool = DeadlinePool(1)
    try:
        ok, reason = pool.call(os._exit, (3,), 60.0)
        assert not ok and "died" in reason
        ok, reason = pool.call(operator.truediv, (1, 0), 60.0)
        assert not ok and "ZeroDivisionError" in reason
        ok, reason = pool.call(bytearray, (8 * 2**30,), 60.0)  # over the worker's 4 GiB cap
        assert not ok and "MemoryError" in reason
        assert pool.restarts == 1  # the crash replaced the worker; the exceptions did not
        assert pool.call(operator.mul, (6, 7), 60.0) == (True, 42)
    finally:
        pool.close()


# -- grader cases (shared/eval_sets/grader_cases.jsonl) --------------------------------------

# Rows without caveat/format quirks where we disagree with the upstream label: none.
# Rows we disagree on overall, each a documented upstream convention (caveat_kind "convention"):
KNOWN_DISAGREEMENTS = {
    "hm-01": "hendrycks is_equiv compares '10, 4, -2' and '4, 10, -2' as ordered lists; math-verify as sets",
    "hm-08": "same: '0.1, 4, 2' vs '4, .1, 2' are equal as sets, unequal as hendrycks' ordered lists",
}


def _data_dir() -> Path:
    return Path(os.environ.get("TTSCALE_DATA_DIR") or REPO.parent / "shared" / "eval_sets")


def test_grader_cases_agree_with_upstream_labels() -> None:
    """Our checker against the 286 upstream-labelled answer-equivalence cases.

    math-verify rows are free text (math-verify extracts from ``$...$``, ``\\boxed{}``, plain
    numbers), so they go through ``equivalent_text`` with the row's ``options`` honoured
    (match_types, precision, strict, allow_set_relation_comp), as math-verify's own tests
    grade them. hendrycks rows are bare answer strings, so they go through ``equivalent``
    (our answer path). Measured: 284/286 overall, 242/242 on rows with no caveat and no
    format quirk; the two misses are in KNOWN_DISAGREEMENTS.
    """
    path = _data_dir() / "grader_cases.jsonl"
    if not path.exists():
        pytest.skip(f"grader_cases.jsonl not found in {path.parent} (set TTSCALE_DATA_DIR)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) == 286

    with AnswerChecker(workers=2, deadline_s=10.0) as c:  # generous: this tests semantics, not speed
        text_rows = [r for r in rows if r["grader"] == "math-verify"]
        bare_rows = [r for r in rows if r["grader"] != "math-verify"]
        verdicts = dict(
            zip(
                [r["id"] for r in text_rows],
                c.check_many_text([(r["gold"], r["pred"], r["options"]) for r in text_rows]),
            )
        )
        verdicts.update(
            zip([r["id"] for r in bare_rows], c.check_many([(r["gold"], r["pred"]) for r in bare_rows]))
        )

    disagree = {r["id"] for r in rows if verdicts[r["id"]] is not r["equal"]}
    clean = [r for r in rows if not r["caveat_kind"] and not r["format_quirks"]]
    clean_agree = sum(verdicts[r["id"]] is r["equal"] for r in clean)
    print(f"grader cases: {len(rows) - len(disagree)}/{len(rows)} overall, {clean_agree}/{len(clean)} clean")
    assert len(clean) == 242
    assert clean_agree >= 242
    assert disagree <= set(KNOWN_DISAGREEMENTS), sorted(disagree - set(KNOWN_DISAGREEMENTS))
    assert len(rows) - len(disagree) >= 284
