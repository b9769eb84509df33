"""Runs many strategy coroutines together and sends their requests to the backend as one batch a round.

Each round: every live strategy has exactly one pending request. All `Generate`s of the round become one
`backend.generate` call; all `Score`s for the same verifier become one `score_batch` call. Results go
back to their strategies, which advance to their next request. A strategy's cost lands in its own ledger.

A backend that decodes one sequence at a time (`slots == 1`: llama.cpp) gains nothing from a batch and
loses its KV cache at every switch between prompts, so there the jobs run one after another instead.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ttscale.backends.base import Backend
from ttscale.errors import TTScaleError
from ttscale.ledger import Ledger
from ttscale.requests import Generate, GenRequest, Score
from ttscale.scoring import Scorer
from ttscale.strategies.base import Outcome, StrategyGen


@dataclass
class Job:
    """One strategy coroutine for one prompt and what it has spent so far."""

    gen: StrategyGen
    ledger: Ledger = field(default_factory=Ledger)
    pending: Any = None
    outcome: Outcome | None = None
    started: float = field(default_factory=time.perf_counter)

    def advance(self, response: Any) -> None:
        try:
            self.pending = self.gen.send(response)
        except StopIteration as stop:
            self.outcome = stop.value
            self.pending = None
            self.ledger.wall_seconds = time.perf_counter() - self.started
            self.ledger.candidates = len(self.outcome.candidates) if self.outcome else 0


class Scheduler:
    """Batches the pending requests of all jobs into one backend call per round (one job at a time on a
    one-sequence backend)."""

    def __init__(self, backend: Backend, scorer_for: Callable[[str], Scorer], lock: threading.Lock | None = None) -> None:
        self.backend = backend
        self.scorer_for = scorer_for
        self.lock = lock or threading.Lock()
        self.totals = Ledger()  # batch-level: backend_calls counts real calls made

    def run(self, gens: list[StrategyGen],
            serve: Callable[[list[Job]], None] | None = None) -> list[tuple[Outcome, Ledger]]:
        """Drive the strategies to their outcomes. `serve(live)` answers one round of pending requests
        (default: `round`); drivers with requests of their own (allocation's decisions) pass theirs."""
        started = time.perf_counter()
        jobs = [Job(g) for g in gens]
        one_at_a_time = serve is None and getattr(self.backend, "slots", None) == 1
        for group in ([[j] for j in jobs] if one_at_a_time else [jobs]):
            for job in group:
                job.started = time.perf_counter()
                job.advance(None)
            live = [j for j in group if j.outcome is None]
            while live:
                (serve or self.round)(live)
                live = [j for j in live if j.outcome is None]
        self.totals.wall_seconds += time.perf_counter() - started
        for job in jobs:
            if job.outcome is None:
                raise TTScaleError("a strategy finished without returning an Outcome", "return Outcome(...) from it")
        return [(j.outcome, j.ledger) for j in jobs]  # type: ignore[misc]

    def round(self, live: list[Job]) -> None:
        """Serve every live job's pending request: one backend call, one score call per verifier."""
        with self.lock:
            self._round(live)

    def _round(self, live: list[Job]) -> None:
        responses: dict[int, Any] = {}
        gens = [(i, j) for i, j in enumerate(live) if isinstance(j.pending, Generate)]
        scores = [(i, j) for i, j in enumerate(live) if isinstance(j.pending, Score)]
        bad = [j.pending for j in live if not isinstance(j.pending, (Generate, Score))]
        if bad:
            raise TTScaleError(f"a strategy yielded {type(bad[0]).__name__}", "yield Generate(...) or Score(...)")
        if gens:
            self._generate(gens, responses)
        by_verifier: dict[str, list[tuple[int, Job]]] = defaultdict(list)
        for i, j in scores:
            by_verifier[j.pending.verifier].append((i, j))
        for name, items in by_verifier.items():
            self._score(name, items, responses)
        for i, job in enumerate(live):
            job.advance(responses[i])

    def _generate(self, items: list[tuple[int, Job]], responses: dict[int, Any]) -> None:
        flat: list[GenRequest] = []
        owners: list[tuple[int, int]] = []  # (job index, prefix index)
        for i, job in items:
            req: Generate = job.pending
            for p, prefix in enumerate(req.prefixes):
                sampling = req.per_prefix[p] if req.per_prefix else req.sampling
                # Distinct prefixes of one request get distinct, still reproducible, seeds.
                seed = None if sampling.seed is None else sampling.seed + p * 7919
                flat.append(GenRequest(tuple(prefix), req.n, replace(sampling, seed=seed), messages=req.messages))
                owners.append((i, p))
        results = self.backend.generate(flat)
        self.totals.backend_calls += 1
        jobs_by_index = dict(items)
        per_job: dict[int, list] = {i: [None] * len(job.pending.prefixes) for i, job in items}
        for (i, p), res in zip(owners, results):
            per_job[i][p] = res.completions
            spent = Ledger(
                prompt_tokens=res.prompt_tokens,
                cached_prompt_tokens=res.cached_prompt_tokens,
                generated_tokens=res.generated_tokens,
            )
            jobs_by_index[i].ledger.add(spent)
            self.totals.add(spent)
        for i, job in items:
            job.ledger.backend_calls += 1
            responses[i] = per_job[i]

    def _score(self, name: str, items: list[tuple[int, Job]], responses: dict[int, Any]) -> None:
        results, tokens = self.scorer_for(name).score_batch([j.pending for _, j in items])
        share = tokens // max(len(items), 1)
        for (i, job), res in zip(items, results):
            job.ledger.verifier_tokens += share
            responses[i] = res
        self.totals.verifier_tokens += tokens
