"""The public entry point: `Engine(backend=..., model=...).solve(prompt, strategy=..., budget=...)`.

The engine turns prompts into token ids once (with the model's own chat template), builds one strategy
coroutine per prompt, and hands them all to one scheduler so the backend sees the whole batch at once.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ttscale.backends import make_backend
from ttscale.backends.base import Backend, Message
from ttscale.errors import TTScaleError
from ttscale.models import ModelDefaults, model_defaults
from ttscale.requests import Sampling
from ttscale.result import Result
from ttscale.scheduler import Scheduler, check_rounds
from ttscale.scheduler import outcomes as job_outcomes
from ttscale.scoring import scorers
from ttscale.strategies import strategies
from ttscale.strategies.aggregate import vote_share
from ttscale.strategies.base import Task, start_together
from ttscale.strategies.options import options_class, parse_options

Prompt = str | Sequence[Message]


@dataclass(frozen=True)
class PreparedPrompt:
    problem: str
    prompt_ids: tuple[int, ...]
    messages: tuple[tuple[str, str], ...]


class Engine:
    """Holds one loaded backend and spends budgets through strategies on it."""

    def __init__(
        self,
        backend: str | Backend = "llamacpp",
        model: str | None = None,
        *,
        checker: Any = None,
        verifier_options: dict[str, dict[str, Any]] | None = None,
        rounds: str = "auto",
        **backend_options: Any,
    ) -> None:
        # "continuous": each prompt advances as soon as its own requests are answered (vllm, HTTP servers);
        # "lockstep": one backend call per round for every prompt; "auto": continuous where the backend can.
        self.rounds = check_rounds(rounds)
        self.backend: Backend = make_backend(backend, model, **backend_options) if isinstance(backend, str) else backend
        self.defaults: ModelDefaults = model_defaults(getattr(self.backend, "model_path", None))
        if checker is None:
            from verifiers import get_checker

            checker = get_checker()
        self.checker = checker
        self.last_batch_usage = None  # batch-level Ledger of the latest solve_batch: real backend calls made
        self.on_results = None  # progress hook given to every scheduler (Scheduler.on_results)
        self.verifier_options = verifier_options or {}  # verifier name -> options, e.g. {"prm": {"model": ...}}
        self._scorers: dict[str, Any] = {}
        self._backend_lock = threading.Lock()  # sync and async callers never drive the backend at once
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None

    def scorer(self, name: str) -> Any:
        """The engine's instance of verifier `name`, built on first use (a PRM loads once)."""
        if name not in self._scorers:
            self._scorers[name] = scorers.get(name)(self.backend, **self.verifier_options.get(name, {}))
        return self._scorers[name]

    # -- public API -------------------------------------------------------------------------------------
    def solve(self, prompt: Prompt, strategy: str = "best_of_n", budget: int = 8, seed: int = 0, **options: Any) -> Result:
        """Solve one problem; `options` are sampling settings and strategy options (see solve_batch)."""
        return self.solve_batch([prompt], strategy=strategy, budget=budget, seed=seed, **options)[0]

    def solve_batch(
        self,
        prompts: Sequence[Prompt],
        strategy: str = "best_of_n",
        budget: int = 8,
        seed: int = 0,
        *,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        system_prompt: str | None = None,
        **options: Any,
    ) -> list[Result]:
        """Solve many problems at once: one strategy coroutine each, one backend call per round (per prompt
        and round on a one-sequence backend such as llama.cpp; see scheduler).

        `budget` is the number of complete candidate solutions per prompt, for every strategy.
        """
        strategy_fn = strategies.get(strategy)
        check_budget(budget)
        if isinstance(prompts, str):
            raise TTScaleError("solve_batch takes a list of prompts", "wrap a single prompt in a list, or call solve()")
        if not prompts:
            raise TTScaleError("no prompts given", "pass at least one problem")
        parse_options(strategy, options_class(strategy), options)  # a misspelt option fails before any work
        self.check_verifier(options)
        prepared = [self.prepare(p, system_prompt) for p in prompts]
        tasks = [self.task(p, budget, seed, temperature, top_p, max_tokens, stop, options, strategy) for p in prepared]
        scheduler = self.scheduler()
        gens, together = start_together(strategy_fn, tasks)
        outcomes = job_outcomes(scheduler.run(gens, together=together))
        self.last_batch_usage = scheduler.totals
        return [self._result(prep, strategy, budget, seed, outcome, ledger)
                for prep, (outcome, ledger) in zip(prepared, outcomes)]

    async def asolve(
        self,
        prompt: Prompt,
        strategy: str = "best_of_n",
        budget: int = 8,
        seed: int = 0,
        *,
        deadline_s: float | None = None,
        on_event: Callable[[dict[str, Any]], Any] | None = None,
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        stop: Sequence[str] = (),
        system_prompt: str | None = None,
        **options: Any,
    ) -> Result:
        """Solve one problem inside an event loop. Concurrent callers share backend batches.

        Past `deadline_s` the call returns the best answer found so far with `partial=True` and stops
        spending; cancelling the calling task drops its pending work. `on_event` receives progress
        events (round, answer_changed, deadline, done).
        """
        from ttscale.aio import AsyncScheduler

        strategy_fn = strategies.get(strategy)
        check_budget(budget)
        if deadline_s is not None:
            if deadline_s <= 0:
                raise TTScaleError(f"deadline_s must be positive, got {deadline_s}", "pass seconds, e.g. 30")
            options.setdefault("waves", min(budget, 4))  # smaller rounds, so there is something to return early
        parse_options(strategy, options_class(strategy), options)
        self.check_verifier(options)
        prep = self.prepare(prompt, system_prompt)
        task = self.task(prep, budget, seed, temperature, top_p, max_tokens, stop, options, strategy)
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, AsyncScheduler(self.scheduler()))
        outcome, ledger, partial = await self._async[1].run(task, strategy_fn(task), deadline_s, on_event)
        return self._result(prep, strategy, budget, seed, outcome, ledger, partial)

    @property
    def async_round_sizes(self) -> list[int]:
        """Callers served by each backend round of the async loop (for tests and benchmarks)."""
        return self._async[1].round_sizes if self._async else []

    def close(self) -> None:
        """Close the backend and every verifier that holds a model (a PRM's vLLM engine prints on exit)."""
        for scorer in self._scorers.values():
            getattr(scorer, "close", lambda: None)()
        self._scorers.clear()
        self.backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check_verifier(self, options: dict[str, Any]) -> None:
        """Build the configured verifier now: an unknown name or option fails before any generation."""
        for key in ("verifier", "scorer"):  # best_of_n names its verifier `scorer`
            name = options.get(key)
            if name and name not in ("none", "logprob"):
                self.scorer(str(name))

    def scheduler(self) -> Scheduler:
        """A fresh scheduler over this engine's backend and scorers, for drivers that run their own tasks
        (bench cells, allocation) and still want one backend call per round."""
        scheduler = Scheduler(self.backend, self.scorer, self._backend_lock, rounds=self.rounds)
        scheduler.on_results = self.on_results
        return scheduler

    # -- internals --------------------------------------------------------------------------------------

    def _result(self, prep: PreparedPrompt, strategy: str, budget: int, seed: int, outcome: Any, ledger: Any,
                partial: bool = False) -> Result:
        chosen = outcome.candidates[outcome.chosen] if outcome.chosen is not None else None
        return Result(
            problem=prep.problem,
            strategy=strategy,
            budget=budget,
            seed=seed,
            answer=chosen.answer if chosen else None,
            text=chosen.text if chosen else None,
            confidence=vote_share(outcome),
            candidates=outcome.candidates,
            votes=outcome.votes,
            ledger=ledger,
            details=outcome.details,
            partial=partial,
            backend=str(getattr(self.backend, "name", "")),
            model=str(getattr(self.backend, "model", "")),
        )

    def prepare(self, prompt: Prompt, system_prompt: str | None = None) -> PreparedPrompt:
        """Template a problem (or chat messages) once into token ids, checking it fits the context."""
        check_prompt(prompt)
        if isinstance(prompt, str):
            problem = prompt.strip()
            if not problem:
                raise TTScaleError("the prompt is empty", "pass the problem text")
            messages: list[Message] = []
            system = system_prompt or self.defaults.system_prompt
            if system:
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": self.defaults.prompt_template.format(problem=problem)})
        else:
            messages = [dict(m) for m in prompt]
            users = [m.get("content", "") for m in messages if m.get("role") == "user"]
            if not users or not str(users[-1]).strip():
                raise TTScaleError("the messages have no non-empty user message", "add {'role': 'user', 'content': ...}")
            problem = str(users[-1]).strip()
        ids = tuple(self.backend.tokenizer.chat_prompt(messages))
        limit = self.backend.context_length
        if len(ids) >= limit - 16:
            raise TTScaleError(
                f"the prompt is {len(ids)} tokens but the model's context holds {limit}",
                "shorten the problem or use a model with a longer context",
            )
        return PreparedPrompt(problem, ids, tuple((m["role"], m["content"]) for m in messages))

    def task(self, prep: PreparedPrompt, budget: int, seed: int, temperature: float, top_p: float,
             max_tokens: int | None, stop: Sequence[str], options: dict[str, Any], strategy: str | None = None) -> Task:
        """The strategy's view of one prepared prompt: sampling, seeded rng, answer extraction, rendering,
        and (given the strategy's name) its options checked against its options class."""
        check_sampling(temperature, top_p, max_tokens, stop)
        room = self.backend.context_length - len(prep.prompt_ids)
        sampling = Sampling(
            temperature=temperature,
            top_p=top_p,
            max_tokens=min(max_tokens or self.defaults.max_tokens, room),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
        )
        # Per-prompt generator keyed by (seed, problem): the same problem and seed give the same run,
        # wherever the problem sits in a batch.
        rng = np.random.default_rng([seed, zlib.crc32(prep.problem.encode())])
        from verifiers import extract_answer

        options = {"step_delimiter": self.defaults.step_delimiter, **options}
        if strategy == "auto" and options.get("policy") is None and self.defaults.policy:
            options["policy"] = self.defaults.policy  # the policy fitted for this model
        typed = parse_options(strategy, options_class(strategy), options) if strategy else None
        return Task(
            opts=typed,
            problem=prep.problem,
            prompt_ids=prep.prompt_ids,
            budget=budget,
            rng=rng,
            sampling=sampling,
            extract=extract_answer,
            cluster=self.checker.cluster,
            options=options,
            render=self._render,
            messages=prep.messages,
            context_length=self.backend.context_length,
        )

    def _render(self, messages: list[Message]) -> tuple[int, ...]:
        return tuple(self.backend.tokenizer.chat_prompt(messages))


