"""Bench on the scripted fake backend: grid planning, batching, streaming records, resume after a crash,
subsampled best-of-N, manifests, metrics, reports and plots, recipe validation. Fast (no model)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fakes import ExactChecker, FakeBackend
from helpers import run_cli
from ttscale import Engine, TTScaleError
from ttscale.bench.config import config_from_mapping
from ttscale.bench.grid import plan
from ttscale.bench.metrics import any_correct, bootstrap_ci, majority_correct, summarize
from ttscale.bench.records import RECORDS_FILE, RecordStore, read_records, record_key
from ttscale.bench.recipe import load_recipe, parse_int_list, resolve_config
from ttscale.bench.report import build_report, write_report
from ttscale.bench.run import run_bench
from ttscale.scoring import register_scorer
from ttscale.strategies.aggregate import aggregate

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Checker(ExactChecker):
    """ExactChecker plus grading: gold == answer as strings."""

    def check_many(self, pairs):
        return [a.strip() == b.strip() for a, b in pairs]


class StepScorer:
    """Step score 0.1 for steps containing 'bad', 0.9 otherwise."""

    def __init__(self, backend, **options) -> None:
        pass

    def score_batch(self, requests):
        return [[[0.1 if "bad" in s else 0.9 for s in cand] for cand in r.candidates] for r in requests], 0


register_scorer("bench_steps")(StepScorer)


def script(prompt_ids, j, seed):
    """Two steps then an answer: `seed % 3` of a sample decides it, so seeds and samples disagree."""
    text = "".join(chr(i) for i in prompt_ids)
    done = text.split("<assistant>", 1)[1].count("\n\n")
    value = ((seed or 0) + j) % 3
    if done < 2:
        return f"step {done} {'bad' if value == 2 else 'ok'}\n\nmore"
    return f"The answer is \\boxed{{{value}}}"


class CountingBackend(FakeBackend):
    """Fails after `fail_after` calls: a crash in the middle of a run."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(script)
        self.fail_after = fail_after

    def generate(self, requests):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated crash")
        return super().generate(requests)


def arith_gold(n: int) -> list[str]:
    from eval_sets import load

    return [p.answer for p in load("arith", n=n, levels=[1])]


def config(**over):
    base = {"dataset": {"name": "arith", "n": 4, "levels": [1]}, "strategies": {"best_of_n": {},
            "particle": {"verifier": "bench_steps"}}, "budgets": [1, 4], "seeds": [0, 1],
            "sampling": {"max_tokens": 64}}
    base.update(over)
    return config_from_mapping(base)


def bench(cfg, out, backend=None, **kw):
    backend = backend or CountingBackend()
    engine = Engine(backend=backend, checker=Checker())
    return run_bench(cfg, out, engine=engine, checker=Checker(), progress=False, **kw), backend


def keys(folder: Path) -> list[tuple]:
    return [record_key(json.loads(line)) for line in (folder / RECORDS_FILE).read_text().splitlines()]


# -- the grid ------------------------------------------------------------------------------------------------


