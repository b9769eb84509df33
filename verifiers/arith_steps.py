"""`arith_steps`: a rule-based process verifier that checks every arithmetic claim a step makes.

Why: a step that writes `12 + 5 = 18` is wrong no matter what a reward model thinks, and checking it
costs microseconds and no tokens. The verifier finds claims such as `3 * 4 = 12`, `2 + 3 * 4 = 14`,
`a = b = c`, `1,200 / 4 = 300`, `6 × 7 = 42`, `\\frac{3}{4} = 0.75` and evaluates them exactly with
Python Fractions through a tiny recursive-descent parser (never `eval`), with bounded literal sizes,
exponents and expression lengths, so any text is safe to score.

It is deliberately conservative: an expression touching a variable or a word (`2x + 3 = 7`, `5! = 120`,
`f(2) = 5`), or a chain of bare numbers without any operation (`3 groups of 4 = 12`), is not a claim.
A step with a false claim scores `false_score`, one whose claims are all true `true_score`. A step that
states the final answer ("The answer is 12.", `\\boxed{12}`) without a claim is checked against the value
the solution's claims arrived at (the right side of the last claim before it): the same value scores
`true_score`, another `false_score`. Any other step without a claim scores `neutral_score`, by default
None: "no claim here", which step aggregation skips instead of averaging in a made-up 0.5.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence

from ttscale.requests import Score

TRUE_SCORE = 1.0
FALSE_SCORE = 0.0
NEUTRAL_SCORE: float | None = None  # no claim: aggregation skips the step

MAX_CHARS = 50_000  # of a step that are scanned for claims
MAX_CLAIMS = 100  # checked per step
MAX_DIGITS = 60  # in one number literal
MAX_SEGMENT_TOKENS = 120  # in one side of a claim
MAX_DEPTH = 24  # nesting of parentheses and unary signs
MAX_EXPONENT = 1000
MAX_BITS = 20_000  # of any intermediate numerator or denominator

_OPS = {
    "+": "+", "-": "-", "*": "*", "/": "/", "^": "^", "**": "^",
    "×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "∕": "/", "−": "-", "–": "-",
    "\\times": "*", "\\cdot": "*", "\\div": "/",
}
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<op>\*\*|\\times|\\cdot|\\div|[-+*/^×·⋅∗÷∕−–])"
    r"|(?P<eq>=|≈|\\approx)"
    r"|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<pct>\\?%)"
    r"|(?P<ws>\s+)"
    r"|(?P<word>[^\W\d]+)"
    r"|(?P<other>\\?.)",
    re.S,
)
_FRAC = re.compile(r"\\[dt]?frac\{\s*([0-9.,\s]{1,40})\}\{\s*([0-9.,\s]{1,40})\}")
_LATEX_NOISE = re.compile(r"\\left\b|\\right\b|\\[!,;: ]")
_MATH = {"num", "op", "eq", "lp", "rp", "pct"}
# A character glued to a run's edge that makes the edge part of something bigger (a variable, a
# function call, a factorial, a LaTeX command): that side of the run is not a complete number.
_GLUE_BEFORE = set("_\\}]|!'.^&")
_GLUE_AFTER = set("_\\([{!^'|")


class Undecidable(Exception):
    """An expression we refuse to evaluate (too big, division by zero, fractional power)."""


@dataclass(frozen=True)
class Claim:
    """One checked relation between two sides of a chain: `text` is the run it came from."""

    left: str
    right: str
    ok: bool
    text: str
    value: Fraction | None = None  # the right side's exact value
    left_value: Fraction | None = None

    def reached(self) -> frozenset[Fraction]:
        """Values a final answer may state after this claim: either side (`10/3 ≈ 3.33` reaches both),
        and a percentage's number (`15/60 = 25%` reaches 25)."""
        vals = {v for v in (self.value, self.left_value) if v is not None}
        if self.value is not None and "%" in self.right:
            vals.add(self.value * 100)
        return frozenset(vals)


@dataclass
class _Tok:
    kind: str
    value: str
    start: int
    end: int


@dataclass
class _Side:
    tokens: list[_Tok]
    value: Fraction | None
    has_op: bool
    decimals: int | None  # decimal places when the side is a plain literal, else None

    @property
    def text(self) -> str:
        return " ".join(t.value for t in self.tokens)


