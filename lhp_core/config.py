"""Where lhp reads and writes on disk, controlled by environment variables.

``LHP_DATA_MIRROR``
    A folder laid out like ``shared/data`` (one sub-folder per dataset). Files are
    resolved there before any download is attempted.
``LHP_CACHE``
    Root for downloaded data, trained suites and sweep results
    (default ``~/.cache/lhp``).
``LHP_SUITES``
    Parent folder of locally trained suites (default ``$LHP_CACHE/suites``).

A relative path means relative to the directory lhp was started in: :func:`pin_paths` makes
them absolute before notebook kernels, which run in ``book/``, inherit them.
"""
from __future__ import annotations

import os
from pathlib import Path

PATH_VARS = ("LHP_DATA_MIRROR", "LHP_CACHE", "LHP_SUITES")


def pin_paths() -> None:
    """Rewrite relative ``PATH_VARS`` in ``os.environ`` as absolute paths against the current directory.

    ``LHP_DATA_MIRROR=../shared/data lhp book`` is written from the repository root, but the
    chapters' kernels run in ``book/``, where the same relative path names another folder.
    """
    for var in PATH_VARS:
        value = os.environ.get(var)
        if value and not Path(value).expanduser().is_absolute():
            os.environ[var] = str(Path(value).expanduser().absolute())


def cache_dir() -> Path:
    return Path(os.environ.get("LHP_CACHE", Path.home() / ".cache" / "lhp")).expanduser()


def data_mirror() -> Path | None:
    value = os.environ.get("LHP_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def suites_dir() -> Path:
    """Default parent folder of locally trained suites (``<cache>/suites/<suite-id>``)."""
    return Path(os.environ.get("LHP_SUITES", cache_dir() / "suites")).expanduser()


def results_dir() -> Path:
    return cache_dir() / "results"
