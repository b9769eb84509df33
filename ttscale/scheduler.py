"""The one driver: every way ttscale runs strategies (solve_batch, asolve, bench cells, allocation)
submits coroutines here and steps rounds.

A round serves every live job's pending request with the handler for its type:
- `Generate` -> the backend: every Generate of the round, together with the prompts of the verifiers that
  need the policy model, in ONE `backend.generate` call;
- `Score` -> its verifier: one `score_batch` per verifier name; a verifier that needs the policy model
  (self_judge, pik) is itself a coroutine (`score_gen`) that yields its prompts, so they join the call;
- any other type -> the handler registered for it (`register_handler`: allocation's `Decide`). A handler
  may leave a request unanswered (a barrier); it is offered again next round.

Isolation: an error raised for one job (an unknown verifier, a scorer failure, a strategy bug) fails that
job alone, with its message; the others in the round go on. Only a failing backend call fails every job
that was in it. The backend and verifiers run under the engine's lock; strategies advance outside it, so
answer checking (clustering) never holds the backend.

A backend that decodes one sequence at a time (`slots == 1`: llama.cpp) gains nothing from a batch and
loses its KV cache at every switch between prompts, so there `run` takes the jobs one after another.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterable, Protocol, Sequence

from ttscale.backends.base import Backend, TokenHook
from ttscale.backends.tickets import Tickets, tickets_for
from ttscale.errors import TTScaleError
from ttscale.ledger import Ledger
from ttscale.requests import Generate, GenRequest, GenResult, Score, ScoreGen
from ttscale.scoring import Scorer
from ttscale.strategies.base import Outcome, StrategyGen


@dataclass(eq=False)
class Job:
    """One strategy coroutine for one prompt: what it waits for, what it has spent, how it ended."""

    gen: StrategyGen
    ledger: Ledger = field(default_factory=Ledger)
    pending: Any = None
    outcome: Outcome | None = None
    error: BaseException | None = None
    started: float = field(default_factory=time.perf_counter)
    tag: Any = None  # the driver's own data (a bench work item, an async caller)

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.error is not None

    def start(self) -> None:
        self.started = time.perf_counter()
        if not isinstance(self.gen, Generator):
            self.fail(TTScaleError(f"the strategy returned {type(self.gen).__name__} instead of a generator",
                                   "write it as a generator: yield Generate(...) / Score(...), then return Outcome(...)"))
            return
        self.advance(None)

    def advance(self, response: Any) -> None:
        """Send the answer to the pending request; the job then waits on its next request, or ends."""
        try:
            self.pending = self.gen.send(response)
        except StopIteration as stop:
            if isinstance(stop.value, Outcome):
                self._end(stop.value)
            else:
                self.fail(TTScaleError(f"the strategy returned {type(stop.value).__name__} instead of an Outcome",
                                       "end the strategy with return Outcome(candidates=..., chosen=...)"))
        except Exception as e:  # a strategy bug fails its own job only
            self.fail(e)

    def fail(self, error: BaseException) -> None:
        if self.done:
            return
        self.error = error
        self.pending = None
        if isinstance(self.gen, Generator):
            self.gen.close()  # its finally blocks run (allocation leaves its controller)
        self.ledger.wall_seconds = time.perf_counter() - self.started

    def stop(self, outcome: Outcome) -> None:
        """End the job early with `outcome` (a deadline's best answer so far); its coroutine is closed."""
        if isinstance(self.gen, Generator):
            self.gen.close()
        self._end(outcome)

    def _end(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.pending = None
        self.ledger.wall_seconds = time.perf_counter() - self.started
        self.ledger.candidates = len(outcome.candidates)


class Handler(Protocol):
    """Serves one request type: answers per job (an Exception fails that job); a job left out waits."""

    def __call__(self, jobs: list[Job], live: Sequence[Job]) -> dict[Job, Any]: ...


HANDLERS: dict[type, Handler] = {}


def register_handler(kind: type) -> Callable[[Handler], Handler]:
    """Register the handler for requests of type `kind` (one per type): a new request kind is one handler."""
    def deco(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn
    return deco


@dataclass(eq=False)
class _Scoring:
    """A model-using verifier's coroutine for one round's Score requests, and the prompts it waits on."""

    name: str
    jobs: list[Job]
    co: ScoreGen
    prompts: list[GenRequest]


class Scheduler:
    """Runs jobs in rounds: `submit` then `step` (rolling admission), or `run` for a fixed list."""

    def __init__(self, backend: Backend, scorer_for: Callable[[str], Scorer], lock: threading.Lock | None = None,
                 rounds: str = "auto") -> None:
        check_rounds(rounds)
        self.backend = backend
        # Continuous rounds where the backend takes work while it decodes ("auto"), else lockstep.
        self.tickets: Tickets | None = None if rounds == "lockstep" else tickets_for(backend)
        if rounds == "continuous" and self.tickets is None:
            raise TTScaleError(f"the {backend.name} backend cannot take requests while it decodes",
                               "use rounds='auto' or 'lockstep' with it (continuous rounds need vllm or an HTTP server)")
        self._waiting: dict[int, Job | _Scoring] = {}  # continuous: ticket in flight -> who waits on it
        self.scorer_for = scorer_for
        self.lock = lock or threading.Lock()
        self.totals = Ledger()  # batch level: every backend call made, every token processed
        self.live: list[Job] = []
        self._live_lock = threading.Lock()  # submit (event loop thread) vs step (worker thread)
        self._scoring: list[_Scoring] = []  # verifier coroutines waiting for their next backend answer
        # Progress: called with (generated tokens, finished samples) as each request group's results come
        # in, for displays on backends that report nothing while they decode (see progress.watch_backend).
        self.on_results: TokenHook | None = None

    # -- driving ----------------------------------------------------------------------------------------
    def submit(self, gen: StrategyGen, tag: Any = None) -> Job:
        """Start a coroutine; it joins the next round (or is done at once if it needed no request)."""
        job = Job(gen, tag=tag)
        job.start()
        if job.outcome is not None:
            self.totals.candidates += job.ledger.candidates
        if not job.done:
            with self._live_lock:
                self.live.append(job)
        return job

    def drop(self, job: Job, outcome: Outcome | None = None) -> None:
        """Take a job out before the next round: ended with `outcome` (a deadline), else cancelled."""
        with self._live_lock:
            if job in self.live:
                self.live.remove(job)
        for ticket, owner in list(self._waiting.items()):
            if owner is job and self.tickets is not None:
                del self._waiting[ticket]
                with self.lock:
                    self.tickets.cancel(ticket)
        if outcome is not None:
            job.stop(outcome)
        elif not job.done:
            job.fail(TTScaleError("cancelled", "nothing to fix: the caller cancelled it"))

    def step(self) -> list[Job]:
        """One round; returns the jobs that ended in it (outcome or error).

        Lockstep: every live job's request is served, Generates in one backend call. Continuous: every job
        not already waiting gets its request served or sent to the backend, then the round waits only until
        some job's requests are answered: a job advances as soon as its own answers are in."""
        with self._live_lock:
            jobs = list(self.live)
        if not jobs:
            return []
        started = time.perf_counter()
        waiting = {id(j) for owner in self._waiting.values() for j in _jobs_of(owner)}
        answers = self._serve([j for j in jobs if id(j) not in waiting])
        if self._waiting and not answers:  # answered jobs advance first: their next requests go out at once
            with self.lock:
                finished = self.tickets.poll() if self.tickets is not None else []
                if not finished:  # the backend holds nothing more, yet groups wait: they would never end
                    lost = TTScaleError("the backend dropped requests it had accepted",
                                        "rerun; if it repeats, use rounds='lockstep' and report it")
                    finished = [(ticket, lost) for ticket in self._waiting]
                for ticket, results in finished:
                    owner = self._waiting.pop(ticket, None)
                    if owner is not None:
                        self._deliver(owner, results, answers)
                self._send_scoring()
        for job, value in answers.items():
            job.fail(value) if isinstance(value, BaseException) else job.advance(value)
        if not answers and not self._scoring and not self._waiting:
            for job in jobs:  # nothing could be served: a barrier that never opens
                job.fail(TTScaleError(f"no handler could serve {type(job.pending).__name__} requests this round",
                                      "every job waits on a request nobody answers; check the strategy's requests"))
        self.totals.wall_seconds += time.perf_counter() - started
        ended = [j for j in jobs if j.done]
        self.totals.candidates += sum(j.ledger.candidates for j in ended if j.outcome is not None)
        if ended:
            with self._live_lock:
                self.live = [j for j in self.live if not j.done]
        return ended

    def run(self, gens: Iterable[StrategyGen], together: bool = False) -> list[Job]:
        """Drive `gens` to their ends; returns their jobs in order (check `job.error`). `together`: never
        one after another, even on a one-sequence backend (coroutines that wait for each other)."""
        gens = list(gens)
        one_at_a_time = not together and getattr(self.backend, "slots", None) == 1
        jobs: list[Job] = []
        for group in ([[g] for g in gens] if one_at_a_time else [gens]):
            jobs += [self.submit(g) for g in group]
            while self.live:
                self.step()
        return jobs

    # -- one round --------------------------------------------------------------------------------------
    def _serve(self, jobs: list[Job]) -> dict[Job, Any]:
        """Answers for `jobs` (continuous: their Generates are sent as tickets and answered later)."""
        busy = {id(j) for s in self._scoring for j in s.jobs}
        by_kind: dict[type, list[Job]] = defaultdict(list)
        for job in jobs:
            if id(job) not in busy:
                by_kind[type(job.pending)].append(job)
        answers: dict[Job, Any] = {}
        for kind, group in by_kind.items():
            if kind not in (Generate, Score) and kind not in HANDLERS:
                for job in group:
                    answers[job] = TTScaleError(
                        f"the strategy yielded {kind.__name__} instead of a request",
                        "yield Generate(...) or Score(...); end the strategy with return Outcome(...)")
        with self.lock:
            self._score_with_model(by_kind.get(Score, []), answers)
            if self.tickets is None:
                self._generate(by_kind.get(Generate, []), answers)
            else:
                for job in by_kind.get(Generate, []):
                    self._send(job, self._flat(job))
                self._send_scoring()
            self._score_plain(by_kind.get(Score, []), answers)
        for kind, handler in HANDLERS.items():
            if by_kind.get(kind):
                try:
                    answers.update(handler(by_kind[kind], jobs))
                except Exception as e:
                    answers.update({j: e for j in by_kind[kind]})
        return answers

    def _scorer(self, name: str, jobs: list[Job], answers: dict[Job, Any]) -> Scorer | None:
        try:
            return self.scorer_for(name)
        except Exception as e:  # an unknown verifier fails the jobs that asked for it, no others
            answers.update({j: e for j in jobs})
            return None

    def _by_verifier(self, jobs: list[Job]) -> dict[str, list[Job]]:
        out: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            out[job.pending.verifier].append(job)
        return out

    def _score_with_model(self, jobs: list[Job], answers: dict[Job, Any]) -> None:
        """Start the coroutines of verifiers that need the policy model; their prompts join `_generate`."""
        for name, group in self._by_verifier(jobs).items():
            scorer = self._scorer(name, group, answers)
            if scorer is None or not hasattr(scorer, "score_gen"):
                continue
            co = scorer.score_gen([j.pending for j in group])
            self._advance_scoring(_Scoring(name, group, co, []), None, answers)

    def _advance_scoring(self, s: _Scoring, results: list[GenResult] | None, answers: dict[Job, Any]) -> None:
        try:
            s.prompts = s.co.send(results)
        except StopIteration as stop:
            scores, tokens = stop.value
            for job, res, t in zip(s.jobs, scores, tokens):
                job.ledger.verifier_tokens += t
                answers[job] = res
            return
        except Exception as e:
            answers.update({j: e for j in s.jobs})
            return
        self._scoring.append(s)

    @staticmethod
    def _flat(job: Job) -> list[GenRequest]:
        """The backend requests of a job's Generate: one per prefix."""
        req: Generate = job.pending
        flat = []
        for p, prefix in enumerate(req.prefixes):
            sampling = req.per_prefix[p] if req.per_prefix else req.sampling
            # Distinct prefixes of one request get distinct, still reproducible, seeds.
            seed = None if sampling.seed is None else sampling.seed + p * 7919
            flat.append(GenRequest(tuple(prefix), req.n, replace(sampling, seed=seed), messages=req.messages))
        return flat

    def _answer(self, job: Job, results: list[GenResult]) -> list:
        """The job's answer from its requests' results (one list of completions per prefix); ledgers."""
        for res in results:
            spent = Ledger(prompt_tokens=res.prompt_tokens, cached_prompt_tokens=res.cached_prompt_tokens,
                           generated_tokens=res.generated_tokens)
            job.ledger.add(spent)
            self.totals.add(spent)
        job.ledger.backend_calls += 1
        if self.on_results is not None:
            self.on_results(sum(r.generated_tokens for r in results), sum(len(r.completions) for r in results))
        return [res.completions for res in results]

    def _answer_scoring(self, s: _Scoring, results: list[GenResult], answers: dict[Job, Any]) -> None:
        self.totals.verifier_tokens += sum(r.prompt_tokens + r.generated_tokens for r in results)
        for job in s.jobs:
            job.ledger.backend_calls += 1
        self._advance_scoring(s, results, answers)

    def _generate(self, jobs: list[Job], answers: dict[Job, Any]) -> None:
        """Lockstep: every Generate of the round and the waiting verifiers' prompts in ONE backend call."""
        flats = [self._flat(job) for job in jobs]
        scoring, self._scoring = self._scoring, []
        extra = [p for s in scoring for p in s.prompts]
        if not any(flats) and not extra:
            return
        try:
            results = self.backend.generate([r for f in flats for r in f] + extra)
        except Exception as e:  # the backend failed: every job in the call fails with it
            answers.update({j: e for j in jobs})
            answers.update({j: e for s in scoring for j in s.jobs})
            return
        self.totals.backend_calls += 1
        at = 0
        for job, flat in zip(jobs, flats):
            answers[job] = self._answer(job, results[at:at + len(flat)])
            at += len(flat)
        for s in scoring:
            self._answer_scoring(s, results[at:at + len(s.prompts)], answers)
            at += len(s.prompts)

    # -- continuous rounds: each job's requests are a ticket of their own --------------------------------
    def _send(self, owner: Job | _Scoring, requests: list[GenRequest]) -> None:
        assert self.tickets is not None
        try:
            ticket = self.tickets.add(requests)
        except Exception as e:  # refused at once (a prompt too long): this owner's jobs fail
            for job in _jobs_of(owner):
                job.fail(e)
            return
        self.totals.backend_calls += 1
        self._waiting[ticket] = owner

    def _send_scoring(self) -> None:
        scoring, self._scoring = self._scoring, []
        for s in scoring:
            self._send(s, s.prompts)

    def _deliver(self, owner: Job | _Scoring, results: list[GenResult] | BaseException,
                 answers: dict[Job, Any]) -> None:
        if isinstance(results, BaseException):
            answers.update({j: results for j in _jobs_of(owner)})
        elif isinstance(owner, _Scoring):
            self._answer_scoring(owner, results, answers)
        else:
            answers[owner] = self._answer(owner, results)

    def _score_plain(self, jobs: list[Job], answers: dict[Job, Any]) -> None:
        """Verifiers with their own model or none: one score_batch per name; a failure is retried per job
        so that only the request that caused it fails."""
        for name, group in self._by_verifier([j for j in jobs if j not in answers]).items():
            scorer = self._scorer(name, group, answers)
            if scorer is None or hasattr(scorer, "score_gen"):
                continue
            try:
                results, tokens = scorer.score_batch([j.pending for j in group])
                parts = [(group, results, tokens)]
            except Exception:
                parts = []
                for job in group:
                    try:
                        r, t = scorer.score_batch([job.pending])
                        parts.append(([job], r, t))
                    except Exception as e:
                        answers[job] = e
            for members, results, tokens in parts:
                self.totals.verifier_tokens += tokens
                weights = [max(1, len(j.pending.candidates)) for j in members]
                for job, res, t in zip(members, results, split_exactly(tokens, weights)):
                    job.ledger.verifier_tokens += t
                    answers[job] = res


ROUNDS = ("auto", "continuous", "lockstep")


def check_rounds(rounds: str) -> str:
    if rounds not in ROUNDS:
        raise TTScaleError(f"unknown rounds mode {rounds!r}", f"choose one of: {', '.join(ROUNDS)}")
    return rounds


def _jobs_of(owner: Job | _Scoring) -> list[Job]:
    return owner.jobs if isinstance(owner, _Scoring) else [owner]


def split_exactly(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` in whole numbers that add up to exactly `total`."""
    if not weights:
        return []
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    rest = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def outcomes(jobs: list[Job]) -> list[tuple[Outcome, Ledger]]:
    """The jobs' (outcome, ledger) pairs; the first failure is raised (callers that share one batch)."""
    for job in jobs:
        if job.error is not None:
            raise job.error
    return [(j.outcome, j.ledger) for j in jobs]  # type: ignore[misc]
