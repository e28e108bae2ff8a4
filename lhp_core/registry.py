"""String-id registries for suites, datasets, tasks, reducers and head scores (as Brain-Score does).

A registry maps an id to a factory; lookups of unknown ids fail with the list of
valid ids so that a typo is fixed in one step.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, providers: Iterable[str] = ()) -> None:
        """``providers``: modules that register entries when imported; they are imported on the
        first lookup, so a registry is complete in every process (dask workers, the CLI) without
        its users having to remember which module to import first."""
        self.kind = kind
        self._factories: dict[str, Callable[[], T]] = {}
        self._providers = list(providers)

    def _load_providers(self) -> None:
        while self._providers:
            importlib.import_module(self._providers.pop(0))

    def register(self, name: str, factory: Callable[[], T] | None = None):
        """Register ``factory`` under ``name``; usable as a decorator."""

        def _add(f: Callable[[], T]) -> Callable[[], T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = f
            return f

        return _add(factory) if factory is not None else _add

    def __contains__(self, name: str) -> bool:
        self._load_providers()
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        self._load_providers()
        return sorted(self._factories)

    def get(self, name: str) -> T:
        self._load_providers()
        try:
            factory = self._factories[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names()) or '(none registered)'}"
            ) from None
        return factory()
