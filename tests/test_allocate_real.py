"""`auto` end to end on the real embedded model (llama.cpp, SmolLM2-135M): solve, a batch, and
bench -> calibrate -> solve --policy. Tiny budgets and token limits: the model runs on a shared CPU."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, solve_json

pytestmark = pytest.mark.slow
PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have now?"


def test_solve_auto_json_shows_the_allocation():
    out = solve_json(PROBLEM, "--strategy", "auto", "--budget", "4", "--max-tokens", "48")
    a = out["details"]["allocation"]
    assert 0.0 <= a["difficulty"] <= 1.0 and a["estimator"] == "probe"
    assert a["strategy"].startswith("best_of_n") and a["reason"]
    assert a["budget_received"] == len(out["candidates"]) == out["usage"]["candidates"] <= 4
    assert out["strategy"] == "auto"


def test_solve_batch_auto_conserves_the_batch_budget():
    from ttscale import Engine

    problems = [PROBLEM, "What is 6 times 7?", "A box holds 12 eggs. How many eggs are in 3 boxes?"]
    with Engine(backend="llamacpp") as engine:
        results = engine.solve_batch(problems, strategy="auto", budget=3, max_tokens=32, seed=1)
        calls = engine.last_batch_usage.backend_calls
    assert sum(len(r.candidates) for r in results) <= 3 * len(problems)
    assert all(r.details["allocation"]["budget_received"] == r.ledger.candidates for r in results)
    assert calls <= 1 + 3  # probes in one call, then a few waves (never one call per prompt)


def test_bench_calibrate_and_solve_with_the_fitted_policy(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("bench", "--dataset", "arith", "--levels", "1", "--n", "3", "--strategies", "best_of_n,auto",
                   "--budgets", "2", "--max-tokens", "24", "--quiet", "--out", str(run), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    auto = [r for r in records if r["label"] == "auto"]
    assert len(auto) == 3 and all(r["details"]["allocation"]["budget_received"] <= r["budget"] for r in auto)
    policy = tmp_path / "policy.json"
    proc = run_cli("calibrate", "--records", str(run), "--out", str(policy), "--probe-k", "2", "--bins", "2",
                   "--min-per-bin", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "spearman" in proc.stdout
    fitted = json.loads(policy.read_text())
    assert fitted["probe_k"] == 2 and fitted["fit"]["problems"] == 3
    out = solve_json(PROBLEM, "--strategy", "auto", "--budget", "2", "--max-tokens", "24", "--policy", str(policy))
    assert out["details"]["allocation"]["policy"].startswith("calibrate:")


def test_lab_model_policy_fitted_with_pik_ships_in_its_folder(tmp_path):
    """The lab model's own path: bench on the training families, calibrate with P(IK) asked of the model
    (it has single-token Yes/No), the policy placed in a copy of the model folder, and `auto` using it
    with no --policy; then an explicit --policy still wins."""
    import shutil

    from ttscale.lab import resolve_lab_model

    run = tmp_path / "run"
    proc = run_cli("bench", "--model", "lab:arith", "--backend", "transformers", "--dataset", "arith", "--split", "train",
                   "--levels", "1,2", "--n", "6", "--strategies", "best_of_n", "--budgets", "4", "--quiet",
                   "--out", str(run), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = tmp_path / "arith"
    shutil.copytree(resolve_lab_model("lab:arith"), model)
    proc = run_cli("calibrate", "--records", str(run), "--pik", "--backend", "transformers", "--bins", "2",
                   "--min-per-bin", "1", "--out", str(model / "policy.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    fitted = json.loads((model / "policy.json").read_text())
    assert "pik" in fitted["fit"]["estimators"] and "pik" in fitted["calibration"]
    out = solve_json(PROBLEM, "--model", str(model), "--backend", "transformers", "--strategy", "auto",
                     "--budget", "4", "--max-tokens", "64")
    assert out["details"]["allocation"]["policy"].startswith("calibrate:")
    out = solve_json(PROBLEM, "--model", str(model), "--backend", "transformers", "--strategy", "auto",
                     "--budget", "4", "--max-tokens", "64", "--policy", "default")
    assert out["details"]["allocation"]["policy"] == "default"