def test_grid_runs_every_cell_once_batched_across_problems_strategies_seeds(tmp_path):
    cfg = config()
    summary, backend = bench(cfg, tmp_path)
    got = keys(tmp_path)
    assert len(got) == len(set(got)) == 4 * 2 * 2 * 2 == summary.cells_written
    # One backend call carries work of several problems, strategies and seeds at once.
    first = backend.calls[0]
    prompts = {r.prompt_ids[:200] for r in first}
    assert len(first) > 4 and len(prompts) == 4
    assert len(backend.calls) < 4 * 2 * 2  # far fewer calls than runs
    recs = [json.loads(x) for x in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    for r in recs:
        assert r["gold"] and len(r["candidates"]) == r["budget"]
        assert r["correct"] is (r["answer"] == r["gold"])
        assert all(c["correct"] is (c["answer"] == r["gold"]) for c in r["candidates"])
        assert r["ledger"]["generated_tokens"] > 0 and r["seconds"] >= 0


def test_best_of_n_small_budgets_are_subsampled_from_the_largest_run(tmp_path):
    bench(config(strategies=["best_of_n"], budgets=[1, 2, 4]), tmp_path)
    recs = {record_key(r): r for r in map(json.loads, (tmp_path / RECORDS_FILE).read_text().splitlines())}
    for (pid, label, budget, seed), r in recs.items():
        big = recs[(pid, label, 4, seed)]
        if budget == 4:
            assert r["subsampled_from"] is None
            continue
        assert r["subsampled_from"] == 4
        assert [c["answer"] for c in r["candidates"]] == [c["answer"] for c in big["candidates"][:budget]]
        assert r["ledger"]["generated_tokens"] == sum(c["tokens"] for c in big["candidates"][:budget])
        # The subsampled vote is the vote of those k candidates.
        counts = Counter(c["answer"] for c in r["candidates"])
        assert counts[r["answer"]] == max(counts.values())


def test_no_subsample_runs_each_budget(tmp_path):
    summary, backend = bench(config(strategies=["best_of_n"], budgets=[1, 4], subsample_best_of_n=False), tmp_path)
    ns = Counter(r.n for call in backend.calls for r in call)
    assert ns[1] == 4 * 2 and ns[4] == 4 * 2
    assert summary.cells_written == 16


def test_subsampling_only_for_plain_best_of_n():
    cfg = config(strategies={"best_of_n": {}, "bon_t": {"strategy": "best_of_n", "temperatures": [0.5, 1.0]},
                             "particle": {"verifier": "bench_steps"}})
    from eval_sets import load

    items = plan(cfg, load("arith", n=1, levels=[1]), set())
    by_label = Counter(i.label for i in items)
    assert by_label == {"best_of_n": 2, "bon_t": 4, "particle": 4}
    assert all(i.emit == (1, 4) and i.run_budget == 4 for i in items if i.label == "best_of_n")


def test_a_strategy_line_may_have_its_own_budgets(tmp_path):
    cfg = config(strategies={"best_of_n": {}, "particle": {"verifier": "bench_steps", "budgets": [4]}}, seeds=[0])
    bench(cfg, tmp_path)
    got = Counter((k[1], k[2]) for k in keys(tmp_path))
    assert got == {("best_of_n", 1): 4, ("best_of_n", 4): 4, ("particle", 4): 4}
    assert [(r.label, r.budget) for r in build_report(tmp_path, n_boot=10).rows] == \
        [("best_of_n", 1), ("best_of_n", 4), ("particle", 4)]
    with pytest.raises(TTScaleError, match=r"strategies.particle.budgets\[0\] must be one of the positive integers"):
        config(strategies={"particle": {"budgets": [0]}})


def test_max_inflight_bounds_the_batch_and_streams_records(tmp_path):
    summary, backend = bench(config(strategies=["best_of_n"], budgets=[4], max_inflight=4), tmp_path)
    assert all(sum(r.n for r in call) <= 4 for call in backend.calls)
    assert len(backend.calls) == 8 and summary.cells_written == 8


# -- resume --------------------------------------------------------------------------------------------------


def test_crash_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path):
    cfg = config(max_inflight=4)
    with pytest.raises(KeyboardInterrupt):
        bench(cfg, tmp_path, backend=CountingBackend(fail_after=5))
    partial = keys(tmp_path)
    assert 0 < len(partial) < 32
    summary, _ = bench(cfg, tmp_path)
    got = keys(tmp_path)
    assert len(got) == len(set(got)) == 32
    assert summary.cells_before == len(partial) and summary.cells_written == 32 - len(partial)
    summary, backend = bench(cfg, tmp_path)  # complete: nothing runs
    assert summary.cells_written == 0 and backend.calls == []


