"""One error type for everything a user can get wrong.

The CLI prints these as a single line and exits 2; the API raises them. Every message names the problem
and the fix, so nobody has to read a traceback to learn that a flag was misspelt.
"""

from __future__ import annotations


class TTScaleError(Exception):
    """A user-facing error: `problem` says what is wrong, `fix` what to do about it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. {fix}".strip() if fix else problem)


def unknown_name(kind: str, name: str, known: list[str]) -> TTScaleError:
    """The error for a registry miss: shows what exists so the fix is obvious."""
    return TTScaleError(f"unknown {kind} {name!r}", f"choose one of: {', '.join(sorted(known)) or '(none registered)'}")
