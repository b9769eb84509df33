"""`auto`: difficulty-aware allocation (ttscale.allocate) as a strategy for one prompt.

Probes the prompt with a few samples, estimates its difficulty, then escalates as the policy says: more
samples, then a step-level search when the vote is still split and a verifier is configured, stopping
early on consensus; at most `budget` candidates. Prompts submitted together (`engine.solve_batch`) go
through `auto.together`: the same coroutine for every prompt with one shared pool of budget x prompts,
so budget moves between prompts (at most the policy's per-prompt cap each). A prompt submitted alone
(asolve, a bench cell, `ttscale solve`) decides alone.

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


def _together(tasks: list[Task]) -> list[StrategyGen]:
    from ttscale.allocate import prompt

    return prompt.auto_together(tasks)


auto.together = _together  # type: ignore[attr-defined]  (see strategies.base.start_together)
