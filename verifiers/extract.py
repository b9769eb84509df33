"""Final-answer extraction from model output, and a cheap string normal form.

Runs in the caller's process, so it must stay linear-time on hostile input
(100 kB of text, 10k nested braces): plain scans and regexes without nested
quantifiers only, and a cap on how many candidate boxes are tried.
"""

from __future__ import annotations

import re

_MAX_BOXES_TRIED = 16  # unbalanced (truncated) boxes are skipped, at most this many
_MAX_ANSWER_CHARS = 2_000  # "the answer is ..." keeps at most this much of the line

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)  # \{ and \} are escaped, not braces
_ANSWER_IS = re.compile(r"(?:\banswer\s+is|\banswer\s*:)\s*:?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])-)?"  # a minus sign, unless it is binary (after a word or bracket)
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?|\.\d+)"  # 1,234 | 12 | 1.5 | .5
    r"(?:/\d+)?"  # 3/4
)

_NUMBER_WITH_UNIT = re.compile(rf"\$?(?:{_NUMBER.pattern})(?:\s+[A-Za-z]+){{0,4}}")


def extract_answer(text: str, finish_reason: str | None = None) -> str | None:
    """The final answer in ``text``: last ``\\boxed{}``/``\\fbox{}``, else "the answer is X" (when X is
    prose rather than math, no answer), else the last number; ``None`` if there is none.

    ``finish_reason="length"`` (cut off at the token limit): only an explicit answer counts, a closed box
    or "the answer is X" in a sentence that ended. Why: the last number of unfinished work is whatever
    the model was computing when it ran out, and a cut "the answer is 1" may have been "the answer is 12";
    a guess like that must not vote."""
    if not text:
        return None
    boxed = _last_boxed(text)  # a balanced box is complete even when the text around it is cut
    if boxed:
        return boxed
    truncated = finish_reason == "length"
    if truncated:
        text = _finished_part(text)
    if _ANSWER_IS.search(text):  # the model said what its answer is: that or nothing, no last-number guess
        return _answer_is(text)
    return None if truncated else _last_number(text)


def _finished_part(text: str) -> str:
    """``text`` up to its last sentence end: what a cut-off completion had finished saying."""
    last = None
    for last in _SENTENCE_END.finditer(text):
        pass
    return text[:last.end()] if last else ""


def states_final_answer(step: str) -> bool:
    """Whether a solution step announces the final answer: a ``\\boxed{}``, or "the answer is" followed by
    a number (with at most a few words of unit: "21 nuts", "4 apples in all") or a math span. Why:
    step-level search ends a path there, as its_hub's stop token does, and this must not depend on the
    server saying whether it stopped at EOS or at the step delimiter (llama.cpp's server reports both as
    "stop"). Stricter than `extract_answer`: no last-number fallback; "the answer is not obvious" and
    "the answer is 12 + 3 = 15 minus ..." do not count."""
    if _last_boxed(step) is not None:
        return True
    answer = _answer_is(step)
    if not answer:
        return False
    return _NUMBER_WITH_UNIT.fullmatch(answer.replace(",", "")) is not None or "\\" in answer


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOX.finditer(text)]
    for start in reversed(starts[-_MAX_BOXES_TRIED:]):
        content = _box_argument(text, start)
        if content is not None and content.strip():
            return content.strip()
    return None


def _box_argument(text: str, i: int) -> str | None:
    """The argument after ``\\boxed`` at index ``i``: ``{...}`` (balanced) or ``\\boxed 5``."""
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i >= n:
        return None
    if text[i] != "{":  # "\boxed 5": one token
        m = re.match(r"[^\s$]+", text[i:i + 100])
        return m.group(0) if m else None
    depth = 0
    for m in _BRACE_TOKEN.finditer(text, i):  # only braces and escapes: fast on long text
        tok = m.group(0)
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:m.start()]
    return None  # unbalanced: truncated output


def _answer_is(text: str) -> str | None:
    """What follows the last "the answer is" that states an answer (a later "the answer is consistent
    with ..." is a remark, not a retraction); None when none does."""
    matches = list(_ANSWER_IS.finditer(text))
    for m in reversed(matches[-_MAX_BOXES_TRIED:]):
        rest = text[m.end():m.end() + _MAX_ANSWER_CHARS].strip()
        filler = _FILLER.match(rest)  # "indeed 50": the value, not the adverb
        answer = _answer_after(rest[filler.end():] if filler else rest)
        if answer is not None and is_math_answer(answer):
            return answer
    return None


