"""Answer checking for ttscale: extraction, math-verify equivalence, clustering for votes.

math-verify runs in worker processes with a hard per-call deadline, so a hostile
answer costs at most ``deadline_s`` and yields ``None`` (undecided), never a hang.
"""

from verifiers.checker import AnswerChecker, CheckerStats, get_checker, grade_many, is_correct
from verifiers.extract import extract_answer, normalize

__all__ = ["AnswerChecker", "CheckerStats", "extract_answer", "get_checker", "grade_many", "is_correct", "normalize"]
