"""Long work shows progress and saves as it goes (issue 19): the backend progress hook, bench and solve
progress, Ctrl-C in bench and solve (records kept, exit 130), and the llama.cpp thread rule.

Fast tests run on scripted fake backends; the one slow test runs the embedded llama.cpp model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

import ttscale.bench.run as bench_run
import ttscale.engine as engine_module
from fakes import ExactChecker, FakeBackend, TicketBackend
from ttscale import Engine
from ttscale.backends import threads as cpu
from ttscale.bench.config import config_from_mapping
from ttscale.bench.grid import plan
from ttscale.bench.progress import BenchProgress
from ttscale.bench.records import RECORDS_FILE, record_key
from ttscale.bench.run import run_bench
from ttscale.cli import main
from ttscale.progress import SolveProgress, TokenMeter, watch_backend


def script(prompt_ids, j, seed):
    return f"Some work {(seed or 0) + j}. The answer is \\boxed{{{((seed or 0) + j) % 3}}}"


class Checker(ExactChecker):
    def check_many(self, pairs):
        return [a.strip() == b.strip() for a, b in pairs]


class StreamingBackend(FakeBackend):
    """A one-sequence backend with the progress hook, like llama.cpp: it reports every token (one per
    character) and every finished sample while a call runs. `interrupt_at`: raise KeyboardInterrupt at
    that call (0-based), half-way through its first sample, as Ctrl-C would. `seen` keeps, per call, a
    snapshot taken by `probe()` in the middle of the call."""

    slots = 1
    on_tokens = None

    def __init__(self, interrupt_at: int | None = None, probe=None) -> None:
        super().__init__(script)
        self.interrupt_at = interrupt_at
        self.probe = probe or (lambda backend: None)
        self.seen: list = []

    def generate(self, requests):
        call = len(self.calls)
        results = super().generate(requests)
        for k, res in enumerate(results):
            for comp in res.completions:
                for t in range(len(comp.token_ids)):
                    if self.on_tokens is not None:
                        self.on_tokens(1)
                    if call == self.interrupt_at and k == 0 and t == len(comp.token_ids) // 2:
                        raise KeyboardInterrupt
                if self.on_tokens is not None:
                    self.on_tokens(0, 1)
                if comp is res.completions[0] and k == 0:
                    self.seen.append(self.probe(self))
        return results


def bench_config(**over):
    base = {"dataset": {"name": "arith", "n": 3, "levels": [1]}, "strategies": ["best_of_n"], "budgets": [1, 4],
            "seeds": [0], "sampling": {"max_tokens": 64}}
    base.update(over)
    return config_from_mapping(base)


def record_keys(folder: Path) -> list[tuple]:
    path = folder / RECORDS_FILE
    return [record_key(json.loads(x)) for x in path.read_text().splitlines()] if path.exists() else []


# -- the hook ------------------------------------------------------------------------------------------------


def test_watch_backend_installs_the_hook_and_restores_it():
    backend = StreamingBackend()
    meter = TokenMeter()
    engine = Engine(backend=backend, checker=ExactChecker())
    with watch_backend(backend, meter) as live:
        assert live and backend.on_tokens is meter
        result = engine.solve("What is 1 + 2?", budget=3, max_tokens=64)
    assert backend.on_tokens is None
    assert meter.tokens == result.ledger.generated_tokens > 0
    assert meter.samples == 3


def test_backends_without_the_hook_report_each_call_when_it_returns():
    backend = FakeBackend(script)
    meter = TokenMeter()
    engine = Engine(backend=backend, checker=ExactChecker())
    with watch_backend(backend, meter) as live:
        assert live
        result = engine.solve("What is 1 + 2?", budget=4, max_tokens=64)
    assert "generate" not in vars(backend)  # the class's own method again
    assert meter.tokens == result.ledger.generated_tokens > 0 and meter.samples == 4
    engine.solve("What is 1 + 2?", budget=2, max_tokens=64)
    assert meter.samples == 4  # no longer watched


def test_ticket_backends_are_left_alone():
    backend = TicketBackend(script)
    with watch_backend(backend, TokenMeter()) as live:
        assert not live and "generate" not in vars(backend)


def test_solve_on_a_ticket_backend_counts_each_group_as_it_comes_back():
    """vLLM's side: no per-token hook, so the scheduler counts each request group as it is answered,
    and the count matches the ledger."""
    from ttscale.progress import solve_progress

    engine = Engine(backend=TicketBackend(script, order_seed=1), checker=ExactChecker())
    with solve_progress(engine, Console(file=io.StringIO()), enabled=False) as display:
        result = engine.solve("What is 1 + 2?", strategy="best_of_n", budget=3, seed=0, max_tokens=64)
    assert display.counting and display.meter.tokens == result.ledger.generated_tokens > 0
    assert display.meter.samples == 3
    assert engine.on_results is None  # the hook is the display's only while it runs


# -- bench ---------------------------------------------------------------------------------------------------


def test_bench_progress_moves_while_a_long_run_decodes():
    """One run of 4 samples is in flight; before it ends, samples, tokens and an ETA are there."""
    from eval_sets import load

    cfg = bench_config(budgets=[4])
    items = plan(cfg, load("arith", n=3, levels=[1]), set())
    bar = BenchProgress(items, Console(file=io.StringIO()), enabled=False)
    assert bar.eta_seconds() is None and bar.progress_units() == 0
    for _ in range(2):
        bar.on_backend(10)
        bar.on_backend(0, 1)
    assert bar.cells_done == 0 and bar.tokens == 20 and bar.samples == 2
    assert bar.progress_units() == 2 and bar.eta_seconds() is not None
    bar.on_backend(0, 2)
    bar.item_done(items[0], cells=1)
    assert bar.progress_units() == 4 and bar.cells_done == 1 and bar.problems_done == 1
    bar.on_backend(0, 100)  # partial credit never reaches the end before the runs do
    assert bar.progress_units() < bar.units_total
    assert "samples 104" in bar.line()


def test_without_a_hook_bench_counts_candidates_of_finished_runs():
    from eval_sets import load

    items = plan(bench_config(budgets=[4]), load("arith", n=3, levels=[1]), set())
    bar = BenchProgress(items, Console(file=io.StringIO()), enabled=False)
    bar.add_tokens(30)
    bar.item_done(items[0], cells=1)
    assert bar.samples == 4 and bar.tokens == 30 and bar.progress_units() == 4


def test_one_slot_bench_writes_each_cell_before_the_next_run_and_shows_progress(tmp_path):
    """Runs are admitted one at a time; when run k decodes, runs 0..k-1 are on disk; the display has
    counted run k's tokens and samples before any of its cells is done."""
    def probe(backend):
        bar = backend.on_tokens.__self__  # the bench's display, fed by the hook
        return len(record_keys(tmp_path)), bar.cells_done, bar.tokens, bar.samples

    backend = StreamingBackend(probe=probe)
    cfg = bench_config(budgets=[1, 4])  # best-of-N: cells 1 and 4 come from one run of 4
    summary = run_bench(cfg, tmp_path, engine=Engine(backend=backend, checker=Checker()), checker=Checker(),
                        console=Console(file=io.StringIO()), progress=True)
    assert summary.cells_written == 6 and len(backend.calls) == 3
    assert all(sum(r.n for r in call) == 4 for call in backend.calls)  # one run per call
    for k, (on_disk, cells_done, tokens, samples) in enumerate(backend.seen):
        assert on_disk == cells_done == 2 * k
        assert samples == 4 * k + 1 and tokens > 0
    assert backend.on_tokens is None


