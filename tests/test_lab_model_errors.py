"""benchmarks/lab_model_errors.py tells an arithmetic slip from a misreading by the exact claim checker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "lab_model_errors", Path(__file__).resolve().parents[1] / "benchmarks" / "lab_model_errors.py")
errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(errors)


def test_right_slip_and_misread_are_told_apart() -> None:
    # "Ann has 6 pens. She gets 3 more pens. ..." -> 9
    assert errors.classify("Ann has 6 + 3 = 9 pens.\n\nThe answer is 9.", "9") == "right"
    assert errors.classify("Ann has 6 + 3 = 10 pens.\n\nThe answer is 10.", "9") == "slip"
    assert errors.classify("Ann has 6 - 3 = 3 pens left.\n\nThe answer is 3.", "9") == "misread"
    # a slip early that a later true claim carries on is still a slip
    assert errors.classify("Ann has 6 + 3 = 8 pens.\n\nAnn has 8 * 2 = 16 pens.\n\nThe answer is 16.", "18") == "slip"
    assert errors.classify("I do not know.", "9") == "misread"  # no claim at all: nothing false, answer wrong


def test_families_are_tabulated_worst_first(capsys) -> None:
    from collections import Counter

    per_family = {"train": {"gain.more": Counter(right=9, misread=1), "rare": Counter(misread=3)},
                  "heldout": {"gain.come": Counter(right=4, misread=6), "lose.takes": Counter(right=10, slip=2)}}
    errors.print_families(per_family)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert lines == ["| train | gain.more | 10 | 0.90 | 0.10 |",  # "rare" is in too few problems to say
                     "| heldout | gain.come | 10 | 0.40 | 0.60 |",
                     "| heldout | lose.takes | 12 | 0.83 | 0.00 |"]


def test_hand_written_problems_are_read_and_bad_files_named(tmp_path: Path) -> None:
    import pytest

    good = tmp_path / "fresh.jsonl"
    good.write_text('{"level": 1, "problem": "Ann has 6 pens. She finds 3 more.", "answer": 9}\n\n')
    assert errors.read_fresh(str(good)) == [{"level": 1, "problem": "Ann has 6 pens. She finds 3 more.", "answer": "9"}]
    bad = tmp_path / "bad.jsonl"
    for text, message in [('{"level": 1, "answer": "9"}\n', "line 1 lacks level, problem or answer"),
                          ('{"level": 1, "problem": "x", "answer": "9"}\n{"level": 1,\n', "line 2 is not JSON"),
                          ('{"level": "one", "problem": "x", "answer": "9"}\n', "line 1: level and answer must be integers"),
                          ('{"level": 1, "problem": "x", "answer": "nine"}\n', "line 1: level and answer must be integers"),
                          ("\n", "no problems")]:
        bad.write_text(text)
        with pytest.raises(SystemExit, match=message):
            errors.read_fresh(str(bad))
    with pytest.raises(SystemExit, match="not a file"):
        errors.read_fresh(str(tmp_path / "missing.jsonl"))


def _exact(expression: str) -> tuple[int, int]:
    """(value, number of operations) of an integer expression; a division must leave no remainder."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}

    def walk(node: ast.AST) -> tuple[int, int]:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value, 0
        assert isinstance(node, ast.BinOp) and type(node.op) in ops, ast.dump(node)
        (a, m), (b, n) = walk(node.left), walk(node.right)
        assert not isinstance(node.op, ast.FloorDiv) or a % b == 0, f"{a} // {b} leaves a remainder"
        value = ops[type(node.op)](a, b)
        assert value >= 0, f"{expression}: a negative count"
        return value, m + n + 1

    return walk(ast.parse(expression, mode="eval").body)


def test_the_shipped_hand_written_set_is_exact() -> None:
    """Every hand-written answer is its expression's exact value (divisions even, counts never negative),
    and a problem's level is its number of operations: 25 per level 1-3."""
    rows = errors.read_fresh(str(Path(__file__).resolve().parents[1] / "benchmarks/data/fresh_wording.jsonl"))
    assert sorted(r["level"] for r in rows) == [1] * 25 + [2] * 25 + [3] * 25
    assert len({r["problem"] for r in rows}) == 75
    for r in rows:
        assert _exact(r["expression"]) == (int(r["answer"]), r["level"]), r["id"]
    assert _exact("(35-5*2)//5") == (5, 3)
    import pytest

    with pytest.raises(AssertionError, match="remainder"):
        _exact("7//2")
