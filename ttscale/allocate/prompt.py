"""The `auto` coroutine for ONE prompt: probe, then waves of samples or a search, as decided.

It yields the usual requests (Generate, Score), so it runs under any scheduler like every strategy.
The decisions come from a Controller: its own (single prompt: `ttscale solve --strategy auto`, bench
cells, asolve), or, for prompts submitted together (`auto_together`: solve_batch), the batch's shared
one: then the coroutine yields a `Decide` at each decision point, and the scheduler's Decide handler
answers once every open prompt of that controller is waiting, so budget moves between prompts. The same
code makes both decisions, so one prompt alone gives the same run either way.
"""

from __future__ import annotations

import math
from typing import Any
from dataclasses import dataclass, replace

from ttscale.allocate.controller import Controller, Plan, PromptState
from ttscale.allocate.estimators import make_estimator
from ttscale.allocate.policy import Policy, load_policy
from ttscale.requests import Generate, Score
from ttscale.scheduler import Job, register_handler
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Candidate, Outcome, StrategyGen, Task
from ttscale.strategies.options import ENGINE_OPTIONS, fields_of, options_class
from ttscale.strategies.candidate_scores import score_candidates



@dataclass
class Decide:
    """Yielded (shared controller only) at a decision point; the Decide handler sends back a Plan."""

    state: PromptState
    controller: Controller


@register_handler(Decide)
def decide(jobs: list[Job], live: object) -> dict[Job, Plan]:
    """A barrier per controller: once every open prompt of a controller waits here, decide for all."""
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(id(job.pending.controller), []).append(job)
    answers: dict[Job, Plan] = {}
    for group in groups.values():
        controller = group[0].pending.controller
        if len(group) == len(controller.open):
            answers.update(zip(group, controller.plan([j.pending.state for j in group])))
    return answers


def auto_together(tasks: list[Task]) -> list[StrategyGen]:
    """`auto` for prompts submitted together: one controller, one pool of budget x len(tasks) candidates."""
    policy, verifier, estimator = settings_for(tasks[0])
    controller = Controller(policy, make_estimator(estimator, policy), tasks[0].budget, len(tasks), verifier)
    states = [controller.add(PromptState(problem=t.problem)) for t in tasks]  # all open before any decision
    return [auto_prompt(t, controller, s) for t, s in zip(tasks, states)]


def auto_options(task: Task) -> Any:
    """The task's `AutoOptions` (looked up through the registry: strategies/auto.py imports this module)."""
    return task.options_as(options_class("auto"), "auto")


def settings_for(task: Task) -> tuple[Policy, str | None, str]:
    """The policy, the verifier (None: no verifier configured) and the estimator name for a task."""
    o = auto_options(task)
    policy = load_policy(o.policy)
    verifier = None if not o.verifier or o.verifier == "none" else o.verifier
    return policy, verifier, o.estimator or policy.estimator


def local_controller(task: Task) -> Controller:
    policy, verifier, estimator = settings_for(task)
    return Controller(policy, make_estimator(estimator, policy), task.budget, 1, verifier)


def auto_prompt(task: Task, controller: Controller | None = None, state: PromptState | None = None) -> StrategyGen:
    shared = controller is not None
    if controller is None:
        controller = local_controller(task)
    if state is None:
        state = controller.add(PromptState(problem=task.problem))
    how = check_aggregation(auto_options(task).aggregate)
    try:
        return (yield from counting(_auto(task, controller, state, shared, how), state))
    finally:  # ended, failed or cancelled: the controller's barrier stops waiting for this prompt
        controller.leave(state)


def counting(gen: StrategyGen, state: PromptState) -> StrategyGen:
    """`yield from gen`, adding every generated token it receives to `state.tokens`: the token pool then
    sees what a search really cost (its pruned particles, its synthesis turns), not only what it returned."""
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                request = gen.send(reply) if error is None else gen.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                reply = yield request
            except GeneratorExit:
                raise
            except BaseException as e:  # thrown in: it is gen's to handle, as with `yield from`
                error = e
                continue
            if isinstance(request, Generate):
                state.tokens += sum(len(c.token_ids) for per_prefix in reply for c in per_prefix)
    finally:
        gen.close()


def _auto(task: Task, controller: Controller, state: PromptState, shared: bool, how: str) -> StrategyGen:
    verifier = controller.verifier
    if controller.estimator.needs_pik:
        [[pik]] = yield Score(verifier="pik", problem=task.problem, candidates=(("",),))
        state.pik = pik
    yield from sample_wave(task, state, controller.probe_k, verifier, "probe", how)
    while True:
        plan: Plan = (yield Decide(state, controller)) if shared else controller.plan([state])[0]
        if plan.stop:
            break
        wave = {"decision": controller.decisions, "kind": plan.kind, "strategy": plan.strategy, "n": plan.n,
                "difficulty": round(state.difficulty_now or 0.0, 4), "bin": state.bin,
                "allotment": state.allowance, "leftover": state.leftover}
        state.waves.append(wave)
        if plan.kind == "search":
            yield from search_wave(task, state, plan, verifier, how)
        else:
            yield from sample_wave(task, state, plan.n, verifier, "sample", how)
    return finish(task, state, controller, how)


