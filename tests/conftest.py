"""Shared test setup: tests import `fakes` directly, and find the evaluation data beside the repo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TTSCALE_DATA_DIR", str(REPO.parent / "shared" / "eval_sets"))
