"""Answer equivalence with math-verify, in worker processes with a hard deadline.

math-verify (sympy) can take unbounded time or memory on hostile answers and its
own timeout only works in the main thread, so it never runs in the caller's
process: every comparison goes to a ``DeadlinePool`` worker. A comparison that
does not finish in ``deadline_s`` is ``None`` (undecided), never a hang.
"""

from __future__ import annotations

import atexit
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from verifiers import _worker
from verifiers._pool import DeadlinePool
from verifiers.exact import exact_equal, exact_value, values_agree
from verifiers.extract import extract_answer, normalize

# Longer answers are not sent to math-verify: parsing 100 kB of LaTeX is where the time goes. Long
# numeric answers (a sum of thousands of terms) are still decided, exactly, by ``verifiers.exact``.
# Texts (``equivalent_text``) may be longer.
MAX_ANSWER_CHARS = 1_000
MAX_TEXT_CHARS = 200_000
MAX_BRACE_DEPTH = 100  # deeper nesting than this is garbage, not an answer


@dataclass
class CheckerStats:
    """What a checker has done so far (for benchmarks and the ledger)."""

    pool_calls: int = 0  # comparisons sent to a worker
    decided_up_front: int = 0  # answered without a worker: equal normal forms or screened out
    undecided: int = 0  # pool calls that gave None: deadline, crash or math-verify error
    total_call_s: float = 0.0  # summed wall time of pool calls
    max_call_s: float = 0.0  # slowest single pool call


