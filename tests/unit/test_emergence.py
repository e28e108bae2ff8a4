"""Collapse and threshold fits against statsmodels, scipy and planted synthetic truths."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import xarray as xr

from lhp_core.metrics import emergence as em


def _sizes(rng: np.random.Generator, shift: float = 0.0, noise: float = 0.01) -> pd.DataFrame:
    """Three 'sizes' whose performance is one curve of loss, optionally shifted per size."""
    rows = []
    for g, (lo, hi) in enumerate([(3.0, 6.0), (2.5, 5.5), (2.0, 5.0)]):
        x = rng.uniform(lo, hi, 40)
        y = 0.25 + 0.6 * (1 / (1 + np.exp(2 * (x - 3.5)))) + shift * g + rng.normal(0, noise, x.size)
        rows.append(pd.DataFrame({"model": f"m{g}", "loss": x, "value": y}))
    return pd.concat(rows, ignore_index=True)


def test_collapse_r2_and_f_test_match_statsmodels() -> None:
    df = _sizes(np.random.default_rng(0), shift=0.05)
    res = em.collapse(df, n_knots=2)
    xs = (df["loss"] - df["loss"].mean()) / df["loss"].std(ddof=0)
    knots = np.quantile(xs, [1 / 3, 2 / 3])
    X = em.spline_basis(xs.to_numpy(), knots)
    shared = sm.OLS(df["value"].to_numpy(), X).fit()
    assert res.r2_shared == pytest.approx(shared.rsquared, abs=1e-10)
    # full model = separate coefficients per size: block design
    blocks = [X * (df["model"].to_numpy() == m)[:, None] for m in ["m0", "m1", "m2"]]
    full = sm.OLS(df["value"].to_numpy(), np.hstack(blocks)).fit()
    assert res.r2_per_group == pytest.approx(1 - full.ssr / shared.centered_tss, abs=1e-10)
    f, p, _ = full.compare_f_test(shared)
    assert res.f_stat == pytest.approx(f, rel=1e-8)
    assert res.p_value == pytest.approx(p, rel=1e-6, abs=1e-300)


def test_collapse_separates_collapsed_from_shifted_sizes() -> None:
    good = em.collapse(_sizes(np.random.default_rng(1), shift=0.0))
    bad = em.collapse(_sizes(np.random.default_rng(1), shift=0.15))
    assert good.collapse_ratio > 0.85 and good.p_value > 0.001
    assert good.r2_leave_one_out > 0.95
    assert bad.collapse_ratio < 0.2 and bad.p_value < 1e-10
    assert bad.r2_leave_one_out < good.r2_leave_one_out - 0.1


def test_collapse_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="need >= 2 values"):
        em.collapse(pd.DataFrame({"model": ["a"] * 5, "loss": np.arange(5.0), "value": np.arange(5.0)}))
    with pytest.raises(ValueError, match="columns"):
        em.collapse(pd.DataFrame({"x": [1]}))


def test_hinge_slope_at_fixed_tau_matches_ols() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(2, 6, 80)
    y = em.hinge(x, 4.0, 0.3, 0.2) + rng.normal(0, 0.02, x.size)
    fit = em._hinge_at(x, y, 4.0, None)
    ols = sm.OLS(y, sm.add_constant(np.clip(4.0 - x, 0, None))).fit()
    assert fit.level == pytest.approx(ols.params[0], abs=1e-10)
    assert fit.slope == pytest.approx(ols.params[1], abs=1e-10)
    assert fit.rss == pytest.approx(ols.ssr, rel=1e-10)
    fixed = em._hinge_at(x, y, 4.0, 0.3)
    ols0 = sm.OLS(y - 0.3, np.clip(4.0 - x, 0, None)).fit()
    assert fixed.slope == pytest.approx(ols0.params[0], abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_threshold_recovered_with_covering_interval(seed: int) -> None:
    """Truth τ = 4.2; the estimate is within 0.15 and the 95% bootstrap interval covers it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(2.0, 7.0, 120)
    y = em.hinge(x, 4.2, 0.25, 0.15) + rng.normal(0, 0.02, x.size)
    th = em.bootstrap_threshold(x, y, chance=0.25, n_boot=150, seed=seed)
    assert abs(th.tau - 4.2) < 0.15
    assert th.lo <= 4.2 <= th.hi
    assert th.hi - th.lo < 0.6
    assert th.slope == pytest.approx(0.15, abs=0.02)
    free = em.fit_hinge(x, y)
    assert free.level == pytest.approx(0.25, abs=0.01)


