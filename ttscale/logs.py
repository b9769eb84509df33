"""How chatty the libraries under ttscale are on the terminal.

vLLM, transformers and torch print dozens of INFO and WARNING lines (and deprecation warnings) for one
`ttscale solve`; a user reads the answer and the progress, not those. By default only errors get through;
`--verbose` lets everything through. Set before a backend loads: vLLM reads its level from the
environment, also in the engine process it starts.
"""

from __future__ import annotations

import os
import warnings


def quiet_libraries(verbose: bool = False) -> None:
    if verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # child processes (vLLM's engine core) too
    warnings.filterwarnings("ignore")
