"""Particle filtering at GPU scale on a simulated device: what the round barrier costs.

    python benchmarks/barrier_sim.py                                  # 500 prompts x 16 particles + a PRM
    python benchmarks/barrier_sim.py --prompts 16 --particles 8 --step-lengths steps.json

Three schedules of the same solutions (same step lengths):
- `best_of_n`: each particle's whole solution sampled in one request, no PRM (the throughput reference);
- `barrier` (ttscale today): every round waits for the slowest step of any prompt, then ONE PRM call
  scores every prompt's steps, then every prompt resamples and starts its next step together.
- `continuous`: a prompt scores, resamples and starts its next step as soon as its own particles have
  finished theirs; its next step joins the running batch while other prompts are still decoding.

The device model (assumptions, all flags):
- decode runs in iterations; each advances every running sequence by one token and costs
  `--iter-ms` + `--per-seq-us` x running (weights are read once per iteration, so a batch costs about
  the same as one sequence up to `--max-running` sequences; more wait in a queue);
- a continued step's prompt is in the prefix cache (no prefill); a prompt's first step prefills
  `--prompt-tokens` at `--prefill-us` per token;
- a PRM call scores every finished path it is given in one forward: `--prm-ms` + `--prm-us` per path token
  (the path so far), on the same device, so decoding pauses while it runs; it uses the whole device only
  from `--prm-full-tokens` path tokens up;
- the continuous schedule scores the prompts that are ready once their paths fill a PRM forward
  (`--prm-full-tokens`), or when the decode batch would otherwise run short (so it never waits idle);
- step lengths (tokens) are drawn from `--step-lengths` (a JSON list recorded from real runs) or, when
  none is given, from a lognormal with median 32 clipped to [4, 64] (uneven steps, as SmolLM2 writes);
  each solution has 3-8 steps; resampling keeps the particle count and does not change lengths.

Busy fraction: decode time weighted by running / max-running, plus PRM time weighted by its tokens /
prm-full-tokens, over wall time: the share of the device's capacity the schedule keeps in use.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Device:
    iter_ms: float = 12.0
    per_seq_us: float = 8.0
    max_running: int = 256
    prefill_us: float = 20.0
    prompt_tokens: int = 120
    prm_ms: float = 15.0
    prm_us: float = 2.0
    prm_full_tokens: int = 65536  # path tokens one PRM forward needs to use the whole device


@dataclass
class Prompt:
    steps: list[list[int]]  # per particle, the token length of each of its steps
    done_steps: int = 0
    path_tokens: int = 0
    started: bool = False

    @property
    def finished(self) -> bool:
        return self.done_steps >= max(len(s) for s in self.steps)

    def requests(self) -> list[int]:
        """Token lengths of this prompt's next step, one per particle still writing."""
        return [s[self.done_steps] for s in self.steps if self.done_steps < len(s)]


@dataclass
class Clock:
    wall: float = 0.0
    busy: float = 0.0
    prm_calls: int = 0
    prm_s: float = 0.0  # device time spent in PRM forwards (decoding pauses meanwhile)
    rounds: list[float] = field(default_factory=list)


def make_prompts(n: int, particles: int, lengths: np.ndarray | None, rng: np.random.Generator) -> list[Prompt]:
    def step() -> int:
        if lengths is not None:
            return int(lengths[rng.integers(len(lengths))])
        return int(np.clip(rng.lognormal(np.log(32), 0.6), 4, 64))

    return [Prompt([[step() for _ in range(int(rng.integers(3, 9)))] for _ in range(particles)]) for _ in range(n)]


