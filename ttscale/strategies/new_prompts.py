"""Helpers for strategies that write new prompts from earlier attempts (parallel thinking's synthesis,
refine's revisions): fitting those prompts to the context, and judging whole solutions with a verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, Sequence

from ttscale.errors import TTScaleError
from ttscale.requests import Score
from ttscale.strategies.base import Candidate, Task
from ttscale.strategies.options import DEFAULT_STEP_DELIMITER, DEFAULT_VERIFIER, StrategyOptions
from ttscale.strategies.steps import aggregate_steps


@dataclass(frozen=True)
class JudgedOptions(StrategyOptions):
    """Options of strategies that judge whole solutions (parallel_thinking, refine)."""

    verifier: str = DEFAULT_VERIFIER  # judges each solution; "none" to skip
    step_aggregate: str = "min"  # the solution's step scores -> its score
    accept_threshold: float = 0.5  # a score at least this accepts the solution


ELISION = "\n[...]\n"
MIN_KEPT_CHARS = 24  # a compacted text keeps at least this much (about the final-answer sentence)
MIN_ANSWER_ROOM = 64  # tokens a new prompt always leaves for the answer (unless max_tokens is smaller)

Messages = list[dict[str, str]]


def context_length(task: Task) -> int | None:
    """The model's context length, when the engine tells the strategy (`Task.context_length`)."""
    return getattr(task, "context_length", None)


def prompt_limit(task: Task, longest: int) -> int | None:
    """Most tokens a new prompt may take: the context less room for the answer, which is twice the longest
    solution seen so far (`longest` tokens; at least MIN_ANSWER_ROOM), at most max_tokens or half the context."""
    ctx = context_length(task)
    if ctx is None:
        return None
    return ctx - min(task.sampling.max_tokens, ctx // 2, max(2 * longest, MIN_ANSWER_ROOM))


def answer_room(task: Task, prompt_len: int) -> int:
    """max_tokens for a completion of a `prompt_len`-token prompt: the task's, capped by the context."""
    ctx = context_length(task)
    room = task.sampling.max_tokens if ctx is None else min(task.sampling.max_tokens, ctx - prompt_len)
    return max(1, room)


def compact(text: str, cap: int | None) -> str:
    """`text` cut to at most `cap` characters: its head, an elision mark, and a longer tail."""
    if cap is None or len(text) <= cap:
        return text
    keep = max(cap - len(ELISION), 0)
    tail = keep - keep // 3
    head = keep - tail
    return text[:head] + ELISION + (text[len(text) - tail:] if tail else "")


def fit_prompt(task: Task, build: Callable[[int | None], Messages], longest: int,
               limit: int | None) -> tuple[tuple[int, ...], Messages, int | None] | None:
    """Render `build(None)`; if it has more than `limit` tokens, the largest per-text cap (in characters,
    texts up to `longest` long) that fits.

    Returns (prompt ids, messages, cap or None if nothing was cut), or None when even texts cut to
    MIN_KEPT_CHARS do not fit.
    """
    if task.render is None:
        raise TTScaleError("this strategy writes new prompts and needs the model's chat template",
                           "use a backend with a tokenizer (llamacpp, vllm, transformers, or openai with --tokenizer)")
    messages = build(None)
    ids = task.render(messages)
    if limit is None or len(ids) <= limit:
        return ids, messages, None
    best = None
    lo, hi = MIN_KEPT_CHARS, max(longest - 1, MIN_KEPT_CHARS)
    while lo <= hi:  # binary search on the cap: renders are cheap next to generation
        mid = (lo + hi) // 2
        messages = build(mid)
        ids = task.render(messages)
        if len(ids) <= limit:
            best, lo = (ids, messages, mid), mid + 1
        else:
            hi = mid - 1
    return best


def system_messages(task: Task) -> Messages:
    return [{"role": r, "content": c} for r, c in (task.messages or ()) if r == "system"]


def solution_steps(task: Task, text: str, o: JudgedOptions) -> tuple[str, ...]:
    """A complete solution as steps for a Score request, split on the step delimiter."""
    delimiter = o.step_delimiter or DEFAULT_STEP_DELIMITER
    return tuple(s.strip() for s in text.split(delimiter) if s.strip()) or (text.strip(),)


def verifier_name(o: JudgedOptions) -> str | None:
    name = o.verifier
    return None if name in (None, "", "none") else str(name)


def verify(task: Task, texts: Sequence[str], verifier: str, how_steps: str,
           o: JudgedOptions) -> Generator[Any, Any, list[tuple[float, list[float | None]]]]:
    """ONE Score request for whole solutions; (aggregated score, step scores) per text."""
    scores = yield Score(verifier=verifier, problem=task.problem,
                         candidates=tuple(solution_steps(task, t, o) for t in texts))
    return [(aggregate_steps(list(s), how_steps), list(s)) for s in scores]


def accept_threshold(o: JudgedOptions) -> float:
    t = o.accept_threshold
    if not 0.0 <= t <= 1.0:
        raise TTScaleError(f"accept_threshold must be in [0, 1], got {t}", "pass e.g. 0.5")
    return t


def cluster(task: Task, candidates: list[Candidate]) -> None:
    for c, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
        c.cluster = cid
