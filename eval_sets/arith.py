"""`arith`: seeded arithmetic word problems with exact integer answers and step-by-step solutions.

Why it exists: it is contamination-free (generated, never on the web), its difficulty is a dial (level 1 =
one small operation, level 5 = five operations on larger numbers, nested), and every solution step is
one checkable claim such as `5 * 14 = 70`, so step verifiers and the lab model have exact ground truth.

Each problem depends only on (seed, level, index within level), so `generate(100, levels=(3,), seed=0)`
holds the same level-3 problems as `generate(500, seed=0)`, and different seeds give disjoint sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LEVELS = (1, 2, 3, 4, 5)
STEP_DELIMITER = "\n\n"

NAMES = [
    ("Hana", "she"), ("Omar", "he"), ("Lena", "she"), ("Ravi", "he"), ("Mia", "she"), ("Theo", "he"),
    ("Zara", "she"), ("Ben", "he"), ("Aiko", "she"), ("Diego", "he"), ("Nora", "she"), ("Felix", "he"),
    ("Ivy", "she"), ("Sam", "he"), ("Priya", "she"), ("Kofi", "he"), ("Elsa", "she"), ("Luca", "he"),
    ("Maya", "she"), ("Tom", "he"), ("Yara", "she"), ("Ali", "he"), ("Rosa", "she"), ("Jonas", "he"),
]
ITEMS = [
    "stickers", "marbles", "apples", "coins", "books", "cards", "shells", "pencils", "beads", "stamps",
    "cookies", "balloons", "buttons", "crayons", "ribbons", "seeds", "blocks", "rocks", "badges", "nuts",
]
CONTAINERS = [("packs", "pack"), ("bags", "bag"), ("boxes", "box"), ("jars", "jar")]

# Per level: number of operations, range of the starting amount, of added/removed amounts, of factors,
# and a cap that keeps every intermediate value small enough to stay readable.
_SPEC = {
    1: dict(ops=1, start=(2, 20), amount=(1, 10), factor=(2, 3), cap=30),
    2: dict(ops=2, start=(5, 40), amount=(2, 20), factor=(2, 5), cap=200),
    3: dict(ops=3, start=(10, 99), amount=(2, 40), factor=(2, 6), cap=500),
    4: dict(ops=4, start=(20, 200), amount=(5, 60), factor=(2, 9), cap=1000),
    5: dict(ops=5, start=(50, 500), amount=(10, 99), factor=(3, 12), cap=5000),
}

_CLAIM = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")
_ANSWER = re.compile(r"The answer is (-?\d+)\.")


@dataclass(frozen=True)
class Ref:
    """The result of an earlier step, used as an operand of a later one."""

    step: int


Operand = int | Ref


@dataclass(frozen=True)
class Step:
    """One solution step: `sentence` holds `{claim}` where `lhs op rhs = result` is written."""

    sentence: str
    op: str
    lhs: Operand
    rhs: Operand


@dataclass(frozen=True)
class Problem:
    """A generated problem with its solution as a small program, so it can be re-rendered with a slip."""

    level: int
    text: str
    steps: tuple[Step, ...]

    def solve(self, slip: tuple[int, int] | None = None) -> tuple[str, int] | None:
        """Solution text and final answer; `slip=(step, delta)` adds `delta` to that step's result.

        A slip is carried to every later step, as a student's arithmetic mistake would be. Returns None
        when the slip makes a later step impossible (inexact division or a negative amount).
        """
        values: list[int] = []
        lines = []
        for i, step in enumerate(self.steps):
            a = values[step.lhs.step] if isinstance(step.lhs, Ref) else step.lhs
            b = values[step.rhs.step] if isinstance(step.rhs, Ref) else step.rhs
            if step.op == "/" and (b == 0 or a % b):
                return None
            result = _apply(step.op, a, b)
            if slip is not None and slip[0] == i:
                result += slip[1]
            if result < 0:
                return None
            values.append(result)
            lines.append(step.sentence.format(claim=f"{a} {step.op} {b} = {result}"))
        lines.append(f"The answer is {values[-1]}.")
        return STEP_DELIMITER.join(lines), values[-1]


def _apply(op: str, a: int, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b
    raise ValueError(f"unknown operation {op!r}")


class _Builder:
    """Builds one problem: a starting amount, then events that change it, each adding solution steps."""

    def __init__(self, rng: np.random.Generator, level: int) -> None:
        self.rng = rng
        self.level = level
        self.spec = _SPEC[level]
        name, pron = NAMES[rng.integers(len(NAMES))]
        friends = [n for n, _ in NAMES if n != name]
        self.name, self.friend = name, friends[rng.integers(len(friends))]
        self.P, self.p = pron.capitalize(), pron
        self.obj = "her" if pron == "she" else "him"
        self.items = ITEMS[rng.integers(len(ITEMS))]
        self.sentences: list[str] = []
        self.steps: list[Step] = []
        self.value = 0  # the running amount after the last event
        self.current: Operand = 0  # how later steps refer to it

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.integers(len(options))]

    def num(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def fmt(self, text: str, **kw: object) -> str:
        return text.format(N=self.name, F=self.friend, P=self.P, p=self.p, o=self.obj, I=self.items, **kw)

    def add_step(self, sentence: str, op: str, lhs: Operand, rhs: Operand) -> Ref:
        self.steps.append(Step(self.fmt(sentence, claim="{claim}"), op, lhs, rhs))
        return Ref(len(self.steps) - 1)

    def set_value(self, ref: Ref, value: int) -> None:
        self.current, self.value = ref, value

    # --- events: each returns False when it cannot apply (then another one is tried) ---

    def gain(self) -> bool:
        b = self.num(*self.spec["amount"])
        if self.value + b > self.spec["cap"]:
            return False
        self.sentences.append(self.fmt(self.pick(
            ["{P} gets {b} more.", "{F} gives {o} {b} more {I}.", "{P} finds {b} more {I}."]), b=b))
        self.set_value(self.add_step("{P} has {claim} {I}.", "+", self.current, b), self.value + b)
        return True

    def lose(self) -> bool:
        if self.value < 2:
            return False
        lo, hi = self.spec["amount"]
        b = self.num(min(lo, self.value - 1), min(hi, self.value - 1))
        self.sentences.append(self.fmt(self.pick(
            ["{P} gives {b} {I} to {F}.", "{P} loses {b} of them.", "{P} uses {b} of them."]), b=b))
        self.set_value(self.add_step("{P} has {claim} {I} left.", "-", self.current, b), self.value - b)
        return True

    def times(self) -> bool:
        k = self.num(*self.spec["factor"])
        if self.value * k > self.spec["cap"]:
            return False
        self.sentences.append(self.fmt(self.pick(
            ["Then {p} has {k} times as many {I} as before.",
             "Then the number of {I} {p} has is multiplied by {k}."]), k=k))
        self.set_value(self.add_step("{P} has {claim} {I}.", "*", self.current, k), self.value * k)
        return True

    def split(self) -> bool:
        lo, hi = self.spec["factor"]
        divisors = [k for k in range(max(lo, 2), hi + 1) if self.value % k == 0 and self.value // k > 0]
        if not divisors:
            return False
        k = divisors[self.rng.integers(len(divisors))]
        self.sentences.append(self.fmt(self.pick(
            ["{P} splits them into {k} equal groups and keeps one group.",
             "{P} divides them equally into {k} boxes and keeps one box."]), k=k))
        self.set_value(self.add_step("{P} keeps {claim} {I}.", "/", self.current, k), self.value // k)
        return True

    def packs(self) -> bool:
        k, b = self.num(*self.spec["factor"]), self.num(*self.spec["amount"])
        if self.value + k * b > self.spec["cap"]:
            return False
        plural, single = CONTAINERS[self.rng.integers(len(CONTAINERS))]
        self.sentences.append(self.fmt(self.pick(
            ["{P} buys {k} {c} with {b} {I} in each {s}.", "{P} gets {k} {c} of {b} {I} each."]),
            k=k, b=b, c=plural, s=single))
        part = self.add_step("The " + plural + " have {claim} {I}.", "*", k, b)
        self.set_value(self.add_step("{P} has {claim} {I}.", "+", self.current, part), self.value + k * b)
        return True

    def give_groups(self) -> bool:
        k = self.num(*self.spec["factor"])
        hi = min(self.spec["amount"][1], (self.value - 1) // k)
        lo = min(self.spec["amount"][0], hi)
        if hi < 1:
            return False
        b = self.num(lo, hi)
        self.sentences.append(self.fmt(self.pick(
            ["{P} gives {k} friends {b} {I} each.", "{P} sells {k} sets of {b} {I}."]), k=k, b=b))
        verb = "gives away" if "friends" in self.sentences[-1] else "sells"
        part = self.add_step("{P} " + verb + " {claim} {I}.", "*", k, b)
        self.set_value(self.add_step("{P} has {claim} {I} left.", "-", self.current, part), self.value - k * b)
        return True

    def two_packs(self) -> bool:
        (k, b), (j, d) = [(self.num(*self.spec["factor"]), self.num(*self.spec["amount"])) for _ in range(2)]
        if self.value + k * b + j * d > self.spec["cap"]:
            return False
        self.sentences.append(self.fmt(
            "{P} buys {k} small packs with {b} {I} each and {j} big packs with {d} {I} each.", k=k, b=b, j=j, d=d))
        small = self.add_step("The small packs have {claim} {I}.", "*", k, b)
        big = self.add_step("The big packs have {claim} {I}.", "*", j, d)
        both = self.add_step("Together the packs have {claim} {I}.", "+", small, big)
        self.set_value(self.add_step("{P} has {claim} {I}.", "+", self.current, both),
                       self.value + k * b + j * d)
        return True

    def build(self) -> Problem:
        self.value = self.num(*self.spec["start"])
        self.current = self.value
        self.sentences.append(self.fmt(self.pick(["{N} has {a} {I}.", "{N} starts with {a} {I}."]), a=self.value))
        simple = [self.gain, self.lose] if self.level == 1 else [self.gain, self.lose, self.times, self.split]
        remaining = self.spec["ops"]
        while remaining > 0:
            events = [(e, 1) for e in simple]
            if remaining >= 2 and self.level >= 2:
                events += [(self.packs, 2), (self.give_groups, 2)]
            if remaining >= 4:
                events += [(self.two_packs, 4)]
            order = self.rng.permutation(len(events))
            for idx in order:
                event, cost = events[idx]
                if event():
                    remaining -= cost
                    break
            else:  # nothing applies (cannot happen with gain/lose available, but stay total)
                break
        self.sentences.append(self.fmt(self.pick(
            ["How many {I} does {p} have now?", "How many {I} does {N} have at the end?"])))
        return Problem(self.level, " ".join(self.sentences), tuple(self.steps))


def make_problem(seed: int, level: int, index: int) -> Problem:
    """The `index`-th level-`level` problem of `seed`: independent of which other problems are asked for."""
    if level not in _SPEC:
        raise ValueError(f"arith level must be one of {LEVELS}, got {level}")
    rng = np.random.default_rng([seed, level, index])
    return _Builder(rng, level).build()


def generate(n: int, levels: Sequence[int] = LEVELS, seed: int = 0) -> list[dict]:
    """`n` problems spread evenly over `levels` (interleaved: level of row i is levels[i % len(levels)])."""
    levels = tuple(levels)
    if not levels:
        raise ValueError("arith needs at least one level")
    rows = []
    for i in range(n):
        level = levels[i % len(levels)]
        problem = make_problem(seed, level, i // len(levels))
        solution, answer = problem.solve()  # type: ignore[misc]  # no slip: always solvable
        rows.append({"id": f"arith-s{seed}-{i}", "problem": problem.text, "answer": str(answer),
                     "level": level, "solution": solution, "source": "arith"})
    return rows


def solution_steps(row: dict | str) -> list[str]:
    """The steps of a solution (a row or its text): the units step verifiers and PRMs score."""
    text = row["solution"] if isinstance(row, dict) else row
    return [s.strip() for s in text.split(STEP_DELIMITER) if s.strip()]


def parse_claim(step: str) -> tuple[int, str, int, int] | None:
    """The `a op b = c` claim in a step, or None when the step makes no arithmetic claim."""
    m = _CLAIM.search(step)
    return (int(m[1]), m[2], int(m[3]), int(m[4])) if m else None


def claim_is_correct(step: str) -> bool | None:
    """Whether a step's arithmetic claim is true; None for steps without a claim (such as the answer line)."""
    claim = parse_claim(step)
    if claim is None:
        return None
    a, op, b, c = claim
    if op == "/":
        return b != 0 and a == b * c
    return _apply(op, a, b) == c


def extract_answer(text: str) -> str | None:
    """The integer after the last `The answer is N.`, as a string; None when the text never says it."""
    found = _ANSWER.findall(text)
    return found[-1] if found else None
