"""Exact values of numeric answers, decided before any float comparison.

Why: math-verify rounds floats to a fixed number of places, so `\\frac{1}{100!}` and `\\frac{1}{101!}`,
or `0.0000001` and `0.0000002`, compare equal there. Different numbers must never be graded equal. An
answer made only of numbers (integers, decimals with thousands separators, percentages), `+ - * / ^`,
parentheses or braces, `\\frac`, `\\cdot`/`\\times` and factorials is evaluated here with exact rational
arithmetic (bounded sizes, never `eval`); two such answers are equal only when their values are, except
that a written decimal agrees with an exact value to the places it shows (`0.333` for 1/3), which is a
tolerance relative to the precision the answer was written with. Anything else (variables, roots,
intervals) goes to math-verify.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

MAX_CHARS = 20_000  # longer answers are not parsed here (math-verify may still try, or undecided)
MAX_DIGITS = 400  # per literal
MAX_BITS = 40_000  # of any intermediate numerator or denominator (2000! has about 19,000)
MAX_FACTORIAL = 2_000
MAX_EXPONENT = 10_000
MAX_DEPTH = 60

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<op>\*\*|[-+*/^!()%]))"
)
_LATEX = [
    (re.compile(r"\\[dt]?frac"), r"\\frac"),
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |~|\$"), " "),
    (re.compile(r"\\cdot|\\times|×|·"), "*"),
    (re.compile(r"\\div|÷"), "/"),
    (re.compile(r"−|–"), "-"),
    (re.compile(r"\\%"), "%"),
]


class NotExact(Exception):
    """The answer is not a plain numeric expression, or it is too big to evaluate."""


@functools.lru_cache(maxsize=4096)
def exact_value(answer: str) -> tuple[Fraction, int | None] | None:
    """(value, decimal places) of a numeric answer, or None when it is not one (or too big).

    Decimal places are given when the answer is a single decimal literal with a fractional part (so it
    may stand for a rounded value), else None."""
    if not answer or len(answer) > MAX_CHARS:
        return None
    text = answer.strip().rstrip(".")
    for pattern, repl in _LATEX:
        text = pattern.sub(repl, text)
    text = text.strip()
    if text.endswith("%"):  # a trailing percent sign is a unit, as graders read "10\\%" and "10" alike
        text = text[:-1]
    try:
        text = _expand_frac(text)
    except RecursionError:
        return None
    if text is None:
        return None
    text = text.replace("{", "(").replace("}", ")")
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            return None
        tokens.append(m.group("num") or m.group("op"))
        pos = m.end()
    if not tokens:
        return None
    try:
        parser = _Parser(tokens)
        value = parser.parse()
    except (NotExact, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None
    literal = tokens[-1] if len(tokens) == 1 or (len(tokens) == 2 and tokens[0] == "-") else ""
    places = len(literal.split(".", 1)[1]) if "." in literal else None
    return value, places or None


def _expand_frac(text: str, depth: int = 0) -> str | None:
    """`\\frac{a}{b}` -> `((a)/(b))`, nested ones too; None on an unbalanced or unknown command, on a
    mixed number (`2\\frac{1}{2}` means 2 + 1/2, not a product: math-verify decides it), or too deep."""
    if depth > MAX_DEPTH:
        return None
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("\\frac", i):
            before = "".join(out).rstrip()
            if before and (before[-1].isdigit() or before[-1] in ").}"):
                return None
            i += 5
            args = []
            for _ in range(2):
                while i < len(text) and text[i] == " ":
                    i += 1
                if i < len(text) and text[i] == "{":
                    depth, j = 0, i
                    while j < len(text):
                        depth += text[j] == "{"
                        depth -= text[j] == "}"
                        if depth == 0:
                            break
                        j += 1
                    if depth:
                        return None
                    inner = _expand_frac(text[i + 1:j], depth + 1)
                    if inner is None:
                        return None
                    args.append(inner)
                    i = j + 1
                elif i < len(text) and text[i].isdigit():  # \frac12
                    args.append(text[i])
                    i += 1
                else:
                    return None
            out.append(f"(({args[0]})/({args[1]}))")
        elif text[i] == "\\":
            return None  # another LaTeX command (\sqrt, \pi, \infty...): not plain arithmetic
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/'|implicit) unary)*; unary := '-' unary |
    power; power := postfix ('^' unary)?; postfix := atom ('!'|'%')*; atom := num | '(' expr ')'."""

    def __init__(self, tokens: list[str]) -> None:
        self.t = tokens
        self.i = 0
        self.depth = 0

    def parse(self) -> Fraction:
        v = self.expr()
        if self.i != len(self.t):
            raise NotExact("trailing input")
        return v

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, tok: str) -> bool:
        if self.peek() == tok:
            self.i += 1
            return True
        return False

    def expr(self) -> Fraction:
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.t[self.i]
            self.i += 1
            w = self.term()
            v = _bounded(v + w if op == "+" else v - w)
        return v

    def term(self) -> Fraction:
        v = self.unary()
        while True:
            nxt = self.peek()
            if nxt in ("*", "/"):
                self.i += 1
                w = self.unary()
                v = _bounded(v * w if nxt == "*" else v / w)
            elif nxt == "(":  # implicit product: 2(3+4)
                v = _bounded(v * self.unary())
            else:
                return v

    def unary(self) -> Fraction:
        if self.take("-"):
            return -self.unary()
        if self.take("+"):
            return self.unary()
        return self.power()

    def power(self) -> Fraction:
        base = self.postfix()
        if self.take("^") or self.take("**"):
            exp = self.unary()
            if exp.denominator != 1 or abs(exp) > MAX_EXPONENT:
                raise NotExact("fractional or huge exponent")
            e = int(exp)
            if base == 0 and e < 0:
                raise ZeroDivisionError
            size = max(base.numerator.bit_length(), base.denominator.bit_length())
            if size * abs(e) > MAX_BITS:
                raise NotExact("power too large")
            return base**e
        return base

    def postfix(self) -> Fraction:
        v = self.atom()
        while self.peek() in ("!", "%"):
            if self.t[self.i] == "%":
                v = v / 100
            else:
                if v.denominator != 1 or v < 0 or v > MAX_FACTORIAL:
                    raise NotExact("factorial out of range")
                import math

                v = Fraction(math.factorial(int(v)))
            self.i += 1
        return _bounded(v)

    def atom(self) -> Fraction:
        tok = self.peek()
        if tok is None:
            raise NotExact("missing operand")
        if tok == "(":
            self.i += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise NotExact("too deep")
            v = self.expr()
            self.depth -= 1
            if not self.take(")"):
                raise NotExact("unbalanced")
            return v
        if tok[0].isdigit() or tok[0] == ".":
            self.i += 1
            digits = tok.replace(",", "")
            if len(digits) > MAX_DIGITS:
                raise NotExact("literal too long")
            return Fraction(digits)
        raise NotExact(f"unexpected {tok!r}")