class AnswerChecker:
    """Decides whether two answers are mathematically equal (math-verify semantics).

    The first argument is the reference ("gold"): math-verify is asymmetric (e.g. it
    reads ``x = 2`` as an assignment on the gold side). Results are ``True``, ``False``
    or ``None`` when no decision came within ``deadline_s`` (or math-verify raised).
    Thread-safe; the worker pool starts on first use.
    """

    def __init__(self, workers: int = 2, deadline_s: float = 0.9, cluster_deadline_s: float = 1.7,
                 cache_size: int = 100_000) -> None:
        self.workers = workers
        # Bounds of a whole call, waiting for a worker included, with room under the promised 1 s (a pair)
        # and 2 s (`cluster`) for the thread hand-offs around them.
        self.deadline_s = deadline_s
        self.cluster_deadline_s = cluster_deadline_s
        self.cache_size = cache_size
        self._verdicts: OrderedDict[tuple, bool] = OrderedDict()  # decided calls (pair and options)
        self._good: OrderedDict[str, None] = OrderedDict()  # answers a worker has handled in time
        self._slow: OrderedDict[str, None] = OrderedDict()  # answers that made a worker miss its deadline
        self._pool: DeadlinePool | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._stats = CheckerStats()

    # -- lifecycle ----------------------------------------------------------------------

    def _ensure_pool(self) -> tuple[DeadlinePool, ThreadPoolExecutor]:
        with self._lock:
            if self._closed:
                raise RuntimeError("AnswerChecker is closed")
            if self._pool is None:
                self._pool = DeadlinePool(self.workers)
                # One parent thread per worker drives check_many; each waits on its own call.
                self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="verifier")
            assert self._threads is not None
            return self._pool, self._threads

    def warm_up(self, timeout_s: float = 120.0) -> None:
        """Start the workers now and wait until all are ready (otherwise the first call does)."""
        pool, _ = self._ensure_pool()
        if not pool.wait_all_idle(timeout_s):
            raise TimeoutError(f"verifier workers not ready after {timeout_s}s")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, threads = self._pool, self._threads
            self._pool = self._threads = None
        if pool is not None:
            pool.close()
        if threads is not None:
            threads.shutdown(wait=True)

    def __enter__(self) -> AnswerChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> CheckerStats:
        """A snapshot of the counters since this checker was made."""
        with self._lock:
            return replace(self._stats)

    @property
    def restarts(self) -> int:
        """Workers killed and replaced so far (deadline misses and crashes)."""
        return self._pool.restarts if self._pool is not None else 0

    # -- comparisons ----------------------------------------------------------------------

    def equivalent(self, a: str, b: str) -> bool | None:
        """Are the bare answers ``a`` (reference) and ``b`` equal? ``None``: undecided."""
        return self.check_many([(a, b)])[0]

    def check_many(self, pairs: list[tuple[str, str]], end: float | None = None) -> list[bool | None]:
        """``equivalent`` for each pair, in parallel over the workers. Each pair is decided within the
        checker's deadline from when a thread takes it up (waiting for a worker included), or ``None``;
        with ``end`` (a ``time.monotonic()`` instant), everything not decided by then is ``None``."""
        return self._run([_answer_task(a, b) for a, b in pairs], end)

    def equivalent_text(
        self, gold: str, pred: str, options: Mapping[str, Any] | None = None
    ) -> bool | None:
        """Free-text comparison: math-verify extracts the answers itself (no ``extract_answer``).

        ``options`` are math-verify test-helper settings: ``match_types`` ("latex", "expr"),
        ``precision``, ``strict``, ``allow_set_relation_comp``.
        """
        return self.check_many_text([(gold, pred, options)])[0]

    def check_many_text(
        self, items: list[tuple[str, str, Mapping[str, Any] | None]]
    ) -> list[bool | None]:
        """``equivalent_text`` for each ``(gold, pred, options)``, in parallel."""
        return self._run([_text_task(g, p, o) for g, p, o in items])

    def cluster(self, answers: list[str | None]) -> list[int | None]:
        """Cluster id per answer (``None`` for ``None``), ids in order of first appearance.

        Equal normal forms share a cluster with no pool call; each new form is compared
        (as prediction) with one representative (as reference) per existing cluster, and
        joins the first that matches. Undecided counts as different.
        """
        end = time.monotonic() + self.cluster_deadline_s
        by_form: dict[str, int] = {}
        reps: list[str] = []
        rep_values: list[Any] = []  # each representative's exact value (None: not a plain number)
        ids: list[int | None] = []
        for answer in answers:
            if answer is None:
                ids.append(None)
                continue
            form = normalize(answer)
            if form not in by_form:
                value = exact_value(form)
                match = None
                if value is not None:  # numbers: decided in-process against every numeric representative
                    match = next((k for k, rv in enumerate(rep_values) if rv is not None and values_agree(rv, value)), None)
                if match is None:
                    todo = [k for k, rv in enumerate(rep_values) if value is None or rv is None]
                    verdicts = self.check_many([(reps[k], answer) for k in todo], end=end) if todo else []
                    match = next((todo[i] for i, v in enumerate(verdicts) if v is True), None)
                if match is None:
                    match = len(reps)
                    reps.append(answer)
                    rep_values.append(value)
                by_form[form] = match
            ids.append(by_form[form])
        return ids

    # -- plumbing -----------------------------------------------------------------------

    def _run(self, tasks: list[tuple[Any, tuple] | bool | None], end: float | None = None) -> list[bool | None]:
        """Run the pool tasks (see ``check_many`` for the deadlines); plain ``bool``/``None`` entries are
        decided up front.

        Decided pairs are cached, and an answer that once made a worker miss its deadline is not sent
        again (undecided at once): hostile input costs one deadline, not one per pair."""
        if self._closed:
            raise RuntimeError("pool is closed")
        todo = [t for t in tasks if isinstance(t, tuple)]
        with self._lock:
            self._stats.decided_up_front += len(tasks) - len(todo)
        if not todo:
            return list(tasks)  # type: ignore[arg-type]
        pool, threads = self._ensure_pool()

        def one(task: tuple[Any, tuple]) -> bool | None:
            key, texts = _key(task[1]), task[1][:2]  # the whole call (options included); its two answers
            with self._lock:
                if key in self._verdicts:
                    self._verdicts.move_to_end(key)
                    self._stats.decided_up_front += 1
                    return self._verdicts[key]
                if texts[1] in self._slow:
                    self._stats.undecided += 1
                    return None
            start = time.perf_counter()
            left = self.deadline_s if end is None else min(self.deadline_s, end - time.monotonic())
            ok, value = pool.call(task[0], task[1], left) if left > 0 else (False, "no time left")
            elapsed = time.perf_counter() - start
            with self._lock:
                st = self._stats
                st.pool_calls += 1
                st.undecided += not ok
                st.total_call_s += elapsed
                st.max_call_s = max(st.max_call_s, elapsed)
                if ok:
                    _remember(self._verdicts, key, bool(value), self.cache_size)
                    for x in texts:
                        _remember(self._good, x, None, self.cache_size)
                elif str(value).startswith("deadline") and left >= self.deadline_s and texts[1] not in self._good:
                    # The worker ran it for a full deadline and ran out of time: blame the prediction
                    # (references are the dataset's own answers), unless it was handled in time before.
                    _remember(self._slow, texts[1], None, self.cache_size)
            return bool(value) if ok else None

        results = iter(threads.map(one, todo) if len(todo) > 1 else [one(todo[0])])
        return [next(results) if isinstance(t, tuple) else t for t in tasks]


