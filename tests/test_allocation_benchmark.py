"""benchmarks/allocation.py's judgement: auto against the best uniform at <= tokens (and read at equal
tokens), and the room a per-bin choice of uniform strategy leaves (with hindsight, within the best
uniform's tokens)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the folder is no package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


allocation = load_benchmark("allocation")


def record(label: str, budget: int, pid: str, correct: bool, tokens: float) -> dict:
    return {"label": label, "budget": budget, "problem_id": pid, "seed": 0, "correct": correct,
            "ledger": {"generated_tokens": tokens}}


def runs_of(budget: int, bins: dict[str, int]) -> list[dict]:
    return [{"budget": budget, "seed": 0, "problems": [{"id": p, "bin": b} for p, b in bins.items()]}]


def test_hindsight_mixes_cells_across_bins_within_the_best_uniform_tokens() -> None:
    """Easy prompts (bin 0): best_of_n@4 solves them, particle fails them. Hard ones (bin 1): only
    particle@8 solves them. No uniform cell solves more than 2 of 4; best_of_n@4 on the easy bin and
    particle@8 on the hard one solve all 4 for the tokens of particle@8 everywhere."""
    easy, hard = ["e1", "e2"], ["h1", "h2"]
    records = []
    for pid in easy:
        records += [record("best_of_n", 4, pid, True, 40), record("particle", 4, pid, False, 40),
                    record("best_of_n", 8, pid, True, 80), record("particle", 8, pid, False, 80)]
    for pid in hard:
        records += [record("best_of_n", 4, pid, False, 40), record("particle", 4, pid, False, 40),
                    record("best_of_n", 8, pid, False, 80), record("particle", 8, pid, True, 80)]
    bins = {"e1": 0, "e2": 0, "h1": 1, "h2": 1}
    room = allocation.hindsight_bins(runs_of(8, bins), records, 8)
    assert room["best_uniform_solved"] == 2 and room["hindsight_solved"] == 4
    assert room["choice"] == {"0": "best_of_n@4", "1": "particle@8"}
    # at budget 4 the rival's tokens (160) cannot pay for particle@8 on the hard bin beside anything
    room4 = allocation.hindsight_bins(runs_of(4, bins), records, 4)
    assert room4["best_uniform_solved"] == 2 and room4["hindsight_solved"] == 2
    assert room4["choice"]["1"].endswith("@4")
    # a bin no uniform cell covers gives no bound, rather than a made-up one
    assert allocation.hindsight_bins(runs_of(8, {**bins, "x9": 2}), records, 8) is None


def test_verdict_needs_accuracy_and_no_more_tokens() -> None:
    uniform = {"particle": {8: {"accuracy": 0.5, "tokens": 100.0}}, "best_of_n": {8: {"accuracy": 0.4, "tokens": 90.0}}}
    assert allocation.verdicts(uniform, {8: {"accuracy": 0.5, "tokens": 100.0}})[8]["auto_wins"]
    assert not allocation.verdicts(uniform, {8: {"accuracy": 0.5, "tokens": 101.0}})[8]["auto_wins"]
    assert not allocation.verdicts(uniform, {8: {"accuracy": 0.49, "tokens": 50.0}})[8]["auto_wins"]


def test_equal_tokens_reads_each_uniform_curve_at_autos_tokens() -> None:
    particle = {8: {"accuracy": 0.4, "tokens": 100.0}, 16: {"accuracy": 0.6, "tokens": 400.0}}
    assert allocation.accuracy_at_tokens(particle, 200.0) == pytest.approx(0.5)  # halfway in log tokens
    assert allocation.accuracy_at_tokens(particle, 50.0) == 0.4 and allocation.accuracy_at_tokens(particle, 900.0) == 0.6
    w = allocation.verdicts({"particle": particle}, {8: {"accuracy": 0.42, "tokens": 110.0}})[8]
    assert not w["auto_wins"]  # 10% more tokens than particle@8
    assert w["auto_wins_at_equal_tokens"] and w["best_at_equal_tokens_accuracy"] == pytest.approx(0.4 + 0.2 * np.log(1.1) / np.log(4))
    lose = allocation.verdicts({"particle": particle}, {8: {"accuracy": 0.41, "tokens": 110.0}})
    assert not lose[8]["auto_wins_at_equal_tokens"]
    # the summary is JSON: verdicts are real booleans there, not the strings numpy's would become
    assert json.loads(json.dumps(lose, default=str))["8"]["auto_wins_at_equal_tokens"] is False


def test_the_paired_difference_resamples_problems_with_both_of_their_accuracies() -> None:
    """auto solves 30 problems the rival solves too, and 10 that it fails; they share 60 failures: the
    difference is +0.1 and, the pairs kept together, its interval excludes 0, though the two cells'
    own intervals (0.4 vs 0.3 over 100 problems, about +-0.1 each) overlap."""
    mine = {f"p{i}": float(i < 40) for i in range(100)}
    theirs = {f"p{i}": float(i < 30) for i in range(100)}
    d = allocation.paired_difference(mine, theirs)
    assert d["difference"] == pytest.approx(0.1) and d["problems"] == 100
    assert 0.0 < d["ci"][0] < 0.1 < d["ci"][1]
    assert allocation.paired_difference(mine, {"other": 1.0}) is None  # no problem in common: no figure
    uniform = {"particle": {8: {"accuracy": 0.3, "tokens": 100.0, "per_problem": theirs}}}
    w = allocation.verdicts(uniform, {8: {"accuracy": 0.4, "tokens": 100.0, "per_problem": mine}})[8]
    assert w["paired"]["difference"] == pytest.approx(0.1)


def test_a_dataset_file_replaces_the_held_out_families_and_only_them(tmp_path: Path) -> None:
    """--dataset judges on the user's problems: the eval grid loads that file (no split, seed or n of the
    generator), while a grid without it stays on the recipe's arith families."""
    import argparse

    from ttscale.bench.run import load_problems

    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"id": f"m{i}", "problem": f"Ann has {i} pens and buys 2 more. How many pens?",
                                        "answer": str(i + 2)}) + "\n" for i in range(3)))
    args = argparse.Namespace(recipe="recipes/arith-lab-policy.yaml", backend="vllm", model=None, n=100, threads=None,
                              temperature=0.8, max_tokens=256, strategies="best_of_n")
    ev = allocation.grid_config(args, "heldout", 0, [0], "eval", [4], str(data))
    problems, _ = load_problems(ev)
    assert [p.id for p in problems] == ["m0", "m1", "m2"] and ev.dataset.split is None
    fit = allocation.grid_config(args, "train", 0, [0], "fit", None)
    assert fit.dataset.name == "arith" and fit.dataset.split == "train"


