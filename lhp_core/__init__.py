"""lhp: how language models develop over training, and how that lines up with humans.

The public entry points are re-exported lazily so that ``import lhp_core`` stays
cheap (no torch import) for command-line tools and notebooks that only read results.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "open_results": "lhp_core.store",
    "load": "lhp_core.checkpoints",
    "get_suite": "lhp_core.suites",
    "sweep": "lhp_core.sweep",
    "fetch": "lhp_core.data.fetch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lhp_core' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
