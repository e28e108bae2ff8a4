"""Where a result came from: the lhp commit, library versions and a hash of its configuration.

Every stored result (training records, sweep stores, measure caches) carries these as flat attrs,
so a number in the book can be traced to the code and settings that produced it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"


def git_commit() -> str:
    """The lhp checkout's commit, or ``"unknown"`` when not run from a git checkout (an installed wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else UNKNOWN


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of a configuration mapping, independent of key order (values through ``json``, else ``str``)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def versions() -> dict[str, str]:
    """Versions of lhp and of the libraries whose numerics a result depends on, as flat attrs."""
    out = {}
    for name, dist in (("lhp_version", "lhp"), ("torch_version", "torch"), ("transformers_version", "transformers")):
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            out[name] = UNKNOWN
    return out
