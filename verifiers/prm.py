"""`prm`: Hugging Face process reward models, through transformers or vLLM.

Two input formats cover the public math PRMs:

- "qwen" (Qwen2.5-Math-PRM-7B/72B): the chat template renders system prompt, problem and the steps
  joined and ended by `<extra_0>`; a per-token 2-class head scores each `<extra_0>`; the step score is
  softmax(logits)[1] there. vLLM serves it as a pooling model (task "token_classify").
- "shepherd" (Math-Shepherd, peiyi9979/math-shepherd-mistral-7b-prm): a causal LM reads
  "problem step1 ки\\nstep2 ки"; the step score is P("+") against P("-") from the next-token logits at
  each `ки`. vLLM serves it by turning the LM head's "-"/"+" rows into a 2-label token classifier.

Why one forward pass per candidate is enough: both models are causal, so the score of step k depends
only on the problem and steps 1..k. Scoring a candidate fills the cache for every one of its prefixes,
and a candidate whose prefixes are all cached (or covered by a longer candidate in the same batch) costs
nothing.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

from ttscale.errors import TTScaleError
from ttscale.requests import Score

QWEN_TAG = "<extra_0>"
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
SHEPHERD_TAG = "ки"
SHEPHERD_GOOD, SHEPHERD_BAD = "+", "-"
FORMATS = ("qwen", "shepherd")
ENGINES = ("transformers", "vllm")

Key = tuple[str, tuple[str, ...]]  # (problem, steps prefix)
StepScores = list[float | None]


class Runner(Protocol):
    """Runs token-id sequences through the PRM; returns [bad, good] logits at the given positions."""

    forward_calls: int
    max_length: int

    def pair_logits(self, seqs: list[list[int]], positions: list[list[int]]) -> list[list[tuple[float, float]]]: ...


@dataclass(frozen=True)
class PRMFormat:
    """How a (problem, steps) pair becomes the token ids a PRM reads, and where its step tags sit."""

    name: str
    tag: str
    tag_id: int
    label_ids: tuple[int, int] | None  # shepherd: LM-head ids of (bad, good); qwen: head classes (0, 1)

    def encode(self, tok: Any, problem: str, steps: Sequence[str]) -> list[int]:
        problem = problem.replace(self.tag, " ").strip()
        clean = [s.replace(self.tag, " ").strip() for s in steps]
        if self.name == "qwen":
            messages = [
                {"role": "system", "content": QWEN_SYSTEM},
                {"role": "user", "content": problem},
                {"role": "assistant", "content": self.tag.join(clean) + self.tag},
            ]
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            else:  # a PRM without a template still gets all three parts
                text = "\n\n".join(m["content"] for m in messages)
        else:
            text = f"{problem} " + "\n".join(f"{s} {self.tag}" for s in clean)
        return list(tok(text, add_special_tokens=self.name == "shepherd")["input_ids"])


class PRMVerifier:
    """Scorer `prm`: per-step scores from a process reward model, cached by (problem, steps prefix).

    model: local folder or hub id. format: "qwen", "shepherd" or "auto" (a causal LM is read as
    Math-Shepherd, anything else as Qwen-PRM). engine: "transformers" or "vllm" (extra keyword options
    go to `vllm.LLM`, which batches on its own: device and batch_size are for transformers). A script
    that uses engine="vllm" needs an `if __name__ == "__main__":` guard.
    """

    def __init__(self, model: str | None = None, format: str = "auto", engine: str = "transformers",
                 device: str | None = None, dtype: str | None = None, batch_size: int = 8,
                 max_length: int | None = None, trust_remote_code: bool = False, cache_size: int = 200_000,
                 **engine_options: Any) -> None:
        if not model:
            raise TTScaleError("the prm verifier needs a model", "pass --prm-model PATH_OR_HUB_ID "
                               "(Python: verifier_options={'prm': {'model': ...}})")
        if format not in (*FORMATS, "auto"):
            raise TTScaleError(f"unknown PRM format {format!r}", "choose one of: auto, qwen, shepherd")
        if engine not in ENGINES:
            raise TTScaleError(f"unknown PRM engine {engine!r}", "choose one of: transformers, vllm")
        self.model = str(model)
        self.engine = engine
        self.tokenizer, config = _load_tokenizer_and_config(self.model, trust_remote_code)
        self.format = resolve_format(format, config)
        self.fmt = make_format(self.format, self.tokenizer, self.model)
        limit = max_length or int(getattr(config, "max_position_embeddings", 0) or 4096)
        if engine == "vllm":
            from verifiers._prm_vllm import VLLMRunner

            self.runner: Runner = VLLMRunner(self.model, self.fmt, self.tokenizer, config, dtype=dtype,
                                             max_length=limit, trust_remote_code=trust_remote_code, **engine_options)
        else:
            if engine_options:
                raise TTScaleError(f"unknown PRM options {sorted(engine_options)}",
                                   "the transformers engine takes device, dtype, batch_size, max_length")
            self.runner = TransformersRunner(self.model, self.fmt, config, device=device, dtype=dtype,
                                             batch_size=batch_size, max_length=limit,
                                             trust_remote_code=trust_remote_code, pad_id=_pad_id(self.tokenizer))
        self.cache_size = cache_size
        self._cache: OrderedDict[Key, float | None] = OrderedDict()
        self.sequences_run = 0

    def close(self) -> None:
        """Release the PRM (a vLLM engine's worker processes)."""
        getattr(self.runner, "close", lambda: None)()

    # -- Scorer protocol ---------------------------------------------------------------------------------
    def score_batch(self, requests: list[Score]) -> tuple[list[list[StepScores]], int]:
        """Scores per request, per candidate, per step; runs only what the cache cannot answer."""
        todo: dict[Key, None] = {}
        for req in requests:
            for steps in req.candidates:
                steps = tuple(steps)
                if steps and (req.problem, steps) not in self._cache:
                    todo[(req.problem, steps)] = None
        tokens = self._run(list(todo))
        out = []
        for req in requests:
            per_req = []
            for steps in req.candidates:
                steps = tuple(steps)
                per_req.append([self._lookup((req.problem, steps[: i + 1])) for i in range(len(steps))])
            out.append(per_req)
        return out, tokens

    def score(self, problem: str, steps: Sequence[str]) -> StepScores:
        """Standalone use: one score per step of one partial solution."""
        return self.score_batch([Score("prm", problem, (tuple(steps),))])[0][0][0]

    # -- internals ---------------------------------------------------------------------------------------
    def _run(self, keys: list[Key]) -> int:
        """Forward the candidates not covered by the cache or by a longer candidate of this batch."""
        covered: set[Key] = set()
        plan: list[Key] = []
        for problem, steps in sorted(keys, key=lambda k: -len(k[1])):
            prefixes = [(problem, steps[: i + 1]) for i in range(len(steps))]
            if all(p in covered or p in self._cache for p in prefixes):
                continue
            plan.append((problem, steps))
            covered.update(prefixes)
        if not plan:
            return 0
        seqs, positions = [], []
        for problem, steps in plan:
            ids = self.fmt.encode(self.tokenizer, problem, steps)
            pos = [i for i, t in enumerate(ids) if t == self.fmt.tag_id]
            if len(pos) != len(steps):
                raise TTScaleError(
                    f"the PRM input for {len(steps)} steps holds {len(pos)} step tags {self.fmt.tag!r}: the "
                    f"tokenizer of {self.model} merges the tag with neighbouring text",
                    f"use the PRM's own tokenizer, or set format='{'shepherd' if self.format == 'qwen' else 'qwen'}' "
                    "in the prm options if the format was guessed wrong")
            ids = ids[: self.runner.max_length]
            seqs.append(ids)
            positions.append([p for p in pos if p < len(ids)])
        logits = self.runner.pair_logits(seqs, positions)
        self.sequences_run += len(plan)
        for (problem, steps), pairs in zip(plan, logits):
            for i in range(len(steps)):  # steps past the model's length limit stay undecided (None)
                self._store((problem, steps[: i + 1]), _p_good(*pairs[i]) if i < len(pairs) else None)
        return sum(len(s) for s in seqs)

    def _lookup(self, key: Key) -> float | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    def _store(self, key: Key, value: float | None) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _p_good(bad: float, good: float) -> float:
    """softmax([bad, good])[1], computed stably."""
    return 1.0 / (1.0 + math.exp(min(bad - good, 700.0)))


def resolve_format(fmt: str, config: Any) -> Literal["qwen", "shepherd"]:
    """"auto": a causal LM is Math-Shepherd-style, a token-classification/reward model Qwen-style."""
    if fmt in FORMATS:
        return fmt  # type: ignore[return-value]
    archs = list(getattr(config, "architectures", None) or [])
    return "shepherd" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) else "qwen"


