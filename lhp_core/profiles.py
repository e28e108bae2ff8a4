"""Run sizes of the book's studies: ``book/profiles.yml``, read without the book.

A *profile* (``ci``, ``default``, ``gpu``, ``pythia``) holds ``common`` parameters every chapter takes (``suite``,
``models``, ``steps``, ``device``) and, under ``chapters``, per-chapter overrides (sample sizes and the
like). :func:`parameters` gives one chapter's: the common ones with its overrides on top. A study run
with them reads the cache its chapter filled; parameters a profile does not set take the defaults of the
study's ``run``, which equal the chapter's parameters cell (``tests/unit/test_book.py`` checks it).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lhp_core.config import DTYPE_NAMES

#: Parameters every profile gives every chapter.
COMMON_KEYS = ("suite", "models", "steps", "device")


class ProfileError(RuntimeError):
    """``book/profiles.yml`` is missing or inconsistent, or a profile is unknown."""


def repo_root() -> Path:
    """The folder holding ``_config.yml`` and ``book/`` (the source checkout)."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (Path.cwd(), *Path.cwd().parents, here):
        if (candidate / "_config.yml").is_file() and (candidate / "book" / "_toc.yml").is_file():
            return candidate
    raise ProfileError(
        "cannot find the book sources (_config.yml and book/_toc.yml); run from the lhp repository "
        "checkout, or pass the path of profiles.yml"
    )


def load(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Read ``book/profiles.yml`` (or ``path``) and check its shape.

    Returns
    -------
    dict
        Profile name -> ``{"common": {...}, "chapters": {chapter: {...}}, ...}``.
    """
    path = Path(path) if path is not None else repo_root() / "book" / "profiles.yml"
    if not path.is_file():
        raise ProfileError(f"{path} does not exist; pass the path of the book's profiles.yml")
    profiles = yaml.safe_load(path.read_text())
    if not isinstance(profiles, dict):
        raise ProfileError(f"{path} must map profile names (e.g. ci, default, gpu) to settings")
    for name, prof in profiles.items():
        missing = [k for k in COMMON_KEYS if k not in (prof or {}).get("common", {})]
        if missing:
            raise ProfileError(f"{path}: profile {name!r} lacks common parameters {missing}")
        if prof.get("dtype", "float32") not in DTYPE_NAMES:
            raise ProfileError(f"{path}: profile {name!r}: dtype {prof['dtype']!r} is not a precision lhp runs in; "
                               f"use one of {', '.join(DTYPE_NAMES)}")
        chapters = prof.get("chapters") or {}
        if not isinstance(chapters, dict):
            raise ProfileError(f"{path}: profile {name!r}: 'chapters' must map chapter names to parameter dicts")
    return profiles


def on_suite(params: Mapping[str, Any], suite: Mapping[str, Any] | None) -> dict[str, Any]:
    """A chapter's parameters moved onto another suite (``lhp book --suite``).

    ``suite`` holds ``suite`` and optionally ``models`` and ``steps``; they replace the profile's
    common values (on another suite than the profile's, models and steps not given are all the
    suite has: the profile's name the profile's suite). A ``*_suite`` parameter naming a companion
    of the profile's suite (reading's ``copyreg_suite``: ``<suite>-copyreg``) is moved to the same
    companion of the new suite where that suite exists, else set to None, and the study says why it
    goes on without it.
    """
    out = dict(params)
    if not suite:
        return out
    from lhp_core.suites import SuiteError, get_suite  # only when moving: reading profiles stays light

    old, new = str(params["suite"]), str(suite["suite"])
    out["suite"] = new
    for key in ("models", "steps"):
        if suite.get(key) is not None or new != old:
            out[key] = suite.get(key)
    for key, value in params.items():
        if key.endswith("_suite") and isinstance(value, str) and value and new != old:
            moved = new + value[len(old):] if value.startswith(old) else None
            try:
                out[key] = moved if moved is not None and get_suite(moved) else None
            except (SuiteError, FileNotFoundError, ValueError):  # no such companion: the study says so
                out[key] = None
    return out


def parameters(profile: str, chapter: str, profiles: Mapping[str, Any] | None = None,
               suite: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One chapter's parameters at ``profile``: the common ones, then the chapter's overrides (moved onto
    ``suite`` where given, :func:`on_suite`).

    Parameters
    ----------
    profile
        A profile of ``book/profiles.yml`` (``ci``, ``default``, ``gpu``).
    chapter
        A chapter name, e.g. ``"reading"``; a chapter without overrides gets the common parameters.
    profiles
        What :func:`load` returned (default: read ``book/profiles.yml``).
    suite
        ``{"suite": ..., "models": ..., "steps": ...}`` (``lhp book --suite``), or None.
    """
    profiles = load() if profiles is None else profiles
    if profile not in profiles:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(profiles)}")
    prof = profiles[profile]
    params = dict(prof["common"])
    params.update((prof.get("chapters") or {}).get(chapter) or {})
    return on_suite(params, suite)
