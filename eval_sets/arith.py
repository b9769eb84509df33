"""`arith`: seeded arithmetic word problems with exact integer answers and step-by-step solutions.

Why it exists: it is contamination-free (generated, never on the web), its difficulty is a dial (level 1 =
one small operation, level 5 = five operations on larger numbers, nested), and every solution step is
one checkable claim such as `5 * 14 = 70`, so step verifiers and the lab model have exact ground truth.

Surface variety: a problem is a small program (a starting amount, then events that change it) rendered
through a compositional grammar. Every sentence comes from a *family*: one sentence structure, with
lexical slots (names, items, containers, verbs) filled from large lists. Families are split in two:
`split="train"` renders only training families, `split="heldout"` only held-out ones, so a model trained
on the first meets sentence structures it never saw on the second (see `FAMILIES`). What is held out is
structure, not vocabulary: every word of a held-out family also occurs in some training family (a
model cannot learn what a word it never read means), in another arrangement. Facts come in varied
order (the starting amount may follow the first event; two events may share a sentence, even in
reverse order: "gives away 5 after finding 7 more"), the question comes first or last, and distractor
sentences carry numbers the solution does not use.

Each problem depends only on (split, seed, level, index within level), so `generate(100, levels=(3,),
seed=0)` holds the same level-3 problems as `generate(500, seed=0)`, and different seeds give disjoint sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LEVELS = (1, 2, 3, 4, 5)
SPLITS = ("train", "heldout")
STEP_DELIMITER = "\n\n"

NAMES = [
    ("Hana", "she"), ("Omar", "he"), ("Lena", "she"), ("Ravi", "he"), ("Mia", "she"), ("Theo", "he"),
    ("Zara", "she"), ("Ben", "he"), ("Aiko", "she"), ("Diego", "he"), ("Nora", "she"), ("Felix", "he"),
    ("Ivy", "she"), ("Sam", "he"), ("Priya", "she"), ("Kofi", "he"), ("Elsa", "she"), ("Luca", "he"),
    ("Maya", "she"), ("Tom", "he"), ("Yara", "she"), ("Ali", "he"), ("Rosa", "she"), ("Jonas", "he"),
    ("Amara", "she"), ("Bruno", "he"), ("Chloe", "she"), ("Dev", "he"), ("Emma", "she"), ("Finn", "he"),
    ("Gita", "she"), ("Hugo", "he"), ("Iris", "she"), ("Jack", "he"), ("Kira", "she"), ("Leo", "he"),
    ("Lucia", "she"), ("Marco", "he"), ("Nadia", "she"), ("Oscar", "he"), ("Paula", "she"), ("Quinn", "he"),
    ("Rita", "she"), ("Sven", "he"), ("Tara", "she"), ("Umar", "he"), ("Vera", "she"), ("Wes", "he"),
    ("Xenia", "she"), ("Yusuf", "he"), ("Zoe", "she"), ("Arjun", "he"), ("Bea", "she"), ("Carlos", "he"),
    ("Dina", "she"), ("Ethan", "he"), ("Fatima", "she"), ("Gabe", "he"), ("Helen", "she"), ("Ivan", "he"),
    ("Julia", "she"), ("Kenji", "he"), ("Lily", "she"), ("Mateo", "he"), ("Nina", "she"), ("Owen", "he"),
    ("Pia", "she"), ("Rafael", "he"), ("Sara", "she"), ("Tariq", "he"), ("Uma", "she"), ("Victor", "he"),
]
ITEMS = [
    "stickers", "marbles", "apples", "coins", "books", "cards", "shells", "pencils", "beads", "stamps",
    "cookies", "balloons", "buttons", "crayons", "ribbons", "seeds", "blocks", "rocks", "badges", "nuts",
    "pens", "erasers", "candies", "oranges", "plums", "grapes", "cupcakes", "muffins", "toy cars", "dolls",
    "puzzles", "kites", "bottle caps", "pebbles", "postcards", "magnets", "keychains", "paper cranes",
    "feathers", "acorns", "tickets", "comics", "gems", "pins", "bracelets", "socks", "flowers", "leaves",
]
OTHER_ITEMS = ["hats", "cats", "chairs", "lamps", "plates", "shoes", "bikes", "cups", "fish", "trees"]
CONTAINERS = [("packs", "pack"), ("bags", "bag"), ("boxes", "box"), ("jars", "jar"), ("tins", "tin"),
              ("baskets", "basket"), ("crates", "crate"), ("envelopes", "envelope"), ("cans", "can"),
              ("cartons", "carton")]
GAIN_VERBS = [("gets", "getting"), ("finds", "finding"), ("buys", "buying"), ("collects", "collecting"),
              ("wins", "winning"), ("picks up", "picking up"), ("earns", "earning"), ("receives", "receiving")]
LOSE_VERBS = [("gives away", "giving away"), ("loses", "losing"), ("sells", "selling"), ("drops", "dropping"),
              ("donates", "donating"), ("uses", "using"), ("trades away", "trading away"), ("eats", "eating")]
START_VERBS = ["has", "starts with", "owns", "keeps", "collected"]
# Past tense of the gain / lose verbs, for training families told in the past ("found 7 more cards").
PAST = {"gets": "got", "finds": "found", "buys": "bought", "collects": "collected", "wins": "won",
        "picks up": "picked up", "earns": "earned", "receives": "received", "gives away": "gave away",
        "loses": "lost", "sells": "sold", "drops": "dropped", "donates": "donated", "uses": "used",
        "trades away": "traded away", "eats": "ate"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
# Training problems only: more items, and invented names, meant to teach the model to copy whatever name and
# item a problem is about instead of recalling the ones it has seen (the held-out split keeps the lists above).
MORE_ITEMS = [
    "toys", "stones", "rings", "bells", "spoons", "boats", "stars", "peaches", "lemons", "cherries",
    "carrots", "pears", "bananas", "letters", "photos", "points", "dollars", "sweets", "nails", "bricks",
    "tiles", "cups of tea", "sandwiches", "pies", "tomatoes", "onions", "beans", "chips", "bottles",
    "notebooks", "folders", "cubes", "dice", "robots", "trains", "planes", "buckets", "brushes", "jars of jam",
    "fans", "hooks", "paper clips", "rubber bands", "glass beads", "gold coins", "sea shells", "baseball cards",
]
_SYLLABLE_START = "b c d f g h j k l m n p r s t v w y z br ch dr gr kr pl sh st tr".split()
_SYLLABLE_VOWEL = "a e i o u a e i o ai ea ou".split()
_NAME_END = ["", "", "", "n", "s", "r", "l", "th", "y", "ra", "na", "ck"]
INVENTED_NAME_RATE = 0.4  # of training problems whose person has a name no list holds
MORE_ITEMS_RATE = 0.3

# Per level: number of operations, range of the starting amount, of added/removed amounts, of factors,
# a cap that keeps every intermediate value readable, and the chance of each distractor sentence.
_SPEC = {
    1: dict(ops=1, start=(2, 20), amount=(1, 10), factor=(2, 3), cap=30, distract=0.2),
    2: dict(ops=2, start=(5, 40), amount=(2, 20), factor=(2, 5), cap=200, distract=0.35),
    3: dict(ops=3, start=(10, 99), amount=(2, 40), factor=(2, 6), cap=500, distract=0.5),
    4: dict(ops=4, start=(20, 200), amount=(5, 60), factor=(2, 9), cap=1000, distract=0.6),
    5: dict(ops=5, start=(50, 500), amount=(10, 99), factor=(3, 12), cap=5000, distract=0.7),
}
COMPOUND_RATE = 0.35  # two consecutive simple events told in one sentence
LATE_START_RATE = 0.2  # the starting amount is told after the first event
QUESTION_FIRST_RATE = 0.2


def invented_name(rng: np.random.Generator) -> str:
    """A pronounceable name no list holds ("Brelo", "Tashin"): two or three syllables and an ending."""
    parts = [str(rng.choice(_SYLLABLE_START)) + str(rng.choice(_SYLLABLE_VOWEL)) for _ in range(int(rng.integers(2, 4)))]
    return ("".join(parts) + str(rng.choice(_NAME_END))).capitalize()


# --- the grammar: family id -> (split, sentence structures) ------------------------------------------
# Slots: {S} subject (name or pronoun), {N} name, {P}/{p} pronoun, {O} object (name or pronoun),
# {pos} possessive ({posn}: the name's when the subject is the name), {F} friend, {I} items, {c}/{s} container plural/singular, {gv}/{lv} a gain/lose verb,
# {a} start, {b} amount, {k} factor or count, {kx} "twice"/"k times", {kw} "twice"/"three times" (words),
# {kv} "doubles"/"triples", {gvd}/{lvd} the verbs in the past, {j}/{d} second pack, {refl} herself.
T, H = "train", "heldout"
FAMILIES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "start": {
        "start.verb": (T, ("{N} {sv} {a} {I}.",)),
        "start.first": (T, ("At first, {N} has {a} {I}.", "In the morning, {N} has {a} {I}.")),
        "start.holds": (T, ("{N}'s {s} holds {a} {I}.",)),
        "start.there_in": (T, ("There are {a} {I} in {N}'s {s}.",)),
        "start.are_in": (T, ("{a} {I} are in {N}'s collection.",)),
        "start.collection": (T, ("{N} has a collection of {a} {I}.",)),
        "start.already": (T, ("{N} already has {a} {I}.", "{N} has saved {a} {I} so far.")),
        "start.keeps_in": (T, ("{N} keeps {a} {I} in {a_s}.", "{N} owns a set of {a} {I}.")),
        "start.past": (T, ("{N} had {a} {I}.", "Last week, {N} had {a} {I}.")),
        "start.belong": (H, ("{a} {I} belong to {N}.",)),
        "start.in_there": (H, ("In {N}'s collection there are {a} {I}.",)),
    },
    "late_start": {  # after the first event, whose subject is then the name
        "late.before": (T, ("Before that, {p} had {a} {I}.",)),
        "late.at_first": (T, ("{P} had {a} {I} at first.",)),
        "late.begin": (T, ("To begin with, {p} had {a} {I}.",)),
        "late.were": (T, ("There were {a} {I} in {posn} {s} before that.",)),
        "late.already": (T, ("{P} already had {a} {I}.", "{P} had saved {a} {I} before that.")),
        "late.begin_end": (H, ("{P} had {a} {I} to begin with.",)),
        "late.there": (H, ("Before that, there were {a} {I} in {posn} collection.",)),
    },
    "gain": {
        "gain.more": (T, ("{S} {gv} {b} more {I}.",)),
        "gain.gives": (T, ("{F} gives {O} {b} {I}.",)),
        "gain.receive": (T, ("{S} receives {b} {I} from {F}.",)),
        "gain.another": (T, ("{S} {gv} another {b} {I}.",)),
        "gain.belong": (T, ("{b} more {I} now belong to {O}.",)),
        "gain.given_by": (T, ("{S} is given {b} {I} by {F}.",)),
        "gain.adds": (T, ("{S} adds {b} {I} to {pos} {s}.",)),
        "gain.new": (T, ("{b} new {I} come to {O}.",)),
        "gain.for": (T, ("{F} buys {b} {I} for {O}.",)),
        "gain.extra": (T, ("{S} {gv} {b} extra {I}.", "{S} {gv} {b} more.")),
        "gain.sends": (T, ("{F} sends {O} {b} {I}.", "{F} hands {O} {b} more {I}.")),
        "gain.than": (T, ("{S} now has {b} more {I} than before.",)),
        "gain.past": (T, ("{S} {gvd} {b} more {I}.", "{S} {gvd} {b} {I} at the fair.")),
        "gain.passive": (H, ("{S} is given {b} more {I}.",)),
        "gain.come": (H, ("{b} more {I} come to {O} from {F}.",)),
        "gain.collection": (H, ("{S} adds {b} {I} to {pos} collection.",)),
    },
    "lose": {
        "lose.verb": (T, ("{S} {lv} {b} {I}.",)),
        "lose.to": (T, ("{S} gives {b} {I} to {F}.",)),
        "lose.of_them": (T, ("{S} {lv} {b} of them.",)),
        "lose.hands": (T, ("{S} hands {b} {I} to {F}.",)),
        "lose.takes_of": (T, ("{F} takes {b} of {posn} {I}.",)),
        "lose.get": (T, ("{S} has {b} {I} that get lost.", "{S} has {b} {I} that get broken.")),
        "lose.short": (T, ("{S} {lv} {b} of those.", "{S} {lv} {b}.")),
        "lose.missing": (T, ("{b} {I} go missing from {posn} {s}.", "{S} finds that {b} {I} are missing.")),
        "lose.fewer": (T, ("{S} now has {b} fewer {I} than before.",)),
        "lose.of_own": (T, ("{S} {lv} {b} of {pos} {I}.",)),
        "lose.past": (T, ("{S} {lvd} {b} {I}.", "{S} {lvd} {b} of them on the way home.")),
        "lose.passive": (H, ("{b} of {posn} {I} get lost.", "{b} of {posn} {I} get broken.")),
        "lose.takes": (H, ("{F} takes {b} {I} from {O}.",)),
        "lose.hands_over": (H, ("{S} hands {b} of {pos} {I} to {F}.",)),
    },
    "times": {
        "times.as_many": (T, ("{S} now has {kx} as many {I} as before.",)),
        "times.mult": (T, ("The number of {I} {Sl} has is multiplied by {k}.",)),
        "times.bigger": (T, ("{Pos} pile of {I} gets {k} times bigger.", "{Pos} pile of {I} grows {k} times bigger.")),
        "times.size": (T, ("{S} makes the pile {k} times its size.",)),
        "times.words": (T, ("{S} has {kw} as many {I} as {p} had before.", "{S} now has {kw} as many.")),
        "times.verb": (T, ("{S} {kv} {pos} {I}.", "{S} {kv} the number of {I} {p} has.")),  # k = 2 or 3
        "times.ends": (T, ("{S} ends up with {k} times the {I} {p} had.", "The number of {I} {Sl} has becomes {k} times larger.")),
        "times.grow": (H, ("{Pos} pile of {I} grows to {k} times its size.",)),
        "times.makes": (H, ("{S} makes {pos} pile of {I} {k} times bigger.",)),
    },
    "split": {
        "split.groups": (T, ("{S} splits them into {k} equal groups and keeps one group.",)),
        "split.into": (T, ("{S} divides {pos} {I} equally into {k} {c} and keeps one {s}.",)),
        "split.share": (T, ("{S} shares {pos} {I} equally with {k1} friends and keeps one share.",)),
        "split.parts": (T, ("{Pos} {I} are put into {k} equal parts, and {Sl} keeps only one part.",
                            "{Pos} {I} are shared out into {k} equal parts, and {Sl} keeps only one part.")),
        "split.among": (T, ("{S} shares {pos} {I} evenly among {k} people and keeps one share.",)),
        "split.piles": (T, ("{S} splits {pos} {I} evenly into {k} piles and keeps one pile.",
                            "{S} sorts the {I} into {k} equal piles and keeps just one.")),
        "split.part": (H, ("{S} keeps only one of {k} equal parts of {pos} {I}.",)),
        "split.shared": (H, ("{Pos} {I} are shared evenly among {k} people, and {Sl} keeps one share.",)),
    },
    "packs": {
        "packs.with": (T, ("{S} buys {k} {c} with {b} {I} in each {s}.",)),
        "packs.of": (T, ("{S} {gv} {k} {c} of {b} {I} each.",)),
        "packs.holds": (T, ("{S} buys {k} {c} of {I}. Each {s} holds {b} {I}.",)),
        "packs.every": (T, ("{S} picks up {k} {c}, and every {s} has {b} {I} in it.",)),
        "packs.contain": (T, ("{S} buys {k} {c}; they contain {b} {I} apiece.",)),
        "packs.arrive": (T, ("{k} {c} arrive, and each {s} has {b} {I} inside.",)),
        "packs.each_with": (T, ("{S} {gv} {k} {c}, each with {b} {I}.", "{S} {gv} {k} {c} with {b} {I} in every {s}.")),
        "packs.in_each": (H, ("{S} buys {b} {I} in each of {k} {c}.",)),
        "packs.arrive_for": (H, ("{k} {c} arrive for {O}, each with {b} {I} inside.",)),
        "packs.apiece": (H, ("{S} gets {k} {c} that contain {b} {I} apiece.",)),
    },
    "give_groups": {
        "give.friends": (T, ("{S} gives {k} friends {b} {I} each.",)),
        "give.sets": (T, ("{S} sells {k} sets of {b} {I}.",)),
        "give.bags": (T, ("{S} puts {b} {I} into each of {k} gift bags and gives them away.",)),
        "give.each_get": (T, ("{k} friends each get {b} {I} from {O}.",)),
        "give.lose_packs": (T, ("{S} {lv} {k} {c} of {b} {I} each.", "{S} {lv} {k} {c}, each holding {b} {I}.")),
        "give.each_friend": (T, ("{S} gives each of {k} friends {b} {I}.",)),
        "give.each_of": (H, ("Each of {k} friends gets {b} {I} from {O}.",)),
        "give.away_packs": (H, ("{S} gives away {k} {c} with {b} {I} in each {s}.",)),
    },
    "two_packs": {
        "two.small_big": (T, ("{S} buys {k} small {c} with {b} {I} each and {j} big {c} with {d} {I} each.",)),
        "two.plus": (T, ("{S} gets {k} red {c} with {b} {I} each, plus {j} blue {c} with {d} {I} each.",)),
        "two.and": (T, ("{S} {gv} {k} {c} of {b} {I} each and {j} more {c} of {d} {I} each.",)),
        "two.colors": (H, ("{S} gets {k} red {c} of {b} {I} and {j} blue {c} of {d} {I}.",)),
    },
    "compound": {  # two simple events in one sentence; {vp1} happens first
        "comp.then": (T, ("{S} {vp1}, then {vp2}.",)),
        "comp.and": (T, ("{S} {vp1} and {vp2}.",)),
        "comp.before": (T, ("Before {p} {vp2}, {p} {vp1}.",)),
        "comp.after_first": (T, ("After {vp1_ing}, {p} {vp2}.",)),
        "comp.later": (T, ("{S} {vp1}, and later {p} {vp2}.",)),
        "comp.short": (T, ("{S} {svp1}, then {svp2}.", "After {svp1_ing}, {p} {svp2}.")),  # items left out
        "comp.after": (H, ("{S} {vp2} after {vp1_ing}.",)),
        "comp.first": (H, ("First {p} {vp1}; afterwards {p} {vp2}.",)),
    },
    "connector": {
        "conn.none": (T, ("",)),
        "conn.then": (T, ("Then ", "After that, ", "Next, ", "Later, ", "Afterwards, ", "The next day, ")),
        "conn.while": (T, ("After a while, ", "Soon after, ", "A bit later, ")),
        "conn.soon": (H, ("The day after, ", "Later that day, ")),
    },
    "distractor": {
        "dis.friend": (T, ("{F} has {d} {I}.", "{F} has {d} {X}.")),
        "dis.age": (T, ("{N} is {age} years old.",)),
        "dis.walk": (T, ("It takes {d} minutes to walk to the shop.", "The bus ride costs {d} cents.")),
        "dis.class": (T, ("There are {d} students in {N}'s school.", "That day, the shop sells {d} {X}.")),
        "dis.price": (T, ("Each of {F}'s {X} costs {d} cents.", "{A_s} costs {d} cents at the market.")),
        "dis.street": (T, ("{N} lives {d} blocks from {F}.", "{d} people live on {N}'s street.")),
        "dis.read": (T, ("{N} reads {d} pages of a book.", "{F} swims for {d} minutes.")),
        "dis.kin": (T, ("{N}'s brother is {age} years old.", "{F}'s sister has {d} {I}.")),
        "dis.count": (T, ("{N} counts {d} {X} in the park.", "The class has {d} {X} in total.")),
        "dis.weather": (T, ("It rains for {d} minutes that day.", "It is {d} degrees outside.")),
        "dis.shop": (H, ("The shop is {d} minutes away.", "It costs {d} cents to ride the bus.")),
        "dis.school": (H, ("{N}'s school has {d} students.", "{F} owns {d} {X}.")),
    },
    "question": {
        "q.now": (T, ("How many {I} does {p} have now?", "How many {I} does {N} have at the end?")),
        "q.in_end": (T, ("How many {I} does {N} have in the end?", "Find how many {I} {N} has now.")),
        "q.left": (T, ("What is the number of {I} that {N} has at the end?",)),
        "q.have": (T, ("How many {I} does {N} have?", "How many {I} does {p} have left?")),
        "q.end_up": (T, ("How many {I} does {N} end up with?", "How many {I} does {N} have altogether now?")),
        "q.number": (H, ("What is the number of {I} {N} has in the end?",)),
        "q.find": (H, ("Find the number of {I} that {N} has now.",)),
    },
    "question_first": {
        "qf.will": (T, ("How many {I} will {N} have at the end? ", "Work out the number of {I} {N} will have. ")),
        "qf.end_up": (T, ("How many {I} does {N} end up with? ",)),
        "qf.work": (H, ("Work out how many {I} {N} has at the end. ",)),
    },
}
# Verb phrases of events that can share a sentence (compound families): (present, gerund).
_VP = {
    "gain": ("{gv} {b} more {I}", "{gv_ing} {b} more {I}"),
    "lose": ("{lv} {b} {I}", "{lv_ing} {b} {I}"),
    "split": ("divides them into {k} equal parts and keeps one part", "dividing them into {k} equal parts and keeping one part"),
}
# The same, told short (training families only): "finds 7 more, then gives away 5".
_VP_SHORT = {
    "gain": ("{gv} {b} more", "{gv_ing} {b} more"),
    "lose": ("{lv} {b}", "{lv_ing} {b}"),
    "split": ("splits them evenly into {k} piles and keeps one", "splitting them evenly into {k} piles and keeping one"),
}

_LOWER_AFTER_CONNECTOR = {"He", "She", "The", "Her", "His", "Each"}
_CLAIM = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")
_ANSWER = re.compile(r"The answer is (-?\d+)\.")


def families(split: str) -> dict[str, list[str]]:
    """Family ids of `split`, per slot ("gain", "question", ...)."""
    check_split(split)
    return {slot: [f for f, (s, _) in fams.items() if s == split] for slot, fams in FAMILIES.items()}


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"arith has no split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


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
    split: str = "train"
    families: tuple[str, ...] = ()  # the grammar families its sentences came from

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


@dataclass
class _Event:
    kind: str  # a FAMILIES slot: gain, lose, times, split, packs, give_groups, two_packs
    slots: dict


class _Builder:
    """Builds one problem: the program (start, events, solution steps), then its text from the grammar."""

    def __init__(self, rng: np.random.Generator, level: int, split: str) -> None:
        self.rng = rng
        self.level = level
        self.split = split
        self.spec = _SPEC[level]
        self.fams = families(split)
        name, pron = NAMES[rng.integers(len(NAMES))]
        friends = [n for n, _ in NAMES if n != name]
        self.name, self.friend = name, friends[rng.integers(len(friends))]
        self.pron = pron
        self.items = ITEMS[rng.integers(len(ITEMS))]
        if split == "train":  # draws only here, so held-out problems stay as they were
            if rng.random() < INVENTED_NAME_RATE:
                self.name, self.pron = invented_name(rng), ("she", "he")[int(rng.integers(2))]
            if rng.random() < MORE_ITEMS_RATE:
                self.items = MORE_ITEMS[rng.integers(len(MORE_ITEMS))]
        self.events: list[_Event] = []
        self.steps: list[Step] = []
        self.used: list[str] = []
        self.value = 0  # the running amount after the last event
        self.current: Operand = 0  # how later steps refer to it

    def pick(self, options: Sequence) -> object:
        return options[self.rng.integers(len(options))]

    def num(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def add_step(self, sentence: str, op: str, lhs: Operand, rhs: Operand) -> Ref:
        sentence = sentence.replace("{N}", self.name).replace("{I}", self.items)
        self.steps.append(Step(sentence, op, lhs, rhs))
        return Ref(len(self.steps) - 1)

    def set_value(self, ref: Ref, value: int) -> None:
        self.current, self.value = ref, value

    # --- events: each returns False when it cannot apply (then another one is tried) ---

    def gain(self) -> bool:
        b = self.num(*self.spec["amount"])
        if self.value + b > self.spec["cap"]:
            return False
        self.events.append(_Event("gain", {"b": b}))
        self.set_value(self.add_step("{N} has {claim} {I}.", "+", self.current, b), self.value + b)
        return True

    def lose(self) -> bool:
        if self.value < 2:
            return False
        lo, hi = self.spec["amount"]
        b = self.num(min(lo, self.value - 1), min(hi, self.value - 1))
        self.events.append(_Event("lose", {"b": b}))
        self.set_value(self.add_step("{N} has {claim} {I} left.", "-", self.current, b), self.value - b)
        return True

    def times(self) -> bool:
        k = self.num(*self.spec["factor"])
        if self.value * k > self.spec["cap"]:
            return False
        self.events.append(_Event("times", {"k": k, "kx": "twice" if k == 2 else f"{k} times",
                                             "kw": "twice" if k == 2 else f"{NUMBER_WORDS[k]} times",
                                             "kv": {2: "doubles", 3: "triples"}.get(k, "")}))
        self.set_value(self.add_step("{N} has {claim} {I}.", "*", self.current, k), self.value * k)
        return True

    def split_(self) -> bool:
        lo, hi = self.spec["factor"]
        divisors = [k for k in range(max(lo, 2), hi + 1) if self.value % k == 0 and self.value // k > 0]
        if not divisors:
            return False
        k = int(self.pick(divisors))
        plural, single = self.pick(CONTAINERS)
        self.events.append(_Event("split", {"k": k, "k1": k - 1, "c": plural, "s": single}))
        self.set_value(self.add_step("{N} keeps {claim} {I}.", "/", self.current, k), self.value // k)
        return True

    def packs(self) -> bool:
        k, b = self.num(*self.spec["factor"]), self.num(*self.spec["amount"])
        if self.value + k * b > self.spec["cap"]:
            return False
        plural, single = self.pick(CONTAINERS)
        self.events.append(_Event("packs", {"k": k, "b": b, "c": plural, "s": single}))
        part = self.add_step("The " + plural + " have {claim} {I}.", "*", k, b)
        self.set_value(self.add_step("{N} has {claim} {I}.", "+", self.current, part), self.value + k * b)
        return True

    def give_groups(self) -> bool:
        k = self.num(*self.spec["factor"])
        hi = min(self.spec["amount"][1], (self.value - 1) // k)
        lo = min(self.spec["amount"][0], hi)
        if hi < 1:
            return False
        b = self.num(lo, hi)
        plural, single = self.pick(CONTAINERS)
        self.events.append(_Event("give_groups", {"k": k, "b": b, "c": plural, "s": single}))
        part = self.add_step("{N} gives away {claim} {I}.", "*", k, b)
        self.set_value(self.add_step("{N} has {claim} {I} left.", "-", self.current, part), self.value - k * b)
        return True

    def two_packs(self) -> bool:
        (k, b), (j, d) = [(self.num(*self.spec["factor"]), self.num(*self.spec["amount"])) for _ in range(2)]
        if self.value + k * b + j * d > self.spec["cap"]:
            return False
        plural, _ = self.pick(CONTAINERS)
        self.events.append(_Event("two_packs", {"k": k, "b": b, "j": j, "d": d, "c": plural}))
        small = self.add_step("The first " + plural + " have {claim} {I}.", "*", k, b)
        big = self.add_step("The other " + plural + " have {claim} {I}.", "*", j, d)
        both = self.add_step("Together the " + plural + " have {claim} {I}.", "+", small, big)
        self.set_value(self.add_step("{N} has {claim} {I}.", "+", self.current, both), self.value + k * b + j * d)
        return True

    # --- rendering -----------------------------------------------------------------------------------

    def family(self, slot: str, exclude: Sequence[str] = ()) -> str:
        options = [f for f in self.fams[slot] if f not in exclude]
        fam = str(self.pick(options))
        self.used.append(fam)
        return str(self.pick(FAMILIES[slot][fam][1]))

    def fill(self, template: str, subject_is_name: bool, **slots: object) -> str:
        obj = "her" if self.pron == "she" else "him"
        pos = "her" if self.pron == "she" else "his"
        gv, gv_ing = self.pick(GAIN_VERBS)  # type: ignore[misc]
        lv, lv_ing = self.pick(LOSE_VERBS)  # type: ignore[misc]
        subject = self.name if subject_is_name else self.pron
        values = dict(
            N=self.name, F=self.friend, P=self.pron.capitalize(), p=self.pron, I=self.items,
            S=subject if subject_is_name else subject.capitalize(), Sl=subject,
            O=self.name if subject_is_name else obj, pos=pos,
            Pos=f"{self.name}'s" if subject_is_name else pos.capitalize(),
            posn=f"{self.name}'s" if subject_is_name else pos, age=self.num(6, 70),
            refl=obj + "self", gv=gv, gv_ing=gv_ing, lv=lv, lv_ing=lv_ing, sv=self.pick(START_VERBS),
            gvd=PAST[gv], lvd=PAST[lv],
            X=self.pick(OTHER_ITEMS),
        )
        values["c"], values["s"] = self.pick(CONTAINERS)  # type: ignore[misc]
        article = "an" if str(values["s"])[0] in "aeiou" else "a"  # "an envelope"
        values["a_s"], values["A_s"] = f"{article} {values['s']}", f"{article.capitalize()} {values['s']}"
        values.update(slots)
        text = template
        for _ in range(3):  # slots may hold slots ({vp1} holds {b})
            text = text.format(**values) if "{" in text else text
        return text.replace(" 1 friends", " 1 friend")

    def event_sentence(self, event: _Event, subject_is_name: bool) -> str:
        kind = event.kind
        k = event.slots.get("k", 0) if kind == "times" else 0
        exclude = ("times.as_many",) * (k > 9) + ("times.words",) * (k >= len(NUMBER_WORDS)) + ("times.verb",) * (k > 3)
        return self.fill(self.family(kind, exclude), subject_is_name, **event.slots)

    def compound_sentence(self, first: _Event, second: _Event, subject_is_name: bool) -> str:
        template = self.family("compound")
        short = "{svp1" in template
        template = template.replace("{svp", "{vp")
        vp1, vp1_ing = (_VP_SHORT if short else _VP)[first.kind]
        vp2, _ = (_VP_SHORT if short else _VP)[second.kind]
        # The second event's amount slot is {b2}/{k2} so both events can share a sentence.
        vp2 = vp2.replace("{b}", "{b2}").replace("{k}", "{k2}")
        slots = {**first.slots, "b2": second.slots.get("b"), "k2": second.slots.get("k")}
        text = template.replace("{vp1}", vp1).replace("{vp1_ing}", vp1_ing).replace("{vp2}", vp2)
        return self.fill(text, subject_is_name, **slots)

    def render(self, start: int) -> str:
        rng = self.rng
        sentences: list[str] = []
        late = rng.random() < LATE_START_RATE
        if not late:
            sentences.append(self.fill(self.family("start"), True, a=start))
        i = 0
        while i < len(self.events):
            first_sentence = i == 0
            subject_is_name = (late and first_sentence) or rng.random() < 0.4
            e = self.events[i]
            nxt = self.events[i + 1] if i + 1 < len(self.events) else None
            if nxt is not None and e.kind in _VP and nxt.kind in _VP and rng.random() < COMPOUND_RATE:
                text = self.compound_sentence(e, nxt, subject_is_name)
                i += 2
            else:
                text = self.event_sentence(e, subject_is_name)
                i += 1
            if not (late and first_sentence) and sentences:
                first_word = text.split()[0]
                if first_word not in ("Before", "First", "After"):  # these open with their own time
                    conn = self.family("connector")
                    if conn and first_word in _LOWER_AFTER_CONNECTOR:
                        text = first_word.lower() + text[len(first_word):]
                    text = conn + text
            sentences.append(text)
            if late and first_sentence:
                sentences.append(self.fill(self.family("late_start"), True, a=start))
        for _ in range(len(sentences)):  # distractors, never before the first sentence
            if rng.random() < self.spec["distract"] / 2:
                d = self.num(2, max(12, self.spec["cap"] // 10))
                used = [f for f in self.used if f.startswith("dis.")]
                if len(used) < len(self.fams["distractor"]):
                    text = self.fill(self.family("distractor", exclude=used), True, d=d)
                    first = 0 if self.split == "train" else 1  # train: a distractor may open the problem
                    sentences.insert(int(rng.integers(first, len(sentences) + 1)), text)
        if rng.random() < QUESTION_FIRST_RATE:
            return self.fill(self.family("question_first"), True) + " ".join(sentences)
        return " ".join(sentences) + " " + self.fill(self.family("question"), rng.random() < 0.5)

    def build(self) -> Problem:
        start = self.num(*self.spec["start"])
        self.value = start
        self.current = start
        simple = [self.gain, self.lose] if self.level == 1 else [self.gain, self.lose, self.times, self.split_]
        remaining = self.spec["ops"]
        while remaining > 0:
            events = [(e, 1) for e in simple]
            if remaining >= 2 and self.level >= 2:
                events += [(self.packs, 2), (self.give_groups, 2)]
            if remaining >= 4:
                events += [(self.two_packs, 4)]
            for idx in self.rng.permutation(len(events)):
                event, cost = events[idx]
                if event():
                    remaining -= cost
                    break
            else:  # nothing applies (cannot happen with gain/lose available, but stay total)
                break
        text = self.render(start)
        return Problem(self.level, text, tuple(self.steps), self.split, tuple(self.used))


def make_problem(seed: int, level: int, index: int, split: str = "train") -> Problem:
    """The `index`-th level-`level` problem of `seed` in `split`: independent of which others are asked for."""
    if level not in _SPEC:
        raise ValueError(f"arith level must be one of {LEVELS}, got {level}")
    check_split(split)
    key = [seed, level, index] if split == "train" else [seed, level, index, 1]
    return _Builder(np.random.default_rng(key), level, split).build()


def generate(n: int, levels: Sequence[int] = LEVELS, seed: int = 0, split: str = "train") -> list[dict]:
    """`n` problems spread evenly over `levels` (interleaved: level of row i is levels[i % len(levels)])."""
    levels = tuple(levels)
    if not levels:
        raise ValueError("arith needs at least one level")
    check_split(split)
    prefix = "arith" if split == "train" else f"arith-{split}"
    rows = []
    for i in range(n):
        level = levels[i % len(levels)]
        problem = make_problem(seed, level, i // len(levels), split)
        solution, answer = problem.solve()  # type: ignore[misc]  # no slip: always solvable
        rows.append({"id": f"{prefix}-s{seed}-{i}", "problem": problem.text, "answer": str(answer),
                     "level": level, "solution": solution, "source": "arith", "split": split})
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