def _bounded(v: Fraction) -> Fraction:
    if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
        raise NotExact("number too large")
    return v


def exact_equal(gold: str, pred: str) -> bool | None:
    """True/False when both answers have exact values, None when either has not (math-verify decides).

    Equal values are equal. Otherwise the only leeway: a decimal written with at least two significant
    digits agrees with an exact value that is not a decimal (a fraction, an expression) when that value
    rounds to it at the places it shows (`0.33` for `\\frac{1}{3}`). Two decimals, or two exact values,
    must be equal: `0.0000001` is not `0.0000002`, and `\\frac{1}{100!}` is not `\\frac{1}{101!}`."""
    a, b = exact_value(gold), exact_value(pred)
    if a is None or b is None:
        return None
    return values_agree(a, b)


def values_agree(a: tuple[Fraction, int | None], b: tuple[Fraction, int | None]) -> bool:
    """`exact_equal` on two `exact_value` results."""
    (va, places_a), (vb, places_b) = a, b
    if va == vb:
        return True
    if (places_a is None) == (places_b is None):
        return False
    rounded, places, exact = (va, places_a, vb) if places_a is not None else (vb, places_b, va)
    assert places is not None
    significant = len(str(abs(rounded.numerator * 10**places // rounded.denominator)))
    return significant >= 2 and abs(exact - rounded) * 2 * 10**places <= 1
