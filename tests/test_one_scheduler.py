"""The one scheduler: exact ledgers with model-using verifiers, one backend call per round, failures
isolated per job, handlers per request type."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, fields

import pytest

from fakes import CharTokenizer, ExactChecker, FakeBackend
from ttscale import Engine
from ttscale.errors import TTScaleError
from ttscale.requests import Completion, Generate, GenRequest, GenResult, Sampling, Score
from ttscale.scheduler import Scheduler, register_handler
from ttscale.strategies.base import Outcome

YES, NO = 1000, 2000


class JudgeTokenizer(CharTokenizer):
    def encode(self, text: str) -> list[int]:
        return [{"Yes": YES, "No": NO}[text]] if text in ("Yes", "No") else super().encode(text)


class PolicyAndJudge(FakeBackend):
    """Solves with a script; answers judge and P(IK) questions ("Answer Yes or No.") with top log-probs."""

    def __init__(self) -> None:
        super().__init__(lambda prompt, j, seed: f"Step one.\n\nThe answer is {((seed or 0) + j) % 3}.")
        self.tokenizer = JudgeTokenizer()

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        judge = [r for r in requests if "Answer Yes or No" in self.tokenizer.decode(r.prompt_ids)]
        plain = super().generate([r for r in requests if r not in judge])
        self.calls[-1] = list(requests)  # one call, whatever it held
        answers = iter(plain)
        out = []
        for r in requests:
            if r in judge:
                top = {YES: math.log(0.7), NO: math.log(0.3)}
                comp = Completion([YES], "Yes", "length", logprobs=[math.log(0.7)], top_logprobs=[top])
                out.append(GenResult([comp], prompt_tokens=len(r.prompt_ids)))
            else:
                out.append(next(answers))
        return out


def engine() -> tuple[Engine, PolicyAndJudge]:
    backend = PolicyAndJudge()
    return Engine(backend=backend, checker=ExactChecker()), backend


SUMMED = ("prompt_tokens", "cached_prompt_tokens", "generated_tokens", "verifier_tokens", "candidates")


@pytest.mark.parametrize("strategy,options", [
    ("best_of_n", {"scorer": "self_judge", "aggregate": "weighted"}),
    ("particle", {"verifier": "self_judge"}),
    ("auto", {"estimator": "pik"}),
    ("auto", {"estimator": "pik", "verifier": "self_judge"}),
])
def test_per_prompt_ledgers_add_up_to_the_batch_and_every_call_is_counted(strategy, options):
    eng, backend = engine()
    results = eng.solve_batch([f"problem {i}" for i in range(5)], strategy=strategy, budget=4, seed=1, **options)
    totals = eng.last_batch_usage
    for name in SUMMED:
        assert sum(getattr(r.ledger, name) for r in results) == getattr(totals, name), name
    assert totals.verifier_tokens > 0  # the model-using verifier's prompts were counted
    assert totals.backend_calls == len(backend.calls)  # the verifier's calls are the round's calls


def test_a_model_using_verifier_joins_the_rounds_one_backend_call():
    eng, backend = engine()
    sched = eng.scheduler()
    prompt = tuple(CharTokenizer().encode("<user>q<assistant>"))

    def judged():
        scores = yield Score("self_judge", "q", (("1 + 1 = 2.",), ("1 + 1 = 3.",)))
        return Outcome(candidates=[], chosen=None, details={"scores": scores})

    def sampled():
        [comps] = yield Generate((prompt,), 3, Sampling(seed=1, max_tokens=40))
        return Outcome(candidates=[], chosen=None, details={"n": len(comps)})

    jobs = sched.run([judged(), sampled(), judged()])
    assert all(j.error is None for j in jobs)
    assert len(backend.calls) == 1  # the judge prompts and the samples went together
    assert len(backend.calls[0]) == 1 + 2  # one sample request + two distinct judge prompts (one cached)
    assert jobs[0].outcome.details["scores"] == [[pytest.approx(0.7)], [pytest.approx(0.7)]]
    assert sched.totals.verifier_tokens == sum(j.ledger.verifier_tokens for j in jobs) > 0
    assert jobs[2].ledger.verifier_tokens == 0  # its steps were judged once, counted to the first asker


def test_one_bad_job_fails_alone():
    eng, backend = engine()
    prompt = tuple(CharTokenizer().encode("<user>q<assistant>"))

    class Boom:
        def score_batch(self, requests):
            if any(r.problem == "poison" for r in requests):
                raise RuntimeError("this request broke the scorer")
            return [[[1.0] for _ in r.candidates] for r in requests], 4

    def good(i):
        [comps] = yield Generate((prompt,), 2, Sampling(seed=i, max_tokens=40))
        [[score]] = yield Score("boom", f"ok {i}", (("a",),))
        return Outcome(candidates=[], chosen=None, details={"score": score})

    def unknown_verifier():
        yield Score("nope", "q", (("a",),))

    def poison_for_scorer():
        yield Score("boom", "poison", (("a",),))

    def buggy():
        yield Generate((prompt,), 1, Sampling(seed=0, max_tokens=40))
        raise ValueError("a strategy bug")

    def returns_nothing():
        yield Generate((prompt,), 1, Sampling(seed=0, max_tokens=40))

    def yields_nothing():
        yield None

    scorers = {"boom": Boom()}

    def scorer_for(name):
        if name not in scorers:
            raise TTScaleError(f"unknown verifier {name!r}", "choose one of: boom")
        return scorers[name]

    sched = Scheduler(backend, scorer_for)
    jobs = sched.run([good(0), unknown_verifier(), good(1), poison_for_scorer(), buggy(), good(2),
                      returns_nothing(), yields_nothing(), good(3)])
    assert [j.error is None for j in jobs] == [True, False, True, False, False, True, False, False, True]
    assert all(j.outcome.details["score"] == 1.0 for j in jobs if j.error is None)
    assert "unknown verifier 'nope'" in str(jobs[1].error)
    assert "broke the scorer" in str(jobs[3].error)
    assert "a strategy bug" in str(jobs[4].error)
    assert "returned NoneType instead of an Outcome" in str(jobs[6].error)
    assert "yielded NoneType instead of a request" in str(jobs[7].error)


def test_poison_caller_through_asolve_fails_alone():
    eng, _ = engine()

    async def main():
        calls = [eng.asolve(f"problem {i}", strategy="particle", budget=2, verifier="self_judge") for i in range(4)]
        calls.insert(2, eng.asolve("problem x", strategy="particle", budget=2, verifier="nope"))
        return await asyncio.gather(*calls, return_exceptions=True)

    out = asyncio.run(main())
    assert [isinstance(r, Exception) for r in out] == [False, False, True, False, False]
    assert "nope" in str(out[2])


@dataclass(frozen=True)
class Lookup:
    """A request kind defined in a test: answered by its own handler, no scheduler edit."""

    key: str


@register_handler(Lookup)
def _lookup(jobs, live):
    return {j: j.pending.key.upper() for j in jobs}


def test_a_new_request_kind_is_one_handler():
    eng, _ = engine()

    def strategy():
        value = yield Lookup("abc")
        return Outcome(candidates=[], chosen=None, details={"value": value})

    [job] = eng.scheduler().run([strategy()])
    assert job.outcome.details["value"] == "ABC"


def test_split_exactly_adds_up():
    from ttscale.scheduler import split_exactly

    for total in (0, 1, 7, 100, 12345):
        for weights in ([1], [1, 1, 1], [3, 1, 2, 5], [1] * 17):
            parts = split_exactly(total, weights)
            assert sum(parts) == total and all(p >= 0 for p in parts)


def test_ledger_fields_are_the_ones_summed():
    from ttscale.ledger import Ledger

    assert set(SUMMED) <= {f.name for f in fields(Ledger)}


def test_auto_allocates_the_same_through_solve_batch_bench_asolve_and_serve():
    """`auto` over prompts submitted together means one pool, in solve_batch and in a bench cell alike;
    one prompt alone gets the same run from solve, asolve and serve."""
    from eval_sets import load
    from ttscale.bench.config import config_from_mapping
    from ttscale.bench.executor import GridExecutor
    from ttscale.bench.grid import plan

    def split(prompt, j, seed):  # some prompts always agree, others split 3:2, others never agree
        draw = ((seed or 0) + 31 * j) % 1000
        kind = sum(prompt) % 3
        answer = "7" if kind == 0 else ("1" if draw % 5 < 3 else "2") if kind == 1 else str(draw)
        return f"The answer is {answer}."

    class Grading(ExactChecker):
        def check_many(self, pairs):
            return [a.strip() == b.strip() for a, b in pairs]

    problems = load("arith", n=4, levels=[1])
    cfg = config_from_mapping({"dataset": {"name": "arith", "n": 4, "levels": [1]}, "strategies": ["auto"],
                               "budgets": [8], "seeds": [3], "sampling": {"max_tokens": 64}})
    eng = Engine(backend=FakeBackend(split), checker=ExactChecker())
    s = cfg.sampling
    batch = eng.solve_batch([p.problem for p in problems], strategy="auto", budget=8, seed=3,
                            temperature=s.temperature, top_p=s.top_p, max_tokens=64)
    finished = list(GridExecutor(eng, cfg, problems, checker=Grading()).run(plan(cfg, problems, set())))
    by_problem = {f.item.problem_id: f.records[0] for f in finished}
    assert [by_problem[p.id]["ledger"]["candidates"] for p in problems] == [r.ledger.candidates for r in batch]
    assert len({r.ledger.candidates for r in batch}) > 1  # the pool moved budget between prompts

    chat = [{"role": "user", "content": problems[0].problem}]  # as an OpenAI client sends it
    alone = eng.solve(chat, strategy="auto", budget=8, seed=3, temperature=s.temperature, top_p=s.top_p,
                      max_tokens=64)
    via_async = asyncio.run(eng.asolve(chat, strategy="auto", budget=8, seed=3, temperature=s.temperature,
                                       top_p=s.top_p, max_tokens=64))
    assert [c.text for c in alone.candidates] == [c.text for c in via_async.candidates]

    import httpx

    from helpers import serving_engine

    with serving_engine(eng) as (base, _):
        served = httpx.post(f"{base}/v1/chat/completions", timeout=60, json={
            "messages": chat, "seed": 3, "max_tokens": 64,
            "temperature": s.temperature, "top_p": s.top_p, "ttscale": {"strategy": "auto", "budget": 8}}).json()
    assert served["ttscale"]["ledger"]["candidates"] == alone.ledger.candidates
    assert served["choices"][0]["message"]["content"] == alone.text
