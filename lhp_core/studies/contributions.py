"""Who contributes curves and events to the Timeline: a registry that imports no study.

A contributor is a name, a ``run(**params)`` function and the book chapter whose profile parameters
it takes (:func:`lhp_core.profiles.parameters`). ``run`` returns an object with

* ``curves() -> list[lhp_core.metrics.events.Curve]``: the measures it follows over training, each
  name written once, where the measure is defined;
* ``events() -> pandas.DataFrame``: exactly :data:`lhp_core.metrics.events.COLUMNS`, each event's
  ``measure`` the name of one of its curves.

Built-in studies register themselves at the bottom of their own module; a new measure registers from
wherever it is defined (``CONTRIBUTING.md``, "Adding a measure"). :mod:`lhp_core.studies.timeline`
re-exports :func:`register`, :func:`unregister` and :func:`contributors` and iterates over them. This
module imports no study, so a study can register without importing the Timeline.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Contribution:
    """One registered contributor: its ``name``, its ``run`` and the ``chapter`` whose parameters it takes."""

    name: str
    run: Callable[..., Any]
    chapter: str


_REGISTERED: dict[str, Contribution] = {}


def register(name: str, run: Callable[..., Any], *, chapter: str | None = None, replace: bool = False) -> None:
    """Add a contributor to the Timeline.

    Parameters
    ----------
    name
        The contributor's id (a study's is its chapter's name).
    run
        ``run(**params)`` returning an object with ``curves()`` and ``events()``; it is called with the
        parameters of ``chapter`` at the Timeline's profile that its signature accepts.
    chapter
        The chapter of ``book/profiles.yml`` whose parameters it takes; default ``name``.
    replace
        Replace a contributor already registered under ``name`` (otherwise that is an error).
    """
    if not callable(run):
        raise TypeError(f"register({name!r}, run): run must be callable, got {type(run).__name__}")
    old = _REGISTERED.get(name)
    if old is not None and not replace and old.run is not run:
        raise ValueError(f"a Timeline contributor named {name!r} is already registered ({old.run.__module__}."
                         f"{old.run.__qualname__}); pass replace=True or choose another name")
    _REGISTERED[name] = Contribution(name, run, chapter or name)


def unregister(name: str) -> None:
    """Remove the contributor ``name``."""
    if name not in _REGISTERED:
        raise KeyError(f"no Timeline contributor named {name!r}; registered: {', '.join(_REGISTERED) or 'none'}")
    del _REGISTERED[name]


def contributors() -> dict[str, Contribution]:
    """The registered contributors by name, in the order they registered (a copy)."""
    return dict(_REGISTERED)
