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


def test_changepoint_events_find_a_level_shift_by_hand() -> None:
    """A clean step from 0 to 1 at step 40 (one model) and a flat curve (the other): the shift is found at 40,
    located between the saved steps 20 and 40 (no residual to resample, so nothing wider), tokens are the
    curve's own, the flat model has an unfound row, and ``min_jump`` above the jump leaves it unfound."""
    import xarray as xr

    from lhp_core import schema
    from lhp_core.metrics.events import Curve, changepoint_events, tokens_per_step

    steps = [0, 10, 20, 40, 80, 160]
    vals = np.array([[0, 0, 0, 1, 1, 1], [2, 2, 2, 2, 2, np.nan]], dtype=float)
    tokens = np.array([np.array(steps) * 50.0, np.array(steps) * 8.0])
    curve = Curve("toy", "nats", xr.DataArray(vals, dims=(schema.MODEL, schema.STEP), coords={
        schema.MODEL: ["a", "b"], schema.STEP: steps, schema.TOKENS_SEEN: ((schema.MODEL, schema.STEP), tokens)}))
    assert tokens_per_step(curve).to_dict() == {"a": 50.0, "b": 8.0}
    ev = changepoint_events(curve, "toy study", min_jump=0.5, run_seed=3)
    assert list(ev.columns) == COLUMNS and list(ev.model) == ["a", "b"] and (ev.seed == 3).all()
    a = ev.iloc[0]
    assert (a.found, a.step, a.step_lo, a.step_hi, a.tokens_seen) == (True, 40.0, 20.0, 40.0, 2000.0)
    assert a.measure == "toy" and a.study == "toy study" and a.kind == "transition"
    assert not ev.iloc[1].found and np.isnan(ev.iloc[1].step)
    assert not changepoint_events(curve, "toy study", min_jump=1.5).found.any()