def simulate(prompts: list[Prompt], dev: Device, barrier: bool, prm: bool = True) -> Clock:
    clock = Clock()
    queue: list[tuple[int, int]] = []  # (prompt index, tokens left) waiting for a slot
    running: list[list[int]] = []  # [prompt index, tokens left]
    pending = {i: 0 for i in range(len(prompts))}  # sequences of the prompt's current step not finished
    to_score: list[int] = []

    def submit(i: int) -> None:
        p = prompts[i]
        reqs = p.requests()
        pending[i] = len(reqs)
        queue.extend((i, n) for n in reqs)
        if not p.started:
            p.started = True
            t = len(reqs) * dev.prompt_tokens * dev.prefill_us / 1e6
            clock.wall += t
            clock.busy += t

    def score(batch: list[int]) -> None:
        if prm:
            tokens = sum(prompts[i].path_tokens * len(prompts[i].steps) for i in batch)
            t = dev.prm_ms / 1e3 + tokens * dev.prm_us / 1e6
            clock.wall += t
            clock.prm_s += t
            clock.busy += t * min(1.0, tokens / dev.prm_full_tokens)
            clock.prm_calls += 1
        for i in batch:
            p = prompts[i]
            p.done_steps += 1
            if not p.finished:
                submit(i)

    for i in range(len(prompts)):
        submit(i)
    round_start = 0.0
    while queue or running or to_score:
        # barrier: score once nothing is decoding. continuous: score the prompts that are ready once their
        # paths fill a PRM forward (--prm-full-tokens) or the decode batch would otherwise run short.
        ready = sum(prompts[i].path_tokens * len(prompts[i].steps) for i in to_score)
        short = len(queue) + len(running) < dev.max_running
        if to_score and ((not queue and not running) or (not barrier and (short or ready >= dev.prm_full_tokens))):
            batch, to_score = to_score, []
            score(batch)
            if barrier:
                clock.rounds.append(clock.wall - round_start)
                round_start = clock.wall
            continue
        while queue and len(running) < dev.max_running:
            i, n = queue.pop(0)
            running.append([i, n])
        if not running:
            continue
        t = (dev.iter_ms + dev.per_seq_us * len(running) / 1e3) / 1e3
        clock.wall += t
        clock.busy += t * len(running) / dev.max_running
        still = []
        for seq in running:
            seq[1] -= 1
            if seq[1] > 0:
                still.append(seq)
                continue
            i = seq[0]
            pending[i] -= 1
            if pending[i] == 0:
                prompts[i].path_tokens += max(1, int(np.mean(prompts[i].requests() or [1])))
                to_score.append(i)
        running = still
    return clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--particles", type=int, default=16)
    ap.add_argument("--step-lengths", help="JSON list of step lengths in tokens, recorded from real runs")
    ap.add_argument("--seed", type=int, default=0)
    for f, v in Device().__dict__.items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    args = ap.parse_args()
    dev = Device(**{f: getattr(args, f) for f in Device().__dict__})
    lengths = np.array(json.load(open(args.step_lengths)), dtype=int) if args.step_lengths else None
    out = {}
    for mode in ("best_of_n", "barrier", "continuous"):
        prompts = make_prompts(args.prompts, args.particles, lengths, np.random.default_rng(args.seed))
        tokens = sum(sum(s) for p in prompts for s in p.steps)
        if mode == "best_of_n":  # the same solutions sampled whole: one request per particle, no PRM
            prompts = [Prompt([[sum(s)] for s in p.steps]) for p in prompts]
        c = simulate(prompts, dev, barrier=(mode != "continuous"), prm=(mode != "best_of_n"))
        out[mode] = (c, tokens / c.wall)
        print(f"{mode:>10}: wall {c.wall:8.2f} s  busy fraction {c.busy / c.wall:.3f}  PRM calls {c.prm_calls:4d} ({c.prm_s:6.1f} s)  "
              f"{tokens / c.wall:8.0f} generated tok/s")
    for mode in ("barrier", "continuous"):
        c = out[mode][0]
        print(f"particle ({mode}) / best_of_n generated tok/s: {out[mode][1] / out['best_of_n'][1]:.3f}; "
              f"decoding time only (PRM time left out): {out['best_of_n'][0].wall / (c.wall - c.prm_s):.3f}")
    print(f"continuous / barrier wall time: {out['continuous'][0].wall / out['barrier'][0].wall:.3f}")


if __name__ == "__main__":
    main()
