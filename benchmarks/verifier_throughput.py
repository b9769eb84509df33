"""Throughput of answer grading: MATH-500 style (prediction, gold) pairs through the verifier pool.

Half the predictions are the row's own reference solution (should grade correct), the
other half the solution of a different row (mostly wrong). Default mode grades like
``is_correct`` (extract the answer, then math-verify in the pool via ``check_many``);
``--mode text`` instead lets math-verify read the whole solution text (the slow path).

    python benchmarks/verifier_throughput.py --n 1000 --data-dir ../shared/eval_sets
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from verifiers import AnswerChecker, grade_many  # noqa: E402


def build_pairs(rows: list[dict], n: int, seed: int) -> tuple[list[str], list[str], list[bool]]:
    """``n`` (prediction text, gold, is_own_solution) triples; every other one mismatched."""
    rng = np.random.default_rng(seed)
    preds, golds, own = [], [], []
    for i in range(n):
        row = rows[int(rng.integers(len(rows)))]
        if i % 2 == 0:
            other = row
        else:  # a different row's solution
            other = rows[int(rng.integers(len(rows)))]
            while other is row:
                other = rows[int(rng.integers(len(rows)))]
        preds.append(other["solution"])
        golds.append(row["answer"])
        own.append(other is row)
    return preds, golds, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of (prediction, gold) pairs")
    default_dir = os.environ.get("TTSCALE_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "eval_sets")
    parser.add_argument("--data-dir", default=default_dir, help="folder with math500.jsonl")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=2.0, help="per-call deadline, seconds")
    parser.add_argument("--mode", choices=["answer", "text"], default="answer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    path = Path(args.data_dir) / "math500.jsonl"
    if not path.exists():
        sys.exit(f"{path} not found: pass --data-dir or set TTSCALE_DATA_DIR")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    preds, golds, own = build_pairs(rows, args.n, args.seed)

    with AnswerChecker(workers=args.workers, deadline_s=args.deadline) as checker:
        start = time.perf_counter()
        checker.warm_up()
        startup_s = time.perf_counter() - start

        start = time.perf_counter()
        if args.mode == "answer":
            verdicts = grade_many(preds, golds, checker)
        else:
            verdicts = checker.check_many_text([(f"${g}$", p, None) for p, g in zip(preds, golds)])
        wall_s = time.perf_counter() - start
        stats = checker.stats()
        restarts = checker.restarts

    def rate(flags: list[bool]) -> str:
        picked = [v for v, f in zip(verdicts, flags) if f]
        return f"{sum(v is True for v in picked)}/{len(picked)}"

    print(f"mode: {args.mode}, workers: {args.workers}, deadline: {args.deadline}s, cpus: {os.cpu_count()}")
    print(f"pairs checked: {len(verdicts)}")
    print(f"answers per second: {len(verdicts) / wall_s:.1f} (wall {wall_s:.2f}s, worker start-up {startup_s:.2f}s not included)")
    print(f"slowest single call: {stats.max_call_s:.3f}s")
    print(f"undecided (None): {sum(v is None for v in verdicts)}")
    print(f"pool calls: {stats.pool_calls} (mean {stats.total_call_s / max(stats.pool_calls, 1):.3f}s), "
          f"decided without a worker: {stats.decided_up_front}, worker restarts: {restarts}")
    print(f"graded correct: own solution {rate(own)}, other row's solution {rate([not o for o in own])}")


if __name__ == "__main__":
    main()
