"""How many threads a CPU backend (llama.cpp) should use: the cores that are idle now, at least one.

Why: llama.cpp splits every matrix product over its threads and waits for the slowest at each barrier, so
one thread that shares its core with another busy process stalls all the others. With one thread per core
the README demo took 24.7 s on a quiet machine and 390 s next to other busy processes (57 -> 3.6 tok/s).
Leaving the busy cores to their owners costs a little on a busy machine and saves the collapse.

The rule (`threads_for`): cores we may run on (CPU affinity, capped by a cgroup CPU quota) minus the cores
other processes keep busy, measured from /proc/stat over a short window (falling back to the 1-minute
load average where /proc/stat is missing), rounded so that a process using less than 0.4 of a core does
not count; at least 1. It is decided once, when the model loads; `--threads N` overrides it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from ttscale.errors import TTScaleError

SAMPLE_S = 0.2  # long enough to see a busy process, short next to a model load
NOISE = 0.4  # busy cores below this fraction of a core are background noise, not a competitor


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota if one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    try:
        limit, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def _cpu_times(cpus: set[int] | None) -> tuple[float, float] | None:
    """(idle, total) jiffies summed over `cpus` (None: all), from /proc/stat; None where it is missing."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    idle = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle += values[3] + values[4]
        total += sum(values)
    return (idle, total) if total else None


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores kept busy by other processes right now (this one sleeps while it measures)."""
    try:
        cpus: set[int] | None = set(os.sched_getaffinity(0))
    except AttributeError:
        cpus = None
    first = _cpu_times(cpus)
    if first is None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    time.sleep(sample_s)
    second = _cpu_times(cpus)
    if second is None or second[1] <= first[1]:
        return 0.0
    idle, total = second[0] - first[0], second[1] - first[1]
    n = len(cpus) if cpus is not None else (os.cpu_count() or 1)
    return max(0.0, 1.0 - idle / total) * n


def threads_for(cores: int, busy: float) -> int:
    """Threads for a machine of `cores` usable cores of which `busy` are in use by others."""
    others = math.floor(busy + (1 - NOISE))
    return max(1, cores - others)


def auto_threads() -> int:
    """The thread count for llama.cpp on this machine now (see the module docstring for why)."""
    return threads_for(usable_cores(), busy_cores())


def check_threads(threads: int | None, backend: str) -> int | None:
    """`--threads` as given: a positive count, for the CPU backends that take one."""
    if threads is None:
        return None
    if threads < 1:
        raise TTScaleError(f"--threads must be 1 or more, got {threads}", "pass e.g. --threads 4, or leave it out")
    if backend not in ("llamacpp", "transformers"):
        raise TTScaleError(f"--threads is for the CPU backends (llamacpp, transformers), not {backend}",
                           "drop --threads, or use --backend llamacpp")
    return threads