def test_ctrl_c_in_bench_keeps_finished_cells_and_the_rerun_does_the_rest(tmp_path):
    cfg = bench_config()
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, tmp_path, engine=Engine(backend=StreamingBackend(interrupt_at=2), checker=Checker()),
                  checker=Checker(), console=Console(file=out, soft_wrap=True), progress=False, argv=["bench", "--out", "x y"])
    kept = record_keys(tmp_path)
    assert len(kept) == 4  # two whole runs, each cells 1 and 4
    lines = [x for x in out.getvalue().splitlines() if x.startswith("interrupted")]
    assert len(lines) == 1
    assert f"kept 4/6 records in {tmp_path / RECORDS_FILE}" in lines[0]
    assert "rerun the same command to resume: ttscale bench --out 'x y'" in lines[0]
    backend = StreamingBackend()
    summary = run_bench(cfg, tmp_path, engine=Engine(backend=backend, checker=Checker()), checker=Checker(),
                        console=Console(file=io.StringIO()), progress=False)
    assert summary.cells_before == 4 and summary.cells_written == 2 and len(backend.calls) == 1
    got = record_keys(tmp_path)
    assert len(got) == len(set(got)) == 6


def test_bench_cli_exits_130_on_ctrl_c_and_resumes(tmp_path, monkeypatch, capsys):
    backends = iter([StreamingBackend(interrupt_at=1), StreamingBackend()])
    monkeypatch.setattr(bench_run, "build_engine", lambda config: Engine(backend=next(backends), checker=Checker()))
    args = ["bench", "--dataset", "arith", "--n", "3", "--levels", "1", "--strategies", "best_of_n",
            "--budgets", "1,4", "--max-tokens", "64", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "interrupted: kept 2/6 records" in captured.err and "rerun the same command" in captured.err
    assert len(record_keys(tmp_path)) == 2
    assert main(args) == 0
    assert "6/6 records (4 new)" in capsys.readouterr().out
    assert len(set(record_keys(tmp_path))) == 6


# -- solve ---------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_engine(monkeypatch):
    """`ttscale solve` builds its engine over a fake backend; yields what it was built with, and a dict
    whose "factory" makes the backend."""
    built: list[dict] = []
    make_backend = {"factory": StreamingBackend}

    def make(backend="llamacpp", model=None, verifier_options=None, **opts):
        built.append({"backend": backend, **opts})
        return Engine(backend=make_backend["factory"](), checker=ExactChecker())

    monkeypatch.setattr(engine_module, "Engine", make)
    return built, make_backend


def test_solve_stdout_is_the_same_with_and_without_progress(fake_engine, capsys):
    args = ["solve", "What is 1 + 2?", "--budget", "3", "--max-tokens", "64", "--json"]
    assert main(args) == 0
    shown = capsys.readouterr()
    assert main([*args, "--quiet"]) == 0
    quiet = capsys.readouterr()

    def stable(out: str) -> dict:  # all but the measured wall time
        doc = json.loads(out)
        doc["usage"] = {k: v for k, v in doc["usage"].items() if "seconds" not in k}
        return doc

    assert stable(shown.out) == stable(quiet.out)
    assert stable(shown.out)["answer"] is not None
    assert "\x1b" not in shown.err  # stderr is not a terminal here: plain lines only


def test_solve_progress_on_a_pipe_is_a_few_plain_lines():
    out = io.StringIO()
    display = SolveProgress(Console(file=out), schedule=iter([0.0]))
    with display:
        for _ in range(5):
            display(7)
            display(0, 1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in out.getvalue()
    assert lines[0].startswith("solving: 7 tokens generated")
    assert display.meter.tokens == 35 and display.meter.samples == 5


def test_solve_progress_is_off_with_quiet():
    out = io.StringIO()
    display = SolveProgress(Console(file=out), enabled=False, schedule=iter([0.0]))
    with display:
        display(7, 1)
    assert out.getvalue() == "" and display.meter.tokens == 7


def test_ctrl_c_in_solve_exits_130_with_one_line(fake_engine, capsys):
    _, backend = fake_engine
    backend["factory"] = lambda: StreamingBackend(interrupt_at=0)
    assert main(["solve", "What is 1 + 2?", "--budget", "2", "--max-tokens", "64"]) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [x for x in captured.err.splitlines() if x.startswith("interrupted")]
    assert len(lines) == 1 and lines[0].startswith("interrupted after") and "rerun the command" in lines[0]


def test_threads_flag_reaches_the_backend(fake_engine, capsys):
    built, _ = fake_engine
    assert main(["solve", "What is 1 + 2?", "--budget", "1", "--threads", "3", "-q"]) == 0
    assert built[-1]["threads"] == 3
    assert main(["solve", "What is 1 + 2?", "--budget", "1", "-q"]) == 0
    assert "threads" not in built[-1]  # the backend's own rule decides


@pytest.mark.parametrize("args, needle", [
    (["--threads", "0"], "--threads must be 1 or more"),
    (["--threads", "2", "--backend", "vllm"], "--threads is for the CPU backends"),
])
def test_bad_threads_is_one_line(fake_engine, capsys, args, needle):
    assert main(["solve", "What is 1 + 2?", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bench_threads_flag_reaches_the_backend(tmp_path, monkeypatch, capsys):
    seen = []

    def build(config):
        seen.append(dict(config.backend_options))
        return Engine(backend=StreamingBackend(), checker=Checker())

    monkeypatch.setattr(bench_run, "build_engine", build)
    args = ["bench", "--dataset", "arith", "--n", "1", "--levels", "1", "--strategies", "best_of_n",
            "--budgets", "1", "--max-tokens", "64", "--quiet", "--backend", "transformers"]
    assert main([*args, "--out", str(tmp_path / "a"), "--threads", "3"]) == 0
    assert seen[-1]["threads"] == 3
    # threads decide speed, not results: the same folder resumes with another count
    assert main([*args, "--out", str(tmp_path / "a"), "--threads", "1"]) == 0
    assert "1/1 records (0 new)" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--threads", "0", "--backend", "transformers"], "--threads must be 1 or more"),
    (["--threads", "2", "--backend", "vllm"], "--threads is for the CPU backends"),
])
def test_bench_bad_threads_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.setattr(bench_run, "build_engine", lambda config: pytest.fail("no engine before the check"))
    assert main(["bench", "--dataset", "arith", "--n", "1", "--budgets", "1", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


# -- llama.cpp threads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cores, busy, expected", [
    (8, 0.0, 8), (8, 0.3, 8), (8, 0.5, 7), (8, 1.0, 7), (8, 2.9, 5), (2, 1.0, 1), (2, 2.0, 1), (2, 9.0, 1),
    (1, 0.0, 1),
])
def test_threads_leave_the_busy_cores_to_their_owners(cores, busy, expected):
    assert cpu.threads_for(cores, busy) == expected


def test_cgroup_quota_caps_the_cores(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert cpu._cgroup_quota(quota) is None
    quota.write_text("150000 100000\n")
    assert cpu._cgroup_quota(quota) == 1.5
    assert cpu._cgroup_quota(tmp_path / "missing") is None
    monkeypatch.setattr(cpu, "_cgroup_quota", lambda: 1.5)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert cpu.usable_cores() == 2


def test_busy_cores_is_measured_on_this_machine():
    busy = cpu.busy_cores(sample_s=0.05)
    assert 0.0 <= busy <= len(cpu.os.sched_getaffinity(0)) + 1e-9
    assert 1 <= cpu.auto_threads() <= cpu.usable_cores()


# -- the real llama.cpp backend ------------------------------------------------------------------------------


@pytest.mark.slow
def test_llamacpp_reports_every_token_and_sample_without_changing_them():
    engine = Engine(backend="llamacpp")  # threads from the idle-cores rule
    try:
        plain = engine.solve("What is 2 + 3?", budget=2, max_tokens=24, seed=3)
        meter = TokenMeter()
        with watch_backend(engine.backend, meter) as live:
            watched = engine.solve("What is 2 + 3?", budget=2, max_tokens=24, seed=3)
        assert live and engine.backend.on_tokens is None
        assert meter.tokens == watched.ledger.generated_tokens > 0 and meter.samples == 2
        assert [c.text for c in watched.candidates] == [c.text for c in plain.candidates]
        assert engine.backend.llm.n_threads == engine.backend.threads <= cpu.usable_cores()
    finally:
        engine.close()
