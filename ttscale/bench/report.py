"""`ttscale report RUNDIR`: the table, `report.md` / `report.json`, and the PNG plots of a bench folder.

It only reads: a records file with an unfinished last line (a run still going, or killed) is reported
from its complete lines. Records outside the folder's current grid (left from a run with a smaller or
larger grid, kept by `--force`) are counted but not tabulated.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rich.table import Table

from ttscale.bench import plots
from ttscale.bench.manifest import MANIFEST_FILE, read_manifest
from ttscale.bench.metrics import Row, bootstrap_ci, by_level, summarize
from ttscale.bench.record import BenchRecord, as_records
from ttscale.bench.records import RECORDS_FILE, read_records
from ttscale.errors import TTScaleError


@dataclass
class Report:
    folder: Path
    manifest: dict[str, Any]
    rows: list[Row]
    levels: dict[tuple[str, int], dict[int, tuple[float, int]]]
    records_used: int
    records_outside: int
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    level_ci: dict[tuple[str, int], dict[int, tuple[float, float]]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        c = self.manifest["config"]
        model = c.get("model") or "embedded SmolLM2-135M"
        return f"{c['dataset']['name']} ({self.manifest['dataset']['problems']} problems), {model} on {c['backend']}"

    def run_seconds(self) -> float:
        return sum(h.get("summary", {}).get("wall_seconds", 0.0) for h in self.manifest.get("history", []))


def build_report(folder: str | Path, n_boot: int = 2000) -> Report:
    folder = Path(folder)
    if not folder.is_dir():
        raise TTScaleError(f"no such run folder: {folder}", "pass the --out folder of a ttscale bench run")
    manifest = read_manifest(folder)
    if manifest is None:
        raise TTScaleError(f"{folder} has no {MANIFEST_FILE}, so it is not a bench run folder",
                           "pass the --out folder of a ttscale bench run")
    read = read_records(folder / RECORDS_FILE)
    notes = [m.replace("its cell will be rerun", "not counted") for m in read.messages(folder / RECORDS_FILE)]
    c = manifest["config"]
    labels, seeds = list(c["strategies"]), set(c["seeds"])
    budgets = {label: set(spec.get("budgets") or c["budgets"]) for label, spec in c["strategies"].items()}
    problems = set(manifest.get("problems", {}))
    inside = [r for r in read.records if r["label"] in budgets and r["budget"] in budgets[r["label"]]
              and r["seed"] in seeds and (not problems or r["problem_id"] in problems)]
    if not inside:
        raise TTScaleError(f"{folder} has no records yet", f"run ttscale bench with --out {folder} first")
    rows = summarize(inside, order=labels, n_boot=n_boot)
    expected = len(problems) * len(seeds) if problems else None
    missing = [f"{r.label}@{r.budget}" for r in rows if expected and r.records < expected]
    if missing:
        notes.append(f"incomplete (fewer records than {expected} problems x seeds): {', '.join(missing[:6])}"
                     + (" ..." if len(missing) > 6 else "") + "; rerun the bench command to finish")
    return Report(folder, manifest, rows, by_level(inside), len(inside), len(read.records) - len(inside), notes,
                  level_ci=level_intervals(inside, n_boot))


def level_intervals(records: Iterable[BenchRecord | dict[str, Any]], n_boot: int = 2000
                    ) -> dict[tuple[str, int], dict[int, tuple[float, float]]]:
    """(label, budget) -> level -> 95% bootstrap interval of by_level's accuracy (over problems, seeds of a
    problem averaged first, as for the main table)."""
    groups: dict[tuple[str, int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in as_records(records):
        if r.level is not None:
            groups[(r.label, int(r.budget), int(r.level))][r.problem_id].append(float(r.correct))
    out: dict[tuple[str, int], dict[int, tuple[float, float]]] = defaultdict(dict)
    for (label, budget, level), per in sorted(groups.items()):
        out[(label, budget)][level] = bootstrap_ci(np.array([np.mean(v) for v in per.values()]), n_boot=n_boot)
    return dict(out)


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}"


def _row_cells(r: Row, verifier: bool) -> list[str]:
    cells = [r.label, f"{r.budget}{'*' if r.subsampled else ''}", str(r.problems),
             f"{_pct(r.accuracy)} [{_pct(r.ci_low)}, {_pct(r.ci_high)}]", _pct(r.maj_at_k), _pct(r.pass_at_k),
             f"{r.generated_tokens:.0f}"]
    if verifier:
        cells.append(f"{r.verifier_tokens:.0f}")
    cells.append(f"{r.seconds:.2f}")
    return cells


def _headers(verifier: bool) -> list[str]:
    h = ["strategy", "budget", "problems", "accuracy % [95% CI]", "maj@k %", "pass@k %", "gen tok/problem"]
    if verifier:
        h.append("verifier tok/problem")
    return h + ["s/problem"]


def _level_grid(report: Report) -> tuple[list[int], list[list[str]]]:
    levels = sorted({lv for per in report.levels.values() for lv in per})
    rows = []
    for r in report.rows:  # the main table's order: strategies as configured, budgets ascending
        per = report.levels.get((r.label, r.budget), {})
        rows.append([r.label, str(r.budget)] + [_pct(per[lv][0]) if lv in per else "-" for lv in levels])
    return levels, rows


def rich_tables(report: Report) -> list[Table]:
    verifier = any(r.verifier_tokens for r in report.rows)
    t = Table(title=report.title, title_justify="left")
    for h in _headers(verifier):
        t.add_column(h, justify="left" if h == "strategy" else "right")
    for r in report.rows:
        t.add_row(*_row_cells(r, verifier))
    out = [t]
    if report.levels:
        levels, rows = _level_grid(report)
        lt = Table(title="accuracy % by difficulty level", title_justify="left")
        for h in ["strategy", "budget"] + [f"level {lv}" for lv in levels]:
            lt.add_column(h, justify="left" if h == "strategy" else "right")
        for row in rows:
            lt.add_row(*row)
        out.append(lt)
    return out


def markdown(report: Report) -> str:
    verifier = any(r.verifier_tokens for r in report.rows)
    m = report.manifest
    lines = [f"# {report.title}", "",
             f"config hash `{m['config_hash']}`, dataset checksum `{m['dataset']['checksum'][:16]}`, "
             f"seeds {m['config']['seeds']}, {report.records_used} records; "
             f"bench wall time {report.run_seconds():.0f} s over {len(m.get('history', []))} invocation(s)", ""]
    hs = _headers(verifier)
    lines += ["| " + " | ".join(hs) + " |", "|" + "---|" * len(hs)]
    lines += ["| " + " | ".join(_row_cells(r, verifier)) + " |" for r in report.rows]
    lines += ["", "`*`: best-of-N records subsampled from the largest-budget run (first k of N samples).",
              "Seconds are each cell's share of backend time (batched rounds split by tokens generated)."]
    if report.levels:
        levels, rows = _level_grid(report)
        hs = ["strategy", "budget"] + [f"level {lv}" for lv in levels]
        lines += ["", "## Accuracy % by difficulty level", "", "| " + " | ".join(hs) + " |", "|" + "---|" * len(hs)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    if report.plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in report.plots]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def write_report(report: Report, *, with_plots: bool = True) -> list[Path]:
    """Plots (unless disabled), report.md and report.json in the run folder; returns the files written."""
    out = report.folder
    if with_plots:
        pdir = out / "plots"
        report.plots = [plots.accuracy_vs_budget(report.rows, pdir / "accuracy_vs_budget.png", report.title),
                        plots.accuracy_vs_tokens(report.rows, pdir / "accuracy_vs_tokens.png", report.title)]
        if report.levels:
            order = list(dict.fromkeys(r.label for r in report.rows))
            subsampled = {(r.label, r.budget) for r in report.rows if r.subsampled}
            report.plots.append(plots.accuracy_by_level(report.levels, pdir / "accuracy_by_level.png", report.title,
                                                        order, report.level_ci, subsampled))
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    data = {"title": report.title, "config_hash": report.manifest["config_hash"],
            "rows": [r.to_dict() for r in report.rows],
            "levels": [{"label": lab, "budget": b, "level": lv, "accuracy": acc, "problems": n,
                        **dict(zip(("ci_low", "ci_high"), report.level_ci.get((lab, b), {}).get(lv, (None, None))))}
                       for (lab, b), per in report.levels.items() for lv, (acc, n) in per.items()],
            "records_used": report.records_used, "records_outside_grid": report.records_outside,
            "bench_wall_seconds": report.run_seconds(), "notes": report.notes,
            "plots": [str(p) for p in report.plots]}
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return [*report.plots, out / "report.md", out / "report.json"]
