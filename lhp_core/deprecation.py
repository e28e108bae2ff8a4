"""One release of warning before a public default, name or function changes under a caller.

A caller who relied on an old default gets different numbers without a word unless the library
says so. The rule (CONTRIBUTING, CHANGELOG.md): for one release after a default changes, a call
that relies on it gets a :class:`ChangedDefaultWarning` naming the old behaviour and the argument
that keeps it; a renamed or removed public function gets a :class:`RenamedWarning` naming what
replaces it. Passing the argument explicitly (either value) silences the warning.

Functions mark "not passed" with :data:`DEFAULT`::

    def ppp(..., exclusions: str | Default = DEFAULT):
        exclusions = changed_default("ppp", "exclusions", exclusions, new="aoyama_wilcox",
                                     old="lhp", since="0.2.0", keep="exclusions='lhp'")
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEFAULT", "ChangedDefaultWarning", "Default", "RenamedWarning", "changed_default", "is_default",
           "renamed"]

T = TypeVar("T")


class ChangedDefaultWarning(FutureWarning):
    """A call relied on a default that changed in a recent release; its numbers differ from before.

    A ``FutureWarning`` so that it shows to users (``DeprecationWarning`` is hidden outside
    ``__main__``).
    """


class RenamedWarning(FutureWarning):
    """A public function was renamed or removed; the old name works for one more release."""


class Default:
    """The type of :data:`DEFAULT`: an argument the caller did not pass."""

    _instance: Default | None = None

    def __new__(cls) -> Default:
        # One instance, so that ``x is DEFAULT`` holds after copies and pickling.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


DEFAULT = Default()


def is_default(value: object) -> bool:
    """Whether ``value`` is :data:`DEFAULT` (the caller did not pass the argument)."""
    return value is DEFAULT


def changed_default(function: str, argument: str, value: T | Default, *, new: T, old: Any, since: str,
                    keep: str, stacklevel: int = 3) -> T:
    """Resolve an argument whose default changed, warning only when the caller relied on it.

    Parameters
    ----------
    function
        Public name of the function, e.g. ``"reading.ppp"``.
    argument
        The argument's name.
    value
        What the caller passed, or :data:`DEFAULT`.
    new
        The current default, returned when ``value`` is :data:`DEFAULT`.
    old
        The default before ``since``, named in the warning.
    since
        The release that changed it.
    keep
        The call that keeps the old behaviour, e.g. ``"exclusions='lhp'"``.
    stacklevel
        Passed to :func:`warnings.warn`; 3 points at the caller of the function that calls this.

    Returns
    -------
    ``value``, or ``new`` where the caller did not pass it.
    """
    if not is_default(value):
        return value  # type: ignore[return-value]
    warnings.warn(f"{function}: the default {argument}={new!r} replaced {argument}={old!r} in {since}, so results "
                  f"differ from earlier releases; pass {keep} for the old behaviour, or {argument}={new!r} to "
                  "silence this warning", ChangedDefaultWarning, stacklevel=stacklevel)
    return new  # type: ignore[return-value]


def renamed(old: str, new: Callable[..., T], since: str) -> Callable[..., T]:
    """The old public name of a renamed function: calls ``new``, warning that ``old`` goes next release.

    Parameters
    ----------
    old
        The old name as callers wrote it, e.g. ``"reading.ppp_over_training"``.
    new
        The function that replaces it (its qualified name is given in the warning).
    since
        The release that renamed it.

    Returns
    -------
    A function with ``new``'s signature and docstring that warns with :class:`RenamedWarning`.
    """
    target = f"{new.__module__}.{new.__qualname__}"

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> T:
        warnings.warn(f"{old} was renamed {target} in {since} and goes in the next release; call {target}",
                      RenamedWarning, stacklevel=2)
        return new(*args, **kwargs)

    alias.__doc__ = f"Deprecated alias of :func:`{target}` (renamed in {since}).\n\n{new.__doc__ or ''}"
    return alias
