"""Parallel thinking, after ParaThinker's idea but without retraining: K independent reasoning paths in
one batch, then one synthesis request in which the model reads all K paths and writes the final solution.

Budget accounting: the K paths and the synthesis are K + 1 complete solutions, so K + 1 <= budget.
`paths=K` sets K (default budget - 1, at least 1). At budget 1 there is no room for a synthesis: the
strategy draws one path and answers with it (`details["synthesis"]` says it was skipped).

Requests: ONE Generate with n = K for the paths; ONE Generate for the synthesis, whose prompt is a new
chat (the task's system message, if any, then a user message built from `synthesis_prompt`, a format
string with `{problem}`, `{k}` and `{paths}`) rendered with the model's own template (`Task.render`).
When the paths do not fit the context together, each is compacted to its head and its tail (the tail
holds the final answer) with the longest per-path length that fits, leaving the synthesis room to write
(twice the longest path, at least 64 tokens, at most max_tokens or half the context). When even that
fails, the synthesis sees one path per distinct answer, each header saying how many paths reached it,
dropping the rarest answers until it fits (`details["synthesis"]["paths_shown"]`).
Then, with a `verifier` (default `arith_steps`; `none` to skip), ONE Score request checks the
synthesis: its text split into steps on the step delimiter, step scores aggregated by `step_aggregate`
(default `min`), accepted when the score is >= `accept_threshold` (default 0.5).

Fallback (`fallback`, on by default): when the synthesis has no answer, its answer is not among the K
paths' answers (equivalence-clustered), or the verifier rejects it, the answer is the majority of the
K paths instead; `details["fallback"]` names the reason. The candidates are the K paths, then the
synthesis (`meta["role"]`), so a result's JSON carries every path's text and the synthesis request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ttscale.errors import TTScaleError
from ttscale.requests import Generate
from ttscale.strategies.aggregate import aggregate
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
    system_messages,
    verifier_name,
    verify,
)
from ttscale.strategies.steps import check_step_aggregation

DEFAULT_SYNTHESIS_PROMPT = (
    "Problem: {problem}\n\n"
    "Here are {k} independent attempts at this problem. Some of them may contain mistakes.\n\n"
    "{paths}\n\n"
    "Compare the attempts and check their steps, then write one complete, correct solution to the problem. "
    "Put your final answer within \\boxed{{}}."
)
PATH_HEADER = "Attempt {i}:\n"
# -- the strategy ----------------------------------------------------------------------------------------
def path_count(task: Task, o: ParallelThinkingOptions) -> int:
    k = o.paths
    if k is None:
        return max(task.budget - 1, 1)
    k = int(k)
    if k < 1:
        raise TTScaleError(f"paths must be at least 1, got {k}", "pass e.g. paths=4")
    if k + 1 > task.budget:
        raise TTScaleError(f"{k} paths and a synthesis need a budget of {k + 1}, got {task.budget}",
                           f"pass --budget {k + 1} or more, or fewer paths")
    return k


def synthesis_messages(task: Task, template: str, texts: list[str], cap: int | None,
                       headers: list[str] | None = None) -> Messages:
    headers = headers or [PATH_HEADER.format(i=i + 1) for i in range(len(texts))]
    paths = "\n\n".join(h + compact(t.strip(), cap) for h, t in zip(headers, texts))
    try:
        content = template.format(problem=task.problem, k=len(texts), paths=paths)
    except (KeyError, IndexError, ValueError) as e:
        raise TTScaleError(f"bad synthesis_prompt: {e!r}",
                           "use the fields {problem}, {k} and {paths}, and double other braces: {{}}") from None
    return system_messages(task) + [{"role": "user", "content": content}]


def path_selections(paths: list[Candidate]):
    """Which paths the synthesis shows, most first: all K; else one per distinct answer (the most common
    first, its header saying how many paths reached it), dropping the rarest answers until it fits."""
    yield list(range(len(paths))), None
    members: dict[int, list[int]] = {}
    for i, c in enumerate(paths):
        key = c.cluster if c.cluster is not None and c.answer is not None else -1 - i  # no answer: its own
        members.setdefault(key, []).append(i)
    groups = sorted(members.values(), key=lambda g: (-len(g), g[0]))
    if len(paths) == 1:
        return
    for m in range(len(groups), 0, -1):
        chosen = groups[:m]
        headers = [f"Attempt {j + 1} ({len(g)} of the {len(paths)} attempts reached this answer):\n"
                   for j, g in enumerate(chosen)]
        yield [g[0] for g in chosen], headers


@dataclass(frozen=True)
class ParallelThinkingOptions(JudgedOptions):
    paths: int | None = None  # K reasoning paths (default budget - 1; K + 1 <= budget)
    synthesis_prompt: str | None = None  # with {problem}, {k} and {paths} (default DEFAULT_SYNTHESIS_PROMPT)
    synthesis_temperature: float | None = None  # default: the sampling temperature
    fallback: bool = True  # the paths' majority when the synthesis is not among them or fails the verifier


@register_strategy("parallel_thinking", options=ParallelThinkingOptions)
def parallel_thinking(task: Task) -> StrategyGen:
    o = task.options_as(ParallelThinkingOptions, "parallel_thinking")
    k = path_count(task, o)
    verifier = verifier_name(o)
    how_steps = check_step_aggregation(o.step_aggregate)
    threshold = accept_threshold(o)
    fallback = o.fallback
    template = o.synthesis_prompt or DEFAULT_SYNTHESIS_PROMPT
    if "{paths}" not in template:
        raise TTScaleError("synthesis_prompt has no {paths} field", "put {paths} where the K attempts should go")

    [completions] = yield Generate(prefixes=(task.prompt_ids,), n=k, sampling=replace(task.sampling, seed=task.seed()),
                                   messages=task.messages)
    paths = [Candidate.from_completion(c, role="path", path=i) for i, c in enumerate(completions)]
    for c in paths:
        c.answer = task.extract(c.text, c.finish_reason)
    details: dict[str, Any] = {"k": k, "verifier": verifier, "step_aggregate": how_steps,
                               "accept_threshold": threshold, "fallback_enabled": fallback}
    cluster(task, paths)
    task.best_so_far = aggregate(paths, "majority")  # what a deadline returns before the synthesis is in

    if k + 1 > task.budget:  # budget 1: no room for a synthesis
        outcome = task.best_so_far
        outcome.details = {**details, "synthesis": None, "fallback": "no_budget_for_synthesis"}
        return outcome

    limit = prompt_limit(task, max(len(c.token_ids) for c in paths))
    fitted = shown = None
    for shown, headers in path_selections(paths):
        texts = [paths[i].text for i in shown]
        fitted = fit_prompt(task, lambda cap: synthesis_messages(task, template, texts, cap, headers),
                            max((len(t) for t in texts), default=0), limit)
        if fitted is not None:
            break
    if fitted is None:  # not even one path fits this context, cut short: vote instead
        outcome = task.best_so_far
        outcome.details = {**details, "synthesis": None, "fallback": "paths_do_not_fit_context"}
        return outcome
    prompt_ids, messages, cap = fitted
    sampling = replace(task.sampling, seed=task.seed(), max_tokens=answer_room(task, len(prompt_ids)),
                       temperature=task.sampling.temperature if o.synthesis_temperature is None
                       else o.synthesis_temperature)
    [[done]] = yield Generate(prefixes=(prompt_ids,), n=1, sampling=sampling,
                              messages=tuple((m["role"], m["content"]) for m in messages))
    synth = Candidate.from_completion(done, role="synthesis")
    synth.answer = task.extract(synth.text, synth.finish_reason)
    candidates = paths + [synth]
    cluster(task, candidates)

    score = step_scores = None
    if verifier is not None and synth.answer is not None:
        [(score, step_scores)] = yield from verify(task, [synth.text], verifier, how_steps, o)
        synth.scores[verifier] = score
    accepted = score is None or score >= threshold  # no verifier: nothing to reject it
    among = synth.cluster is not None and any(p.cluster == synth.cluster for p in paths)
    reason = ("no_answer" if synth.answer is None else "not_among_paths" if not among
              else "rejected" if not accepted else None)

    path_vote = aggregate(paths, "majority")
    votes = dict(path_vote.votes)
    use_fallback = fallback and reason is not None and path_vote.chosen is not None and bool(path_vote.votes)
    chosen = path_vote.chosen if use_fallback else len(paths)
    if synth.answer is not None:  # the synthesis votes too, under its own spelling when it is the pick
        rep = next((p.answer for p in paths if p.cluster == synth.cluster and p.answer is not None), synth.answer)
        key = synth.answer if chosen == len(paths) else rep
        votes[key] = votes.pop(rep, 0.0) + 1.0
    synth.meta.update(accepted=accepted if verifier and synth.answer is not None else None, among_paths=among)
    outcome = Outcome(candidates=candidates, chosen=chosen, votes=votes)
    outcome.details = {
        **details,
        "synthesis": {"messages": messages, "prompt_tokens": len(prompt_ids), "compacted_to_chars": cap,
                      "paths_shown": shown,
                      "max_tokens": sampling.max_tokens, "answer": synth.answer, "score": score,
                      "step_scores": step_scores, "accepted": accepted, "among_paths": among, "issue": reason},
        "path_votes": path_vote.votes,
        "fallback": reason if use_fallback else None,
    }
    return outcome
