"""lhp: how language models develop over training, and how that lines up with humans.

The public entry points are re-exported lazily so that ``import lhp_core`` stays
cheap (no torch import) for command-line tools and notebooks that only read results.
The sweep itself is ``lhp_core.sweep.sweep``: a lazy ``lhp_core.sweep`` function would be
replaced by the ``lhp_core.sweep`` module as soon as anything imports that module.
"""
import importlib as _importlib

__version__ = "0.2.0.dev0"

_LAZY = {
    "open_results": "lhp_core.store",
    "load": "lhp_core.checkpoints",
    "get_suite": "lhp_core.suites",
    "fetch": "lhp_core.data.fetch",
}

__all__ = ["__version__", "fetch", "get_suite", "load", "open_results"]  # the keys of _LAZY


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lhp_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy exports, for tab completion, beside whatever is loaded (submodules imported so far).
    return sorted(set(__all__) | {n for n in globals() if not n.startswith("_")})