def test_truncated_last_line_is_recovered_and_reported(tmp_path):
    recs = [{"problem_id": f"p{i}", "label": "best_of_n", "budget": 1, "seed": 0, "correct": True} for i in range(3)]
    path = tmp_path / RECORDS_FILE
    body = "".join(json.dumps(r) + "\n" for r in recs)
    path.write_text(body + '{"problem_id": "p3", "label": "best_of_n", "bud')
    read = read_records(path)
    assert len(read.records) == 3 and read.partial_bytes > 0
    assert path.read_text().endswith("bud")  # reading alone changes nothing
    store = RecordStore(tmp_path).open()
    msgs = store.report.messages(path)
    assert len(store.done) == 3 and any("recovered 3 complete records" in m for m in msgs)
    assert path.read_text() == body and (tmp_path / (RECORDS_FILE + ".partial")).read_text().startswith('{"problem_id": "p3"')
    store.append([{"problem_id": "p3", "label": "best_of_n", "budget": 1, "seed": 0}, recs[0]])  # recs[0]: already there
    store.close()
    assert [k[0] for k in map(record_key, map(json.loads, path.read_text().splitlines()))] == ["p0", "p1", "p2", "p3"]


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / RECORDS_FILE
    path.write_text(json.dumps({"problem_id": "a", "label": "x", "budget": 1, "seed": 0}))
    store = RecordStore(tmp_path).open()
    store.append([{"problem_id": "b", "label": "x", "budget": 1, "seed": 0}])
    store.close()
    assert [json.loads(x)["problem_id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_bad_and_duplicate_lines_are_skipped_and_reported(tmp_path):
    path = tmp_path / RECORDS_FILE
    rec = json.dumps({"problem_id": "a", "label": "x", "budget": 1, "seed": 0})
    path.write_text(f"{rec}\nnot json\n{rec}\n")
    read = read_records(path)
    assert len(read.records) == 1 and read.bad_lines == [2] and read.duplicates == 1
    assert any("line 2" in m for m in read.messages(path))


def test_second_writer_on_the_same_folder_is_refused(tmp_path):
    from ttscale.bench.records import FolderLock

    with FolderLock(tmp_path):
        with pytest.raises(TTScaleError, match="another ttscale bench"):
            with FolderLock(tmp_path):
                pass


# -- manifest ------------------------------------------------------------------------------------------------


def test_manifest_pins_config_and_dataset(tmp_path):
    cfg = config()
    bench(cfg, tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    from eval_sets import dataset_checksum

    assert m["config_hash"] == cfg.config_hash()
    assert m["dataset"]["checksum"] == dataset_checksum("arith", n=4, levels=[1])
    assert m["packages"]["numpy"] and m["config"]["budgets"] == [1, 4]
    assert m["history"][-1]["summary"]["cells_written"] == 32


def test_changed_config_is_refused_unless_force(tmp_path):
    bench(config(), tmp_path)
    with pytest.raises(TTScaleError, match=r"different config \(sampling.temperature: 0.8 -> 0.5"):
        bench(config(sampling={"max_tokens": 64, "temperature": 0.5}), tmp_path)
    # --force with a changed setting: old records move aside, the folder starts over.
    summary, _ = bench(config(sampling={"max_tokens": 64, "temperature": 0.5}), tmp_path, force=True)
    assert summary.action == "superseded" and summary.cells_written == 32
    assert list((tmp_path / "superseded").glob("*/records.jsonl"))


def test_changed_config_is_accepted_while_the_folder_has_no_records(tmp_path):
    """A first attempt that failed before any record (a typo in --model) must not lock the folder."""
    with pytest.raises(KeyboardInterrupt):
        bench(config(), tmp_path, backend=CountingBackend(fail_after=0))
    assert (tmp_path / "manifest.json").exists() and not keys(tmp_path)
    summary, _ = bench(config(sampling={"max_tokens": 48}), tmp_path)
    assert summary.action == "new" and summary.cells_written == 32


def test_force_with_a_larger_grid_keeps_valid_records(tmp_path):
    bench(config(budgets=[1, 4]), tmp_path)
    summary, _ = bench(config(budgets=[1, 4, 8], seeds=[0, 1]), tmp_path, force=True)
    assert summary.action == "extend" and summary.cells_before == 32
    got = keys(tmp_path)
    assert len(got) == len(set(got)) == 48


# -- metrics and report --------------------------------------------------------------------------------------


def test_bootstrap_interval():
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50))
    assert 0.38 < lo < 0.5 < hi < 0.62


def test_maj_and_pass_at_k():
    from ttscale.bench.record import BenchRecord, CandidateRecord

    cands = [{"answer": "1", "cluster": 0, "correct": False}, {"answer": "2", "cluster": 1, "correct": True},
             {"answer": "1", "cluster": 0, "correct": False}, {"answer": None, "cluster": None, "correct": False}]
    rec = {"problem_id": "p", "label": "s", "budget": 4, "seed": 0, "candidates": cands}
    assert majority_correct(rec) is False and any_correct(rec) is True  # a record as read from a file
    typed = BenchRecord("p", "s", 4, 0, candidates=[CandidateRecord(**c) for c in cands])
    assert typed.majority_correct() is False and typed.any_correct() is True
    assert BenchRecord.from_dict(typed.to_dict()) == typed
    rec["candidates"][0].update(answer="2", cluster=1, correct=True)
    assert majority_correct(rec) is True


def test_accuracy_averages_seeds_within_a_problem():
    recs = [{"problem_id": "a", "label": "s", "budget": 1, "seed": 0, "correct": True},
            {"problem_id": "a", "label": "s", "budget": 1, "seed": 1, "correct": False},
            {"problem_id": "b", "label": "s", "budget": 1, "seed": 0, "correct": True},
            {"problem_id": "b", "label": "s", "budget": 1, "seed": 1, "correct": True}]
    [row] = summarize(recs)
    assert row.accuracy == pytest.approx(0.75) and row.problems == 2 and row.records == 4


def test_report_tables_and_valid_pngs(tmp_path):
    bench(config(), tmp_path)
    rep = build_report(tmp_path, n_boot=200)
    assert [(r.label, r.budget) for r in rep.rows] == [("best_of_n", 1), ("best_of_n", 4), ("particle", 1), ("particle", 4)]
    written = write_report(rep)
    pngs = [p for p in written if p.suffix == ".png"]
    assert {p.name for p in pngs} == {"accuracy_vs_budget.png", "accuracy_vs_tokens.png", "accuracy_by_level.png"}
    from PIL import Image

    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    md = (tmp_path / "report.md").read_text()
    assert "| best_of_n | 1* | 4 |" in md and "level 1" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert len(data["rows"]) == 4 and data["records_used"] == 32
    # Accuracy in the table is what the records say.
    recs = [json.loads(x) for x in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    bon4 = [r for r in recs if r["label"] == "best_of_n" and r["budget"] == 4]
    assert rep.rows[1].accuracy == pytest.approx(np.mean([r["correct"] for r in bon4]))


def test_report_cli_on_a_run_folder(tmp_path):
    bench(config(), tmp_path)
    proc = run_cli("report", str(tmp_path), "--bootstrap", "100", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy % [95% CI]" in proc.stdout and "particle" in proc.stdout and "level 1" in proc.stdout
    assert (tmp_path / "plots" / "accuracy_vs_tokens.png").read_bytes()[:8] == PNG_MAGIC


# -- recipes and bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe):
    from ttscale.bench.run import check_names

    cfg = load_recipe(recipe)
    assert cfg.name == recipe.stem and cfg.budgets and cfg.strategies
    check_names(cfg)  # dataset, backend, strategies, verifiers and aggregations all exist


def test_paper_recipes_pin_the_papers_setups():
    pf = load_recipe(REPO / "recipes" / "particle-filtering-math500.yaml")
    assert pf.model == "Qwen/Qwen2.5-Math-1.5B-Instruct" and pf.verifier_options["prm"]["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
    assert pf.budgets == (1, 2, 4, 8, 16, 32) and pf.dataset.name == "math500"
    sal = load_recipe(REPO / "recipes" / "search-and-learn-llama1b.yaml")
    assert sal.model == "meta-llama/Llama-3.2-1B-Instruct" and sal.budgets == (4, 16, 64, 256)
    assert {s.strategy for s in sal.strategies} == {"best_of_n", "beam", "dvts"}
    assert "I hope it is correct" in (sal.sampling.system_prompt or "")


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"budget": [1]}, "budget is not a known field. did you mean 'budgets'?"),
        ({"budgets": [1, 0]}, "budgets[1] must be one of the positive integers, got 0"),
        ({"budgets": "4"}, "budgets must be a non-empty list of positive integers"),
        ({"budgets": [2.5]}, "budgets[0] must be one of the positive integers"),
        ({"seeds": [-1]}, "seeds[0] must be one of the non-negative integers"),
        ({"dataset": {"name": "arith", "levls": [1]}}, "dataset.levls is not a known field. did you mean 'levels'?"),
        ({"dataset": {"limit": 3}}, "dataset.name is missing"),
        ({"sampling": {"temperature": -1}}, "sampling.temperature must be a number in [0.0, 5.0]"),
        ({"sampling": {"max_tokens": 0}}, "sampling.max_tokens must be a positive integer"),
        ({"strategies": []}, "strategies must name at least one strategy"),
        ({"strategies": {"beam": 4}}, "strategies.beam must be a mapping of options"),
        ({"subsample_best_of_n": "yes"}, "subsample_best_of_n must be true or false"),
    ],
)
def test_recipe_validation_names_the_bad_field(tmp_path, change, needle):
    data = {"dataset": {"name": "arith"}, "strategies": ["best_of_n"], "budgets": [1, 4], **change}
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TTScaleError) as e:
        load_recipe(path)
    assert f"recipe {path}: " in str(e.value) and needle in str(e.value)


