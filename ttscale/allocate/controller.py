"""The allocation decisions: who stops, who gets how much more of the batch budget, and with what.

At every decision point (after the probes, then after each wave) the controller sees every prompt that
is still open, and:

1. re-estimates each prompt's difficulty from its samples so far (the configured estimator);
2. stops the prompts whose answer is settled: all samples agree (and the verifier does not object), the
   leading answer is verifier-accepted, or a clear consensus holds; and prompts at their cap;
3. shares the rest of the batch pool by expected gain per token: the pool is B x prompts candidates and
   B x (the prompts' probe lengths, summed) generated tokens, so auto spends no more tokens than a
   uniform strategy at B would, to within what the probes' lengths foretell (a long-winded prompt's
   candidate costs more). The pool is charged what the backend generated for each prompt, a search's
   pruned particles included, not the lengths of the candidates it returned. Each prompt's difficulty
   bin has an accuracy-vs-budget curve (the policy's), and budget goes, a step at a time, to whichever
   prompt gains the most accuracy per token, while some prompt gains `min_gain` per candidate. What is
   left then (`spend_leftover`) goes to the open prompts a step at a time, fewest candidates first and
   hopeless ones last: the user set the budget, and curves fitted on a few dozen problems per bin are
   flat within their noise at large budgets. Settled prompts get nothing;
4. stops the prompts whose answer cannot change within what they were allotted (leader's votes exceed
   the runner-up's plus the allotment), hands that back, and shares again;
5. gives each remaining prompt its next wave: a doubling of its samples, or, when the policy prefers
   another strategy for its bin (and it can run: searches and refine need a verifier), the whole allotment as one
   run of it (particle, beam, parallel_thinking, refine).

Every wave is spent through the scheduler with all prompts at once, and the pool is only ever reduced by
candidates actually allotted, so sum(candidates) <= B x prompts holds exactly; the token pool holds to
the accuracy of each prompt's cost per candidate so far (the last wave's lengths are foreseen, not known).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from ttscale.allocate.estimators import Estimator
from ttscale.allocate.features import generated_tokens, leader_runner_up, mean_score, probe_features, vote_counts
from ttscale.allocate.policy import Policy
from ttscale.strategies.base import Candidate


@dataclass
class PromptState:
    """One prompt's allocation so far: its candidates (all waves), estimates and decisions."""

    problem: str
    candidates: list[Candidate] = field(default_factory=list)
    tokens: int = 0  # generated tokens it actually cost: every completion, a search's pruned particles too
    pik: float | None = None
    probe_k: int = 0
    difficulty: float | None = None  # from the probes: what the allocation started from
    difficulty_now: float | None = None  # from all samples so far
    bin: int | None = None
    features: dict[str, float] = field(default_factory=dict)  # of the probes
    allowance: int = 0  # planned total candidates at the latest decision
    leftover: int = 0  # of which no curve claimed them: the pool's rest, shared round the open prompts
    waves: list[dict[str, Any]] = field(default_factory=list)
    searched: bool = False  # the bin's strategy (a search, parallel_thinking, refine) spent the allotment
    done: bool = False
    closed: bool = False  # ended or failed: the controller's decisions no longer wait for it
    reason: str = ""
    search_details: dict[str, Any] = field(default_factory=dict)

    @property
    def spent(self) -> int:
        return len(self.candidates)

    @property
    def generated(self) -> int:
        """Generated tokens so far: as counted while it ran, or (a state built from candidates alone) the
        candidates' own lengths."""
        return self.tokens or sum(length(c) for c in self.candidates)

    def sampled(self) -> list[Candidate]:
        return [c for c in self.candidates if c.meta.get("phase") in ("probe", "sample")]


@dataclass
class Plan:
    """What one prompt does next: stop, or one wave of `n` candidates with a strategy."""

    stop: bool
    kind: str = ""  # "sample" | "search"
    n: int = 0
    strategy: str = "best_of_n"
    label: str = "best_of_n"
    settings: dict[str, Any] = field(default_factory=dict)


STOP = Plan(stop=True)


