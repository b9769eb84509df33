"""Bench: compute-vs-accuracy grids that resume, report, plot, and scale out on Ray.

    from ttscale.bench import load_recipe, run_bench, build_report
    summary = run_bench(load_recipe("recipes/arith-embedded-cpu.yaml"), "runs/arith")
    report = build_report("runs/arith")

The CLI (`ttscale bench`, `ttscale report`) is a thin layer over these. Names load lazily so that
registering the commands costs the CLI nothing at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BenchConfig": "ttscale.bench.config", "config_from_mapping": "ttscale.bench.config",
    "load_recipe": "ttscale.bench.recipe", "build_report": "ttscale.bench.report",
    "write_report": "ttscale.bench.report", "BenchSummary": "ttscale.bench.run", "run_bench": "ttscale.bench.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ttscale.bench' has no attribute {name!r}")
