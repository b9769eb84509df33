"""`engine.solve_batch(prompts, strategy="auto", budget=B)`: one batch budget of B x len(prompts)
candidates, moved between prompts by difficulty.

Every prompt runs the `auto` coroutine (ttscale.allocate.prompt) with the batch's shared Controller.
Rounds go through the engine's scheduler, all open prompts together (one backend call per round); when
every open prompt is waiting at a decision point, the controller decides for all of them at once and
the next wave starts, again for all of them together.
"""

from __future__ import annotations

from typing import Any, Sequence

from ttscale.allocate.controller import Controller, PromptState
from ttscale.allocate.estimators import make_estimator
from ttscale.allocate.policy import load_policy
from ttscale.allocate.prompt import Decide, auto_prompt, verifier_of
from ttscale.errors import TTScaleError
from ttscale.result import Result
from ttscale.scheduler import Job, Scheduler


def solve_batch_auto(engine: Any, prompts: Sequence[Any], budget: int = 8, seed: int = 0, *,
                     temperature: float = 0.8, top_p: float = 1.0, max_tokens: int | None = None,
                     stop: Sequence[str] = (), system_prompt: str | None = None, **options: Any) -> list[Result]:
    from ttscale.engine import check_budget

    check_budget(budget)
    if isinstance(prompts, str):
        raise TTScaleError("solve_batch takes a list of prompts", "wrap a single prompt in a list, or call solve()")
    if not prompts:
        raise TTScaleError("no prompts given", "pass at least one problem")
    policy = load_policy(options.get("policy"))
    verifier = verifier_of(options)
    estimator = make_estimator(options.get("estimator") or policy.estimator, policy)
    if verifier:
        engine.scorer(verifier)  # fail on an unknown verifier before any generation
    prepared = [engine.prepare(p, system_prompt) for p in prompts]
    tasks = [engine.task(p, budget, seed, temperature, top_p, max_tokens, stop, options) for p in prepared]
    controller = Controller(policy, estimator, budget, len(tasks), verifier)
    states = [controller.add(PromptState(problem=t.problem)) for t in tasks]
    scheduler = engine.scheduler()
    outcomes = run_shared(scheduler, [auto_prompt(t, controller, s) for t, s in zip(tasks, states)], controller)
    engine.last_batch_usage = scheduler.totals
    spent = sum(len(o.candidates) for o, _ in outcomes)
    if spent > controller.total:  # a bug, never a user error: the allocator must conserve the budget
        raise AssertionError(f"auto spent {spent} candidates of a batch budget of {controller.total}")
    return [engine._result(prep, "auto", budget, seed, outcome, ledger)
            for prep, (outcome, ledger) in zip(prepared, outcomes)]


def run_shared(scheduler: Scheduler, gens: list, controller: Controller) -> list:
    """Drive the coroutines: scheduler rounds for their requests, controller decisions at barriers."""
    def serve(live: list[Job]) -> None:
        working = [j for j in live if not isinstance(j.pending, Decide)]
        if working:
            scheduler.round(working)
        else:  # every open prompt waits for a decision: decide for all of them together
            plans = controller.plan([j.pending.state for j in live])
            for job, plan in zip(live, plans):
                job.advance(plan)

    return scheduler.run(gens, serve)
