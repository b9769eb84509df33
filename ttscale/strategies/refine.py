"""Sequential revision: a first solution, then turns in which the model sees its previous attempts and
the verifier's verdict and tries again, until the verifier accepts.

Budget accounting: `width` W independent chains, each of at most `turns` T attempts (the first
solution counts as turn 1, so a chain makes at most T - 1 revisions); W * T <= budget. Every attempt
is one complete candidate. Defaults: width 1 and turns = budget (all depth); with only one of the two
given, the other is budget // it. A chain stops as soon as an attempt is accepted, so the attempts
never generated are reported as `details["samples_saved"]`.

Requests per turn: ONE Generate for every live chain (turn 1: the prompt with n = W; later turns: one
new prompt per chain, n = 1 each), then ONE Score for the turn's new attempts. The verdict comes from
`verifier` (default `arith_steps`): the attempt split into steps on the step delimiter, step scores
aggregated by `step_aggregate` (default `min`); accepted when it has an answer and the score is >=
`accept_threshold` (default 0.5). A revision prompt is the task's own chat, continued: each earlier
attempt as an assistant turn followed by a user turn with the verdict (`feedback_prompt`, a format
string with `{score}`, `{hint}`, `{answer}` and `{problem}`; `hint` quotes the first step the verifier
doubts; `"{problem}"` alone makes each turn a plain retry for models never trained to revise).
At most `memory` earlier attempts are shown (default all); when they do not fit the context the
attempts are cut to head and tail, then the oldest are dropped.

The answer: each chain's accepted attempt, or else its best-scored one; the chains' picks are then
voted (`aggregate`, default majority; ties go to the higher verifier score).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ttscale.errors import TTScaleError
from ttscale.requests import Generate
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Candidate, Outcome, StrategyGen, Task, register_strategy
from ttscale.strategies.new_prompts import (
    JudgedOptions,
    Messages,
    accept_threshold,
    answer_room,
    cluster,
    compact,
    fit_prompt,
    prompt_limit,
    solution_steps,
    verifier_name,
    verify,
)
from ttscale.strategies.steps import check_step_aggregation

DEFAULT_FEEDBACK_PROMPT = (
    "A checker rejected this solution (score {score:.2f} out of 1).{hint} Find the mistake and write a "
    "corrected, complete solution. Put your final answer within \\boxed{{}}."
)
NO_ANSWER_HINT = " It found no final answer."
STEP_HINT = ' It doubts this step: "{step}".'
HINT_STEP_CHARS = 200


@dataclass
class Chain:
    """One line of revisions: its attempts (indices into the candidate list) and the feedback on each."""

    index: int
    attempts: list[int] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)  # shown after attempt i, once it was rejected
    accepted: bool = False
    stopped: str | None = None  # "accepted", "turns" or "context"


def split_budget(task: Task, o: "RefineOptions") -> tuple[int, int]:
    """(width, turns) from the options and the budget; width * turns <= budget."""
    budget = task.budget
    width, turns = o.width, o.turns
    if (width is not None and width < 1) or (turns is not None and turns < 1):
        raise TTScaleError("width and turns must be at least 1", "pass e.g. --width 2 --turns 4")
    if width is None and turns is None:
        width, turns = 1, budget
    elif turns is None:
        turns = budget // width
    elif width is None:
        width = budget // turns
    if width * turns > budget or width < 1 or turns < 1:
        raise TTScaleError(f"width {width} x turns {turns} needs a budget of {max(width, 1) * max(turns, 1)}, "
                           f"got {budget}", "raise --budget, or lower --width or --turns")
    return width, turns


def feedback_text(task: Task, template: str, cand: Candidate, score: float, step_scores: list[float | None],
                  threshold: float, o: JudgedOptions) -> str:
    """The verdict shown to the model after a rejected attempt."""
    if cand.answer is None:
        hint = NO_ANSWER_HINT
    else:
        steps = solution_steps(task, cand.text, o)
        doubted = next((s for s, v in zip(steps, step_scores) if v is not None and v < threshold), None)
        hint = STEP_HINT.format(step=doubted[:HINT_STEP_CHARS]) if doubted else ""
    try:
        return template.format(score=score, hint=hint, answer=cand.answer, problem=task.problem)
    except (KeyError, IndexError, ValueError) as e:
        raise TTScaleError(f"bad feedback_prompt: {e!r}",
                           "use the fields {score}, {hint}, {answer} and {problem}; double other braces: {{}}") from None


def revision_messages(task: Task, chain: Chain, candidates: list[Candidate], shown: int, cap: int | None) -> Messages:
    """The task's chat continued with the last `shown` attempts of `chain` and the verdict on each."""
    base = [{"role": r, "content": c} for r, c in task.messages] if task.messages else \
        [{"role": "user", "content": task.problem}]
    turns: Messages = []
    for i, f in list(zip(chain.attempts, chain.feedback))[-shown:]:
        turns += [{"role": "assistant", "content": compact(candidates[i].text.strip(), cap)},
                  {"role": "user", "content": f}]
    return base + turns


def revision_prompt(task: Task, chain: Chain, candidates: list[Candidate],
                    memory: int | None) -> tuple[tuple[int, ...], Messages, int | None, int] | None:
    """Prompt ids for the chain's next attempt: as many earlier attempts as fit (newest kept first)."""
    most = len(chain.attempts) if memory is None else min(memory, len(chain.attempts))
    limit = prompt_limit(task, max(len(candidates[i].token_ids) for i in chain.attempts))
    for shown in range(most, 0, -1):
        longest = max(len(candidates[i].text) for i in chain.attempts[-shown:])
        fitted = fit_prompt(task, lambda cap: revision_messages(task, chain, candidates, shown, cap), longest, limit)
        if fitted is not None:
            ids, messages, cap = fitted
            return ids, messages, cap, shown
    return None