def _vote(task: Task, state: PromptState, how: str, score_key: str) -> Outcome:
    for cand, cid in zip(state.candidates, task.cluster([c.answer for c in state.candidates])):
        cand.cluster = cid
    return aggregate(state.candidates, how, score_key=score_key)


def leader_key(verifier: str | None) -> str:
    """The score that breaks vote ties, in the stop rule (`Controller.settled`) and the final vote alike."""
    return verifier or "logprob"


def sample_wave(task: Task, state: PromptState, n: int, verifier: str | None, phase: str, how: str) -> StrategyGen:
    """n fresh samples of the prompt in one Generate (plus one Score when a verifier is configured)."""
    sampling = replace(task.sampling, seed=task.seed(), logprobs=True)
    [completions] = yield Generate(prefixes=(task.prompt_ids,), n=n, sampling=sampling, messages=task.messages)
    new = [Candidate.from_completion(c, phase=phase, temperature=sampling.temperature) for c in completions]
    for c, comp in zip(new, completions):
        c.answer = task.extract(c.text, c.finish_reason)
        lp = comp.mean_logprob
        c.scores["logprob"] = math.exp(lp) if lp is not None else None
    if verifier:
        yield from score_candidates(task, new, verifier, [None] * len(new))
    state.candidates += new
    task.events.append({"type": "candidates_finished", "count": len(new), "answers": [c.answer for c in new]})
    task.best_so_far = _vote(task, state, how, leader_key(verifier))
    return None


def search_wave(task: Task, state: PromptState, plan: Plan, verifier: str | None, how: str) -> StrategyGen:
    """One run of the strategy the bin prefers (particle, beam, parallel_thinking, refine) with the prompt's
    whole remaining allotment."""
    from ttscale.strategies.base import strategies

    own = set(fields_of(options_class("auto"))) - {"verifier", *ENGINE_OPTIONS}  # auto's; the rest is handed on
    options = {k: v for k, v in task.options.items() if k not in own}
    options.update(plan.settings)
    options["verifier"] = verifier or "none"  # without one, parallel_thinking synthesizes unjudged
    sub = replace(task, budget=plan.n, options=options, best_so_far=None)
    out = yield from strategies.get(plan.strategy)(sub)
    for c in out.candidates:
        c.meta["phase"] = "search"
        c.meta["strategy"] = plan.strategy
    state.candidates += out.candidates
    state.searched = True
    state.search_details = {k: v for k, v in out.details.items() if k != "resampling"}
    task.best_so_far = _vote(task, state, how, leader_key(verifier))
    return None


def final_vote(state: PromptState, controller: Controller, how: str) -> tuple[str, str]:
    """(aggregate, score key) of a prompt's final vote: majority, ties to the verifier's score (else the
    log-probability), unless the user chose weighted or top; a prompt answered from samples alone votes
    as its bin's most accurate best-of-N line does (`Policy.vote`), when every sample carries the score
    that line weighs."""
    key = leader_key(controller.verifier)
    if how != "majority" or state.searched or state.bin is None:
        return how, key
    vote, scorer = controller.policy.vote(state.bin, state.spent, controller.verifier)
    if vote == "majority" or scorer is None or any(c.scores.get(scorer) is None for c in state.candidates):
        return how, key  # (a backend that returned no log-probabilities: nothing to weigh)
    return vote, scorer


def finish(task: Task, state: PromptState, controller: Controller, how: str) -> Outcome:
    how, key = final_vote(state, controller, how)
    outcome = _vote(task, state, how, key)
    used = ["best_of_n"] + [w["strategy"] for w in state.waves if w["kind"] == "search"]
    received = state.spent
    extra = received - min(state.probe_k, received)
    average = controller.budget
    why = state.reason or "stopped"
    reason = f"{why}; received {received} (probe {min(state.probe_k, received)} + {extra} more) vs an average of {average}"
    outcome.details = {
        "allocation": {
            "difficulty": None if state.difficulty is None else round(state.difficulty, 4),
            "difficulty_final": None if state.difficulty_now is None else round(state.difficulty_now, 4),
            "estimator": controller.estimator.name,
            "bin": controller.policy.bin_of(state.difficulty) if state.difficulty is not None else None,
            "strategy": "+".join(dict.fromkeys(used)),
            "budget_received": received,
            "generated_tokens": state.tokens,  # counted from the backend's token ids, as the ledger counts
            "average_budget": average,
            "reason": reason,
            "probe_k": state.probe_k,
            "features": {k: round(v, 4) for k, v in state.features.items()},
            "pik": None if state.pik is None else round(state.pik, 4),
            "waves": state.waves,
            "policy": controller.policy.source,
        },
        "aggregate": how,
        "vote_scores": key,
        "verifier": controller.verifier,
    }
    if state.search_details:
        outcome.details["search"] = state.search_details
    return outcome
