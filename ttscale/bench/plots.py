"""PNG plots of a bench report: accuracy vs budget, accuracy vs generated tokens, accuracy by level.

matplotlib with the Agg backend (no display needed). Accuracy is in percent, as in the tables, with the
report's 95% bootstrap intervals as bands or error bars. Each strategy label keeps one colour and one
marker in every plot, so lines that coincide stay distinguishable; points whose records were cut from a
larger best-of-N run (subsampled) are drawn hollow. Each plot has a `figure_*` builder (tests inspect
the figure) and a function that saves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttscale.bench.metrics import Row
from ttscale.errors import TTScaleError

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
HOLLOW = "white"
SUBSAMPLED_NOTE = "hollow: subsampled from a larger best-of-N run"

Levels = dict[tuple[str, int], dict[int, tuple[float, int]]]  # (label, budget) -> level -> (accuracy, problems)
Intervals = dict[tuple[str, int], dict[int, tuple[float, float]]]  # (label, budget) -> level -> (low, high)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TTScaleError("plots need matplotlib, which is not installed",
                           "pip install matplotlib, or pass --no-plots") from None
    return plt


def _by_label(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.label, []).append(r)
    return out


def styles(labels: list[str]) -> dict[str, tuple[str, str]]:
    """label -> (colour, marker): both differ between any two of up to eight labels."""
    return {lab: (COLORS[i % len(COLORS)], MARKERS[i % len(MARKERS)]) for i, lab in enumerate(labels)}


def _pct(x: float) -> float:
    return 100.0 * x


def _mark_subsampled(ax: Any, xs: list[float], ys: list[float], flags: list[bool], color: str, marker: str) -> None:
    """Hollow markers over the points whose records were subsampled."""
    pts = [(x, y) for x, y, f in zip(xs, ys, flags) if f]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker=marker, color=color,
                markerfacecolor=HOLLOW, markeredgecolor=color, zorder=4)


def _note_subsampled(ax: Any, any_subsampled: bool) -> None:
    if any_subsampled:
        ax.plot([], [], linestyle="none", marker="o", color="#555555", markerfacecolor=HOLLOW, label=SUBSAMPLED_NOTE)


def _percent_axis(ax: Any, label: str) -> None:
    ax.set_ylabel(label)
    ax.set_ylim(-2, 102)


def figure_accuracy_vs_budget(rows: list[Row], title: str) -> Any:
    plt = _pyplot()
    lines = _by_label(rows)
    style = styles(list(lines))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, (label, rs) in enumerate(lines.items()):
        color, marker = style[label]
        shift = 2 ** (0.04 * (i - (len(lines) - 1) / 2))  # a nudge on the log axis: equal lines stay visible
        xs = [r.budget * shift for r in rs]
        ys = [_pct(r.accuracy) for r in rs]
        ax.plot(xs, ys, marker=marker, color=color, label=label)
        ax.fill_between(xs, [_pct(r.ci_low) for r in rs], [_pct(r.ci_high) for r in rs], color=color, alpha=0.15)
        _mark_subsampled(ax, xs, ys, [r.subsampled for r in rs], color, marker)
    _note_subsampled(ax, any(r.subsampled for r in rows))
    budgets = sorted({r.budget for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("budget (candidate solutions per problem)")
    _percent_axis(ax, "accuracy % (95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def figure_accuracy_vs_tokens(rows: list[Row], title: str) -> Any:
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lines = _by_label(rows)
    style = styles(list(lines))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, rs in lines.items():
        color, marker = style[label]
        rs = sorted(rs, key=lambda r: (max(r.generated_tokens, 1.0), r.budget))  # a band needs ascending x
        xs = [max(r.generated_tokens, 1.0) for r in rs]
        ys = [_pct(r.accuracy) for r in rs]
        ax.plot(xs, ys, marker=marker, color=color, label=label)
        ax.fill_between(xs, [_pct(r.ci_low) for r in rs], [_pct(r.ci_high) for r in rs], color=color, alpha=0.15)
        _mark_subsampled(ax, xs, ys, [r.subsampled for r in rs], color, marker)
        for x, y, r in zip(xs, ys, rs):
            ax.annotate(str(r.budget), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7, color=color)
    _note_subsampled(ax, any(r.subsampled for r in rows))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("generated tokens per problem (log scale; labels: budget)")
    _percent_axis(ax, "accuracy % (95% bootstrap CI)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def level_ticks(levels: Levels) -> tuple[list[int], list[str]]:
    """The levels present and their labels with the problems behind each: "L3 (n=12)" ("n=10-12" when the
    series differ, as in an unfinished run)."""
    all_levels = sorted({lv for per in levels.values() for lv in per})
    labels = []
    for lv in all_levels:
        counts = [per[lv][1] for per in levels.values() if lv in per]
        lo, hi = min(counts), max(counts)
        labels.append(f"L{lv} (n={hi})" if lo == hi else f"L{lv} (n={lo}-{hi})")
    return all_levels, labels


def level_series(levels: Levels, order: list[str] | None = None) -> list[tuple[str, int, str]]:
    """(label, budget, linestyle) drawn: each label at its largest budget (solid) and, when it differs,
    its smallest (dashed); labels in `order` first so each keeps its colour across plots."""
    present = {label for label, _ in levels}
    labels = [lab for lab in dict.fromkeys([*(order or []), *sorted(present)]) if lab in present]
    out = []
    for label in labels:
        budgets = sorted(b for lab, b in levels if lab == label)
        out.append((label, budgets[-1], "-"))
        if len(budgets) > 1:
            out.append((label, budgets[0], "--"))
    return out


def figure_accuracy_by_level(levels: Levels, title: str, order: list[str] | None = None,
                             intervals: Intervals | None = None, subsampled: set[tuple[str, int]] | None = None) -> Any:
    """Accuracy per difficulty level with 95% error bars; series sit side by side around each level so
    equal values never hide one another."""
    plt = _pyplot()
    series = level_series(levels, order)
    style = styles(list(dict.fromkeys(label for label, _, _ in series)))
    step = min(0.12, 0.6 / max(len(series), 1))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, (label, budget, linestyle) in enumerate(series):
        color, marker = style[label]
        per = levels[(label, budget)]
        offset = (i - (len(series) - 1) / 2) * step
        lvs = sorted(per)
        ys = [_pct(per[lv][0]) for lv in lvs]
        ci = (intervals or {}).get((label, budget), {})
        yerr = None
        if all(lv in ci for lv in lvs):
            yerr = [[max(y - _pct(ci[lv][0]), 0.0) for lv, y in zip(lvs, ys)],
                    [max(_pct(ci[lv][1]) - y, 0.0) for lv, y in zip(lvs, ys)]]
        sub = (label, budget) in (subsampled or set())
        ax.errorbar([lv + offset for lv in lvs], ys, yerr=yerr, linestyle=linestyle, marker=marker, color=color,
                    markerfacecolor=HOLLOW if sub else color, capsize=2, elinewidth=0.8,
                    label=f"{label} @ {budget}" + (" (subsampled)" if sub else ""))
    ticks, names = level_ticks(levels)
    ax.set_xticks(ticks, names)
    ax.set_xlabel("difficulty level (n: problems)")
    _percent_axis(ax, "accuracy % (95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def accuracy_vs_budget(rows: list[Row], path: Path, title: str) -> Path:
    return _save(figure_accuracy_vs_budget(rows, title), path)


def accuracy_vs_tokens(rows: list[Row], path: Path, title: str) -> Path:
    return _save(figure_accuracy_vs_tokens(rows, title), path)


def accuracy_by_level(levels: Levels, path: Path, title: str, order: list[str] | None = None,
                      intervals: Intervals | None = None, subsampled: set[tuple[str, int]] | None = None) -> Path:
    return _save(figure_accuracy_by_level(levels, title, order, intervals, subsampled), path)


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
