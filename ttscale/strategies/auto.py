"""`auto`: difficulty-aware allocation (ttscale.allocate) as a strategy for one prompt.

Probes the prompt with a few samples, estimates its difficulty, then escalates as the policy says: more
samples, then a step-level search when the vote is still split and a verifier is configured, stopping
early on consensus; at most `budget` candidates. `engine.solve_batch(..., strategy="auto")` does not come
here: the engine routes it to `ttscale.allocate.solve_batch_auto`, which runs this same coroutine for
every prompt with one shared budget, so budget moves between prompts. Here (bench cells, asolve, any
scheduler) each prompt decides alone.

Options: `policy` (a JSON path from `ttscale calibrate`, a dict or a Policy; default: the built-in),
`estimator` (probe | pik | learned | a registered one), `verifier` (a process verifier: enables
verifier features and searches), `aggregate` (majority | weighted | top over all candidates).
"""

from __future__ import annotations

from ttscale.strategies.base import StrategyGen, Task, register_strategy


@register_strategy("auto")
def auto(task: Task) -> StrategyGen:
    from ttscale.allocate import prompt  # registers `pik` too

    return (yield from prompt.auto_prompt(task))
