"""The shipped lab models `lab:arith` (policy) and `lab:arith-prm`, the backends running them, and their
training scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from eval_sets.arith import claim_is_correct, extract_answer, solution_steps  # noqa: E402
from ttscale.errors import TTScaleError  # noqa: E402
from ttscale.lab import resolve_lab_model  # noqa: E402
from ttscale.lab.evaluate import answers, held_out  # noqa: E402
from ttscale.requests import GenRequest, Sampling  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Floors the shipped weights meet on small fixed samples (measured values in the comments), with room for
# CPU floating-point differences to flip a close argmax or two. benchmarks/lab_model_profile.py has the rest.
# Level-1 greedy on the 50 problems below (transformers, fp32): 0.96 measured for the shipped weights (v16)
# on the training families (problems never trained on), 0.94 on the held-out families.
LEVEL1_GREEDY_FLOOR = 0.86
HELDOUT_LEVEL1_GREEDY_FLOOR = 0.84


@pytest.fixture(scope="module")
def backend():
    from ttscale.backends.hf import TransformersBackend

    b = TransformersBackend("lab:arith", threads=2)
    yield b
    b.close()


def _prompt(backend, problem: str) -> tuple[int, ...]:
    return tuple(backend.tokenizer.chat_prompt([{"role": "user", "content": problem}]))


def test_shipped_folders_are_complete_and_small() -> None:
    folder = resolve_lab_model("lab:arith")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "ttscale.json", "lab_train.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert json.loads((folder / "ttscale.json").read_text())["step_delimiter"] == "\n\n"
    prm = resolve_lab_model("lab:arith-prm")
    assert json.loads((prm / "config.json").read_text())["architectures"] == ["Qwen2ForProcessRewardModel"]
    total = sum(f.stat().st_size for d in (folder, prm) for f in d.iterdir())
    assert total < 50e6, total


def test_unknown_lab_model_lists_the_known_ones() -> None:
    with pytest.raises(TTScaleError, match="lab:arith, lab:arith-prm"):
        resolve_lab_model("lab:nope")


def test_unknown_lab_model_is_named_before_the_backend_is_blamed() -> None:
    """`--model lab:arthi` on the default llama.cpp backend: the typo is the problem, not the backend."""
    from ttscale.models import gguf_path

    with pytest.raises(TTScaleError, match="unknown lab model"):
        gguf_path("lab:arthi")
    with pytest.raises(TTScaleError, match="llama.cpp needs a GGUF"):
        gguf_path("lab:arith")


def test_missing_or_damaged_weights_name_the_file_and_the_train_command(tmp_path, monkeypatch) -> None:
    import shutil

    import ttscale.lab as lab

    copy = tmp_path / "arith"
    shutil.copytree(resolve_lab_model("lab:arith"), copy)
    monkeypatch.setitem(lab.LAB_MODELS, "arith", copy)
    (copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(TTScaleError, match="damaged.*python -m ttscale.lab.train --out"):
        resolve_lab_model("lab:arith")
    (copy / "model.safetensors").unlink()
    with pytest.raises(TTScaleError, match="missing .*model.safetensors.*python -m ttscale.lab.train --out"):
        resolve_lab_model("lab:arith")


def test_tokenizer_splits_digits_and_templates_the_prompt(backend) -> None:
    tok = backend.hf_tokenizer
    pieces = tok.convert_ids_to_tokens(tok.encode("She has 147 + 3 = 150 stickers.", add_special_tokens=False))
    assert [p for p in pieces if any(ch.isdigit() for ch in p)] == ["1", "4", "7", "3", "1", "5", "0"]
    text = tok.decode(list(_prompt(backend, "Q?")))
    assert text == "<s><|user|>\nQ?\n<|assistant|>\n"
    assert backend.context_length == 2048
    for word in ("Yes", "No"):  # P(True) and P(IK) read one token's probability
        assert len(tok.encode(word, add_special_tokens=False)) == 1


def test_greedy_level1_accuracy_floor(backend) -> None:
    """50 level-1 evaluation problems of the training families (arith seed 0, never trained on): the
    shipped model clears the floor."""
    rows = held_out(1, 50)
    got = answers(backend, rows, n=1, temperature=0.0)
    accuracy = sum(a[0] == r["answer"] for a, r in zip(got, rows)) / len(rows)
    assert accuracy >= LEVEL1_GREEDY_FLOOR, accuracy


def test_greedy_level1_accuracy_floor_on_heldout_families(backend) -> None:
    """The same on 50 problems told in sentence structures the model never trained on."""
    rows = held_out(1, 50, split="heldout")
    got = answers(backend, rows, n=1, temperature=0.0)
    accuracy = sum(a[0] == r["answer"] for a, r in zip(got, rows)) / len(rows)
    assert accuracy >= HELDOUT_LEVEL1_GREEDY_FLOOR, accuracy


def test_greedy_output_is_a_stepwise_solution(backend) -> None:
    row = held_out(2, 1, split="heldout")[0]
    [res] = backend.generate([GenRequest(_prompt(backend, row["problem"]), 1, Sampling(temperature=0, max_tokens=256))])
    c = res.completions[0]
    assert c.finish_reason == "stop"  # ended with EOS
    steps = solution_steps(c.text)
    assert steps[-1].startswith("The answer is") and extract_answer(c.text) is not None
    assert all(claim_is_correct(s) is not None for s in steps[:-1])  # one arithmetic claim per step
    assert res.prompt_tokens == len(_prompt(backend, row["problem"]))
    assert backend.tokenizer.decode(c.token_ids) == c.text


def test_sampling_is_seeded_heterogeneous_and_has_logprobs(backend) -> None:
    row = held_out(5, 1)[0]
    prompt = _prompt(backend, row["problem"])
    req = GenRequest(prompt, 8, Sampling(temperature=1.0, max_tokens=256, seed=5, logprobs=True))
    first, again = backend.generate([req])[0], backend.generate([req])[0]
    assert [c.text for c in first.completions] == [c.text for c in again.completions]
    assert len({c.text for c in first.completions}) > 1  # level 5 at T=1: the traces differ
    for c in first.completions:
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs)


def test_stop_string_ends_a_step_that_continues_where_it_stopped(backend) -> None:
    """The Completion contract step searches rely on: text stops before the stop string, `stop` names it,
    and the token ids include it, so prompt + ids continues with the next step (not an empty one)."""
    row = held_out(3, 2)[0]
    prompt = _prompt(backend, row["problem"])
    req = GenRequest(prompt, 2, Sampling(temperature=0.5, max_tokens=256, stop=("\n\n",), seed=1))
    [res] = backend.generate([req])
    for c in res.completions:
        assert c.finish_reason == "stop" and c.stop == "\n\n" and "\n\n" not in c.text
        assert claim_is_correct(c.text) is not None  # exactly the first step
        assert backend.tokenizer.decode(c.token_ids).startswith(c.text + "\n\n")
        [nxt] = backend.generate([GenRequest(prompt + tuple(c.token_ids), 1, Sampling(temperature=0.0, max_tokens=64, stop=("\n\n",)))])
        assert nxt.completions[0].text.strip(), "the continuation must be the next step"
    [res] = backend.generate([GenRequest(prompt, 1, Sampling(temperature=0.0, max_tokens=256))])
    assert res.completions[0].stop is None  # ended by EOS: no stop string


def test_particle_on_transformers_grows_solutions_step_by_step(backend) -> None:
    """Found by benchmarks/allocation.py: step searches on this backend once ended after the first step."""
    from ttscale import Engine

    row = held_out(3, 2)[0]
    r = Engine(backend=backend).solve(row["problem"], strategy="particle", budget=2, verifier="arith_steps", seed=0)
    assert all(len(c.meta["steps"]) >= 2 and "The answer is" in c.text for c in r.candidates), [c.text for c in r.candidates]


def test_top_logprobs_give_pik_a_signal_on_transformers(backend) -> None:
    """P(IK) reads P("Yes") from the top-k log-probabilities, which this backend once never returned."""
    import ttscale.allocate.pik  # noqa: F401  (registers it)
    from ttscale.requests import Score
    from ttscale.scoring import scorers

    easy, hard = held_out(1, 1)[0]["problem"], held_out(5, 1)[0]["problem"]
    (scores, tokens) = scorers.get("pik")(backend).score_batch([Score("pik", p, (("",),)) for p in (easy, hard)])
    [[easy_p]], [[hard_p]] = scores
    assert easy_p is not None and hard_p is not None and 0.0 < hard_p < easy_p < 1.0 and tokens > 0
    [res] = backend.generate([GenRequest(_prompt(backend, easy), 1, Sampling(temperature=0.0, max_tokens=3, top_logprobs=5))])
    c = res.completions[0]
    assert len(c.top_logprobs) == len(c.token_ids) and all(len(t) == 5 for t in c.top_logprobs)
    assert c.token_ids[0] in c.top_logprobs[0]  # greedy: the chosen token is among the most likely


def test_max_tokens_gives_length_and_mixed_prompt_lengths_batch(backend) -> None:
    short, long = held_out(1, 1)[0], held_out(5, 1)[0]
    reqs = [GenRequest(_prompt(backend, p["problem"]), 1, Sampling(temperature=0, max_tokens=m))
            for p, m in ((short, 256), (long, 5))]
    both = backend.generate(reqs)
    alone = backend.generate(reqs[:1])
    assert both[1].completions[0].finish_reason == "length" and len(both[1].completions[0].token_ids) == 5
    assert both[0].completions[0].text == alone[0].completions[0].text  # left padding does not change greedy output


def test_training_script_runs_end_to_end_tiny(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    proc = subprocess.run([sys.executable, "-m", "ttscale.lab.train", "--out", str(out), "--seed", "0", "--tiny"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "ttscale.json"):
        assert (out / name).is_file(), name

    from ttscale.backends.hf import TransformersBackend

    b = TransformersBackend(str(out))
    [res] = b.generate([GenRequest(_prompt(b, "Hana has 4 stickers. She gets 3 more."), 2,
                                   Sampling(temperature=1.0, max_tokens=8, seed=0))])
    assert len(res.completions) == 2 and all(len(c.token_ids) <= 8 for c in res.completions)


def test_the_train_command_trains_the_shipped_stages(tmp_path: Path, monkeypatch) -> None:
    """`python -m ttscale.lab.train --out X` is the shipped recipe: the defaults (v7), then each stage of
    STAGES_AFTER_THE_FIRST from the folder before, with its seed offset; the shipped lab_train.json is the
    last stage's config."""
    from dataclasses import asdict

    from ttscale.lab import train as lab_train

    calls = []
    monkeypatch.setattr(lab_train, "train", lambda out, seed, cfg, log_every, procs: calls.append((out, seed, cfg)))
    lab_train.main(["--out", str(tmp_path / "m"), "--seed", "3"])
    assert len(calls) == 1 + len(lab_train.STAGES_AFTER_THE_FIRST) == 9
    assert calls[0][2] == lab_train.TrainConfig() and calls[0][1] == 3 and calls[-1][0] == tmp_path / "m"
    assert len({out for out, _, _ in calls}) == len(calls)
    for (before, _, _), (_, seed, cfg), (stage, offset) in zip(calls, calls[1:], lab_train.STAGES_AFTER_THE_FIRST):
        assert seed == 3 + offset
        assert cfg == lab_train.TrainConfig(**{**asdict(calls[0][2]), **stage, "init": str(before)})
    assert [seed for _, seed, _ in calls] == [3, 3, 3, 4, 5, 6, 7, 8, 9]  # no two STAGE3s draw the same problems
    shipped = json.loads((ROOT / "ttscale/lab/arith/lab_train.json").read_text())
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in shipped.items() if k not in ("seed", "init")} \
        == {k: v for k, v in asdict(calls[-1][2]).items() if k != "init"}
    calls.clear()
    lab_train.main(["--out", str(tmp_path / "v7"), "--one-stage"])
    assert [c for _, _, c in calls] == [lab_train.TrainConfig()]