def bench_folder(root: Path, name: str, ok: bool, seeds: tuple[int, ...] = (0,)) -> Path:
    """A benchmark folder with one problem `p0`: uniform particle right or wrong, auto right, plus the auto
    runs of another policy (digest `other`) that got p9 wrong."""
    folder = root / name
    (folder / "eval").mkdir(parents=True)
    (folder / "auto").mkdir()
    (folder / "eval" / "records.jsonl").write_text(
        json.dumps(record("particle", 8, "p0", ok, 100.0)) + "\n" + json.dumps(record("refine", 8, "p0", True, 9.0)) + "\n")
    for seed in seeds:
        run = {"budget": 8, "seed": seed, "candidates": 8, "pool": 8,
               "problems": [{"id": "p0", "correct": True, "generated_tokens": 90, "strategy": "best_of_n"}]}
        (folder / "auto" / f"b8_s{seed}_mine.json").write_text(json.dumps(run))
        decoy = {**run, "problems": [{"id": "p9", "correct": False, "generated_tokens": 900, "strategy": "best_of_n"}]}
        (folder / "auto" / f"b8_s{seed}_other.json").write_text(json.dumps(decoy))
    return folder


def test_pooling_keeps_each_folders_problems_apart_and_reads_one_policy(tmp_path: Path) -> None:
    """Two benchmark folders whose problems share ids (each set numbers its own from 0) pool into twice the
    problems, and only the named policy's auto runs are read."""
    pooled_mod = load_benchmark("allocation_pooled")
    a, b = bench_folder(tmp_path, "a", True), bench_folder(tmp_path, "b", False)
    uniform, auto = pooled_mod.pooled([a, b], "mine")
    assert set(uniform) == {"particle"} and uniform["particle"][8]["accuracy"] == 0.5  # refine is no baseline
    assert set(auto[8]["per_problem"]) == {"0:p0", "1:p0"}  # the other policy's p9 is not read
    assert auto[8]["accuracy"] == 1.0 and auto[8]["tokens"] == 90.0
    w = allocation.verdicts(uniform, auto)[8]
    assert w["auto_wins"] and w["paired"]["difference"] == pytest.approx(0.5)


