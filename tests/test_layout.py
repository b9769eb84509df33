"""The layout stays as the design card draws it: no import cycles, and `verifiers` imports nothing of
ttscale's beyond the message and error types (the Score adapters and registrations live in ttscale)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "benchmarks" / "import_cycles.py")
import_cycles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_cycles)  # type: ignore[union-attr]


def test_no_import_cycles():
    g = import_cycles.graph(["ttscale", "verifiers", "eval_sets"])
    assert import_cycles.cycles(g) == []


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_verifiers_stay_behind_the_boundary():
    g = import_cycles.graph(["ttscale", "verifiers"])
    used = {b for a, deps in g.items() if a.startswith("verifiers") for b in deps if b.startswith("ttscale")}
    assert used <= import_cycles.BOUNDARY
