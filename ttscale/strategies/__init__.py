"""Built-in strategies; importing this package registers them by name."""

from ttscale.strategies import auto, beam, best_of_n, parallel_thinking, particle, refine, temperature  # noqa: F401  (register the built-ins)
from ttscale.strategies.base import Candidate, Outcome, Task, register_strategy, strategies

__all__ = ["Candidate", "Outcome", "Task", "register_strategy", "strategies"]
