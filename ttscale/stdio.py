"""Keeping stdout for results: what libraries print while a model runs goes to stderr."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Route everything printed while a backend runs (vLLM logs to stdout, from child processes too) to
    stderr at the file-descriptor level, so stdout carries only the answer or the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
