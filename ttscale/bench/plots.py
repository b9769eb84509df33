"""PNG plots of a bench report: accuracy vs budget, accuracy vs generated tokens, accuracy by level.

matplotlib with the Agg backend (no display needed); one line per strategy label, the same colour for
a label in every plot.
"""

from __future__ import annotations

from pathlib import Path

from ttscale.bench.metrics import Row
from ttscale.errors import TTScaleError


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


def _colors(labels: list[str]) -> dict[str, str]:
    cycle = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    return {lab: cycle[i % len(cycle)] for i, lab in enumerate(labels)}


def accuracy_vs_budget(rows: list[Row], path: Path, title: str) -> Path:
    plt = _pyplot()
    lines = _by_label(rows)
    colors = _colors(list(lines))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, rs in lines.items():
        xs = [r.budget for r in rs]
        ax.plot(xs, [r.accuracy for r in rs], marker="o", color=colors[label], label=label)
        ax.fill_between(xs, [r.ci_low for r in rs], [r.ci_high for r in rs], color=colors[label], alpha=0.15)
    budgets = sorted({r.budget for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("budget (candidate solutions per problem)")
    ax.set_ylabel("accuracy (95% bootstrap CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend()
    return _save(fig, path, plt)


def accuracy_vs_tokens(rows: list[Row], path: Path, title: str) -> Path:
    plt = _pyplot()
    lines = _by_label(rows)
    colors = _colors(list(lines))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label, rs in lines.items():
        xs = [max(r.generated_tokens, 1.0) for r in rs]
        ax.plot(xs, [r.accuracy for r in rs], marker="o", color=colors[label], label=label)
        for x, r in zip(xs, rs):
            ax.annotate(str(r.budget), (x, r.accuracy), textcoords="offset points", xytext=(3, 3), fontsize=7,
                        color=colors[label])
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("generated tokens per problem (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return _save(fig, path, plt)


def accuracy_by_level(levels: dict[tuple[str, int], dict[int, tuple[float, int]]], path: Path, title: str,
                      order: list[str] | None = None) -> Path:
    """One line per label at its largest budget, plus its smallest budget dashed when it differs.
    `order`: the labels in the other plots' order, so each keeps its colour."""
    plt = _pyplot()
    present = set(label for label, _ in levels)
    labels = [lab for lab in dict.fromkeys([*(order or []), *sorted(present)]) if lab in present]
    colors = _colors(labels)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for label in labels:
        budgets = sorted(b for lab, b in levels if lab == label)
        for budget, style in ((budgets[-1], "-"), (budgets[0], "--")):
            per = levels[(label, budget)]
            xs = sorted(per)
            face = colors[label] if style == "-" else "white"
            ax.plot(xs, [per[x][0] for x in xs], style, marker="o", color=colors[label], markerfacecolor=face,
                    label=f"{label} @ {budget}")
            if len(budgets) == 1:
                break
    all_levels = sorted({lv for per in levels.values() for lv in per})
    ax.set_xticks(all_levels, [str(x) for x in all_levels])
    ax.set_xlabel("difficulty level")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
