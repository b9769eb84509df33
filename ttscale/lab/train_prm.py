"""Train the lab process reward model `lab:arith-prm` (CPU, minutes, deterministic in --seed and the samples).

    python -m ttscale.lab.train_prm --out ttscale/lab/arith-prm --seed 0     # the shipped weights
    python -m ttscale.lab.train_prm --out /tmp/prm --tiny --policy /tmp/tiny  # seconds, for tests

Why this way: a PRM is only as useful as the mistakes it has seen. It learns from the lab policy's own
sampled solutions to training-family problems, every step labeled by the exact claim checker (a false
claim, or an answer line that disagrees with the value the claims reach, is a bad step), so it meets the
policy's real errors and is imperfect the way real PRMs are.

The model is in Qwen2.5-Math-PRM's format: `Qwen2ForProcessRewardModel` (a Qwen2 decoder and a two-layer,
two-class token head), the policy's tokenizer plus the `<extra_0>` step tag, inputs rendered by the very
code that scores with it (`verifiers.prm.PRMFormat`), so `--verifier prm --prm-model lab:arith-prm` runs
the same path as Qwen/Qwen2.5-Math-PRM-7B on a GPU. The decoder starts from the policy's weights (Llama
and Qwen2 share the layout; Qwen2's q/k/v biases start at zero), so a few minutes of training suffice.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from eval_sets.arith import LEVELS, claim_is_correct, extract_answer, generate, make_problem, parse_claim, solution_steps

PRM_SEED_BASE = 5000  # sampled problems come from train-split arith seeds >= 5000 (never evaluated on)


@dataclass(frozen=True)
class PRMTrainConfig:
    # Twice v8's 1,500 problems and 400 steps: on v9's samples (fewer slips to learn from) those gave step
    # AUROC 0.897 on held-out families, these 0.905 (benchmarks/lab_model_profile.py); on v10's 0.917, on v13's 0.905, on v16's 0.921 (19 minutes).
    problems: int = 3000  # per sampling run, spread over levels 1-5
    samples: int = 4  # per problem, at `temperature`
    temperature: float = 1.0
    steps: int = 800
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 50
    max_tokens: int = 512


TINY = PRMTrainConfig(problems=10, samples=2, steps=4, batch_size=4, warmup=1, max_tokens=64)


def step_labels(problem: str, text: str) -> tuple[list[str], list[bool | None]]:
    """A sampled solution's steps and each one's label: the claim checker's verdict; the answer line is
    good when it states the value the last claim reached; None (no label) for steps with neither."""
    steps = solution_steps(text)
    labels: list[bool | None] = []
    last: int | None = None
    for s in steps:
        claim = parse_claim(s)
        if claim is not None:
            labels.append(bool(claim_is_correct(s)))
            last = claim[3]
        elif extract_answer(s) is not None:
            labels.append(last is not None and int(extract_answer(s) or -1) == last)
        else:
            labels.append(None)
    return steps, labels


def sample_solutions(policy: str, cfg: PRMTrainConfig, seed: int, backend: str) -> list[tuple[str, str]]:
    """(problem, sampled solution) pairs from the policy on training-family problems."""
    from ttscale.backends import make_backend
    from ttscale.lab.evaluate import problem_requests

    rows = generate(cfg.problems, levels=LEVELS, seed=PRM_SEED_BASE + seed)
    b = make_backend(backend, policy)
    try:
        reqs = problem_requests(b, rows, cfg.samples, cfg.temperature, cfg.max_tokens, seed=seed * 100000)
        out = []
        for start in range(0, len(reqs), 256):
            for r, res in zip(rows[start:start + 256], b.generate(reqs[start:start + 256])):
                out += [(r["problem"], c.text) for c in res.completions]
        return out
    finally:
        getattr(b, "close", lambda: None)()


def generator_solutions(n: int, seed: int) -> list[tuple[str, str]]:
    """(problem, solution) pairs from the arith generator, half of them with a slip."""
    from ttscale.lab.data import slipped_solution

    rng = np.random.default_rng([seed, 5])
    out = []
    for i in range(n):
        problem = make_problem(PRM_SEED_BASE + seed, LEVELS[i % len(LEVELS)], i // len(LEVELS))
        solved = slipped_solution(problem, rng) if i % 2 else None
        out.append((problem.text, (solved or problem.solve())[0]))  # type: ignore[index]
    return out


def build_prm(policy: str, tok):
    """A Qwen2ForProcessRewardModel whose decoder is the policy's (Llama layout, zero q/k/v biases)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from verifiers._prm_models import ARCHITECTURE, Qwen2ForProcessRewardModel

    lm = AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32)
    c = lm.config
    config = Qwen2Config(vocab_size=len(tok), hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                         num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
                         rope_theta=getattr(c, "rope_theta", 10000.0), rms_norm_eps=c.rms_norm_eps,
                         tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    config.architectures = [ARCHITECTURE]
    torch.manual_seed(0)
    prm = Qwen2ForProcessRewardModel(config)
    state = {k.removeprefix("model."): v for k, v in lm.state_dict().items() if k.startswith("model.")}
    emb = state.pop("embed_tokens.weight")
    missing, unexpected = prm.model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith(".bias") or k == "embed_tokens.weight" for k in missing), (missing, unexpected)
    with torch.no_grad():
        prm.model.embed_tokens.weight[: emb.shape[0]] = emb
        for layer in prm.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.zero_()
    return prm


