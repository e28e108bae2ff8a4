"""Timeline event tables: exact columns, tokens from steps, and the found/NaN contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lhp_core.metrics.events import COLUMNS, POOLED, event_table


def _rows(**change) -> pd.DataFrame:
    base = {"study": ["s", "s"], "measure": ["m", "m"], "model": ["pythia-70m"] * 2, "seed": [1, POOLED],
            "kind": ["peak", "peak"], "step": [512.0, np.nan], "step_lo": [256.0, np.nan],
            "step_hi": [1000.0, np.nan], "found": [True, False]}
    base.update(change)
    return pd.DataFrame(base)


def test_columns_and_tokens() -> None:
    out = event_table(_rows())
    assert list(out.columns) == COLUMNS
    assert out.loc[0, "tokens_seen"] == 512 * 2_097_152
    assert (out.loc[0, "tokens_lo"], out.loc[0, "tokens_hi"]) == (256 * 2_097_152, 1000 * 2_097_152)
    assert out.loc[1, ["step", "tokens_seen", "tokens_hi"]].isna().all()
    assert out["seed"].tolist() == [1, -1] and out["found"].dtype == bool
    assert event_table(_rows(), tokens_per_step=10).loc[0, "tokens_seen"] == 5120
    per_row = event_table(_rows(), tokens_per_step=np.array([np.nan, 10.0]))
    assert per_row[["tokens_seen", "tokens_lo", "tokens_hi"]].isna().all().all()  # unknown tokens per step


def test_contract_errors() -> None:
    with pytest.raises(ValueError, match="found=False must have NaN steps"):
        event_table(_rows(step=[512.0, 3.0]))
    with pytest.raises(ValueError, match="step_lo <= step <= step_hi"):
        event_table(_rows(step_lo=[600.0, np.nan]))
    with pytest.raises(ValueError, match="need finite step"):
        event_table(_rows(step_hi=[np.nan, np.nan]))
    with pytest.raises(TypeError, match="booleans"):
        event_table(_rows(found=[1, 0]))
    with pytest.raises(ValueError, match="lack columns"):
        event_table(_rows().drop(columns="kind"))
