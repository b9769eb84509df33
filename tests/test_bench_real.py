"""`ttscale bench` / `ttscale report` end to end on the real embedded model (llama.cpp, SmolLM2-135M):
a small grid, a kill -9 in the middle and a resume, report and plots, and the Ray path with 2 actors.

Kept tiny (arith, 6 problems, budgets 1 and 4, one seed, 32 tokens per candidate) because the model runs
on a shared CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import BIN, run_cli

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = ["--dataset", "arith", "--levels", "1,2,3", "--n", "6", "--budgets", "1,4", "--seeds", "0",
        "--max-tokens", "32", "--quiet"]


def step_strategies() -> str:
    """best_of_n, plus particle when the rule-based step verifier is registered."""
    from ttscale.scoring import scorers

    return "best_of_n,particle" if "arith_steps" in scorers.names() else "best_of_n"


def read_keys(folder: Path) -> list[tuple]:
    lines = (folder / "records.jsonl").read_text().splitlines()
    return [(r["problem_id"], r["label"], r["budget"], r["seed"]) for r in map(json.loads, lines)]


def expected_keys(strategies: str) -> set[tuple]:
    from eval_sets import load

    ids = [p.id for p in load("arith", n=6, levels=[1, 2, 3])]
    return {(i, s, b, 0) for i in ids for s in strategies.split(",") for b in (1, 4)}


def test_bench_grid_report_and_plots(tmp_path):
    out = tmp_path / "run"
    strategies = step_strategies()
    proc = run_cli("bench", *GRID, "--strategies", strategies, "--out", str(out), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = read_keys(out)
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(strategies)
    assert "records (" in proc.stdout and "tokens generated" in proc.stdout
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    for r in recs:
        assert len(r["candidates"]) == r["budget"] and r["ledger"]["generated_tokens"] > 0
        assert isinstance(r["correct"], bool) or r["correct"] is None
        assert r["level"] in (1, 2, 3) and r["gold"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["sampling"]["max_tokens"] == 32 and manifest["dataset"]["problems"] == 6
    assert manifest["packages"]["llama_cpp_python"]

    again = run_cli("bench", *GRID, "--strategies", strategies, "--out", str(out), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to run" in again.stderr and read_keys(out) == keys

    other = [("24" if a == "32" else a) for a in GRID]  # the same grid with --max-tokens 24
    changed = run_cli("bench", *other, "--strategies", strategies, "--out", str(out), timeout=600)
    assert changed.returncode == 2 and "different config" in changed.stderr and "max_tokens: 32 -> 24" in changed.stderr

    rep = run_cli("report", str(out), timeout=600)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "accuracy % [95% CI]" in rep.stdout and "level 3" in rep.stdout
    from PIL import Image

    for name in ("accuracy_vs_budget.png", "accuracy_vs_tokens.png", "accuracy_by_level.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == PNG_MAGIC
        with Image.open(png) as im:
            im.verify()


def test_kill_9_mid_run_then_resume(tmp_path):
    out = tmp_path / "run"
    # One best-of-N run in flight at a time, so records arrive one problem after another.
    args = [str(BIN / "ttscale"), "bench", *GRID, "--strategies", "best_of_n", "--max-inflight", "4", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    records = out / "records.jsonl"
    deadline = time.time() + 1200
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and records.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    before = read_keys(out)
    assert 1 <= len(before) < 12
    again = run_cli("bench", *GRID, "--strategies", "best_of_n", "--max-inflight", "4", "--out", str(out), timeout=1800)
    assert again.returncode == 0, again.stderr[-3000:]
    keys = read_keys(out)
    assert Counter(keys).most_common(1)[0][1] == 1, "a record was written twice"
    assert set(keys) == expected_keys("best_of_n") and keys[: len(before)] == before
    assert f"{len(before)}/12 records present" in again.stderr


def test_ray_two_local_actors(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    proc = run_cli("bench", *GRID, "--strategies", "best_of_n", "--ray", "--ray-actors", "2", "--out", str(out),
                   timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 Ray actor(s)" in proc.stdout and "ray: 2 actor(s) ready" in proc.stderr
    keys = read_keys(out)
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys("best_of_n")
    workers = {json.loads(x)["worker"] for x in (out / "records.jsonl").read_text().splitlines()}
    assert len(workers) == 2  # both actors produced records
    # Resumable the same way: a rerun finds everything done.
    again = run_cli("bench", *GRID, "--strategies", "best_of_n", "--ray", "--ray-actors", "2", "--out", str(out),
                    timeout=600)
    assert again.returncode == 0 and "nothing to run" in again.stderr and read_keys(out) == keys
