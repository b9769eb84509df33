"""`auto`: difficulty-aware allocation (ttscale.allocate) as a strategy for one prompt.

Probes the prompt with a few samples, estimates its difficulty, then escalates as the policy says: more
samples, or the strategy the policy prefers for the prompt's difficulty bin (a step-level search or
refine, which need a verifier; parallel thinking, which can synthesize without one),
stopping early on consensus; at most `budget` candidates. Prompts submitted together (`engine.solve_batch`) go
through `auto.together`: the same coroutine for every prompt with one shared pool of budget x prompts,
so budget moves between prompts (at most the policy's per-prompt cap each). A prompt submitted alone
(asolve, a bench cell, `ttscale solve`) decides alone.

Options: `policy` (a JSON path from `ttscale calibrate`, a dict or a Policy; default: the model folder's
policy.json, else the built-in),
`estimator` (probe | pik | learned | a registered one), `verifier` (a process verifier: enables
verifier features and searches), `aggregate` (majority | weighted | top over all candidates; with the
default majority, a prompt answered from samples votes as its bin's most accurate best-of-N line does:
a fitted policy may hold one weighted by sequence probability, `Policy.vote`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ttscale.strategies.base import StrategyGen, Task, register_strategy
from ttscale.strategies.options import StrategyOptions


@dataclass(frozen=True)
class AutoOptions(StrategyOptions):
    policy: Any = None  # a policy JSON path, a dict or a Policy (default: the model's policy.json, else built-in)
    estimator: str | None = None  # probe | pik | learned | a registered one (default: the policy's)
    aggregate: str = "majority"  # majority (or the bin's vote, see above) | weighted | top over all candidates
    verifier: str | None = None  # a process verifier: verifier features, and searches for split votes
    # Options of the strategies auto may run are accepted and handed on to them.
    passes_to: ClassVar[tuple[str, ...]] = ("best_of_n", "beam", "dvts", "particle", "parallel_thinking", "refine")


@register_strategy("auto", options=AutoOptions)
def auto(task: Task) -> StrategyGen:
    from ttscale.allocate import prompt  # registers `pik` too

    return (yield from prompt.auto_prompt(task))


def _together(tasks: list[Task]) -> list[StrategyGen]:
    from ttscale.allocate import prompt

    return prompt.auto_together(tasks)


auto.together = _together  # type: ignore[attr-defined]  (see strategies.base.start_together)