def test_pooling_refuses_folders_that_cannot_be_compared(tmp_path: Path) -> None:
    pooled_mod = load_benchmark("allocation_pooled")
    a = bench_folder(tmp_path, "a", True)
    with pytest.raises(SystemExit, match="given twice"):
        pooled_mod.pooled([a, a], "mine")
    with pytest.raises(SystemExit, match="differ in budgets or seeds"):
        pooled_mod.pooled([a, bench_folder(tmp_path, "b", True, seeds=(0, 1))], "mine")
    with pytest.raises(SystemExit, match="no auto runs of this policy"):
        pooled_mod.pooled([a], "unknown")


def test_the_summary_leaves_per_problem_accuracies_out() -> None:
    cells = {8: {"accuracy": 0.5, "tokens": 10.0, "per_problem": {"p0": 0.5}}}
    assert allocation.without_per_problem(cells) == {8: {"accuracy": 0.5, "tokens": 10.0}}
    assert "per_problem" in cells[8]  # the cells themselves keep them for the paired intervals


def test_equal_accuracy_goes_to_the_cheaper_rival() -> None:
    """Two baselines solve the same share: auto is judged against the one that spent fewer tokens."""
    uniform = {"beam": {4: {"accuracy": 0.45, "tokens": 249.0}}, "particle": {4: {"accuracy": 0.45, "tokens": 257.0}}}
    w = allocation.verdicts(uniform, {4: {"accuracy": 0.45, "tokens": 250.0}})[4]
    assert w["best_uniform"] == "beam" and not w["auto_wins"]  # 250 tokens beat particle's 257, not beam's 249


def test_the_same_runs_solved_summed_in_another_order_is_a_tie() -> None:
    """0.46666666666666656 and 0.46666666666666673 are the same 140 of 300: auto is not behind."""
    uniform = {"best_of_n": {4: {"accuracy": 0.46666666666666673, "tokens": 249.0}}}
    w = allocation.verdicts(uniform, {4: {"accuracy": 0.46666666666666656, "tokens": 240.0}})[4]
    assert w["auto_wins"] and w["auto_wins_at_equal_tokens"]


def test_the_oracle_reference_stays_apart_from_the_estimators() -> None:
    """estimator_quality: the probe's own samples read with the gold answer come under "reference", not
    beside the estimators (a reader picking the best estimator must not pick it)."""
    from ttscale.allocate import load_policy

    class P:
        def __init__(self, pid: str) -> None:
            self.id, self.problem = pid, "Ann has 3 pens and buys 2 more. How many pens?"

    def cands(oks: list[bool]) -> list[dict]:
        return [{"answer": "5" if ok else "6", "correct": ok, "cluster": 0 if ok else 1, "scores": {"arith_steps": 1.0},
                 "tokens": 20} for ok in oks]

    rates = {"e": [True] * 12, "m": [True, False] * 6, "h": [False] * 12}
    records = [{"problem_id": pid, "seed": 0, "label": "best_of_n", "candidates": cands(oks)} for pid, oks in rates.items()]
    policy = load_policy("ttscale/lab/arith/policy.json")
    q = allocation.estimator_quality(policy, [P(pid) for pid in rates], records, {})
    assert allocation.ORACLE not in q and set(q["reference"]) == {allocation.ORACLE}
    assert q["reference"][allocation.ORACLE]["spearman"] == pytest.approx(-1.0)
    assert {"probe", "learned"} <= set(q)


ceiling = load_benchmark("estimator_ceiling")