def test_cli_flags_override_recipe_fields():
    cfg = resolve_config(str(REPO / "recipes" / "arith-lab-cpu.yaml"),
                         {"budgets": [1, 2], "max_tokens": 48, "limit": 6, "strategies": ["best_of_n"]})
    assert cfg.budgets == (1, 2) and cfg.sampling.max_tokens == 48 and cfg.dataset.limit == 6
    assert cfg.dataset.levels == (1, 2, 3) and [s.label for s in cfg.strategies] == ["best_of_n"]
    assert cfg.model == "lab:arith"


def test_another_backend_leaves_out_the_recipes_backend_options_it_does_not_take():
    """arith-lab-cpu is tuned for vLLM (max_num_seqs); its own comment says to add --backend transformers."""
    notes: list[str] = []
    path = str(REPO / "recipes" / "arith-lab-cpu.yaml")
    cfg = resolve_config(path, {"backend": "transformers"}, notes=notes)
    assert cfg.backend == "transformers" and dict(cfg.backend_options) == {"context_length": 2048}
    assert len(notes) == 1 and "max_num_seqs of vllm left out for --backend transformers" in notes[0]
    notes.clear()
    assert "max_num_seqs" in resolve_config(path, {"backend": "vllm"}, notes=notes).backend_options and not notes


