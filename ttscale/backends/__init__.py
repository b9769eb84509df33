"""Backends by name. Each module imports its inference library only when a backend is built."""

from __future__ import annotations

from ttscale.backends.base import Backend, HFTokenizer, Tokenizer  # noqa: F401
from ttscale.backends.registry import backends, make_backend, register_backend  # noqa: F401
from ttscale.backends import llamacpp, openai_http, vllm_backend  # noqa: E402,F401  (register built-ins)

try:  # the transformers backend is optional until its module exists
    from ttscale.backends import hf  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["Backend", "HFTokenizer", "Tokenizer", "backends", "make_backend", "register_backend"]