def _answer_after(rest: str) -> str | None:
    for left, right in (("$$", "$$"), ("\\[", "\\]")):  # display math may span lines
        if rest.startswith(left):
            end = rest.find(right, len(left))
            return _strip_answer(rest[len(left):end]) if end > 0 else None
    if rest.startswith("$"):  # "is $5$, so ...": the math span
        end = rest.find("$", 1)
        if end > 0:
            return _strip_answer(rest[1:end])
    end = _SENTENCE_END.search(rest)
    return _strip_answer(_drop_trailing_remark(rest[:end.start()] if end else rest))


# Words a model puts between "the answer is" and the value ("indeed 50", "simply 3", "therefore $5$").
_FILLER = re.compile(
    r"(?:(?:indeed|simply|just|actually|clearly|obviously|therefore|thus|hence|then|now|so|exactly|precisely"
    r"|definitely|certainly|really|still|also|finally|surely|probably|likely)\b[\s,:]*)+",
    re.IGNORECASE,
)
_PROSE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,'-\u2019")


def _drop_trailing_remark(answer: str) -> str:
    """"50, indeed" -> "50", "12, which is the total" -> "12": words after a comma that follows a value
    are a remark, not part of it. A tail with digits or math ("1, 2, and 3", "(3, 4)") is kept."""
    i = len(answer)
    while i > 0 and answer[i - 1] in _PROSE_CHARS:  # the tail made of letters, spaces and commas only
        i -= 1
    comma = answer.find(",", i)
    if comma < 0:
        return answer
    head = answer[:comma]
    if any(ch.isdigit() or ch == "\\" for ch in head) and _prose_words(answer[comma + 1:]):
        return head
    return answer


def _prose_words(tail: str) -> bool:
    words = _WORD.findall(tail)
    return bool(words) and not any(w.lower() in _MATH_WORDS for w in words)


_TEXT_MACRO = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_MATH_WORDS = {"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "pi", "max", "min", "gcd",
               "lcm", "mod", "arcsin", "arccos", "arctan", "infty", "inf"}
_REMARKS = {"correct", "incorrect", "right", "wrong", "consistent", "valid", "invalid", "clear", "obvious",
            "above", "below", "same", "different", "unknown", "not"}
_NOT_ANSWER = re.compile(r"≠|!=|=/=|\\neq\b|\\ne\b|\\not\s*=")


def is_math_answer(answer: str) -> bool:
    """Whether what follows "the answer is" is an answer: a mathematical expression, a number with a few
    words of unit ("21 nuts"), or one word ("Evelyn", "odd"); not prose ("simply 3", "indeed 50", "You
    need to add the cost ...") and not a relation that denies itself ("17 * 3 ≠ 51")."""
    if _NOT_ANSWER.search(answer):
        return False
    plain = _TEXT_MACRO.sub(lambda m: m.group(1), answer).strip()
    words = [w for w in _WORD.findall(plain) if w.lower() not in _MATH_WORDS]
    if not words:
        return True
    if words[0].lower() in _REMARKS:  # "the answer is correct": a remark about an answer
        return False
    if _NUMBER_WITH_UNIT.fullmatch(plain.replace(",", "")):
        return True
    if len(words) == 1 and plain.strip("()[]{}.,!? ") == words[0]:
        return True
    first = next((m for m in _WORD.finditer(plain) if m.group(0).lower() not in _MATH_WORDS), None)
    before = plain[: first.start()] if first else plain
    # Words after math ("12 apples in all", "x = 5 cm") are units or trailing prose; words before any
    # math make the whole thing a sentence.
    return bool(before.strip()) and len(words) <= 4


def _strip_answer(answer: str) -> str | None:
    answer = answer.strip().strip("*").strip()  # markdown bold
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            answer = answer[len(left):len(answer) - len(right)].strip()
    answer = answer.rstrip(".").strip().strip("$").strip()
    return answer or None


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return last.group(0).replace(",", "") if last else None


_COSMETIC = re.compile(r"\\left|\\right|\\[!,;: ]|\s+|\$")


def normalize(answer: str) -> str:
    """A cosmetic normal form: equal normal forms mean equal answers (the fast path).

    Only removes what never changes meaning: spacing, ``$``, ``\\left``/``\\right``,
    ``\\dfrac``/``\\tfrac`` spelling, a trailing period.
    """
    s = _COSMETIC.sub("", answer)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.rstrip(".")
