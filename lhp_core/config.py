"""Where lhp reads and writes on disk, controlled by environment variables.

``LHP_DATA_MIRROR``
    A folder laid out like ``shared/data`` (one sub-folder per dataset). Files are
    resolved there before any download is attempted.
``LHP_CACHE``
    Root for downloaded data, trained suites and sweep results
    (default ``~/.cache/lhp``).
"""
from __future__ import annotations

import os
from pathlib import Path


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
