"""Backends by name. Each module imports its inference library only when a backend is built."""

from __future__ import annotations

from typing import Any, Callable

from ttscale.backends.base import Backend, HFTokenizer, Tokenizer
from ttscale.registry import Registry

backends: Registry[Callable[..., Backend]] = Registry("backend")
register_backend = backends.register


def make_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """Build backend `name` for `model` (None = the embedded default)."""
    return backends.get(name)(model, **options)


from ttscale.backends import llamacpp, openai_http, vllm_backend  # noqa: E402,F401  (register built-ins)

try:  # the transformers backend is optional until its module exists
    from ttscale.backends import hf  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["Backend", "HFTokenizer", "Tokenizer", "backends", "make_backend", "register_backend"]
