"""Where lhp reads and writes on disk, controlled by environment variables.

``LHP_DATA_MIRROR``
    A folder laid out like ``shared/data`` (one sub-folder per dataset). Files are
    resolved there before any download is attempted.
``LHP_CACHE``
    Root for downloaded data, trained suites and sweep results
    (default ``~/.cache/lhp``).
``LHP_SUITES``
    Parent folder of locally trained suites (default ``$LHP_CACHE/suites``).
``LHP_DTYPE``
    Precision of forward passes where a call names none (:data:`DTYPE_NAMES`; default
    ``float32``). ``lhp book`` sets it in each chapter's kernel from the profile's ``dtype``
    (the ``pythia`` profile runs bfloat16); the precision is part of every result's cache key.
``LHP_SUITE_OPTIONS``
    What a suite without a training record is, for suites named by id or path where a call gives
    no options: JSON ``{"<suite>": {"sequence_length": 128}}`` (the options of
    :func:`lhp_core.suites.get_suite`). ``lhp book --suite S --seq-len N`` (``--tokens-per-step``,
    ``--revisions``, ``--world-size``) sets it in each chapter's kernel, so every study reads ``S``
    as the command line described it.

A relative path means relative to the directory lhp was started in: :func:`pin_paths` makes
them absolute before notebook kernels, which run in ``book/``, inherit them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PATH_VARS = ("LHP_DATA_MIRROR", "LHP_CACHE", "LHP_SUITES")
DTYPE_VAR = "LHP_DTYPE"
SUITE_OPTIONS_VAR = "LHP_SUITE_OPTIONS"
#: Precisions a checkpoint can run in (:data:`lhp_core.checkpoints.DTYPES` maps them to torch dtypes).
DTYPE_NAMES = ("float32", "bfloat16", "float16")


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


def default_dtype() -> str:
    """The precision forward passes run in where a call names none: ``LHP_DTYPE``, else ``float32``."""
    value = os.environ.get(DTYPE_VAR) or "float32"
    if value not in DTYPE_NAMES:
        raise ValueError(f"{DTYPE_VAR}={value!r} is not a precision lhp runs in; "
                         f"set it to one of {', '.join(DTYPE_NAMES)}")
    return value


@contextmanager
def using_dtype(dtype: str | None) -> Iterator[None]:
    """Within the block, calls naming no precision run in ``dtype`` (None: leave ``LHP_DTYPE`` as it is).

    What :func:`lhp_core.studies.timeline.run` uses to read the cache a profile's chapters filled in the
    profile's precision.
    """
    if dtype is None:
        yield
        return
    before = os.environ.get(DTYPE_VAR)
    os.environ[DTYPE_VAR] = dtype
    try:
        default_dtype()
        yield
    finally:
        if before is None:
            os.environ.pop(DTYPE_VAR, None)
        else:
            os.environ[DTYPE_VAR] = before


def suite_options(suite: str) -> dict[str, Any]:
    """The options ``LHP_SUITE_OPTIONS`` gives ``suite`` (the id or path exactly as written), else ``{}``.

    Raises
    ------
    ValueError
        The variable is set but is not a JSON object of objects.
    """
    raw = os.environ.get(SUITE_OPTIONS_VAR)
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except json.JSONDecodeError as err:
        table, why = None, f"not JSON ({err})"
    else:
        why = "not a JSON object of objects"
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ValueError(f"{SUITE_OPTIONS_VAR} is {why}; set it to {{\"SUITE\": {{\"tokens_per_step\": N}}}} "
                         "or unset it")
    return dict(table.get(suite, {}))