def test_logistic_recovers_planted_midpoint() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(2, 7, 150)
    y = em.logistic(x, 4.0, 0.3, 0.25, 0.9) + rng.normal(0, 0.01, x.size)
    fit = em.fit_logistic(x, y, chance=0.25)
    assert fit["tau"] == pytest.approx(4.0, abs=0.05)
    assert fit["width"] == pytest.approx(0.3, abs=0.05)
    assert fit["top"] == pytest.approx(0.9, abs=0.02)


def test_is_emergent_flags_threshold_not_smooth_rise() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(2, 7, 100)
    band = em.chance_band(0.25, 500)
    assert band == pytest.approx(2 * np.sqrt(0.25 * 0.75 / 500))
    y_emerg = em.hinge(x, 4.0, 0.25, 0.2) + rng.normal(0, band / 4, x.size)
    tau = em.fit_hinge(x, y_emerg, 0.25).tau
    assert em.is_emergent(x, y_emerg, 0.25, band, tau)
    y_smooth = 0.25 + 0.1 * (7 - x)  # above chance at every loss below 7
    tau_s = em.fit_hinge(x, y_smooth, 0.25).tau
    assert not em.is_emergent(x, y_smooth, 0.25, band, tau_s)
    assert not em.is_emergent(x, np.full_like(x, 0.25), 0.25, band, 4.0)  # never leaves chance


def test_fit_hinge_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="at least 7 finite points"):
        em.fit_hinge(np.arange(4.0), np.arange(4.0))


def test_loss_table_joins_training_record() -> None:
    rec = xr.Dataset(
        {"val_loss": (("model", "step"), np.array([[5.0, 4.0], [4.5, 3.0]]))},
        coords={"model": ["s", "m"], "step": [0, 10]},
    )
    metrics = pd.DataFrame({"model": ["s", "m", "m"], "step": [10, 0, 10], "task": "t", "accuracy": [0.1, 0.2, 0.3]})
    out = em.loss_table(metrics, rec)
    assert out["loss"].tolist() == [4.0, 4.5, 3.0]
    with pytest.raises(ValueError, match="no val_loss in the training record"):
        em.loss_table(pd.DataFrame({"model": ["s"], "step": [99]}), rec)


def test_pythia_loss_table_uses_log_lambada_perplexity() -> None:
    ev = pd.DataFrame({
        "model": ["70m"] * 4, "deduped": False, "shots": 0, "step": [1000, 1000, 2000, 2000],
        "task": ["lambada_openai", "piqa", "lambada_openai", "piqa"],
        "metric": ["ppl", "acc", "ppl", "acc"], "value": [100.0, 0.55, 20.0, 0.6], "stderr": 0.01,
    })
    out = em.pythia_loss_table(ev)
    piqa = out[out["task"] == "piqa"].sort_values("step")
    assert np.allclose(piqa["loss"], np.log([100.0, 20.0]))
    assert piqa["value"].tolist() == [0.55, 0.6]


def test_mean_task_and_variant_guard() -> None:
    ev = pd.DataFrame({
        "model": "70m", "deduped": False, "shots": 0, "step": 1000, "variant": "main",
        "task": ["hendrycksTest-a", "hendrycksTest-b", "piqa"], "metric": "acc",
        "value": [0.2, 0.3, 0.6], "stderr": [0.03, 0.04, 0.01],
    })
    m = em.mean_task(ev, "hendrycksTest-", "mmlu")
    assert len(m) == 1 and m["task"].iloc[0] == "mmlu"
    assert m["value"].iloc[0] == pytest.approx(0.25)
    assert m["stderr"].iloc[0] == pytest.approx(0.05 / 2)
    with pytest.raises(ValueError, match="mixes variants"):
        em.pythia_loss_table(pd.concat([ev, ev.assign(variant="batch")]))
