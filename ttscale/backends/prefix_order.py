"""The order in which a one-sequence backend serves a batch, so that its single KV state is reused most.

llama.cpp (in process, or behind llama-cpp-python's server) holds one sequence in its KV cache and, for a
new request, only evaluates the tokens after the longest prefix it shares with that sequence. Serving
next the request whose prompt shares the longest prefix with what the cache holds (the previous prompt
plus its completion) makes a particle's copies, and a particle whose step was just generated, nearly free.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two 1-D integer arrays."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


class PrefixOrder:
    """Hands out a batch's request indices, each time the one closest to the backend's current KV state.

    Ties go to the lexicographically smallest prompt, so identical and sibling prompts stay adjacent.
    """

    def __init__(self, prompts: Sequence[Sequence[int]]) -> None:
        self.arrays = [np.asarray(p, dtype=np.int64) for p in prompts]
        self.remaining = sorted(range(len(prompts)), key=lambda i: tuple(prompts[i]))

    def __bool__(self) -> bool:
        return bool(self.remaining)

    def next(self, state: Sequence[int] | np.ndarray) -> int:
        """Remove and return the index of the remaining prompt sharing the longest prefix with `state`."""
        held = np.asarray(state, dtype=np.int64)
        best = max(range(len(self.remaining)),
                   key=lambda k: (common_prefix(self.arrays[self.remaining[k]], held), -k))
        return self.remaining.pop(best)
