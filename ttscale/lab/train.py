"""Train the lab model `lab:arith` from scratch on arith problems (CPU, minutes, deterministic in --seed).

    python -m ttscale.lab.train --out ttscale/lab/arith --seed 0        # the shipped weights
    python -m ttscale.lab.train --out /tmp/tiny --seed 0 --tiny         # seconds, for tests

A small Llama (LlamaForCausalLM, so vLLM loads it as is) with its own BPE tokenizer learns to write one
arithmetic claim per step. Loss is on the assistant part only. Output: a standard HF folder
(safetensors, tokenizer with chat template, generation_config.json) plus ttscale.json with the engine's
per-model defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ttscale.lab.data import Example, drills, eval_problem_texts, training_examples
from ttscale.lab.tokenizer import BOS, EOS, build_tokenizer

ENGINE_DEFAULTS = {"prompt_template": "{problem}", "step_delimiter": "\n\n", "max_tokens": 256}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights (with the seed); saved next to them as lab_train.json."""

    examples: int = 50000
    level_weights: tuple[int, ...] = (3, 3, 2, 2, 2)  # problems per cycle for levels 1..5
    drills: int = 12000
    drill_facts: int = 12
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    slip_rate: float = 0.12
    vocab_size: int = 768
    hidden_size: int = 192
    intermediate_size: int = 512
    layers: int = 4
    heads: int = 3
    max_positions: int = 512
    bf16: bool = True
    exclude_eval: bool = True


TINY = TrainConfig(examples=200, drills=20, steps=10, batch_size=8, warmup=2, vocab_size=320, hidden_size=64,
                   intermediate_size=128, layers=2, heads=2, exclude_eval=False)


def chat_text(problem: str) -> str:
    """The prompt the engine sends (the chat template with add_generation_prompt), as a string."""
    return f"{BOS}<|user|>\n{problem}\n<|assistant|>\n"


def encode(tok, examples: list[Example]) -> list[tuple[list[int], list[int]]]:
    """(token ids, labels) per example: prompt + solution + EOS, loss on the solution and EOS only."""
    prompts = [chat_text(e.problem) for e in examples]
    fulls = tok([p + e.solution + EOS for p, e in zip(prompts, examples)], add_special_tokens=False)["input_ids"]
    heads = tok(prompts, add_special_tokens=False)["input_ids"]
    out = []
    for full, head in zip(fulls, heads):
        assert full[: len(head)] == head, "prompt tokens must be a prefix of the training sequence"
        out.append((full, [-100] * len(head) + full[len(head):]))
    return out


def encode_drills(tok, drills: list[list[str]]) -> list[tuple[list[int], list[int]]]:
    """(token ids, labels) per drill: `<s> a op b = c\n ...`, loss on each result `c` only."""
    facts = sorted({f for d in drills for f in d})
    lefts = tok([" " + f.rsplit(" ", 1)[0] for f in facts], add_special_tokens=False)["input_ids"]
    rights = tok([" " + f.rsplit(" ", 1)[1] + "\n" for f in facts], add_special_tokens=False)["input_ids"]
    pieces = {f: (left, right) for f, left, right in zip(facts, lefts, rights)}
    out = []
    for drill in drills:
        ids, labels = [tok.bos_token_id], [-100]
        for f in drill:
            left, right = pieces[f]
            ids += left + right
            labels += [-100] * len(left) + right
        out.append((ids, labels))
    return out


def batches(lengths: list[int], batch_size: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`steps` batches of similar-length examples (little padding), epochs reshuffled."""
    out: list[np.ndarray] = []
    while len(out) < steps:
        perm = rng.permutation(len(lengths))
        pool = batch_size * 64
        epoch = []
        for start in range(0, len(perm), pool):
            chunk = perm[start:start + pool]
            chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
            epoch += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
        out += [epoch[i] for i in rng.permutation(len(epoch))]
    return out[:steps]


def make_model(cfg: TrainConfig, tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(config)


def train(out: Path, seed: int = 0, cfg: TrainConfig = TrainConfig(), log_every: int = 100) -> Path:
    """Train and save the model folder; returns `out`."""
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    t0 = time.time()
    exclude = eval_problem_texts() if cfg.exclude_eval else None
    levels = tuple(level for level, w in enumerate(cfg.level_weights, start=1) for _ in range(w))
    examples = training_examples(cfg.examples, seed=seed, slip_rate=cfg.slip_rate, levels=levels, exclude=exclude)
    tok = build_tokenizer([chat_text(e.problem) + e.solution for e in examples[:5000]], cfg.vocab_size)
    data = encode(tok, examples)
    data += encode_drills(tok, drills(examples, cfg.drills, cfg.drill_facts, seed))
    print(f"data: {len(examples)} problems + {cfg.drills} drills, {sum(len(d[0]) for d in data) / len(data):.0f} "
          f"tokens each, vocab {len(tok)}, {time.time() - t0:.1f}s", flush=True)

    model = make_model(cfg, tok)
    model.set_attn_implementation("eager")  # faster than sdpa for these short CPU sequences
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    plan = batches([len(d[0]) for d in data], cfg.batch_size, cfg.steps, np.random.default_rng([seed, 11]))
    model.train()
    running, tokens = 0.0, 0
    for step, idx in enumerate(plan):
        width = max(len(data[i][0]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for b, i in enumerate(idx):
            seq, target = data[i]
            ids[b, :len(seq)] = torch.tensor(seq)
            labels[b, :len(seq)] = torch.tensor(target)
            mask[b, :len(seq)] = 1
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        # bf16 autocast: CPU bf16 matmuls run ~3-4x faster than fp32 here; the weights stay fp32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += float(loss.detach())
        tokens += int(mask.sum())
        if (step + 1) % log_every == 0 or step + 1 == len(plan):
            n = (step % log_every) + 1
            cpu = time.process_time()
            print(f"step {step + 1}/{len(plan)} loss {running / n:.4f} lr {lr_at(step):.2e} "
                  f"{tokens / (time.time() - t0):.0f} tok/s wall {time.time() - t0:.0f}s cpu {cpu:.0f}s", flush=True)
            running = 0.0
    save(model, tok, out, seed, cfg)
    print(f"saved {out} after {time.time() - t0:.0f}s", flush=True)
    return out


def save(model, tok, out: Path, seed: int, cfg: TrainConfig) -> None:
    """A standard HF folder plus the engine's defaults (ttscale.json) and the recipe (lab_train.json)."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        do_sample=True, temperature=0.8, top_p=1.0, max_new_tokens=ENGINE_DEFAULTS["max_tokens"],
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "ttscale.json").write_text(json.dumps(ENGINE_DEFAULTS, indent=2) + "\n")
    (out / "lab_train.json").write_text(json.dumps({"seed": seed, **asdict(cfg)}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run with a toy model (tests)")
    parser.add_argument("--steps", type=int, help="override the number of optimizer steps")
    parser.add_argument("--examples", type=int, help="override the number of training problems")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any TrainConfig field (experiments), e.g. --set lr=1e-3")
    args = parser.parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
    # steal the cores the other thread (and other people's jobs) need. Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = TINY if args.tiny else TrainConfig()
    overrides: dict = {k: v for k, v in (("steps", args.steps), ("examples", args.examples)) if v is not None}
    for item in args.set:
        key, _, value = item.partition("=")
        kind = type(getattr(cfg, key))
        if kind is tuple:
            overrides[key] = tuple(int(v) for v in value.split(","))
        else:
            overrides[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    if overrides:
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    train(args.out, seed=args.seed, cfg=cfg, log_every=1 if args.tiny else 100)


if __name__ == "__main__":
    main()