def make_format(name: str, tok: Any, model: str) -> PRMFormat:
    """The format with its tag id checked: a tokenizer that splits the tag cannot mark steps."""
    tag = QWEN_TAG if name == "qwen" else SHEPHERD_TAG
    tag_id = _single_token(tok, tag)
    if tag_id is None:
        raise TTScaleError(
            f"the tokenizer of PRM {model} has no single token for the {name} step tag {tag!r}",
            f"use the PRM's own tokenizer (it must encode {tag!r} as one token), add it with "
            f"tokenizer.add_tokens([{tag!r}]) and save it beside the model, or choose the other format "
            f"(verifier_options={{'prm': {{'format': '{'shepherd' if name == 'qwen' else 'qwen'}'}}}})")
    labels = None
    if name == "shepherd":
        pair = tok.encode(f"{SHEPHERD_GOOD} {SHEPHERD_BAD}", add_special_tokens=False)
        good, bad = (pair if len(pair) == 2 else (_single_token(tok, SHEPHERD_GOOD), _single_token(tok, SHEPHERD_BAD)))
        if good is None or bad is None:
            raise TTScaleError(f"the tokenizer of PRM {model} has no single tokens for '+' and '-'",
                               "use the Math-Shepherd PRM's own tokenizer")
        labels = (int(bad), int(good))
    return PRMFormat(name, tag, tag_id, labels)


