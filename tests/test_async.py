"""asolve: shared batching across concurrent callers, deadlines with anytime answers, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from fakes import SlowBackend, ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError


def answer_script(prompt_ids, j, seed):
    return f"work \\boxed{{{7 if j else 4}}}"


def make(backend):
    return Engine(backend=backend, checker=ExactChecker())


def test_50_concurrent_callers_share_one_backend_call_per_round():
    backend = FakeBackend(answer_script)
    engine = make(backend)

    async def main():
        return await asyncio.gather(*(engine.asolve(f"problem {i}", budget=4) for i in range(50)))

    results = asyncio.run(main())
    assert len(results) == 50 and all(r.answer == "7" and not r.partial for r in results)
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 50
    assert engine.async_round_sizes == [50]


def test_late_callers_join_the_next_round():
    backend = SlowBackend(answer_script, delay=0.2)
    engine = make(backend)

    async def main():
        first = [asyncio.create_task(engine.asolve(f"a{i}", budget=2)) for i in range(5)]
        await asyncio.sleep(0.05)  # the first round is running now
        second = [asyncio.create_task(engine.asolve(f"b{i}", budget=2)) for i in range(5)]
        return await asyncio.gather(*first, *second)

    asyncio.run(main())
    assert engine.async_round_sizes == [5, 5]


def test_deadline_returns_best_answer_so_far_and_stops_spending():
    backend = SlowBackend(answer_script, delay=0.3)
    engine = make(backend)
    events = []

    async def main():
        return await engine.asolve("q", budget=8, deadline_s=0.5, on_event=events.append)

    t = time.perf_counter()
    r = asyncio.run(main())
    elapsed = time.perf_counter() - t
    assert r.partial
    assert 0 < len(r.candidates) < 8 and r.answer is not None  # some waves done, not all
    assert elapsed < 0.5 + 2 * 0.3 + 0.5
    assert len(backend.calls) < 4
    assert {"type": "deadline"} in events and any(e["type"] == "answer_changed" for e in events)
    assert any(e["type"] == "candidates_finished" and e["count"] == 2 for e in events)


def test_cancellation_drops_pending_generations():
    backend = SlowBackend(answer_script, delay=0.2)
    engine = make(backend)

    async def main():
        victim = asyncio.create_task(engine.asolve("victim", budget=8, deadline_s=30))  # 4 waves
        other = asyncio.create_task(engine.asolve("other", budget=2))
        await asyncio.sleep(0.3)
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        await other
        await asyncio.sleep(0.5)

    asyncio.run(main())
    victim_requests = [r for call in backend.calls for r in call if "victim" in "".join(map(chr, r.prompt_ids))]
    assert len(victim_requests) < 4  # the remaining waves were never sent


def test_chat_messages_with_system_prompt():
    backend = FakeBackend(answer_script)
    engine = make(backend)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3+4?"}]
    r = asyncio.run(engine.asolve(messages, budget=3))
    prompt = "".join(map(chr, backend.calls[0][0].prompt_ids))
    assert "<system>Be brief." in prompt and "<user>What is 3+4?" in prompt
    assert r.problem == "What is 3+4?" and r.text and r.answer == "7" and r.ledger.generated_tokens > 0


def test_async_bad_input():
    engine = make(FakeBackend(answer_script))
    with pytest.raises(TTScaleError, match="deadline_s"):
        asyncio.run(engine.asolve("q", deadline_s=0))
    with pytest.raises(TTScaleError, match="no non-empty user message"):
        asyncio.run(engine.asolve([{"role": "system", "content": "x"}]))


def test_a_caller_arriving_while_a_round_starts_is_answered():
    """A job submitted after the loop picked its batch, but before the worker thread's round began, is
    served in that round; it must still be answered (it once hung forever, and `ttscale serve` with it)."""
    import threading

    engine = make(FakeBackend(answer_script))
    entered, go = threading.Event(), threading.Event()

    async def main():
        first = asyncio.create_task(engine.asolve("a", budget=1))
        await asyncio.sleep(0)  # asolve made the async scheduler and its loop
        sched = engine._async[1].scheduler
        step = sched.step

        def held_step():
            entered.set()
            go.wait(5)
            return step()

        sched.step = held_step
        await asyncio.to_thread(entered.wait, 5)
        second = asyncio.create_task(engine.asolve("b", budget=1))
        await asyncio.sleep(0)  # submitted: it is live, yet not in the batch the loop picked
        go.set()
        return await asyncio.wait_for(asyncio.gather(first, second), 10)

    results = asyncio.run(main())
    assert [r.answer for r in results] == ["4", "4"]
