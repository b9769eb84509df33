"""Shared test setup: tests import `fakes` directly, and find the evaluation data beside the repo."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TTSCALE_DATA_DIR", str(REPO.parent / "shared" / "eval_sets"))


@pytest.fixture()
def serve():
    """serve(backend, **options) -> (base_url, port): ttscale's server on loopback over `backend`, closed at
    the end of the test."""
    from fakes import ExactChecker
    from helpers import serving_engine
    from ttscale import Engine

    with ExitStack() as stack:
        yield lambda backend, **options: stack.enter_context(
            serving_engine(Engine(backend=backend, checker=ExactChecker()), **options))