def test_set_overrides_are_typed_and_unknown_fields_named() -> None:
    """`--set` (train and train_prm) turns strings into each field's type, and names the choices on a typo."""
    from ttscale.lab.train import TrainConfig, parse_overrides
    from ttscale.lab.train_prm import PRMTrainConfig

    assert parse_overrides(TrainConfig(), ["drill_level_weights=1,2,4,4,2", "lr=1e-3", "bf16=no", "steps=7"]) == \
        {"drill_level_weights": (1, 2, 4, 4, 2), "lr": 1e-3, "bf16": False, "steps": 7}
    assert parse_overrides(PRMTrainConfig(), ["steps=800"]) == {"steps": 800}
    with pytest.raises(SystemExit, match="no such setting; choose one of: problems, samples"):
        parse_overrides(PRMTrainConfig(), ["step=800"])
    with pytest.raises(SystemExit, match="steps takes int, e.g. --set steps=800"):
        parse_overrides(PRMTrainConfig(), ["steps=many"])


def test_data_parallel_training_is_deterministic(tmp_path: Path) -> None:
    """--procs 2 (DDP over gloo on loopback, how the shipped weights are trained) twice: same bytes."""
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = subprocess.run([sys.executable, "-m", "ttscale.lab.train", "--out", str(out), "--seed", "0", "--tiny",
                               "--procs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "2 process(es)" in proc.stdout
        outs.append((out / "model.safetensors").read_bytes())
    assert outs[0] == outs[1]


def _ppid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_killing_the_training_stops_its_data_parallel_workers(tmp_path: Path) -> None:
    """Killed, `python -m ttscale.lab.train --procs 2` once left both workers training on (found when a
    stopped run kept holding the two cores of the next one)."""
    import os
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ttscale.lab.train", "--out", str(tmp_path / "t"), "--seed", "0",
                             "--tiny", "--procs", "2", "--set", "steps=5000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the workers are training
        if line.startswith("step "):
            break
    children = [p.parent.name for p in Path("/proc").glob("[0-9]*/stat")
                if _ppid(p) == proc.pid]
    proc.kill()
    proc.wait()

    def running(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.time() + 20
    while any(running(p) for p in children) and time.time() < deadline:
        time.sleep(0.2)
    alive = [p for p in children if running(p)]
    for p in alive:
        os.kill(int(p), 9)
    assert children and not alive
