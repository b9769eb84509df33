"""Multi-temperature sampling and voting, after "On the Role of Temperature Sampling in Test-Time Scaling".

Different temperatures solve different problems, so instead of spending the whole budget at one
temperature, `temperature` spreads it over a grid (default 0.3, 0.6, 0.9, 1.2; `temperatures=[...]`,
optionally `temperature_shares=[...]`) and pools every sample into one vote, clustered by answer
equivalence (`aggregate="majority"`) or weighted by a verifier score (`aggregate="weighted"`, scorer
`logprob` by default, or any registered verifier via `scorer=`).

Budget accounting: `budget` = the number of complete samples it may draw, split over the grid by
largest remainder (equal shares by default: budget 16 over 4 temperatures is 4 each; budget 6 is 2, 2,
1, 1, ties going to the earlier temperature). Samples are drawn in waves (`wave_size`, default one
sample per temperature of the grid), each wave ONE Generate whose prefixes are the prompt repeated
once per temperature group (`Generate.per_prefix`). Early exit (`early_exit`, on by default): after a
wave, if the leading answer's votes exceed the runner-up's plus the most the remaining samples could
add (1 each: a vote, or a score in [0, 1]), the winner is certain and the remaining samples are never
generated; `details["samples_saved"]` says how many. `aggregate="top"` never exits early.

The grid helpers here are shared with `best_of_n` (`temperatures=` there too: one Generate, no waves)
and `particle` (one temperature per particle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Generator, Sequence

from ttscale.errors import TTScaleError
from ttscale.requests import Completion, Generate, Sampling
from ttscale.strategies.aggregate import aggregate, check_aggregation
from ttscale.strategies.base import Candidate, StrategyGen, Task, register_strategy
from ttscale.strategies.options import StrategyOptions
from ttscale.strategies.candidate_scores import LOGPROB_SCORER, score_candidates

DEFAULT_TEMPERATURES = (0.3, 0.6, 0.9, 1.2)


@dataclass(frozen=True)
class Grid:
    """Sampling temperatures and the share of the budget each one gets."""

    temperatures: tuple[float, ...]
    shares: tuple[float, ...]

    def split(self, n: int) -> list[int]:
        return split_budget(n, self.shares)

    def order(self, n: int) -> list[float]:
        """The temperature of each of `n` samples, interleaved so any prefix of the list is balanced."""
        return [self.temperatures[i] for i in interleave(self.split(n))]


def parse_floats(value: Any, name: str) -> tuple[float, ...]:
    """A list of numbers from a list or a comma-separated string ("0.3,0.6" from a command line)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(float(x) for x in items if not (isinstance(x, str) and not x.strip()))
    except (TypeError, ValueError):
        raise TTScaleError(f"{name} must be a list of numbers, got {value!r}", f"pass e.g. {name}=0.3,0.6,0.9") from None
    if not out:
        raise TTScaleError(f"{name} is empty", f"pass at least one value, e.g. {name}=0.6")
    return out


def temperature_grid(options: Any, default: Sequence[float] | None = None) -> Grid | None:
    """The grid from the `temperatures` / `temperature_shares` options (an options object or a dict);
    `default` when none is given."""
    get = options.get if isinstance(options, dict) else (lambda k: getattr(options, k, None))
    raw = get("temperatures")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if default is None:
            return None
        raw = default
    temps = parse_floats(raw, "temperatures")
    if any(t < 0 or not math.isfinite(t) for t in temps):
        raise TTScaleError(f"temperatures must be finite and non-negative, got {list(temps)}", "pass e.g. 0.3,0.6,0.9,1.2")
    shares_raw = get("temperature_shares")
    shares = parse_floats(shares_raw, "temperature_shares") if shares_raw is not None else (1.0,) * len(temps)
    if len(shares) != len(temps):
        raise TTScaleError(f"{len(shares)} temperature_shares for {len(temps)} temperatures",
                           "give one share per temperature, or none for equal shares")
    if any(s < 0 or not math.isfinite(s) for s in shares) or sum(shares) <= 0:
        raise TTScaleError(f"temperature_shares must be non-negative with a positive sum, got {list(shares)}",
                           "pass e.g. 1,1,2,1")
    return Grid(temps, shares)


def split_budget(n: int, shares: Sequence[float]) -> list[int]:
    """Largest-remainder split of `n` samples by `shares`; ties go to the earlier entry."""
    total = float(sum(shares))
    quotas = [n * s / total for s in shares]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def interleave(counts: Sequence[int]) -> list[int]:
    """Index per sample: always the entry least far along its own count (ties: the earlier one)."""
    given = [0] * len(counts)
    out: list[int] = []
    for _ in range(sum(counts)):
        i = min((i for i, c in enumerate(counts) if given[i] < c), key=lambda i: (given[i] / counts[i], i))
        given[i] += 1
        out.append(i)
    return out


