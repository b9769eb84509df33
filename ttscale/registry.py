"""Registries by name for strategies, verifiers, backends and datasets.

Built-ins register with the same decorator a user would use, and third-party packages add theirs through
Python entry points (group `ttscale.<kind>`), so the CLI, the API and bench find everything by name with
no special cases.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from ttscale.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, filled by decorators and (once, lazily) by entry points."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Add `obj` under `name`. A second, different object under a taken name is an error (it would
        silently replace the first); the same definition again (a module imported twice) is not."""
        def add(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and _where(old) != _where(obj):
                from ttscale.errors import TTScaleError

                raise TTScaleError(f"{self.kind} {name!r} is already registered (by {_where(old)})",
                                   "choose another name for yours")
            self._items[name] = obj
            return obj

        return add

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=f"ttscale.{self.kind}s"):
            self._items.setdefault(ep.name, ep.load())

    def get(self, name: str) -> T:
        if name not in self._items:
            self._load_entry_points()
        if name not in self._items:
            raise unknown_name(self.kind, name, self.names())
        return self._items[name]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