def encode(fmt, tok, pairs: Sequence[tuple[str, str]], max_len: int) -> list[tuple[list[int], list[int], list[int]]]:
    """(ids, tag positions, labels 0/1) per labeled solution, rendered by the scoring code itself."""
    out = []
    for problem, text in pairs:
        steps, labels = step_labels(problem, text)
        if not steps or all(v is None for v in labels):
            continue
        ids = fmt.encode(tok, problem, steps)
        if len(ids) > max_len:
            continue
        tags = [i for i, t in enumerate(ids) if t == fmt.tag_id]
        if len(tags) != len(steps):
            continue
        keep = [(p, int(v)) for p, v in zip(tags, labels) if v is not None]
        out.append((ids, [p for p, _ in keep], [v for _, v in keep]))
    return out


def train(out: Path, policy: str, seed: int = 0, cfg: PRMTrainConfig = PRMTrainConfig(), backend: str = "vllm",
          log_every: int = 50) -> Path:
    import torch
    from transformers import AutoTokenizer

    from verifiers.prm import QWEN_TAG, make_format

    torch.manual_seed(seed)
    t0 = time.time()
    pairs = sample_solutions(policy, cfg, seed, backend)
    print(f"sampled {len(pairs)} solutions in {time.time() - t0:.0f}s", flush=True)
    tok = AutoTokenizer.from_pretrained(policy)
    tok.add_tokens([QWEN_TAG], special_tokens=True)
    fmt = make_format("qwen", tok, str(out))
    data = encode(fmt, tok, pairs, cfg.max_tokens + 512)
    if not any(d[2] for d in data):  # an untrained policy (tests) writes nothing checkable
        print("the policy's samples hold no checkable steps: training on generator solutions with slips", flush=True)
        data = encode(fmt, tok, generator_solutions(cfg.problems * cfg.samples, seed), cfg.max_tokens + 512)
    labels = [v for d in data for v in d[2]]
    print(f"data: {len(data)} solutions, {len(labels)} labeled steps, {1 - sum(labels) / max(1, len(labels)):.3f} bad",
          flush=True)
    prm = build_prm(policy, tok)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))))
    opt = torch.optim.AdamW(prm.parameters(), lr=cfg.lr, weight_decay=0.01)
    rng = np.random.default_rng([seed, 3])
    pos_weight = torch.tensor([1.0, 1.0])
    bad_share = 1 - sum(labels) / max(1, len(labels))
    if 0 < bad_share < 0.5:  # balance the classes: mistakes are the minority the PRM must not miss
        pos_weight = torch.tensor([0.5 / bad_share, 0.5 / (1 - bad_share)])
    prm.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.choice(len(data), size=min(cfg.batch_size, len(data)), replace=False)
        width = max(len(data[i][0]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(data[i][0])] = torch.tensor(data[i][0])
            mask[r, : len(data[i][0])] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = prm(input_ids=ids, attention_mask=mask).logits.float()
        rows = torch.tensor([r for r, i in enumerate(idx) for _ in data[i][1]])
        cols = torch.tensor([p for i in idx for p in data[i][1]])
        target = torch.tensor([v for i in idx for v in data[i][2]])
        loss = torch.nn.functional.cross_entropy(logits[rows, cols], target, weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        opt.step()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            print(f"step {step + 1}/{cfg.steps} loss {float(loss):.4f} wall {time.time() - t0:.0f}s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    prm.eval().to(torch.bfloat16)
    prm.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "lab_train.json").write_text(json.dumps({"seed": seed, "policy": str(policy), **asdict(cfg)}, indent=2) + "\n")
    print(f"saved {out} after {time.time() - t0:.0f}s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="PRM folder to write")
    parser.add_argument("--policy", default="lab:arith", help="policy whose samples it learns from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="backend that samples the policy (default: vllm if "
                        "installed, else transformers)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run (tests)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PRMTrainConfig field (experiments), e.g. --set steps=800")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    policy = args.policy
    if policy.startswith("lab:"):
        from ttscale.lab import resolve_lab_model

        policy = str(resolve_lab_model(policy))
    backend = args.backend
    if backend is None:
        import importlib.util

        backend = "vllm" if importlib.util.find_spec("vllm") and not args.tiny else "transformers"
    from ttscale.lab.train import parse_overrides

    cfg = TINY if args.tiny else PRMTrainConfig()
    cfg = replace(cfg, **parse_overrides(cfg, args.set))
    train(args.out, policy, seed=args.seed, cfg=cfg, backend=backend,
          log_every=1 if args.tiny else 50)


if __name__ == "__main__":
    main()
