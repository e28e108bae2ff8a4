"""Change points and peaks: planted truths recovered, exact search agrees with ruptures."""
from __future__ import annotations

import numpy as np
import pytest
import ruptures as rpt

from lhp_core.metrics import changepoint as cp

# Pythia-like schedule: log-spaced then even.
STEPS = np.unique(np.r_[0, 2 ** np.arange(10), np.arange(1000, 20001, 1000)]).astype(float)


def test_mean_shift_matches_ruptures_dynp():
    rng = np.random.default_rng(0)
    for trial in range(5):
        y = rng.normal(size=30) + np.r_[np.zeros(11 + trial), np.full(19 - trial, 1.5)]
        k, fitted = cp.mean_shift(y)
        bkp = rpt.Dynp(model="l2", min_size=2, jump=1).fit(y).predict(n_bkps=1)[0]
        assert k == bkp
        assert fitted[:k] == pytest.approx(np.full(k, y[:k].mean()))


def test_planted_level_shift_recovered_with_covering_interval():
    rng = np.random.default_rng(1)
    true = 512.0
    y = np.where(STEPS >= true, 0.6, 0.05) + rng.normal(scale=0.05, size=len(STEPS))
    res = cp.changepoint(STEPS, y, kind="mean", n_boot=300)
    assert res.step == true
    assert res.covers(true) and res.hi - res.lo <= 3 * true


def test_sharp_level_shift_interval_spans_the_checkpoint_gap():
    """Every resample puts a clean jump at the same saved step; the change is then known only to
    lie after the step before it, so the interval is that gap, not one point."""
    rng = np.random.default_rng(3)
    y = np.where(STEPS >= 3000, 1.0, 0.0) + rng.normal(scale=0.001, size=len(STEPS))
    res = cp.changepoint(STEPS, y, kind="mean", n_boot=200)
    assert res.step == 3000 and set(res.boot) == {3000.0}
    assert (res.lo, res.hi) == (2000.0, 3000.0)
    assert res.covers(2000) and res.covers(3000) and not res.covers(1000)


def test_planted_hinge_recovered_with_covering_interval():
    rng = np.random.default_rng(2)
    true = 1000.0
    x = np.log10(STEPS + 1)
    y = 5 - 0.1 * x - 1.2 * np.maximum(x - np.log10(true + 1), 0) + rng.normal(scale=0.03, size=len(x))
    res = cp.changepoint(STEPS, y, kind="slope", n_boot=200)
    assert abs(np.log10(res.step + 1) - np.log10(true + 1)) < 0.1
    assert res.covers(true)
    assert res.lo < res.step < res.hi


def test_peak_of_planted_curve_and_its_interval():
    rng = np.random.default_rng(3)
    x = np.log10(STEPS + 1)
    curve = 0.02 * np.exp(-((x - 3.0) ** 2) / 0.3)  # peaks at step ~1000
    per_word = curve[:, None] + rng.normal(scale=0.05, size=(len(STEPS), 2000))
    res = cp.peak(STEPS, per_word, n_boot=300)
    assert res.step == 1000.0
    assert res.covers(1000.0) and res.lo >= 256 and res.hi <= 4000
    assert res.value == pytest.approx(per_word.mean(1).max())


def test_bad_input_errors():
    with pytest.raises(ValueError, match="at least 4"):
        cp.changepoint([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="unknown kind"):
        cp.changepoint(STEPS, STEPS, kind="jump")
    with pytest.raises(ValueError, match="NaN"):
        cp.peak([1, 2], np.array([[1.0, np.nan], [1.0, 2.0]]))
