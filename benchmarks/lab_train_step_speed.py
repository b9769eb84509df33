"""Training tokens/s of the lab policy's step (forward, backward, AdamW; bf16 autocast) on this CPU, eager or
under torch.compile: whether compiling the step could bring the lab training (issue 14) near 90 minutes.

    python benchmarks/lab_train_step_speed.py              # eager, then compiled (separate processes)
    python benchmarks/lab_train_step_speed.py --mode eager

Random token ids on the shipped model's config (ttscale/lab/arith), five batch shapes like the training
mix's, one process with 2 threads; the compiled step warms up on every shape before timing. Run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

SHAPES = [(16, 256), (20, 200), (12, 340), (32, 128), (8, 500)]  # (sequences, tokens) of about 4,096 tokens


def measure(mode: str, rounds: int = 4) -> tuple[float, float]:
    """(warm-up seconds, tokens per second) of the training step."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained("ttscale/lab/arith"))
    model.set_attn_implementation("sdpa")
    model.train()
    net = torch.compile(model, dynamic=True) if mode == "compile" else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: int, width: int) -> None:
        ids = torch.randint(3, 1000, (batch, width))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = net(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for shape in SHAPES:
        step(*shape)
    warm = time.perf_counter() - t
    t, tokens = time.perf_counter(), 0
    for _ in range(rounds):
        for b, w in SHAPES:
            step(b, w)
            tokens += b * w
    return warm, tokens / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["eager", "compile"], default=None, help="one mode (default: both, one process each)")
    args = ap.parse_args()
    if args.mode:
        warm, rate = measure(args.mode)
        print(f"{args.mode}: {rate:,.0f} training tokens/s (warm-up {warm:.1f} s)", flush=True)
        return
    for mode in ("eager", "compile"):  # a process each: compiled kernels and caches do not leak into the other
        subprocess.run([sys.executable, __file__, "--mode", mode], check=True)


if __name__ == "__main__":
    main()
