"""A scripted fake backend for fast unit tests of strategy and scheduler logic (never used by users).

It answers each request with completions drawn from a script: a function of (prompt ids, sample index,
seed) -> text. Token ids are one id per character so prefixes and lengths stay meaningful.
"""

from __future__ import annotations

import time
from typing import Callable

from ttscale.requests import Completion, GenRequest, GenResult

Script = Callable[[tuple[int, ...], int, int | None], str]


class CharTokenizer:
    """One token per character; the chat template is just the user text plus a marker."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, special: bool = False) -> str:
        return "".join(chr(i) for i in ids)

    def chat_prompt(self, messages) -> list[int]:
        return self.encode("".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>")


class FakeBackend:
    name = "fake"
    model = "scripted"
    model_path = None

    def __init__(self, script: Script, context_length: int = 100_000) -> None:
        self.script = script
        self.tokenizer = CharTokenizer()
        self.context_length = context_length
        self.calls: list[list[GenRequest]] = []

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            comps = []
            for j in range(r.n):
                seed = None if r.sampling.seed is None else r.sampling.seed + j
                full = self.script(r.prompt_ids, j, seed)
                text, stop, finish = full[: r.sampling.max_tokens], None, "stop"
                if len(full) > r.sampling.max_tokens:
                    finish = "length"
                hits = [(text.find(s), s) for s in r.sampling.stop if s and s in text]
                if hits:  # like real backends: text stops before the stop string, ids include it
                    cut, stop = min(hits)
                    text, finish = text[:cut], "stop"
                ids = self.tokenizer.encode(text + (stop or ""))
                lps = [-0.1 * (1 + j)] * len(ids) if r.sampling.logprobs else None
                comps.append(Completion(token_ids=ids, text=text, finish_reason=finish, logprobs=lps, stop=stop))
            out.append(GenResult(completions=comps, prompt_tokens=len(r.prompt_ids)))
        return out

    def close(self) -> None:
        pass


class SlowBackend(FakeBackend):
    """Each backend call takes `delay` seconds, like a real model would."""

    def __init__(self, script, delay: float) -> None:
        super().__init__(script)
        self.delay = delay

    def generate(self, requests):
        time.sleep(self.delay)
        return super().generate(requests)


class ExactChecker:
    """Clusters answers by exact string: enough for logic tests, no process pool."""

    def cluster(self, answers: list[str | None]) -> list[int | None]:
        ids: dict[str, int] = {}
        return [None if a is None else ids.setdefault(a.strip(), len(ids)) for a in answers]


class TicketBackend(FakeBackend):
    """A scripted backend with the incremental side (add / poll / cancel) that continuous rounds use.

    Each group of requests (a ticket) ends after `polls(requests)` polls (default 1); among tickets that
    end at the same poll, a seeded shuffle decides which are returned, one at a time, so answers arrive
    in an order unrelated to the order they were sent in.
    """

    def __init__(self, script, order_seed: int = 0, polls=None, poll_s: float = 0.0) -> None:
        super().__init__(script)
        self.poll_s = poll_s  # wall time of one poll, like a decode step
        import random

        self.rng = random.Random(order_seed)
        self.polls = polls or (lambda requests: 1)
        self.open: dict[int, tuple[list[GenRequest], int]] = {}  # ticket -> (requests, polls left)
        self.added: list[list[GenRequest]] = []
        self.cancelled: list[int] = []

    def add(self, requests: list[GenRequest]) -> int:
        ticket = len(self.added)
        self.added.append(list(requests))
        self.open[ticket] = (list(requests), max(1, self.polls(requests)))
        return ticket

    def poll(self):
        if not self.open:
            return []
        while True:
            time.sleep(self.poll_s)
            self.open = {t: (r, left - 1) for t, (r, left) in self.open.items()}
            due = [t for t, (_, left) in self.open.items() if left <= 0]
            if due:
                ticket = self.rng.choice(due)
                requests, _ = self.open.pop(ticket)
                return [(ticket, FakeBackend.generate(self, requests))]

    def cancel(self, ticket: int) -> None:
        if self.open.pop(ticket, None) is not None:
            self.cancelled.append(ticket)


def many_steps(prompt_ids, j, seed) -> str:
    """A script whose solutions never finish: a particle run goes on for max_steps rounds."""
    return "1 + 1 = 2\n\nx"


class KeywordSteps:
    """A step verifier for logic tests: a step that says 'bad' scores `bad`, any other step `good`."""

    bad, good = 0.0, 1.0

    def __init__(self, backend=None, **options) -> None:
        pass

    def score_batch(self, requests):
        return [[[self.bad if "bad" in s else self.good for s in cand] for cand in r.candidates]
                 for r in requests], 0
