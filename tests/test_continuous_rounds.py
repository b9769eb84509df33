"""Continuous rounds (issue 16): a prompt advances as soon as its own requests are answered, results do
not depend on the order answers arrive in, deadlines and cancellation still hold, and lockstep keeps one
backend call per round."""

from __future__ import annotations

import asyncio

import pytest

from fakes import ExactChecker, FakeBackend, KeywordSteps, TicketBackend
from ttscale import Engine
from ttscale.errors import TTScaleError
from ttscale.scoring import register_scorer
from ttscale.strategies import strategies


register_scorer("not_bad")(KeywordSteps)  # a step saying "bad" scores 0, others 1


def uneven(prompt_ids, j, seed):
    """Solutions whose step count and answer depend on the prompt and the sample's seed; some steps bad."""
    text = "".join(chr(i) for i in prompt_ids)
    problem, _, written = text.partition("<assistant>")
    done = written.count("\n\n")
    draw = ((seed or 0) * 31 + j * 7 + len(problem)) % 11
    if done < 1 + len(problem) % 3:
        return f"step {done} {'bad' if draw % 4 == 0 else 'ok'} {draw}\n\nmore"
    return f"The answer is {draw % 3 + (9 if 'bad' in written else 0)}."


PROMPTS = [f"problem {'x' * i}" for i in range(6)]


def solve_all(backend, strategy: str, rounds: str = "auto", **options):
    engine = Engine(backend=backend, checker=ExactChecker(), rounds=rounds)
    results = engine.solve_batch(PROMPTS, strategy=strategy, budget=4, seed=3, **options)
    return [(r.answer, [c.text for c in r.candidates], r.ledger.generated_tokens) for r in results], engine


@pytest.mark.parametrize("strategy,options", [
    ("particle", {"verifier": "not_bad"}),
    ("beam", {"verifier": "not_bad", "beam_width": 2}),
    ("dvts", {"verifier": "not_bad", "beam_width": 2}),
    ("best_of_n", {}),
])
def test_same_seed_same_answers_whatever_the_arrival_order(strategy, options):
    lockstep, _ = solve_all(FakeBackend(uneven), strategy, **options)
    for order_seed in range(3):
        backend = TicketBackend(uneven, order_seed=order_seed)
        continuous, engine = solve_all(backend, strategy, **options)
        assert continuous == lockstep
        assert backend.added, "continuous rounds went through add/poll"
        assert engine.last_batch_usage.backend_calls == len(backend.added)


def test_a_prompt_advances_while_another_ones_request_is_pending():
    slow = "problem slow"
    backend = TicketBackend(uneven, polls=lambda reqs: 50 if slow in backend.tokenizer.decode(reqs[0].prompt_ids) else 1)
    engine = Engine(backend=backend, checker=ExactChecker())
    sched = engine.scheduler()
    tasks = [engine.task(engine.prepare(p), 4, 1, 0.8, 1.0, None, (), {"verifier": "not_bad"}, "particle")
             for p in (slow, "problem fast")]
    slow_job, fast_job = [sched.submit(strategies.get("particle")(t)) for t in tasks]
    while not fast_job.done:
        sched.step()
    assert fast_job.outcome is not None and fast_job.outcome.chosen is not None
    assert not slow_job.done
    slow_tickets = [i for i, reqs in enumerate(backend.added) if slow in backend.tokenizer.decode(reqs[0].prompt_ids)]
    assert slow_tickets == [0] and 0 in backend.open  # its first step is still decoding
    assert len(backend.added) > 2  # the fast prompt went through several steps meanwhile
    while sched.live:
        sched.step()
    assert slow_job.outcome is not None


def test_lockstep_keeps_one_backend_call_per_round_on_an_incremental_backend():
    backend = TicketBackend(uneven)
    results, engine = solve_all(backend, "particle", rounds="lockstep", verifier="not_bad")
    assert not backend.added  # no tickets: every round was one generate
    assert engine.last_batch_usage.backend_calls == len(backend.calls)
    first = {backend.tokenizer.decode(r.prompt_ids).split("<assistant>")[0] for r in backend.calls[0]}
    assert len(first) == len(PROMPTS)  # the first round is one call holding every prompt


def test_continuous_needs_a_backend_that_takes_work_while_it_decodes():
    with pytest.raises(TTScaleError, match="cannot take requests while it decodes"):
        Engine(backend=FakeBackend(uneven), checker=ExactChecker(), rounds="continuous").scheduler()
    with pytest.raises(TTScaleError, match="unknown rounds mode"):
        Engine(backend=FakeBackend(uneven), checker=ExactChecker(), rounds="sometimes")


def test_cancelling_an_async_caller_cancels_its_requests_in_flight():
    def polls(requests):  # the cancelled caller's first step would never end
        return 10**9 if "gone" in backend.tokenizer.decode(requests[0].prompt_ids) else 5

    backend = TicketBackend(uneven, polls=polls, poll_s=0.01)
    engine = Engine(backend=backend, checker=ExactChecker())

    async def main():
        kept = asyncio.create_task(engine.asolve("problem kept", strategy="particle", budget=4, verifier="not_bad"))
        gone = asyncio.create_task(engine.asolve("problem gone xx", strategy="particle", budget=4, verifier="not_bad"))
        await asyncio.sleep(0.03)
        gone.cancel()
        result = await kept
        with pytest.raises(asyncio.CancelledError):
            await gone
        return result

    result = asyncio.run(main())
    assert result.answer is not None
    assert backend.cancelled, "the cancelled caller's pending ticket was cancelled in the backend"


def test_a_deadline_returns_the_best_so_far_with_continuous_rounds():
    backend = TicketBackend(uneven, polls=lambda reqs: 10, poll_s=0.01)
    engine = Engine(backend=backend, checker=ExactChecker())

    async def main():
        return await engine.asolve("problem xx", strategy="particle", budget=4, verifier="not_bad", deadline_s=0.15)

    result = asyncio.run(main())
    assert result.partial and backend.added


def test_requests_a_backend_loses_fail_their_jobs_instead_of_hanging():
    class Forgetful(TicketBackend):
        def poll(self):
            self.open.clear()  # accepted, then dropped: poll has nothing to return
            return []

    engine = Engine(backend=Forgetful(uneven), checker=ExactChecker())
    with pytest.raises(TTScaleError, match="dropped requests it had accepted"):
        engine.solve("problem x", strategy="best_of_n", budget=2)