@dataclass(frozen=True)
class RefineOptions(JudgedOptions):
    width: int | None = None  # parallel chains (width x turns <= budget)
    turns: int | None = None  # attempts per chain, the first included (default budget / width)
    aggregate: str = "majority"  # final answer over every attempt
    feedback_prompt: str | None = None  # the verdict turn, with {score}, {hint}, {answer}, {problem}
    memory: int | None = None  # earlier attempts a revision sees (default all)


@register_strategy("refine", options=RefineOptions, needs_verifier=True)
def refine(task: Task) -> StrategyGen:
    o = task.options_as(RefineOptions, "refine")
    width, turns = split_budget(task, o)
    verifier = verifier_name(o)
    if verifier is None:
        raise TTScaleError("refine needs a verifier to judge each attempt", "pass --verifier arith_steps or self_judge")
    how_steps = check_step_aggregation(o.step_aggregate)
    how_final = check_aggregation(o.aggregate)
    threshold = accept_threshold(o)
    template = o.feedback_prompt or DEFAULT_FEEDBACK_PROMPT
    memory = None if o.memory is None else max(o.memory, 1)
    if turns > 1 and task.render is None:
        raise TTScaleError("refine with more than one turn writes revision prompts and needs the model's chat "
                           "template", "use a backend with a tokenizer, or --turns 1")

    chains = [Chain(i) for i in range(width)]
    candidates: list[Candidate] = []
    records: list[dict] = []  # per attempt, in candidate order
    outcome: Outcome | None = None
    for turn in range(1, turns + 1):
        live = [ch for ch in chains if ch.stopped is None]
        if not live:
            break
        if turn == 1:
            [comps] = yield Generate(prefixes=(task.prompt_ids,), n=width, sampling=replace(task.sampling, seed=task.seed()),
                                     messages=task.messages)
            new = list(zip(live, comps, [len(task.prompt_ids)] * width, [None] * width))
        else:
            prompts = []
            for ch in live:
                p = revision_prompt(task, ch, candidates, memory)
                if p is None:
                    ch.stopped = "context"
                else:
                    prompts.append((ch, p))
            if not prompts:
                break
            base = replace(task.sampling, seed=task.seed())
            per_prefix = tuple(replace(base, max_tokens=answer_room(task, len(ids))) for _, (ids, *_rest) in prompts)
            single = prompts[0][1][1] if len(prompts) == 1 else None
            results = yield Generate(prefixes=tuple(ids for _, (ids, *_r) in prompts), n=1, sampling=base,
                                     per_prefix=per_prefix,
                                     messages=tuple((m["role"], m["content"]) for m in single) if single else None)
            new = [(ch, comps[0], len(p[0]), p) for (ch, p), comps in zip(prompts, results)]

        fresh: list[Candidate] = []
        for ch, comp, prompt_tokens, p in new:
            c = Candidate.from_completion(comp, chain=ch.index, turn=turn)
            c.answer = task.extract(c.text, c.finish_reason)
            ch.attempts.append(len(candidates))
            candidates.append(c)
            fresh.append(c)
            records.append({"chain": ch.index, "turn": turn, "prompt_tokens": prompt_tokens,
                            "attempts_shown": p[3] if p else 0, "compacted_to_chars": p[2] if p else None})
        verdicts = yield from verify(task, [c.text for c in fresh], verifier, how_steps, o)
        for (ch, *_), c, (score, step_scores) in zip(new, fresh, verdicts):
            c.scores[verifier] = score
            c.meta["step_scores"] = step_scores
            c.meta["accepted"] = ch.accepted = c.answer is not None and score >= threshold
            if ch.accepted:
                ch.stopped = "accepted"
            elif turn == turns:
                ch.stopped = "turns"
            else:
                ch.feedback.append(feedback_text(task, template, c, score, step_scores, threshold, o))
                c.meta["feedback"] = ch.feedback[-1]
        outcome = _choose(task, chains, candidates, verifier, how_final)
        task.best_so_far = outcome  # what a deadline returns

    for ch in chains:
        ch.stopped = ch.stopped or "turns"
    assert outcome is not None
    outcome.details = {
        "width": width, "turns": turns, "verifier": verifier, "step_aggregate": how_steps, "aggregate": how_final,
        "accept_threshold": threshold,
        "chains": [{"chain": ch.index, "accepted": ch.accepted, "stopped": ch.stopped, "attempts": ch.attempts,
                    "final": _final(ch, candidates, verifier)} for ch in chains],
        "attempts": [{**r, "answer": candidates[i].answer, "score": candidates[i].scores.get(verifier),
                      "accepted": candidates[i].meta.get("accepted")} for i, r in enumerate(records)],
        "turns_used": max(len(ch.attempts) for ch in chains),
        "samples_saved": width * turns - len(candidates),
    }
    return outcome


def _final(chain: Chain, candidates: list[Candidate], verifier: str) -> int:
    """The chain's pick: its accepted attempt, else its best-scored one (ties: the later)."""
    if chain.accepted:
        return chain.attempts[-1]
    return max(chain.attempts, key=lambda i: (candidates[i].scores.get(verifier) or 0.0, i))


def _choose(task: Task, chains: list[Chain], candidates: list[Candidate], verifier: str, how: str) -> Outcome:
    """Vote over the chains' picks; the outcome lists every attempt."""
    cluster(task, candidates)
    finals = [_final(ch, candidates, verifier) for ch in chains if ch.attempts]
    vote = aggregate([candidates[i] for i in finals], how, score_key=verifier)
    chosen = finals[vote.chosen] if vote.chosen is not None else None
    return Outcome(candidates=candidates, chosen=chosen, votes=vote.votes)
