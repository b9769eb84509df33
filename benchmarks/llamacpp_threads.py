"""Wall time of the README demo (`make demo`) with llama.cpp threads = every core (the old default) vs
the idle-cores rule (ttscale/backends/threads.py), on a quiet machine and next to busy processes.

Why: issue 19 measured the demo at 24.7 s quiet and 390 s with other processes running (57 -> 3.6 tok/s)
when llama.cpp used one thread per core. Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/llamacpp_threads.py [--busy 1] [--repeats 1]

Each run is the installed `ttscale solve` in a child process, so the model load is included as a user
sees it; the busy processes are plain Python spin loops started before and stopped after each run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

DEMO = ["solve", "If 3 pencils cost 12 cents, what do 7 pencils cost?", "--strategy", "best_of_n",
        "--budget", "8", "--max-tokens", "256", "--quiet", "--json"]
TTSCALE = Path(sys.executable).parent / "ttscale"


def run_demo(threads: int | None) -> tuple[float, int]:
    """Seconds for one demo run, and the tokens it generated."""
    import json

    args = [str(TTSCALE), *DEMO, *(["--threads", str(threads)] if threads else [])]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"demo failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, int(json.loads(proc.stdout)["usage"]["generated_tokens"])


def start_busy(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(1.0)  # let them show up as busy before the demo measures the machine
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, default=1, help="busy processes next to the demo in the busy runs")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    from ttscale.backends.threads import auto_threads, usable_cores

    cores = usable_cores()
    print(f"{cores} usable cores; the rule picks {auto_threads()} thread(s) on this machine now")
    rows = []
    for busy in (0, args.busy):
        for label, threads in (("all cores (before)", cores), ("idle-cores rule (after)", None)):
            for _ in range(args.repeats):
                procs = start_busy(busy)
                try:
                    seconds, tokens = run_demo(threads)
                finally:
                    stop(procs)
                rows.append((busy, label, seconds, tokens))
                print(f"busy {busy}  {label:24s} {seconds:7.1f} s  {tokens} tokens  {tokens / seconds:6.1f} tokens per wall second",
                      flush=True)
    print(f"(pid {os.getpid()}; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