def _single_token(tok: Any, text: str) -> int | None:
    ids = tok.encode(text, add_special_tokens=False)
    # SentencePiece may emit a lone word-start piece first ("▁", "ки"): that is still one tag token.
    if len(ids) == 2 and not tok.decode(ids[:1]).strip():
        ids = ids[1:]
    return int(ids[0]) if len(ids) == 1 else None


def _pad_id(tok: Any) -> int:
    for cand in (tok.pad_token_id, tok.eos_token_id, 0):
        if cand is not None:
            return int(cand)
    return 0


def _load_tokenizer_and_config(model: str, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        tok = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        where = "folder" if Path(model).expanduser().exists() else "folder or hub id"
        raise TTScaleError(f"could not load PRM {model!r} ({str(e).splitlines()[0][:200]})",
                           f"pass --prm-model with a Hugging Face model {where} that holds config.json and a tokenizer, "
                           "e.g. Qwen/Qwen2.5-Math-PRM-7B") from None
    return tok, config


class TransformersRunner:
    """The PRM in transformers: batches by length, right-padded; the causal LM's head runs only at tags."""

    def __init__(self, model: str, fmt: PRMFormat, config: Any, *, device: str | None, dtype: str | None,
                 batch_size: int, max_length: int, trust_remote_code: bool, pad_id: int) -> None:
        import torch

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype in (None, "auto"):
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, str(dtype), None)
            if not isinstance(torch_dtype, torch.dtype):
                raise TTScaleError(f"unknown PRM dtype {dtype!r}", "pass auto, bfloat16, float16 or float32")
        self.fmt = fmt
        self.batch_size = max(1, int(batch_size))
        self.max_length = max_length
        self.pad_id = pad_id
        self.forward_calls = 0
        # Straight onto the accelerator (a 7B PRM need not pass through host memory first).
        load = {"dtype": torch_dtype, **({"device_map": self.device} if self.device != "cpu" else {})}
        self.model = _load_model(model, fmt, config, load, trust_remote_code).to(self.device).eval()

    def pair_logits(self, seqs: list[list[int]], positions: list[list[int]]) -> list[list[tuple[float, float]]]:
        torch = self.torch
        out: list[list[tuple[float, float]]] = [[] for _ in seqs]
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(seqs[i]) for i in rows)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
                mask[r, : len(seqs[i])] = 1
            with torch.inference_mode():
                pairs = self._forward(ids.to(self.device), mask.to(self.device), [positions[i] for i in rows])
            self.forward_calls += 1
            for i, p in zip(rows, pairs):
                out[i] = p
        return out

    def _forward(self, ids: Any, mask: Any, positions: list[list[int]]) -> list[list[tuple[float, float]]]:
        torch = self.torch
        if self.fmt.name == "shepherd":
            decoder = self.model.get_decoder()
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            head = self.model.get_output_embeddings()
            bad, good = self.fmt.label_ids  # type: ignore[misc]
            result = []
            for r, pos in enumerate(positions):
                logits = head(hidden[r, pos]).float()[:, [bad, good]] if pos else torch.zeros((0, 2))
                result.append([(float(a), float(b)) for a, b in logits.tolist()])
            return result
        out = self.model(input_ids=ids, attention_mask=mask)
        logits = (out.logits if hasattr(out, "logits") else out[0]).float()
        if logits.shape[-1] != 2:
            raise TTScaleError(f"the PRM's head has {logits.shape[-1]} classes, the qwen format needs 2",
                               "pass a Qwen2.5-Math-PRM-style model, or format='shepherd' for a causal LM")
        return [[(float(a), float(b)) for a, b in logits[r, pos].tolist()] for r, pos in enumerate(positions)]


def _load_model(model: str, fmt: PRMFormat, config: Any, load: dict[str, Any], trust_remote_code: bool) -> Any:
    """Causal LM for shepherd; for qwen our own Qwen2ForProcessRewardModel (the real PRM's architecture,
    no remote code), the checkpoint's remote code when asked, else any token-classification model."""
    import transformers as tf

    archs = list(getattr(config, "architectures", None) or [])
    if fmt.name == "shepherd":
        return tf.AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code, **load)
    if trust_remote_code and "AutoModel" in (getattr(config, "auto_map", None) or {}):
        return tf.AutoModel.from_pretrained(model, trust_remote_code=True, **load)
    from verifiers._prm_models import ARCHITECTURE

    if ARCHITECTURE in archs:
        from verifiers._prm_models import Qwen2ForProcessRewardModel

        return Qwen2ForProcessRewardModel.from_pretrained(model, **load)
    try:
        return tf.AutoModelForTokenClassification.from_pretrained(model, **load)
    except ValueError as e:
        raise TTScaleError(f"transformers cannot load {model} ({', '.join(archs) or 'unknown architecture'}) as a "
                           f"token-classification PRM: {str(e).splitlines()[0][:160]}",
                           "pass trust_remote_code=True if the checkpoint ships its own code, or use --prm-engine vllm") from None
