"""One-sequence backends (llama.cpp): prompts run one after another, requests in longest-shared-prefix order."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from fakes import ExactChecker, FakeBackend
from helpers import json_reply, serving
from test_step_search import steps_script
from ttscale import Engine
from ttscale.backends.openai_http import OpenAIBackend
from ttscale.backends.prefix_order import PrefixOrder
from ttscale.requests import GenRequest, Sampling


def test_prefix_order_serves_the_closest_prompt_next():
    prompts = [(1, 2, 9), (1, 2, 3, 4), (5, 6), (1, 2, 3, 4)]
    order = PrefixOrder(prompts)
    # The cache holds (5, 6, 7): the prompt sharing most of it goes first, then the copies stay together.
    assert order.next((5, 6, 7)) == 2
    assert order.next((5, 6, 7, 8)) == 1  # no prefix shared: ties go to the smallest prompt
    assert order.next((1, 2, 3, 4, 8)) == 3  # its copy next: all of it is cached
    assert order.next((1, 2, 3, 4, 8)) == 0
    assert not order


class OneSlotFake(FakeBackend):
    slots = 1


def run(backend_cls):
    backend = backend_cls(steps_script(n_steps=3, bad_every=3))
    engine = Engine(backend=backend, checker=ExactChecker())
    results = engine.solve_batch([f"p{i}" for i in range(4)], strategy="particle", budget=4, verifier="arith_steps",
                                 seed=3)
    return results, backend, engine


def test_one_slot_backend_gets_one_prompt_at_a_time_with_the_same_results():
    batched, many, _ = run(FakeBackend)
    serial, one, engine = run(OneSlotFake)
    assert len(many.calls) == 4  # all four prompts' particles in each step's call
    assert len(one.calls) == 4 * 4 and engine.last_batch_usage.backend_calls == 16
    for call in one.calls:  # each call holds one prompt's particles only
        assert len({bytes(r.prompt_ids[:6]) for r in call}) == 1
    firsts = [bytes(c[0].prompt_ids[:6]).decode() for c in one.calls]
    assert firsts == sorted(firsts)  # prompt after prompt, never interleaved
    for a, b in zip(batched, serial):
        assert (a.answer, [c.text for c in a.candidates]) == (b.answer, [c.text for c in b.candidates])
        assert a.ledger.generated_tokens == b.ledger.generated_tokens


class _Server(BaseHTTPRequestHandler):
    props: dict | None = None
    owner = "vllm"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/props" and self.props is not None:
            body = self.props
        elif self.path == "/v1/models":
            body = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": self.owner}]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        json_reply(self, 200, body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("props, owner, slots", [({"total_slots": 4}, "llamacpp", 4), ({"total_slots": 1}, "x", 1),
                                                 (None, "me", 1), (None, "vllm", None)])
def test_slots_found_out_from_the_server(props, owner, slots):
    with serving(type("H", (_Server,), {"props": props, "owner": owner})) as base:
        assert OpenAIBackend(base_url=base, tokenizer="smollm2").slots == slots


class _OneSlotCompletions(BaseHTTPRequestHandler):
    """A loopback completions server that, like llama-cpp-python's, serves one request at a time in
    arrival order; it records that order and how many requests were ever in flight at once."""

    lock = threading.Lock()
    slot = threading.Lock()
    served: list = []
    inflight = [0, 0]  # now, most

    def do_POST(self):  # noqa: N802
        self.complete(self.body())

    def body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def complete(self, body: dict) -> None:
        with self.lock:
            self.inflight[0] += 1
            self.inflight[1] = max(self.inflight)
        with self.slot:
            self.served.append((tuple(body["prompt"]), body.get("seed")))
            time.sleep(0.03)  # decoding
            text = f" s{body.get('seed')}"
        with self.lock:
            self.inflight[0] -= 1
        json_reply(self, 200, {"choices": [{"text": text, "finish_reason": "length"}],
                           "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": 2}})

    def log_message(self, *args):
        pass


def test_one_slot_server_gets_samples_in_prefix_order_with_the_next_already_queued():
    with serving(_OneSlotCompletions) as base:
        backend = OpenAIBackend(model="m", base_url=base, tokenizer="smollm2", slots=1)
        prompts = [(1, 2, 9), (1, 2, 3, 4), (5, 6), (1, 2, 3, 4)]
        reqs = [GenRequest(p, n=2 if i == 2 else 1, sampling=Sampling(max_tokens=2, seed=10 * i))
                for i, p in enumerate(prompts)]
        results = backend.generate(reqs)
    # n=2 became two samples with consecutive seeds; copies and shared prefixes served back to back.
    assert _OneSlotCompletions.served == [((1, 2, 3, 4), 10), ((1, 2, 3, 4), 30), ((1, 2, 9), 0), ((5, 6), 20),
                                          ((5, 6), 21)]
    assert _OneSlotCompletions.inflight[1] == 2  # the next request was waiting while one was served
    assert [[c.text for c in r.completions] for r in results] == [[" s0"], [" s10"], [" s20", " s21"], [" s30"]]
    assert [r.prompt_tokens for r in results] == [3, 4, 4, 4]
    assert backend._held[:2] == (5, 6)


class _TextOnlyOneSlot(_OneSlotCompletions):
    """llama-cpp-python's server answers a token-id prompt with a 500 naming `prompt`."""

    rejected = [0]
    arrived = threading.Condition()

    def do_POST(self):  # noqa: N802
        body = self.body()
        if not isinstance(body["prompt"], list):
            self.complete(body)
            return
        with self.arrived:  # answer only once the next request is on its way too
            self.rejected[0] += 1
            self.arrived.notify_all()
            self.arrived.wait_for(lambda: self.rejected[0] >= 2, timeout=10)
        json_reply(self, 500, {"error": {"message": "validation errors: body.prompt.str: Input should be a valid string"}})


def test_requests_already_in_flight_also_fall_back_to_text_prompts():
    _TextOnlyOneSlot.served = []
    with serving(_TextOnlyOneSlot) as base:
        backend = OpenAIBackend(model="m", base_url=base, tokenizer="smollm2", slots=1, retries=0)
        reqs = [GenRequest((1, 2, i), n=1, sampling=Sampling(max_tokens=2, seed=i)) for i in range(3)]
        results = backend.generate(reqs)
    assert _TextOnlyOneSlot.rejected[0] == 2  # both requests in flight were sent as ids, and both retried as text
    assert backend.prompt_as_ids is False
    assert [r.completions[0].text for r in results] == [" s0", " s1", " s2"]
