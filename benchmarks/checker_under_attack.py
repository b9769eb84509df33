"""Figures for issue 17: the grader's latency with 8 threads sending hostile answers.

    python benchmarks/checker_under_attack.py [--threads 8] [--seconds 20] [--workers 2]

8 attacker threads call `equivalent` with answers that make math-verify run far past the deadline
(every one a fresh string, so no cache helps them), while one thread grades benign MATH-style pairs with
`is_correct` and another clusters 32 answers (with duplicates, decimals, fractions and two hostile
strings) over and over. Printed: the slowest and median benign `is_correct`, the slowest `cluster` of
32, how many benign verdicts came back undecided, and the worker restarts. Then the near-miss table.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from verifiers.checker import AnswerChecker, is_correct

BENIGN = [(r"The answer is $\frac{3}{4}$.", "0.75"), (r"\boxed{x^2+2x+1}", "(x+1)^2"), (r"\boxed{12}", "12"),
          (r"so \boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}"), (r"\boxed{(1, 2)}", "(1,2)"), (r"\boxed{5}", "6")]
NEAR_MISSES = [(r"\boxed{\frac{1}{100!}}", r"\frac{1}{101!}"), (r"\boxed{0.0000001}", "0.0000002"),
               (r"\boxed{0.3}", r"\frac{1}{3}"), (r"\boxed{2^{-31}}", "2^{-30}"), (r"\boxed{1000000}", "1000001")]


def cluster_answers(i: int) -> list[str | None]:
    base = ["12", "12.0", r"\frac{24}{2}", "13", "x+1", "1+x", r"\sqrt{4}", "2", None, "0.5", r"\frac{1}{2}"]
    hostile = [f"{i + 2}^{{2^{{30}}}}", f"({i + 3})^{{2^{{31}}}}"]
    return (base * 3)[:30] + hostile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    checker = AnswerChecker(workers=args.workers)
    checker.warm_up()
    stop = threading.Event()
    benign_times: list[float] = []
    cluster_times: list[float] = []
    undecided = [0]

    def attacker(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            checker.equivalent("1", f"{k + 2}^{{2^{{{30 + i % 5}}}}} + {i}")

    def grader() -> None:
        while not stop.is_set():
            for pred, gold in BENIGN:
                t = time.perf_counter()
                v = is_correct(pred, gold, checker)
                benign_times.append(time.perf_counter() - t)
                undecided[0] += v is None

    def clusterer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            t = time.perf_counter()
            checker.cluster(cluster_answers(i))
            cluster_times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=attacker, args=(k,), daemon=True) for k in range(args.threads)]
    threads += [threading.Thread(target=grader, daemon=True), threading.Thread(target=clusterer, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    print(f"{args.threads} hostile threads, {args.workers} workers, {args.seconds:.0f} s:")
    print(f"  benign is_correct: {len(benign_times)} calls, slowest {max(benign_times):.3f} s, median "
          f"{statistics.median(benign_times):.4f} s, undecided {undecided[0]}")
    print(f"  cluster of 32: {len(cluster_times)} calls, slowest {max(cluster_times):.3f} s, median "
          f"{statistics.median(cluster_times):.3f} s")
    print(f"  worker restarts: {checker.restarts}")
    print("near misses (all must be False):")
    for pred, gold in NEAR_MISSES:
        print(f"  {pred!r:32} vs {gold!r:18} -> {is_correct(pred, gold, checker)}")
    checker.close()


if __name__ == "__main__":
    main()
