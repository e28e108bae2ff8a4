"""Dataset tables read exactly as their files write them.

pandas' default C float parser before pandas 3.1 can land one ulp away from the decimal in the file
(``0.36760696771927076`` -> ``0.3676069677192707``); its ``round_trip`` parser is exact, and from
pandas 3.1 on it is the default (the option is then deprecated). :func:`read_csv` asks for it only
where this pandas needs it, so every loader returns the file's values on every supported pandas.
"""
from __future__ import annotations

import io
from functools import cache
from typing import Any

import pandas as pd

#: A decimal the pre-3.1 default parser rounds wrongly.
_PROBE = "0.36760696771927076"


@cache
def _exact() -> dict[str, str]:
    parsed = pd.read_csv(io.StringIO(f"x\n{_PROBE}"))["x"].iloc[0]
    return {} if parsed == float(_PROBE) else {"float_precision": "round_trip"}


def read_csv(path, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv(path, **kwargs)`` with floats parsed exactly (module docstring)."""
    return pd.read_csv(path, **_exact(), **kwargs)
