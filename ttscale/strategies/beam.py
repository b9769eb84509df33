"""Step-level beam search and DVTS (diverse verifier tree search), after search-and-learn.

`beam`: N = budget candidates; each round keep the best N/M by aggregated step score and expand each
M ways, so the frontier stays at N. Finished candidates leave the frontier; the search stops when N
have finished (or the step cap is hit) and the final answer is aggregated over the finished ones.

`dvts`: N/M independent subtrees, each expanded M ways per step and pruned greedily to its single best
child, which keeps the N/M final solutions diverse. Both spend one Generate per round for the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttscale.errors import TTScaleError
from ttscale.strategies.options import StepSearchOptions
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Outcome, StrategyGen, Task, register_strategy
from ttscale.strategies.steps import Path, aggregate_steps, check_step_aggregation, extend, score_paths, step_limits


@dataclass(frozen=True)
class BeamOptions(StepSearchOptions):
    beam_width: int = 4  # expansions per kept beam (M); budget / M beams are kept


def _settings(task: Task, name: str) -> tuple[str, str, str, int, BeamOptions]:
    o = task.options_as(BeamOptions, name)
    width = o.beam_width
    if width < 1:
        raise TTScaleError("beam_width must be at least 1", "pass e.g. --beam-width 4")
    if task.budget < width:
        raise TTScaleError(f"budget {task.budget} is smaller than the beam width {width}",
                           f"pass --budget {width} or more, or a smaller --beam-width")
    return o.verifier, check_step_aggregation(o.step_aggregate), check_aggregation(o.aggregate), width, o


def _finish(task: Task, finished: list[Path], verifier: str, how_steps: str, how_final: str, details: dict) -> Outcome:
    candidates = []
    for i, p in enumerate(finished):
        c = p.to_candidate(index=i)
        c.scores[verifier] = aggregate_steps(p.scores, how_steps)
        c.answer = task.extract(c.text, c.finish_reason)
        candidates.append(c)
    for c, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
        c.cluster = cid
    outcome = aggregate(candidates, how_final, score_key=verifier)
    outcome.details = {"verifier": verifier, "step_aggregate": how_steps, "aggregate": how_final, **details}
    return outcome


@register_strategy("beam", options=BeamOptions, needs_verifier=True)
def beam(task: Task) -> StrategyGen:
    verifier, how_steps, how_final, width, o = _settings(task, "beam")
    limits = step_limits(task, o)
    n = task.budget
    keep = max(1, n // width)
    [frontier] = yield from extend(task, [Path()], n, limits)  # N first steps from the prompt
    finished: list[Path] = []
    rounds, kept_log = 1, []
    while True:
        yield from score_paths(task, frontier, verifier)
        finished += [p for p in frontier if p.done]
        live = [p for p in frontier if not p.done]
        if len(finished) >= n or not live or rounds >= limits.max_steps:
            break
        live.sort(key=lambda p: aggregate_steps(p.scores, how_steps), reverse=True)
        beams = live[: max(1, min(keep, n - len(finished)))]
        kept_log.append([round(aggregate_steps(p.scores, how_steps), 4) for p in beams])
        children = yield from extend(task, beams, width, limits)
        frontier = [c for kids in children for c in kids]
        rounds += 1
    # Step cap hit: unfinished paths still compete, so every prompt gets an answer.
    pool = finished or sorted(frontier, key=lambda p: aggregate_steps(p.scores, how_steps), reverse=True)
    pool = sorted(pool, key=lambda p: aggregate_steps(p.scores, how_steps), reverse=True)[:n]
    return _finish(task, pool, verifier, how_steps, how_final,
                   {"beam_width": width, "beams_kept": keep, "rounds": rounds, "kept_scores": kept_log})


@register_strategy("dvts", options=BeamOptions, needs_verifier=True)
def dvts(task: Task) -> StrategyGen:
    verifier, how_steps, how_final, width, o = _settings(task, "dvts")
    limits = step_limits(task, o)
    trees = [Path() for _ in range(max(1, task.budget // width))]
    rounds = 0
    while any(not t.done for t in trees) and rounds < limits.max_steps:
        rounds += 1
        live = [i for i, t in enumerate(trees) if not t.done]
        children = yield from extend(task, [trees[i] for i in live], width, limits)
        flat = [c for kids in children for c in kids]
        yield from score_paths(task, flat, verifier)
        for i, kids in zip(live, children):  # greedy: each subtree keeps its best child
            trees[i] = max(kids, key=lambda p: aggregate_steps(p.scores, how_steps))
    return _finish(task, trees, verifier, how_steps, how_final,
                   {"beam_width": width, "subtrees": len(trees), "rounds": rounds})
