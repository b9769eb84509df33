"""Backends by name: the registry the backend modules add themselves to (apart from the package, so
that a backend module never imports the package that imports it)."""

from __future__ import annotations

from typing import Any, Callable

from ttscale.backends.base import Backend
from ttscale.registry import Registry

backends: Registry[Callable[..., Backend]] = Registry("backend")
register_backend = backends.register


def make_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """Build backend `name` for `model` (None = the embedded default). An option the backend does not
    take is one error naming the ones it does, before anything loads."""
    from ttscale.errors import TTScaleError

    factory = backends.get(name)
    valid = backend_option_names(name)
    if valid is not None:
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise TTScaleError(f"unknown option(s) {', '.join(unknown)} for backend {name!r}",
                               f"valid options: {', '.join(valid)}")
    return factory(model, **options)


def backend_option_names(name: str) -> tuple[str, ...] | None:
    """The options backend `name` takes, in its signature's order (None: any, it takes **options)."""
    import inspect

    params = inspect.signature(backends.get(name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(k for k, p in params.items() if k != "model" and p.kind is not p.VAR_POSITIONAL)