def grid_request(prefix: tuple[int, ...], temps: Sequence[float], sampling: Sampling,
                 messages: tuple[tuple[str, str], ...] | None = None) -> tuple[Generate, list[float]]:
    """ONE Generate drawing one sample of `prefix` per entry of `temps`.

    Samples of the same temperature are grouped; every group becomes count/n copies of the prefix at n
    samples each (n = gcd of the group sizes, since a Generate has one n), each copy with its own
    Sampling. Returns the request and the temperature of each of its prefixes.
    """
    groups: dict[float, int] = {}
    for t in temps:
        groups[t] = groups.get(t, 0) + 1
    n = math.gcd(*groups.values())
    prefix_temps = [t for t, count in groups.items() for _ in range(count // n)]
    per_prefix = tuple(replace(sampling, temperature=t) for t in prefix_temps)
    return Generate(prefixes=(prefix,) * len(prefix_temps), n=n, sampling=sampling, per_prefix=per_prefix,
                    messages=messages), prefix_temps


def sample_at(prefix: tuple[int, ...], temps: Sequence[float], sampling: Sampling,
              messages: tuple[tuple[str, str], ...] | None = None) -> Generator[Any, Any, list[tuple[Completion, float]]]:
    """Yield one grid request; return (completion, its temperature) for every sample drawn."""
    request, prefix_temps = grid_request(prefix, temps, sampling, messages)
    results = yield request
    return [(c, t) for comps, t in zip(results, prefix_temps) for c in comps]


def decided(candidates: list[Candidate], how: str, score_key: str | None, remaining: int) -> bool:
    """True when no outcome of `remaining` more samples (each adding at most 1) can change the winner."""
    if how == "top":
        return False
    tally: dict[int, float] = {}
    for c in candidates:
        if c.cluster is None or c.answer is None:
            continue
        if how == "majority":
            w = 1.0
        else:
            s = c.scores.get(score_key) if score_key else None
            w = float(s) if s is not None else 0.0
        tally[c.cluster] = tally.get(c.cluster, 0.0) + w
    top = sorted(tally.values(), reverse=True) + [0.0, 0.0]
    return top[0] - top[1] > remaining


def flag(value: Any) -> bool:
    """An on/off option from Python (True) or a command line ("false", "0")."""
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


@dataclass(frozen=True)
class TemperatureOptions(StrategyOptions):
    temperatures: tuple[float, ...] | None = None  # the grid (default DEFAULT_TEMPERATURES)
    temperature_shares: tuple[float, ...] | None = None  # share of the budget per temperature (default equal)
    aggregate: str = "majority"
    scorer: str = LOGPROB_SCORER  # verifier that scores whole candidates for weighted / top
    early_exit: bool = True  # stop once the vote's winner is certain
    wave_size: int | None = None  # samples per wave (default one per grid temperature)


@register_strategy("temperature", options=TemperatureOptions)
def temperature(task: Task) -> StrategyGen:
    o = task.options_as(TemperatureOptions, "temperature")
    grid = temperature_grid(o, default=DEFAULT_TEMPERATURES)
    assert grid is not None
    how = check_aggregation(o.aggregate)
    scorer = o.scorer
    early_exit = o.early_exit
    counts = grid.split(task.budget)
    order = grid.order(task.budget)
    wave_size = int(o.wave_size or sum(1 for c in counts if c))
    if wave_size < 1:
        raise TTScaleError(f"wave_size must be at least 1, got {wave_size}", "pass e.g. wave_size=4")

    candidates: list[Candidate] = []
    waves: list[dict] = []
    drawn = 0
    stopped_early = False
    while drawn < len(order):
        wave = order[drawn: drawn + wave_size]
        sampling = replace(task.sampling, seed=task.seed(), logprobs=task.sampling.logprobs or scorer == LOGPROB_SCORER)
        samples = yield from sample_at(task.prompt_ids, wave, sampling, messages=task.messages)
        new = [Candidate.from_completion(c, temperature=t, wave=len(waves)) for c, t in samples]
        for c in new:
            c.answer = task.extract(c.text, c.finish_reason)
        yield from score_candidates(task, new, scorer, [c.mean_logprob for c, _ in samples])
        candidates += new
        drawn += len(wave)
        remaining = len(order) - drawn
        for cand, cid in zip(candidates, task.cluster([c.answer for c in candidates])):
            cand.cluster = cid
        outcome = aggregate(candidates, how, score_key=scorer)
        task.best_so_far = outcome  # what a deadline returns
        stopped_early = early_exit and remaining > 0 and decided(candidates, how, scorer, remaining)
        waves.append({"wave": len(waves), "samples": len(new), "answers": [c.answer for c in new]})
        if stopped_early:
            break

    per_temp = []
    for t, planned in zip(grid.temperatures, counts):
        mine = [c for c in candidates if c.meta["temperature"] == t]
        votes: dict[str, int] = {}
        for c in mine:
            if c.answer is not None:
                votes[c.answer] = votes.get(c.answer, 0) + 1
        per_temp.append({"temperature": t, "planned": planned, "generated": len(mine), "votes": votes})
    outcome.details = {
        "aggregate": how, "scorer": scorer, "temperatures": list(grid.temperatures), "shares": list(grid.shares),
        "grid": per_temp, "wave_size": wave_size, "waves": waves, "early_exit": stopped_early,
        "samples_saved": len(order) - drawn,
    }
    return outcome
