"""String-id registries for suites, datasets, tasks, reducers and head scores (as Brain-Score does).

A registry maps an id to a factory; lookups of unknown ids fail with the list of
valid ids so that a typo is fixed in one step. A registry holds what the modules imported so far
registered: it never imports its providers by name, since a provider imports the registry's module
back and the pair would be an import circle hidden from the import graph. The module that must see
every entry imports the providers (``lhp_core.suites`` imports ``lhp_core.revisions``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        """``kind``: what an entry is, in words (``"suite"``), for the error listing valid ids."""
        self.kind = kind
        self._factories: dict[str, Callable[[], T]] = {}

    def register(self, name: str, factory: Callable[[], T] | None = None):
        """Register ``factory`` under ``name``; usable as a decorator."""

        def _add(f: Callable[[], T]) -> Callable[[], T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = f
            return f

        return _add(factory) if factory is not None else _add

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names()) or '(none registered)'}"
            ) from None
        return factory()
