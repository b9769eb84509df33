"""`self_judge`: the policy model judges its own steps, P(True) style (Kadavath et al., 2022,
"Language Models (Mostly) Know What They Know").

Why: it needs no second model. For each step not scored yet, the backend's own chat template renders a
question ("Is this step correct? Answer Yes or No.") and the model generates one greedy token with its
top-k log-probabilities; the score is the probability mass on yes-like tokens, normalised against
yes+no-like tokens (0.5 when neither is in the top k). It is a coroutine (`score_gen`) that yields all
its prompts at once, so under the scheduler they join the round's ONE backend call, and scores are cached by (problem, steps prefix) so a step-level search never
pays twice for the same step.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

from ttscale.errors import TTScaleError
from ttscale.requests import GenRequest, Sampling, Score, ScoreGen

if TYPE_CHECKING:  # the boundary: verifiers import only ttscale's message types and errors
    from ttscale.backends.base import Backend

NEUTRAL = 0.5  # neither yes nor no among the top-k tokens
TOP_K = 20
YES_WORDS = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO_WORDS = ("No", " No", "no", " no", "NO", " NO")
STEP_QUESTION = "Is this step correct? Answer Yes or No."
SOLUTION_QUESTION = "Is this solution correct? Answer Yes or No."
_FINAL_ANSWER = re.compile(r"\\boxed\s*\{|\\fbox\s*\{|answer is", re.I)

Mode = Literal["all_steps", "last_step"]
Key = tuple[str, str, tuple[str, ...]]  # (unit, problem, steps prefix)


class SelfJudgeVerifier:
    """Scorer `self_judge`: P(yes) of the policy model asked whether each step (or answer) is correct.

    mode="all_steps" (default) judges every step not in the cache; "last_step" judges only each
    candidate's last step and reports earlier steps from the cache (None if never judged), which in a
    step-by-step search still gives every step a score, one round after another.
    unit="auto" judges a single-step candidate that states a final answer as a whole solution, anything
    else step by step; "step" or "solution" force one; a request's `options["unit"]` overrides it.
    """

    def __init__(self, backend: Backend, mode: Mode = "all_steps", unit: str = "auto", top_k: int = TOP_K,
                 max_prompt_tokens: int | None = None, cache_size: int = 200_000) -> None:
        if mode not in ("all_steps", "last_step"):
            raise TTScaleError(f"self_judge mode must be 'all_steps' or 'last_step', got {mode!r}",
                               "pass mode='all_steps' or mode='last_step'")
        if unit not in ("auto", "step", "solution"):
            raise TTScaleError(f"self_judge unit must be 'auto', 'step' or 'solution', got {unit!r}",
                               "pass unit='auto', 'step' or 'solution'")
        self.backend = backend
        self.mode = mode
        self.unit = unit
        self.top_k = int(top_k)
        limit = int(getattr(backend, "context_length", 4096))
        self.max_prompt_tokens = min(max_prompt_tokens or limit, limit) - 2
        self.cache_size = cache_size
        self._cache: OrderedDict[Key, float | None] = OrderedDict()
        tok = backend.tokenizer
        self.yes_ids = _single_token_ids(tok, YES_WORDS)
        self.no_ids = _single_token_ids(tok, NO_WORDS)
        if not self.yes_ids or not self.no_ids:
            raise TTScaleError(f"the tokenizer of {getattr(backend, 'model', 'this model')} has no single-token "
                               "'Yes'/'No', so self_judge cannot read P(yes)", "use another verifier, such as prm")
        self.generate_calls = 0
        self.prompts_sent = 0

    # -- Scorer protocol ---------------------------------------------------------------------------------
    def score_gen(self, requests: list[Score]) -> ScoreGen:
        """Scores per request, per candidate, per step, and the tokens each request's judge prompts cost.

        A coroutine: it yields its judge prompts (all of them, once) and receives their results, so under
        the scheduler they join the round's one backend call. A step asked for by several requests is
        judged once and counted to the first that asked.
        """
        wanted: dict[Key, int] = {}  # keys to judge now -> the request that asked first
        plans: list[list[list[Key]]] = []
        for r, req in enumerate(requests):
            unit_opt = str(req.options.get("unit", self.unit))
            per_req = []
            for steps in req.candidates:
                steps = tuple(steps)
                unit = self._unit(unit_opt, steps)
                keys = [(unit, req.problem, steps[: i + 1]) for i in range(len(steps))]
                judge = keys if self.mode == "all_steps" else keys[-1:]
                for key in judge:
                    if key not in self._cache:
                        wanted.setdefault(key, r)
                per_req.append(keys)
            plans.append(per_req)
        tokens = [0] * len(requests)
        prompts = []
        for key in wanted:
            ids = self._prompt(*key)
            if ids is None:  # does not fit the context even with earlier steps dropped: undecidable
                self._store(key, None)
            else:
                prompts.append((key, ids))
        if prompts:
            sampling = Sampling(temperature=0.0, max_tokens=1, top_logprobs=self.top_k, logprobs=True)
            results = yield [GenRequest(ids, 1, sampling) for _, ids in prompts]
            self.generate_calls += 1
            self.prompts_sent += len(prompts)
            for (key, _), res in zip(prompts, results):
                tokens[wanted[key]] += res.prompt_tokens + res.generated_tokens
                comp = res.completions[0] if res.completions else None
                tops = comp.top_logprobs[0] if comp is not None and comp.top_logprobs else {}
                self._store(key, p_yes(tops, self.yes_ids, self.no_ids))
        out = [[[self._lookup(k) for k in keys] for keys in per_req] for per_req in plans]
        return out, tokens

    def score_batch(self, requests: list[Score]) -> tuple[list[list[list[float | None]]], int]:
        """The same scores without a scheduler: the prompts go to the backend directly."""
        return drive(self.score_gen(requests), self.backend)

    # -- internals ---------------------------------------------------------------------------------------
    def _unit(self, option: str, steps: tuple[str, ...]) -> str:
        if option in ("step", "solution"):
            return option
        return "solution" if len(steps) == 1 and _FINAL_ANSWER.search(steps[0]) else "step"

    def _lookup(self, key: Key) -> float | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    def _store(self, key: Key, value: float | None) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _prompt(self, unit: str, problem: str, steps: tuple[str, ...]) -> tuple[int, ...] | None:
        """The judge prompt's token ids, dropping the oldest previous steps until it fits the context."""
        tok = self.backend.tokenizer
        for first in range(len(steps)):
            text = judge_text(unit, problem, steps[first:-1], steps[-1], skipped=first)
            ids = tuple(tok.chat_prompt([{"role": "user", "content": text}]))
            if len(ids) <= self.max_prompt_tokens:
                return ids
        return None