def test_config_round_trips_through_its_dict():
    """Ray workers rebuild the config from the manifest's dict form: it must be the same config."""
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        cfg = load_recipe(recipe)
        again = config_from_mapping(cfg.to_dict())
        assert again == cfg and again.config_hash() == cfg.config_hash()


def test_parse_int_list():
    assert parse_int_list("--budgets", "1, 4,16", minimum=1) == [1, 4, 16]
    for bad in ("0", "1,x", "1,,4", "-2"):
        with pytest.raises(TTScaleError, match="--budgets must be a comma-separated list of positive integers"):
            parse_int_list("--budgets", bad, minimum=1)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "nope", "--budgets", "1"], "unknown dataset 'nope'"),
        (["--dataset", "arith", "--budgets", "0,4"], "--budgets must be a comma-separated list of positive integers, got '0'"),
        (["--dataset", "arith", "--budgets", "1", "--strategies", "bestofn"], "unknown strategy 'bestofn'"),
        (["--dataset", "gsm8k", "--levels", "1", "--budgets", "1"], "has no difficulty levels"),
        (["--dataset", "arith", "--budgets", "1", "--out", "/dev/null/x"], "cannot write to output folder /dev/null/x"),
        (["--dataset", "arith", "--budgets", "1", "--strategies", "particle", "--verifier", "nope"],
         "unknown verifier 'nope'"),
        (["--dataset", "arith", "--budgets", "1,4", "--strategies", "beam"],
         "strategy beam cannot run at budget 1: budget 1 is smaller than the beam width 4"),
        (["--recipe", "no/such.yaml"], "recipe not found: no/such.yaml"),
        (["--dataset", "arith"], "no budgets given"),
        (["--dataset", "arith", "--budgets", "1"], "no output folder given"),
    ],
)
def test_bench_cli_bad_input_is_one_line(tmp_path, args, needle):
    if "--out" not in args and needle != "no output folder given":
        args = [*args, "--out", str(tmp_path / "run")]
    proc = run_cli("bench", *args, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr[-2000:]


def test_bench_cli_recipe_with_unknown_field(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("dataset: arith\nstrategies: [best_of_n]\nbudgets: [1]\nmodle: lab:arith\n")
    proc = run_cli("bench", "--recipe", str(path), "--out", str(tmp_path / "o"), timeout=300)
    assert proc.returncode == 2
    assert re.search(r"error: recipe .*r\.yaml: modle is not a known field\. did you mean 'model'\?", proc.stderr)


def test_report_cli_on_a_folder_that_is_not_a_run(tmp_path):
    proc = run_cli("report", str(tmp_path), timeout=300)
    assert proc.returncode == 2 and "has no manifest.json" in proc.stderr


def test_subsample_matches_aggregate_on_prefix():
    from ttscale.bench.outcomes import subsample
    from ttscale.strategies.base import Candidate, Outcome

    cands = [Candidate(text=str(a), token_ids=[1], finish_reason="stop", answer=str(a), cluster=a) for a in (1, 2, 2, 1, 1)]
    full = aggregate(cands, "majority")
    full.details = {"aggregate": "majority", "scorer": "logprob"}
    sub = subsample(full, 3)
    assert sub.candidates[sub.chosen].answer == "2" and full.candidates[full.chosen].answer == "1"
    assert sub.details["subsampled_from"] == 5 and isinstance(sub, Outcome)


# -- records say what made them (issue 17) ----------------------------------------------------------------


def test_records_without_manifest_from_another_config_are_refused(tmp_path):
    bench(config(), tmp_path)
    assert all("settings_hash" in json.loads(line) for line in (tmp_path / RECORDS_FILE).read_text().splitlines())
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(TTScaleError, match="no manifest.json and holds 32 record.s. made with a different config"):
        bench(config(sampling={"max_tokens": 64, "temperature": 0.5}), tmp_path)
    summary, backend = bench(config(), tmp_path)  # the same settings: the records are this run's
    assert summary.action == "resume" and summary.cells_written == 0 and not backend.calls
    (tmp_path / "manifest.json").unlink()
    summary, _ = bench(config(sampling={"max_tokens": 64, "temperature": 0.5}), tmp_path, force=True)
    assert summary.action == "superseded" and summary.cells_written == 32


class OneSlotBackend(CountingBackend):
    slots = 1


def test_one_slot_backend_writes_each_cell_as_it_finishes(tmp_path):
    """On a one-sequence backend runs are admitted one at a time, so records never wait for a burst."""
    from ttscale.bench.executor import GridExecutor
    from eval_sets import load

    cfg = config(strategies=["best_of_n"], budgets=[4], max_inflight=256)
    backend = OneSlotBackend()
    engine = Engine(backend=backend, checker=Checker())
    problems = load("arith", n=4, levels=[1])
    calls_at_each_cell = [len(backend.calls) for _ in GridExecutor(engine, cfg, problems, checker=Checker())
                          .run(plan(cfg, problems, set()))]
    assert calls_at_each_cell == list(range(1, len(calls_at_each_cell) + 1))
