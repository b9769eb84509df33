"""Bench plots read as the tables do: percent, 95% intervals, counts per level, subsampled points marked,
and series with equal values never drawn on top of one another. Fast (figures inspected, no model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ttscale.bench import plots
from ttscale.bench.metrics import Row
from ttscale.bench.report import level_intervals


def row(label, budget, acc, lo, hi, tokens, subsampled=False):
    return Row(label=label, budget=budget, problems=10, records=10, accuracy=acc, ci_low=lo, ci_high=hi,
               maj_at_k=acc, pass_at_k=acc, generated_tokens=tokens, verifier_tokens=0.0, seconds=0.1,
               subsampled=subsampled)


ROWS = [row("best_of_n", 1, 0.4, 0.2, 0.6, 100, subsampled=True), row("best_of_n", 4, 0.6, 0.4, 0.8, 400),
        row("particle", 1, 0.4, 0.2, 0.6, 120), row("particle", 4, 0.6, 0.4, 0.8, 480)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def data_lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata())]


def hollow_points(ax):
    return {(float(x), float(y)) for ln in data_lines(ax) if ln.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0))
            for x, y in zip(ln.get_xdata(), ln.get_ydata())}


def test_budget_plot_in_percent_with_bands_and_hollow_subsampled_points():
    fig = plots.figure_accuracy_vs_budget(ROWS, "t")
    ax = fig.axes[0]
    assert "%" in ax.get_ylabel() and ax.get_ylim()[1] > 100
    main = [ln for ln in data_lines(ax) if ln.get_label() in ("best_of_n", "particle")]
    assert sorted(np.round(main[0].get_ydata(), 6).tolist()) == [40.0, 60.0]
    assert main[0].get_marker() != main[1].get_marker()  # equal accuracies: told apart by marker ...
    assert list(main[0].get_xdata()) != list(main[1].get_xdata())  # ... and a nudge along the budget axis
    assert len(ax.collections) == 2  # one 95% band per label
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(20.0) and band.max() == pytest.approx(80.0)
    assert [y for _, y in hollow_points(ax)] == [40.0]  # only best_of_n @ 1 was subsampled
    assert plots.SUBSAMPLED_NOTE in [t.get_text() for t in ax.get_legend().get_texts()]


def test_tokens_plot_has_bands_from_the_report_intervals():
    fig = plots.figure_accuracy_vs_tokens(ROWS, "t")
    ax = fig.axes[0]
    assert len(ax.collections) == 2 and "%" in ax.get_ylabel()
    for coll in ax.collections:
        ys = coll.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(20.0) and ys.max() == pytest.approx(80.0)
    assert (100.0, 40.0) in hollow_points(ax) and (120.0, 40.0) not in hollow_points(ax)


def test_no_subsampled_note_when_nothing_was_subsampled():
    rows = [r for r in ROWS if not r.subsampled]
    ax = plots.figure_accuracy_vs_budget(rows, "t").axes[0]
    assert plots.SUBSAMPLED_NOTE not in [t.get_text() for t in ax.get_legend().get_texts()]
    assert hollow_points(ax) == set()


LEVELS = {("best_of_n", 1): {1: (0.5, 12), 2: (0.25, 12)}, ("best_of_n", 4): {1: (0.5, 12), 2: (0.25, 12)},
          ("particle", 4): {1: (0.5, 12), 2: (0.25, 11)}}
CIS = {("best_of_n", 1): {1: (0.3, 0.7), 2: (0.1, 0.4)}, ("best_of_n", 4): {1: (0.3, 0.7), 2: (0.1, 0.4)},
       ("particle", 4): {1: (0.3, 0.7), 2: (0.05, 0.5)}}


def test_level_plot_separates_identical_series_and_shows_intervals_and_counts():
    fig = plots.figure_accuracy_by_level(LEVELS, "t", order=["best_of_n", "particle"], intervals=CIS,
                                         subsampled={("best_of_n", 1)})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["L1 (n=12)", "L2 (n=11-12)"]
    series = {c.get_label(): c for c in ax.containers}  # one errorbar container per series
    assert set(series) == {"best_of_n @ 4", "best_of_n @ 1 (subsampled)", "particle @ 4"}
    xs = {label: tuple(c.lines[0].get_xdata()) for label, c in series.items()}
    assert len(set(xs.values())) == 3  # all three have the same values, none hides another
    for c in series.values():
        assert list(c.lines[0].get_ydata()) == [50.0, 25.0]
    # 95% error bars, in percent
    segs = series["particle @ 4"].lines[2][0].get_segments()
    assert [tuple(np.round(s[:, 1], 6)) for s in segs] == [(30.0, 70.0), (5.0, 50.0)]
    assert series["best_of_n @ 1 (subsampled)"].lines[0].get_markerfacecolor() == "white"
    assert series["best_of_n @ 1 (subsampled)"].lines[0].get_linestyle() == "--"
    assert series["best_of_n @ 4"].lines[0].get_marker() != series["particle @ 4"].lines[0].get_marker()


def test_level_series_order_and_styles():
    assert plots.level_series(LEVELS, ["particle", "best_of_n"]) == [
        ("particle", 4, "-"), ("best_of_n", 4, "-"), ("best_of_n", 1, "--")]
    st = plots.styles(["a", "b", "c"])
    assert len({c for c, _ in st.values()}) == 3 and len({m for _, m in st.values()}) == 3


def test_level_intervals_bootstrap_over_problems():
    recs = [{"problem_id": f"p{i}", "label": "s", "budget": 1, "seed": s, "level": 1 + i % 2,
             "correct": (i + s) % 3 == 0} for i in range(12) for s in (0, 1)]
    ci = level_intervals(recs, n_boot=500)
    assert set(ci) == {("s", 1)} and set(ci[("s", 1)]) == {1, 2}
    for lv in (1, 2):
        per = [np.mean([(i + s) % 3 == 0 for s in (0, 1)]) for i in range(12) if 1 + i % 2 == lv]
        lo, hi = ci[("s", 1)][lv]
        assert lo <= np.mean(per) <= hi and lo < hi


def test_report_writes_level_intervals_to_json(tmp_path):
    """A whole bench on the fake backend: report.json levels carry their 95% interval, the plots exist."""
    from fakes import FakeBackend
    from test_cli_parity import Checker, base_flags, script
    from ttscale import Engine
    from ttscale.bench.recipe import resolve_config
    from ttscale.bench.report import build_report, write_report
    from ttscale.bench.run import run_bench

    cfg = resolve_config(None, base_flags(levels=[1, 2], n=6, budgets=[1, 2], stop=["STOP"]))
    run_bench(cfg, tmp_path, engine=Engine(backend=FakeBackend(script), checker=Checker()), checker=Checker(),
              progress=False)
    written = write_report(build_report(tmp_path, n_boot=200))
    assert {p.name for p in written if p.suffix == ".png"} == {"accuracy_vs_budget.png", "accuracy_vs_tokens.png",
                                                                "accuracy_by_level.png"}
    levels = json.loads((tmp_path / "report.json").read_text())["levels"]
    assert levels and all(not math.isnan(x["ci_low"]) and x["ci_low"] <= x["accuracy"] <= x["ci_high"] for x in levels)