class Controller:
    """Holds the batch pool and decides for all open prompts at once (one prompt: the same code)."""

    def __init__(self, policy: Policy, estimator: Estimator, budget: int, n_prompts: int,
                 verifier: str | None = None) -> None:
        self.policy = policy
        self.estimator = estimator
        self.budget = budget  # average candidates per prompt
        self.total = budget * n_prompts  # the batch pool
        self.cap = max(budget, min(policy.max_per_prompt, int(math.floor(policy.cap_factor * budget))))
        self.verifier = verifier
        self.probe_k = min(budget, policy.probe_k, max(2, budget // 2))
        self.states: list[PromptState] = []
        self.decisions = 0
        self.token_total: float | None = None  # fixed at the first decision, from the probes' lengths

    def add(self, state: PromptState) -> PromptState:
        state.probe_k = self.probe_k
        self.states.append(state)
        return state

    def leave(self, state: PromptState) -> None:
        """The prompt ended (or failed): decisions no longer wait for it."""
        state.closed = True

    @property
    def open(self) -> list[PromptState]:
        return [s for s in self.states if not s.closed]

    @property
    def spent(self) -> int:
        return sum(s.spent for s in self.states)

    # -- tokens -----------------------------------------------------------------------------------------
    def cost(self, s: PromptState) -> float:
        """Expected generated tokens of one more candidate of this prompt: what its candidates cost so far
        (all prompts' when it has none; 1 when no backend reported tokens, so tokens count candidates)."""
        own = [s] if s.spent else [t for t in self.states if t.spent]
        n = sum(t.spent for t in own)
        return sum(t.generated for t in own) / n if n else 1.0

    def tokens_left(self) -> float:
        """The token pool's rest: B x the probes' cost per candidate, less what was actually generated."""
        if self.token_total is None:
            self.token_total = self.budget * sum(self.cost(s) for s in self.states)
        return self.token_total - sum(s.generated for s in self.states)

    # -- estimates --------------------------------------------------------------------------------------
    def features(self, state: PromptState, candidates: list[Candidate]) -> dict[str, float]:
        return probe_features(state.problem, candidates, self.verifier, state.pik)

    def estimate(self, state: PromptState) -> None:
        if state.difficulty is None:  # the probe estimate: the one reported and calibrated
            state.features = self.features(state, state.sampled())
            state.difficulty = self.estimator.estimate(state.features)
            state.difficulty_now = state.difficulty
        else:
            state.difficulty_now = self.estimator.estimate(self.features(state, state.sampled()))
        state.bin = self.policy.bin_of(state.difficulty_now)

    # -- decisions --------------------------------------------------------------------------------------
    def plan(self, waiting: list[PromptState]) -> list[Plan]:
        """Decide for every prompt in `waiting` (all open prompts of the batch)."""
        self.decisions += 1
        plans: dict[int, Plan] = {}
        active: list[PromptState] = []
        for s in waiting:
            self.estimate(s)
            reason = self.settled(s)
            if reason:
                plans[id(s)] = self._stop(s, reason)
            else:
                active.append(s)
        pool = self.total - self.spent
        for _ in range(len(active) + 1):  # stops hand budget back; share again until nothing changes
            allot, left = self.share(active, pool)
            fixed = [s for s in active if self.cannot_change(s, allot[id(s)])]
            for s in fixed:
                plans[id(s)] = self._stop(s, self.why_no_more(s, allot[id(s)], left))
            active = [s for s in active if id(s) not in plans]
            if not fixed:
                break
        for s in active:
            s.allowance = allot[id(s)]
            plans[id(s)] = self.next_wave(s)
        return [plans[id(s)] for s in waiting]

    def settled(self, s: PromptState) -> str:
        """Why this prompt needs nothing more ('' if it may)."""
        p = self.policy
        c = s.spent
        if s.searched:
            w = s.waves[-1] if s.waves else {}
            return (f"ran {w.get('strategy', 'a search')} with {w.get('n', '?')} candidates after a split vote "
                    f"(difficulty {w.get('difficulty', 0.0):.2f}), then stopped")
        counts = vote_counts(s.candidates, self.verifier or "logprob")  # the leader rule of the final vote
        lead, second = leader_runner_up(s.candidates)
        if not counts:
            return self.exhausted(s)
        leader_cluster = counts[0][0]
        lead_ver = mean_score(s.candidates, self.verifier, leader_cluster)
        if lead == c and c >= 2 and (lead_ver is None or lead_ver >= p.settle_verifier):
            return f"settled: all {c} samples agree"
        if self.verifier and lead >= 2 and lead * 2 >= c and lead_ver is not None and lead_ver >= p.accept_score:
            second_ver = mean_score(s.candidates, self.verifier, counts[1][0]) if len(counts) > 1 else None
            if second_ver is None or second_ver < p.accept_score:
                return f"settled: the leading answer ({lead}/{c} votes) is verifier-accepted ({lead_ver:.2f})"
        if lead >= p.consensus_votes and lead >= p.consensus_share * c:
            return f"consensus: {lead}/{c} samples agree"
        return self.exhausted(s)

    def exhausted(self, s: PromptState) -> str:
        if s.spent >= self.cap:
            return f"reached the per-prompt cap of {self.cap}"
        if self.total - self.spent <= 0:
            return "batch budget spent"
        return ""

    def share(self, active: list[PromptState], pool: int) -> tuple[dict[int, int], int]:
        """Planned total candidates per prompt, and what is left of the pool (0 once the tokens run out).

        Greedy in steps of `probe_k` candidates: each step goes to the prompt whose bin curve promises the
        most accuracy per token from where it stands (ties: the prompt with fewer candidates). The promise
        looks ahead to every budget up to the cap, not only the next step: fitted curves are often flat and
        then jump (a search that pays only from 16 candidates), and a next-step gain of zero would stop
        such a prompt short of the jump. Then, with `spend_leftover`, what no curve claimed goes round
        the open prompts a step at a time."""
        allot = {id(s): s.spent for s in active}
        step = max(1, self.probe_k)
        hopeless = [self.hopeless(s) for s in active]
        cost = [self.cost(s) for s in active]
        tokens = self.tokens_left()
        memo: dict[tuple[int, int], float] = {}

        def value(bin_: int, b: int) -> float:
            if (bin_, b) not in memo:
                memo[(bin_, b)] = self.policy.accuracy(bin_, b, self.verifier)
            return memo[(bin_, b)]

        def take(i: int) -> int:
            """Allot up to a step to prompt i within the cap and both pools; how many it got."""
            nonlocal pool, tokens
            s = active[i]
            n = min(step, self.cap - allot[id(s)], pool, int(tokens // cost[i]))
            if n > 0:
                allot[id(s)] += n
                pool -= n
                tokens -= n * cost[i]
            return max(n, 0)

        heap: list[tuple[float, int, int]] = []

        def push(i: int) -> None:
            s = active[i]
            v = allot[id(s)]
            if v >= self.cap:
                return
            now = value(s.bin, max(v, 1))
            ahead = sorted({min(t, self.cap) for t in range(v + step, self.cap + step, step)})
            rate = max((value(s.bin, t) - now) / (t - v) for t in ahead)  # per candidate
            if hopeless[i]:
                rate *= self.policy.hopeless_scale
            if rate >= self.policy.min_gain:
                heapq.heappush(heap, (-round(rate / cost[i], 12), v, i))  # ordered per token

        for i in range(len(active)):
            push(i)
        while heap and pool > 0:
            _, _, i = heapq.heappop(heap)
            if take(i):
                push(i)
        claimed = dict(allot)
        if self.policy.spend_leftover:
            rest = [(hopeless[i], allot[id(s)], i) for i, s in enumerate(active) if allot[id(s)] < self.cap]
            heapq.heapify(rest)
            while rest and pool > 0:
                h, _, i = heapq.heappop(rest)
                if take(i) and allot[id(active[i])] < self.cap:
                    heapq.heappush(rest, (h, allot[id(active[i])], i))
        for s in active:
            s.leftover = allot[id(s)] - claimed[id(s)]
        cheapest = min(cost, default=1.0)
        return allot, pool if tokens >= cheapest else 0

    def hopeless(self, s: PromptState) -> bool:
        """Evidence that more samples do not help: after at least two waves (the probe and a doubling),
        still no two samples agree, or the verifier rejects nearly all. A split probe alone is not that
        evidence: on unfamiliar wording a solvable prompt's first few samples often all differ."""
        if s.spent < 2 * max(self.probe_k, 2):
            return False
        lead, _ = leader_runner_up(s.candidates)
        if lead <= 1:
            return True
        ver = mean_score(s.candidates, self.verifier)
        return ver is not None and ver < self.policy.hopeless_verifier

    def cannot_change(self, s: PromptState, allot: int) -> bool:
        """More candidates within the allotment cannot change the answer (or there are none)."""
        more = allot - s.spent
        lead, second = leader_runner_up(s.candidates)
        return more <= 0 or lead > second + more

    def why_no_more(self, s: PromptState, allot: int, left: int) -> str:
        more = allot - s.spent
        lead, second = leader_runner_up(s.candidates)
        if more > 0:
            return f"answer cannot change: leader {lead} votes vs {second}, at most {more} more"
        d = s.difficulty_now if s.difficulty_now is not None else 0.0
        if left <= 0:
            return (f"batch budget spent: it went to prompts with more to gain per token (difficulty {d:.2f}, "
                    f"{lead}/{s.spent} agree)")
        if self.hopeless(s) or s.bin == len(self.policy.bins) - 1:
            return f"hopeless: difficulty {d:.2f}, {lead}/{s.spent} agree; more samples are not expected to help"
        return f"no gain expected from more candidates (difficulty {d:.2f}, {lead}/{s.spent} agree)"

    def next_wave(self, s: PromptState) -> Plan:
        more = s.allowance - s.spent
        label, name, settings = self.policy.choose(s.bin, s.allowance, self.verifier)  # only usable labels
        if name != "best_of_n" and more >= self.policy.min_particles:
            return Plan(stop=False, kind="search", n=more, strategy=name, label=label, settings=settings)
        n = min(more, max(s.spent, self.probe_k))
        return Plan(stop=False, kind="sample", n=n)

    def _stop(self, s: PromptState, reason: str) -> Plan:
        s.done = True
        s.reason = reason
        s.allowance = s.spent
        s.leftover = 0
        return STOP


def length(c: Candidate) -> int:
    """A candidate's generated tokens for the token pool (at least 1: a backend that reports none)."""
    return max(1, generated_tokens(c) or 0)
