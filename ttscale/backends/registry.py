"""Backends by name: the registry the backend modules add themselves to (apart from the package, so
that a backend module never imports the package that imports it)."""

from __future__ import annotations

from typing import Any, Callable

from ttscale.backends.base import Backend
from ttscale.registry import Registry

backends: Registry[Callable[..., Backend]] = Registry("backend")
register_backend = backends.register


def make_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """Build backend `name` for `model` (None = the embedded default)."""
    return backends.get(name)(model, **options)
