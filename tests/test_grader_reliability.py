"""The grader never calls different numbers equal, decides long numeric answers, bounds each call's latency
(waiting for a worker included), and spends one deadline per hostile answer, not one per pair (issue 17)."""

from __future__ import annotations

import threading

import pytest

from verifiers.checker import AnswerChecker, is_correct
from verifiers.exact import exact_equal, exact_value
from verifiers.extract import extract_answer

NEAR_MISSES = [  # (gold, prediction): all different numbers
    (r"\frac{1}{101!}", r"\boxed{\frac{1}{100!}}"),
    ("0.0000002", r"\boxed{0.0000001}"),
    ("1000001", r"\boxed{1000000}"),
    (r"\frac{1}{3}", r"\boxed{0.3}"),
    ("2^{-30}", r"\boxed{2^{-31}}"),
    ("1.0000001", r"\boxed{1}"),
    (r"\frac{22}{7}", r"\boxed{3.14159}"),
    ("123456789012345678901", r"\boxed{123456789012345678900}"),
    ("10^{-9}", r"\boxed{0}"),
    ("0.1", r"\boxed{0.10000001}"),
    ("2e-7", r"\boxed{1e-7}"),  # not plain arithmetic here: math-verify, then a relative check
    ("1.0000001", r"\boxed{1.0}"),
]
EQUALS = [
    (r"\frac{1}{100!}", r"\boxed{\frac{1}{100!}}"),
    ("0.5", r"\boxed{\frac{1}{2}}"),
    ("1200", r"\boxed{1,200}"),
    (r"\frac{1}{3}", r"\boxed{0.33}"),
    ("1024", r"\boxed{2^{10}}"),
    ("6", r"\boxed{3!}"),
    ("10", r"\boxed{10\%}"),
]


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(workers=2, deadline_s=5.0) as c:
        yield c


@pytest.mark.parametrize("gold, pred", NEAR_MISSES)
def test_near_misses_are_never_equal(checker, gold, pred) -> None:
    assert is_correct(pred, gold, checker) is False


@pytest.mark.parametrize("gold, pred", EQUALS)
def test_equal_values_are_equal(checker, gold, pred) -> None:
    assert is_correct(pred, gold, checker) is True


def test_long_numeric_answer_is_decided_exactly(checker) -> None:
    """A sum of 3,000 terms (about 6 kB) is decided in-process, not cut off by the length screen."""
    terms = " + ".join(str(i) for i in range(1, 3001))
    assert len(terms) > 6000
    calls = checker.stats().pool_calls
    assert checker.equivalent(str(3000 * 3001 // 2), terms) is True
    assert checker.equivalent(str(3000 * 3001 // 2 + 1), terms) is False
    assert checker.stats().pool_calls == calls


def test_exact_values_are_bounded() -> None:
    assert exact_value("2^{2^{2^{2^{100}}}}") is None  # refused, not computed
    assert exact_value("5000!") is None
    assert exact_value(r"\sqrt{2}") is None  # not plain arithmetic: math-verify decides
    assert exact_equal("x + 1", "1 + x") is None


def test_hostile_answer_costs_one_deadline_not_one_per_pair() -> None:
    hostile = "2^{2^{30}}"
    with AnswerChecker(workers=2, deadline_s=0.5) as c:
        c.warm_up()
        first = c.check_many([("7", hostile)])
        calls = c.stats().pool_calls
        again = c.check_many([(r, hostile) for r in ("1", "2", "x+1", "2x")])
        assert first == [None] and again == [None] * 4
        assert c.stats().pool_calls == calls  # no more worker time spent on it
        # The reference it was compared with is not blamed; a repeated pair is answered from the cache.
        assert c.equivalent("1", "x^0") is True
        assert c.equivalent("x^2+1", "1+x^2") is True
        calls = c.stats().pool_calls
        assert c.equivalent("x^2+1", "1+x^2") is True and c.stats().pool_calls == calls


def test_cluster_uses_exact_values_before_the_pool() -> None:
    with AnswerChecker(workers=1, deadline_s=2.0) as c:
        ids = c.cluster(["12", "12.0", r"\frac{24}{2}", "13", None, "1,200", "1200"])
        assert ids == [0, 0, 0, 1, None, 2, 2]
        assert c.stats().pool_calls == 0


def test_waiting_for_a_busy_worker_counts_in_the_deadline() -> None:
    """With the only worker stuck on a hostile input, another thread's call gives up within its own
    deadline instead of queueing behind it (undecided, not late)."""
    hostile = "3^{2^{30}}"
    with AnswerChecker(workers=1, deadline_s=3.0) as c:
        c.warm_up()
        t = threading.Thread(target=c.check_many, args=([("1", hostile)],))
        t.start()
        import time

        time.sleep(0.3)
        quick = AnswerChecker.__new__(AnswerChecker)  # same pool, a much shorter deadline
        quick.__dict__.update(c.__dict__)
        quick.deadline_s = 0.2
        assert quick.check_many([("x^2", "x*x")]) == [None]
        t.join()


@pytest.mark.parametrize("text, answer", [
    ("The answer is simply 3.", "3"),  # a filler word before the value: the value (issue 19)
    ("The answer is You simply need to add the cost of pencils to the value of 36 cents.", None),
    ("So the answer is indeed 50.", "50"),
    ("The answer is 17 * 3 ≠ 51.", None),
    ("The answer is 21 nuts.", "21 nuts"),
    ("The answer is x = 5.", "x = 5"),
    ("The answer is Evelyn.", "Evelyn"),
    ("First 3 + 4 = 7, so 7 in all", "7"),
])
def test_prose_is_no_answer(text, answer) -> None:
    assert extract_answer(text) == answer


def test_review_edge_cases() -> None:
    assert exact_value(r"2\frac{1}{2}") is None  # a mixed number: not a product, math-verify decides
    assert exact_value(r"\frac{1}{" * 1500 + "2" + "}" * 1500) is None  # too deep: refused, no crash
    assert exact_equal(r"\frac{1}{300}", "0.00") is False  # a rounded zero matches nothing
    assert exact_equal(r"\frac{100}{3}", r"33.33\%") is True  # places counted on the number itself
    with AnswerChecker(workers=1, deadline_s=2.0) as c:
        assert c.cluster([r"\frac{1}{3}", "0.333", "0.33", "0.34"]) == [0, 0, 0, 1]
        assert c.stats().pool_calls == 0


@pytest.mark.parametrize("text, answer", [
    ("the answer is:\n$$\n42\n$$", "42"),
    ("so the answer is 42. Check: the answer is consistent with the data.", "42"),
    ("The answer is correct.", None),
    ("The answer is sqrt(2).", "sqrt(2)"),
])
def test_answer_is_edge_cases(text, answer) -> None:
    assert extract_answer(text) == answer