MAX_BUDGET = 65_536  # candidates per prompt: past this a typo, not a plan


def check_budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise TTScaleError(f"budget must be a positive integer, got {budget!r}", "pass --budget 1 or more")
    if budget > MAX_BUDGET:
        raise TTScaleError(f"budget {budget} is over the limit of {MAX_BUDGET} candidates per prompt",
                           f"pass --budget {MAX_BUDGET} or less")
    return budget


def check_prompt(prompt: Any) -> None:
    """A problem text or a list of chat messages, as text a tokenizer can take."""
    if isinstance(prompt, str):
        texts = [prompt]
    elif isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        texts = [str(m.get("content", "")) for m in prompt]
    else:
        raise TTScaleError(f"a prompt must be the problem text or a list of chat messages, got {type(prompt).__name__}",
                           'pass e.g. "What is 2 + 3?" or [{"role": "user", "content": "What is 2 + 3?"}]')
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TTScaleError("the prompt is not valid UTF-8 text (it holds undecodable bytes)",
                               "convert it to UTF-8, e.g. with iconv -t UTF-8") from None


def check_sampling(temperature: Any, top_p: Any, max_tokens: Any, stop: Any) -> None:
    """Sampling settings a backend would silently misread: refused with the fix, before any work."""
    number = (int, float)
    if isinstance(temperature, bool) or not isinstance(temperature, number) or not 0 <= temperature <= 10:
        raise TTScaleError(f"temperature must be between 0 and 10, got {temperature!r}", "pass e.g. --temperature 0.8")
    if isinstance(top_p, bool) or not isinstance(top_p, number) or not 0 < top_p <= 1:
        raise TTScaleError(f"top_p must be in (0, 1], got {top_p!r}", "pass e.g. --top-p 0.95, or 1 to turn it off")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise TTScaleError(f"max_tokens must be a positive integer, got {max_tokens!r}", "pass e.g. --max-tokens 256")
    stops = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, (list, tuple)) or not all(isinstance(x, str) and x for x in stops):
        raise TTScaleError(f"stop must be a list of non-empty strings, got {stop!r}", 'pass e.g. stop=["\\n\\n\\n"]')