def _key(args: tuple) -> Any:
    """A cache key for a call: the call itself when short, a digest of it when long (bounded memory)."""
    text = repr(args)
    return args if len(text) <= 512 else hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _remember(cache: OrderedDict, key: Any, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _answer_task(gold: str, pred: str) -> tuple[Any, tuple] | bool | None:
    """A pool task for two bare answers, or the verdict when no pool call is needed."""
    if gold is None or pred is None:
        return None
    g, p = normalize(gold), normalize(pred)
    if g == p:
        return True
    quick = _compare_plain_numbers(g, p)
    if quick is not None:
        return quick
    exact = exact_equal(g, p)  # numeric answers: exact values, never math-verify's float rounding
    if exact is not None:
        return exact
    if not _sane(gold, MAX_ANSWER_CHARS) or not _sane(pred, MAX_ANSWER_CHARS):
        return None
    return (_worker.verify_answers, (gold, pred))


_INTEGER = re.compile(r"-?\d{1,40}")
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})(?:/\d{1,40})?")


def _compare_plain_numbers(gold: str, pred: str) -> bool | None:
    """Decide two plain numbers in-process where math-verify must agree, else ``None``.

    Two integers: equal or not (math-verify compares integers exactly). Other plain numbers
    (decimals, a/b): only equality is decided; math-verify's rounding may call close
    values equal, so "unequal" still goes to the pool.
    """
    if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(pred):
        return int(gold) == int(pred)
    if _PLAIN_NUMBER.fullmatch(gold) and _PLAIN_NUMBER.fullmatch(pred):
        try:
            if Fraction(gold) == Fraction(pred):
                return True
        except (ValueError, ZeroDivisionError):
            pass
    return None


def _text_task(
    gold: str, pred: str, options: Mapping[str, Any] | None
) -> tuple[Any, tuple] | bool | None:
    if not _sane(gold, MAX_TEXT_CHARS) or not _sane(pred, MAX_TEXT_CHARS):
        return None
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (options or {}).items()))
    return (_worker.verify_texts, (gold, pred, items))


def _sane(s: str, max_chars: int) -> bool:
    """Cheap screen for input no grader can decide: too long or absurdly nested."""
    if len(s) > max_chars:
        return False
    depth = deepest = 0
    for c in s:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth -= 1
    return deepest <= MAX_BRACE_DEPTH


_default: AnswerChecker | None = None
_default_lock = threading.Lock()


def get_checker() -> AnswerChecker:
    """The process-wide shared checker (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AnswerChecker()
            atexit.register(_default.close)
        return _default


def is_correct(prediction_text: str, gold: str, checker: AnswerChecker | None = None) -> bool | None:
    """Grade a model output against the gold answer: extract, then compare (gold first).

    ``False`` when no answer can be extracted; ``None`` when undecided.
    """
    pred = extract_answer(prediction_text)
    if pred is None:
        return False
    return (checker or get_checker()).equivalent(gold, pred)


def grade_many(
    prediction_texts: list[str], golds: list[str], checker: AnswerChecker | None = None
) -> list[bool | None]:
    """``is_correct`` for many outputs at once, in parallel over the checker's workers."""
    if len(prediction_texts) != len(golds):
        raise ValueError("prediction_texts and golds differ in length")
    preds = [extract_answer(t) for t in prediction_texts]
    checker = checker or get_checker()
    found = [(g, p) for g, p in zip(golds, preds) if p is not None]
    verdicts = iter(checker.check_many(found))
    return [next(verdicts) if p is not None else False for p in preds]
