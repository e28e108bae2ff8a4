"""Encoding models against scikit-learn on the same folds, and the permutation null."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lhp_core import measures
from lhp_core.metrics import brain

ALPHAS = np.logspace(-2, 4, 13)


def _data(n: int = 120, p: int = 15, noise: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, size=p) + rng.normal(size=p)
    w = rng.normal(size=p)
    y = X @ w * 0.3 + noise * rng.normal(size=n) + 2.0
    return X, y


@pytest.mark.parametrize("n,p", [(120, 15), (60, 90)])  # n > p (svd) and p > n (gram) regimes
def test_cv_predictions_equal_sklearn_ridgecv(n: int, p: int) -> None:
    X, y = _data(n, p)
    X[:, 3] = 7.0  # a constant feature: both sides must keep its scale at 1
    ref = cross_val_predict(
        make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)), X, y, cv=KFold(10, shuffle=True, random_state=3)
    )
    pred, chosen, fold = brain.cross_val_predictions(X, y, n_folds=10, alphas=ALPHAS, seed=3)
    np.testing.assert_allclose(pred[:, 0], ref, atol=1e-6, rtol=0)
    sc = brain.encoding_score(X, y, alphas=ALPHAS, seed=3, n_boot=50)
    assert abs(sc.r_pooled - np.corrcoef(ref, y)[0, 1]) < 1e-6
    folds = KFold(10, shuffle=True, random_state=3).split(X)
    r_within = np.mean([np.corrcoef(ref[te], y[te])[0, 1] for _, te in folds])
    assert abs(sc.r - r_within) < 1e-6


def test_chosen_alpha_equals_sklearn() -> None:
    X, y = _data(80, 10, noise=3.0)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(X, y)
    _, a = brain.fit_predict(X, y, X[:5], alphas=ALPHAS)
    assert a[0] == model[-1].alpha_


def test_torch_path_equals_numpy(device: str) -> None:
    X, y = _data(90, 20)
    p_np, a_np, _ = brain.cross_val_predictions(X, y, alphas=ALPHAS, backend="numpy")
    p_t, a_t, _ = brain.cross_val_predictions(X, y, alphas=ALPHAS, backend="torch", device=device)
    np.testing.assert_allclose(p_t, p_np, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(a_t, a_np)


def test_permutation_null_centred_on_zero_and_real_signal_beats_it() -> None:
    X, y = _data(150, 8, noise=1.0, seed=1)
    sc = brain.encoding_score(X, y, alphas=ALPHAS, n_permutations=200, n_boot=200, seed=0)
    # Each null draw averages 10 within-fold r over 15 sentences: sd ~ 0.26/sqrt(10) ~ 0.08;
    # the mean of 200 draws has sd ~ 0.006, so 0.025 is four standard errors.
    assert abs(np.mean(sc.null)) < 0.025
    assert 0.03 < np.std(sc.null) < 0.15
    assert sc.r_pooled < sc.r + 0.05  # pooled and within-fold agree when there is signal
    assert sc.r > np.quantile(sc.null, 0.99)
    assert sc.p_value == pytest.approx(1 / 201)
    assert sc.r_lo < sc.r < sc.r_hi


def test_bootstrap_interval_matches_fisher_z_for_bivariate_normal() -> None:
    rng = np.random.default_rng(5)
    n, rho = 400, 0.5
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    lo, hi = brain.bootstrap_r_interval(a, b, n_boot=4000, seed=1)
    r = np.corrcoef(a, b)[0, 1]
    z_lo, z_hi = np.tanh(np.arctanh(r) + np.array([-1, 1]) * 1.96 / np.sqrt(n - 3))
    # Percentile bootstrap and Fisher z agree to about Monte-Carlo error (~0.01) for normal data.
    assert abs(lo - z_lo) < 0.02 and abs(hi - z_hi) < 0.02


def test_pearson_columns_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    ref = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(brain.pearson_columns(a, b), ref, atol=1e-12)
    assert np.isnan(brain.pearson_columns(np.ones((5, 1)), b[:5, :1])[0])


def test_transfer_score_equals_sklearn_on_baseline_split() -> None:
    X, y = _data(100, 12, seed=2)
    mask = np.arange(100) < 60
    r, pred = brain.transfer_score(X, y, mask, alphas=ALPHAS)
    ref = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(X[mask], y[mask]).predict(X[~mask])
    np.testing.assert_allclose(pred[~mask], ref, atol=1e-8)
    assert np.all(np.isnan(pred[mask]))
    assert r == pytest.approx(np.corrcoef(ref, y[~mask])[0, 1], abs=1e-10)


def test_score_layers_finds_the_informative_layer_and_stacks() -> None:
    rng = np.random.default_rng(0)
    n, d = 120, 6
    y = rng.normal(size=n)
    noise = rng.normal(size=(n, 3, d))
    noise[:, 1, 0] += 2 * y  # only layer 1 carries the response
    cond = np.where(np.arange(n) % 2 == 0, "baseline", np.where(np.arange(n) % 4 == 1, "drive", "suppress"))
    feats = xr.DataArray(noise, dims=("stimulus", "layer", "hidden"), coords={"layer": [0, 1, 2]})
    ds = brain.score_layers(feats, y, cond, n_boot=50, n_permutations=20, alphas=ALPHAS)
    assert int(ds.r.argmax("layer")) == 1 and ds.r.sel(layer=1) > 0.8 and abs(float(ds.r.sel(layer=0))) < 0.3
    assert ds.r_transfer.sel(layer=1) > 0.8
    assert ds.p_value.sel(layer=1) == pytest.approx(1 / 21)
    stacked = measures.stack({("a", 0): ds, ("a", 10): ds, ("b", 0): ds}, {"a": [0, 10], "b": [0]})
    assert dict(stacked.r.sizes) == {"model": 2, "step": 2, "layer": 3}
    best = brain.best_layer_curve(stacked)
    assert int(best.best_layer.sel(model="a", step=10)) == 1
    assert np.isnan(float(best.r.sel(model="b", step=10)))
    prof = brain.layer_profile(stacked)
    assert float(prof.sel(model="a", step=0, layer=1)) == pytest.approx(1.0)


def test_bad_input_errors_name_the_problem() -> None:
    X, y = _data(30, 4)
    with pytest.raises(ValueError, match="one response per sentence"):
        brain.cross_val_predictions(X, y[:-1])
    with pytest.raises(ValueError, match="positive"):
        brain.cross_val_predictions(X, y, alphas=[0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        brain.cross_val_predictions(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="conditions present"):
        brain.score_layers(X[:, None, :], y, np.array(["D"] * 30), n_boot=20)


def test_inspector_tables_match_the_scores() -> None:
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 60
    y = rng.normal(size=n)
    feats = rng.normal(size=(n, 2, 5))
    feats[:, 1, 0] += 3 * y
    cond = np.array(["baseline", "drive", "suppress"] * 20)
    ds = brain.score_layers(feats, y, cond, n_boot=20, alphas=ALPHAS)
    stacked = measures.stack({("m", 5): ds}, {"m": [5]})
    table = pd.DataFrame({"sentence": [f"s{i}" for i in range(n)], "response": y, "condition": cond})
    pred = brain.prediction_table(stacked, table, "m", 5, 1)
    np.testing.assert_array_equal(pred.predicted.values, ds.prediction.sel(layer=1).values)
    assert pred.predicted_transfer[cond == "baseline"].isna().all()
    summ = brain.condition_summary(pred)
    assert list(summ.condition) == ["baseline", "drive", "suppress"] and (summ.n == 20).all()
    g = pred[pred.condition == "drive"]
    assert summ.r_within[1] == pytest.approx(np.corrcoef(g.predicted, g.measured)[0, 1], abs=1e-12)
    with pytest.raises(KeyError, match="available"):
        brain.prediction_table(stacked, table, "m", 7, 1)
    chart = brain.inspect_predictions(stacked, table, "m", 5, 1)
    spec = chart.to_dict()
    assert f"r = {float(ds.r.sel(layer=1)):.3f}" in str(spec["title"])
    assert "predicted" in str(spec) and "measured" in str(spec)


def test_stratified_subset_keeps_condition_shares() -> None:
    import pandas as pd

    t = pd.DataFrame({"condition": ["baseline"] * 1000 + ["drive"] * 500 + ["suppress"] * 500, "x": range(2000)})
    s = brain.stratified_subset(t, 400, seed=0)
    assert s.condition.value_counts().to_dict() == {"baseline": 200, "drive": 100, "suppress": 100}
    assert s.x.is_monotonic_increasing and s.x.is_unique
    assert brain.stratified_subset(t, 7).shape[0] == 7
    assert brain.stratified_subset(t, None).shape[0] == 2000
    with pytest.raises(KeyError, match="columns"):
        brain.stratified_subset(t, 10, by="cond")