def find_claims(text: str) -> list[Claim]:
    """Every decidable arithmetic claim in `text`, checked exactly."""
    text = _FRAC.sub(lambda m: f"(({m[1]})/({m[2]}))", text[:MAX_CHARS].replace("{,}", ","))
    text = _LATEX_NOISE.sub(" ", text)
    toks = [_Tok(m.lastgroup or "other", m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    _resolve_times_and_units(toks)
    claims: list[Claim] = []
    for run, before, after, prev in _runs(toks):
        if len(claims) >= MAX_CLAIMS:
            break
        claims.extend(_check_run(run, before, after, prev, text))
    return claims[:MAX_CLAIMS]


def step_score(text: str, true_score: float = TRUE_SCORE, false_score: float = FALSE_SCORE,
               neutral_score: float | None = NEUTRAL_SCORE) -> float | None:
    """The score of one step on its own: false if any claim is false, true if it has claims, else neutral."""
    claims = find_claims(text)
    if not claims:
        return neutral_score
    return false_score if any(not c.ok for c in claims) else true_score


def stated_answer_value(step: str) -> Fraction | None:
    """The number a final-answer step states ("The answer is 1,200." -> 1200), or None when the step states
    no final answer or states something that is not a plain number."""
    from verifiers.extract import extract_answer, states_final_answer

    if not states_final_answer(step):
        return None
    answer = (extract_answer(step) or "").replace(",", "").replace("$", "").strip()
    answer = re.sub(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", answer)
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?(?:/\d+)?)(?:\s+[^\W\d]+){0,3}", answer)
    if not m:
        return None
    try:
        return Fraction(m[1])
    except (ValueError, ZeroDivisionError):
        return None


def _resolve_times_and_units(toks: list[_Tok]) -> None:
    """`x` between numbers means times; `$` before and `°` after a number are units, not text."""
    sig = [i for i, t in enumerate(toks) if t.kind != "ws"]
    for n, i in enumerate(sig):
        t = toks[i]
        prev = toks[sig[n - 1]] if n > 0 else None
        nxt = toks[sig[n + 1]] if n + 1 < len(sig) else None
        if t.kind == "word" and t.value in ("x", "X"):
            if prev is not None and nxt is not None and prev.kind in ("num", "rp", "pct") and nxt.kind in ("num", "lp"):
                t.kind, t.value = "op", "*"
        elif t.value in ("$", "\\$") and i + 1 < len(toks) and toks[i + 1].kind == "num":
            t.kind = "skip"
        elif t.value == "°" and i > 0 and toks[i - 1].kind == "num":
            t.kind = "skip"
    toks[:] = [t for t in toks if t.kind != "skip"]


def _runs(toks: list[_Tok]) -> Iterable[tuple[list[_Tok], _Tok | None, _Tok | None, _Tok | None]]:
    """Maximal stretches of math tokens (spaces allowed inside) with the raw tokens around them and
    the last non-space token before them."""
    i, n = 0, len(toks)
    while i < n:
        if toks[i].kind not in _MATH:
            i += 1
            continue
        j, last = i, i
        while j < n and (toks[j].kind in _MATH or (toks[j].kind == "ws" and "\n" not in toks[j].value)):
            if toks[j].kind in _MATH:
                last = j
            j += 1
        run = toks[i:last + 1]
        if any(t.kind == "eq" for t in run):
            prev = next((toks[k] for k in range(i - 1, -1, -1) if toks[k].kind != "ws"), None)
            yield run, (toks[i - 1] if i > 0 else None), (toks[last + 1] if last + 1 < n else None), prev
        i = last + 1


def _glued(tok: _Tok | None, chars: set[str], before: bool) -> bool:
    """Whether the raw token touching a run's edge (no space between) belongs to the expression."""
    if tok is None or tok.kind == "ws":
        return False
    ch = tok.value[-1] if before else tok.value[0]
    return tok.kind == "word" or ch.isalnum() or ch in chars


def _check_run(run: list[_Tok], before: _Tok | None, after: _Tok | None, prev: _Tok | None,
               text: str) -> list[Claim]:
    """Split a run at `=`/`≈` and compare neighbouring sides that are complete, decidable expressions."""
    segments: list[list[_Tok]] = [[]]
    relations: list[str] = []
    for t in run:
        if t.kind == "eq":
            segments.append([])
            relations.append("=" if t.value == "=" else "≈")
        elif t.kind != "ws":
            segments[-1].append(t)
    taint_first = _glued(before, _GLUE_BEFORE, True) or _dangling_start(segments[0], prev)
    taint_last = _glued(after, _GLUE_AFTER, False) or (bool(segments[-1]) and segments[-1][-1].kind == "op")
    sides: list[_Side | None] = []
    for k, seg in enumerate(segments):
        if (k == 0 and taint_first) or (k == len(segments) - 1 and taint_last):
            sides.append(None)
            continue
        if k == 0:
            seg = _strip_parens(seg, "lp", "rp", leading=True)
        if k == len(segments) - 1:
            seg = _strip_parens(seg, "rp", "lp", leading=False)
        sides.append(_side(seg))
    if not any(s is not None and s.has_op for s in sides):
        return []  # bare numbers only (`3 groups of 4 = 12`): not a computation we can attribute
    source = text[run[0].start:run[-1].end]
    claims = []
    for k, rel in enumerate(relations):
        a, b = sides[k], sides[k + 1]
        if a is None or b is None or a.value is None or b.value is None:
            continue
        claims.append(Claim(a.text, b.text, _holds(a, b, approximate=rel == "≈"), source, b.value, a.value))
    return claims


def _dangling_start(seg: list[_Tok], prev: _Tok | None) -> bool:
    """A run that starts with a binary operator continues something that is not a number."""
    if not seg or seg[0].kind != "op":
        return False
    if _OPS.get(seg[0].value) != "-":
        return True
    # `x - 3 = 7`: a minus after a variable or a bracket is binary; after a word (`is -3`) it is a sign.
    return prev is not None and (
        (prev.kind == "word" and len(prev.value) == 1) or prev.value[-1] in ")]}|!'"
    )


def _strip_parens(seg: list[_Tok], open_kind: str, close_kind: str, leading: bool) -> list[_Tok]:
    """Drop prose brackets around a chain: `(4 + 3 = 7)` checks `4 + 3` and `7`."""
    depth = 0
    for t in (seg if leading else reversed(seg)):
        if t.kind == open_kind:
            depth += 1
        elif t.kind == close_kind:
            depth -= 1
    extra = max(depth, 0)
    while extra and seg and seg[0 if leading else -1].kind == open_kind:
        seg = seg[1:] if leading else seg[:-1]
        extra -= 1
    return seg


def _side(seg: list[_Tok]) -> _Side | None:
    if not seg or len(seg) > MAX_SEGMENT_TOKENS:
        return None
    try:
        value = _Parser(seg).parse()
    except (Undecidable, _ParseError, ValueError, ZeroDivisionError, OverflowError):
        value = None
    has_op = any(t.kind == "op" for t in seg[1:]) or any(t.kind in ("pct",) for t in seg)
    literal = [t for t in seg if t.kind == "num"]
    decimals = None
    if len(seg) - (seg[0].kind == "op") == 1 and len(literal) == 1:
        frac = literal[0].value.partition(".")[2]
        decimals = len(frac)
    return _Side(seg, value, has_op, decimals)


def _holds(a: _Side, b: _Side, approximate: bool) -> bool:
    """Exact equality, or agreement to the places a written decimal shows (`1/3 = 0.33`)."""
    assert a.value is not None and b.value is not None
    if a.value == b.value:
        return True
    places = [s.decimals for s in (b, a) if s.decimals is not None]
    if places:
        d = places[0]
        exact = a.value if b.decimals is not None else b.value
        if approximate or (d > 0 and (exact * 10**d).denominator != 1):
            return abs(a.value - b.value) < Fraction(1, 10**d)
        return False
    return approximate and abs(a.value - b.value) <= abs(a.value) / 100


class _ParseError(Exception):
    pass


class _Parser:
    """expr := term (+|- term)* ; term := unary (*|/ unary)* ; unary := -unary | power ;
    power := postfix (^ unary)? ; postfix := atom %* ; atom := number | ( expr )."""

    def __init__(self, toks: Sequence[_Tok]) -> None:
        self.toks = [(t.kind, _OPS.get(t.value, t.value)) for t in toks]
        self.i = 0
        self.depth = 0

    def parse(self) -> Fraction:
        value = self.expr()
        if self.i != len(self.toks):
            raise _ParseError
        return value

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: str | None = None) -> bool:
        t = self.peek()
        if t is not None and t[0] == kind and (value is None or t[1] == value):
            self.i += 1
            return True
        return False

    def expr(self) -> Fraction:
        value = self.term()
        while True:
            if self.take("op", "+"):
                value = _bounded(value + self.term())
            elif self.take("op", "-"):
                value = _bounded(value - self.term())
            else:
                return value

    def term(self) -> Fraction:
        value = self.unary()
        while True:
            if self.take("op", "*"):
                value = _bounded(value * self.unary())
            elif self.take("op", "/"):
                divisor = self.unary()
                if divisor == 0:
                    raise Undecidable("division by zero")
                value = _bounded(value / divisor)
            else:
                return value

    def unary(self) -> Fraction:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Undecidable("too deep")
        try:
            if self.take("op", "-"):
                return -self.unary()
            if self.take("op", "+"):
                return self.unary()
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> Fraction:
        base = self.postfix()
        if self.take("op", "^"):
            return _power(base, self.unary())
        return base

    def postfix(self) -> Fraction:
        value = self.atom()
        while self.take("pct"):
            value = value / 100
        return value

    def atom(self) -> Fraction:
        t = self.peek()
        if t is None:
            raise _ParseError
        if t[0] == "num":
            self.i += 1
            digits = t[1].replace(",", "")
            if len(digits) > MAX_DIGITS:
                raise Undecidable("literal too long")
            return Fraction(digits)
        if self.take("lp"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise Undecidable("too deep")
            value = self.expr()
            self.depth -= 1
            if not self.take("rp"):
                raise _ParseError
            return value
        raise _ParseError


def _power(base: Fraction, exp: Fraction) -> Fraction:
    if exp.denominator != 1 or abs(exp) > MAX_EXPONENT:
        raise Undecidable("fractional or huge exponent")
    e = int(exp)
    if base == 0 and e < 0:
        raise Undecidable("zero to a negative power")
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if size * abs(e) > MAX_BITS:
        raise Undecidable("power too large")
    return base**e


def _bounded(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise Undecidable("number too large")
    return value


class ArithStepsVerifier:
    """Scorer `arith_steps`: per-step claim checking, cached by step text, zero tokens."""

    def __init__(self, true_score: float = TRUE_SCORE, false_score: float = FALSE_SCORE,
                 neutral_score: float | None = NEUTRAL_SCORE, cache_size: int = 100_000) -> None:
        for name, value in (("true_score", true_score), ("false_score", false_score), ("neutral_score", neutral_score)):
            if value is None and name == "neutral_score":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                from ttscale.errors import TTScaleError

                raise TTScaleError(f"arith_steps {name} must lie in [0, 1], got {value!r}", f"pass {name} between 0 and 1")
        self.scores = (float(true_score), float(false_score), None if neutral_score is None else float(neutral_score))
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float | None, frozenset[Fraction] | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _step(self, step: str) -> tuple[float | None, frozenset[Fraction] | None]:
        """(score on its own, the values its last claim reached), cached by step text."""
        cached = self._cache.get(step)
        if cached is not None:
            self.hits += 1
            self._cache.move_to_end(step)
            return cached
        self.misses += 1
        claims = find_claims(step)
        true, false, neutral = self.scores
        entry = (false if any(not c.ok for c in claims) else true, claims[-1].reached()) if claims else (neutral, None)
        self._cache[step] = entry
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def score_step(self, step: str) -> float | None:
        """A step on its own (an answer line without its solution has nothing to be checked against)."""
        return self._step(step)[0]

    def score_steps(self, steps: Sequence[str]) -> list[float | None]:
        """Scores of a solution's steps in order; a claim-free answer line is checked against the value
        the claims before it arrived at."""
        out: list[float | None] = []
        reached: frozenset[Fraction] | None = None
        true, false, _ = self.scores
        for step in steps:
            score, values = self._step(step)
            if values is not None:
                reached = values
            elif reached:
                stated = stated_answer_value(step)
                if stated is not None:
                    score = true if stated in reached else false
            out.append(score)
        return out

    def score_batch(self, requests: list[Score]) -> tuple[list[list[list[float | None]]], int]:
        out: list[list[list[float | None]]] = [
            [list(self.score_steps(candidate)) for candidate in req.candidates] for req in requests
        ]
        return out, 0


_default = ArithStepsVerifier()


def score_steps(steps: Sequence[str]) -> list[float | None]:
    """Standalone use: one score per step (1.0 all claims true, 0.0 any false, None no claim; an answer
    line 1.0 or 0.0 by whether it states the value the claims reached)."""
    return _default.score_steps(steps)