def judge_text(unit: str, problem: str, previous: tuple[str, ...], step: str, skipped: int = 0) -> str:
    """The question put to the model: the problem, the steps so far, the step (or solution) to judge."""
    if unit == "solution":
        return f"Problem:\n{problem.strip()}\n\nProposed solution:\n{step.strip()}\n\n{SOLUTION_QUESTION}"
    parts = [f"Problem:\n{problem.strip()}"]
    if previous:
        lines = [f"Step {skipped + i + 1}: {s.strip()}" for i, s in enumerate(previous)]
        parts.append("Previous steps:\n" + "\n".join(lines))
    parts.append(f"Step to judge (step {skipped + len(previous) + 1}):\n{step.strip()}")
    parts.append(STEP_QUESTION)
    return "\n\n".join(parts)


def drive(co: ScoreGen, backend: Backend) -> tuple[list, int]:
    """Run a model-using scorer's coroutine on `backend` directly: (scores, tokens in all)."""
    results = None
    try:
        while True:
            results = backend.generate(co.send(results))
    except StopIteration as stop:
        scores, tokens = stop.value
        return scores, sum(tokens)


def p_yes(top: dict[int, float], yes_ids: set[int], no_ids: set[int]) -> float:
    """P(yes | yes or no) from one position's top-k log-probabilities; NEUTRAL when neither appears."""
    yes = sum(math.exp(lp) for t, lp in top.items() if t in yes_ids)
    no = sum(math.exp(lp) for t, lp in top.items() if t in no_ids)
    if yes + no <= 0.0:
        return NEUTRAL
    return yes / (yes + no)


def _single_token_ids(tok: Any, words: tuple[str, ...]) -> set[int]:
    """Ids of the words that the tokenizer encodes as exactly one token."""
    ids = set()
    for w in words:
        enc = tok.encode(w)
        if len(enc) == 1:
            ids.add(int(enc[0]))
    return ids
