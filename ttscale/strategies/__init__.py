"""Built-in strategies; importing this package registers them by name."""

from ttscale.strategies import best_of_n  # noqa: F401  (registers "best_of_n")
from ttscale.strategies.base import Candidate, Outcome, Task, register_strategy, strategies

__all__ = ["Candidate", "Outcome", "Task", "register_strategy", "strategies"]