def test_ceiling_reads_the_largest_best_of_n_run_per_problem_and_seed(tmp_path: Path) -> None:
    rows = [{"problem_id": "p", "seed": 0, "label": "best_of_n", "candidates": [{}] * 4},
            {"problem_id": "p", "seed": 0, "label": "best_of_n", "candidates": [{}] * 32},
            {"problem_id": "p", "seed": 0, "label": "particle", "candidates": [{}] * 64},
            {"problem_id": "p", "seed": 1, "label": "best_of_n", "candidates": [{}] * 8}]
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    top = ceiling.best_of_n_runs(tmp_path)
    assert {k: len(v["candidates"]) for k, v in top.items()} == {("p", 0): 32, ("p", 1): 8}


@pytest.mark.parametrize("sign", [1, -1])
def test_the_in_sample_fit_learns_which_way_a_feature_points(sign: int) -> None:
    """A feature that orders the problems by solve rate (either way round) gives a perfect ceiling;
    the fit, not an assumed direction, finds it."""
    rates = [0.1, 0.3, 0.5, 0.7, 0.9]
    ids = [f"p{i}" for i in range(len(rates))]
    rows = {pid: [{"agreement": 0.5 + sign * (r - 0.5)}] for pid, r in zip(ids, rates)}
    assert ceiling.in_sample(rows, ["agreement"], ids, rates) == pytest.approx(-1.0)


def synthetic_runs(n_problems: int, n_candidates: int = 32) -> tuple[dict, dict]:
    """Problem i: i of its first 4 samples wrong, and a solve rate of 1 - i/20 after the 12th (but 2i
    of samples 5-12 right, so the rate after the 4th rises with i)."""
    top, texts = {}, {}
    for i in range(n_problems):
        def cand(ok: bool, j: int) -> dict:  # wrong samples disagree with each other, and fail the checker
            return {"answer": "1" if ok else str(10 + j), "cluster": 0 if ok else 1 + j, "correct": ok,
                    "tokens": 20, "scores": {"arith_steps": 1.0 if ok else 0.0}}
        probe = [cand(j >= i, j) for j in range(4)]
        between = [cand(j < 2 * i, 4 + j) for j in range(8)]  # the opposite order: a target read from here fails
        rest = [cand(j >= i, 12 + j) for j in range(20)]
        first = probe + between
        top[(f"p{i}", 0)] = {"candidates": (first + rest)[:n_candidates]}
        texts[f"p{i}"] = f"problem {i}"
    return top, texts


def test_the_ceiling_judges_every_line_on_the_samples_after_the_twelfth() -> None:
    from ttscale.allocate import load_policy

    policy = load_policy("ttscale/lab/arith/policy.json")
    top, texts = synthetic_runs(5)
    top[("short", 0)] = {"candidates": top[("p0", 0)]["candidates"][:12]}  # no target samples: left out
    texts["short"] = "short"
    f = ceiling.figures(top, texts, policy, "arith_steps")
    assert f["problems"] == 5
    assert f["reference"] == pytest.approx(-1.0)  # more wrong in the probe, lower solve rate after it
    assert f["shipped probe"] < 0 and f["in-sample fit"] < 0


def test_the_ceiling_refuses_a_set_without_samples_past_the_twelfth() -> None:
    from ttscale.allocate import load_policy

    top, texts = synthetic_runs(5, n_candidates=12)
    with pytest.raises(SystemExit, match="budget of 32"):
        ceiling.figures(top, texts, load_policy("ttscale/lab/arith/policy.json"), "arith_steps")


def test_pooling_keeps_every_folder_s_problems_and_refuses_the_same_problem_twice() -> None:
    top, texts = synthetic_runs(5)
    other = {(f"q{pid}", seed): r for (pid, seed), r in top.items()}
    top2, texts2 = ceiling.pool({"a": (top, texts), "b": (other, {f"q{pid}": x for pid, x in texts.items()})})
    assert len(top2) == 10 and len(texts2) == 10
    with pytest.raises(SystemExit, match="another folder holds"):
        ceiling.pool({"a": (top, texts), "b": (top, texts)})
