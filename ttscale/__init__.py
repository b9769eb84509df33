"""ttscale: spend a test-time compute budget through a strategy over a real inference backend."""

from ttscale.engine import Engine
from ttscale.errors import TTScaleError
from ttscale.ledger import Ledger
from ttscale.requests import Completion, Generate, GenRequest, GenResult, Sampling, Score
from ttscale.result import Result
from ttscale.strategies import Candidate, Outcome, Task, register_strategy
from ttscale.strategies.options import StrategyOptions

__all__ = [
    "Candidate", "Completion", "Engine", "GenRequest", "GenResult", "Generate", "Ledger", "Outcome", "Result",
    "Sampling", "Score", "StrategyOptions", "TTScaleError", "Task", "register_strategy",
]
__version__ = "0.1.0"
