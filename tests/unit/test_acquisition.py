"""BLiMP acquisition: sustained crossings on hand-built curves and a brute-force re-derivation on
the real file, Spearman against scipy, and the permutation p value against exact enumeration."""
from __future__ import annotations

from itertools import combinations, permutations, product

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lhp_core.data import pythia_blimp as pb
from lhp_core.metrics import acquisition as aq
from lhp_core.metrics.events import COLUMNS

STEPS = np.array([0, 8, 128, 1000, 10000, 143000])


def _brute(steps, acc, threshold: float) -> float:
    """First index from which every later accuracy is >= threshold, by checking each suffix."""
    for i in range(len(steps)):
        if all(a >= threshold for a in acc[i:]):
            return float(steps[i])
    return np.nan


@pytest.mark.parametrize(
    ("acc", "step", "previous"),
    [
        ([0.5, 0.55, 0.65, 0.58, 0.7, 0.8], 10000, 1000),  # crosses, dips back, crosses for good
        ([0.7, 0.7, 0.8, 0.9, 0.9, 0.9], 0, 0),  # above the threshold from initialisation
        ([0.5, 0.9, 0.9, 0.9, 0.9, 0.59], np.nan, np.nan),  # falls back below at the end: never
        ([0.5, 0.5, 0.5, 0.5, 0.5, 0.6], 143000, 10000),  # exactly at the threshold counts
    ],
)
def test_acquisition_step_of_hand_built_curves(acc, step, previous) -> None:
    got = aq.acquisition_step(STEPS, np.array(acc), 0.6)
    np.testing.assert_equal(got, (step, previous))
    np.testing.assert_equal(got[0], _brute(STEPS, acc, 0.6))


def _table(curves: dict[tuple[int, str], list[float]]) -> pd.DataFrame:
    meta = {"p1": ("syntax", "Island effects"), "p2": ("syntax", "Island effects"),
            "p3": ("semantics", "NPI licensing"), "p4": ("syntaxsemantics", "NPI licensing")}
    rows = [("pythia-160m", seed, int(s), *meta[par], par, a)
            for (seed, par), acc in curves.items() for s, a in zip(STEPS, acc)]
    return pd.DataFrame(rows, columns=["model", "seed", "step", "field", "phenomenon", "paradigm", "accuracy"])


def test_acquisition_dataset_and_phenomenon_means() -> None:
    rng = np.random.default_rng(0)
    curves = {(seed, p): list(np.clip(np.linspace(0.45, 0.95, 6) + rng.normal(0, 0.08, 6), 0, 1))
              for seed in (0, 1, 2) for p in ("p1", "p2", "p3", "p4")}
    curves[(1, "p3")] = [0.5] * 6  # never acquired by seed 1
    table = _table(curves)
    ds = aq.acquisition(table, margin=0.15)
    assert ds.attrs["threshold"] == pytest.approx(0.65)
    for (seed, p), acc in curves.items():
        expected = _brute(STEPS, acc, 0.65)
        np.testing.assert_equal(float(ds["acquisition_step"].sel(seed=seed, task=p)), expected)
        assert bool(ds["acquired"].sel(seed=seed, task=p)) == (not np.isnan(expected))
        assert float(ds["initial_accuracy"].sel(seed=seed, task=p)) == acc[0]
    assert ds["phenomenon"].sel(task="p4").item() == "NPI licensing"
    assert ds["field"].sel(task="p4").item() == "syntaxsemantics"
    assert int(ds["n_acquired"].sel(task="p3")) == int(sum(not np.isnan(_brute(STEPS, curves[(s, "p3")], 0.65))
                                                           for s in (0, 1, 2)))
    assert np.isnan(ds["median_step"].sel(task="p3"))  # seed 1 never acquired it
    steps = [_brute(STEPS, curves[(s, "p1")], 0.65) for s in (0, 1, 2)]
    if not np.isnan(steps).any():
        assert float(ds["median_step"].sel(task="p1")) == sorted(steps)[1]
        assert ((float(ds["first_step"].sel(task="p1")), float(ds["last_step"].sel(task="p1")))
                == (min(steps), max(steps)))
    for var in ds.data_vars:
        assert ds[var].attrs["units"] and ds[var].attrs["description"], var

    phen = aq.acquisition(table, margin=0.15, level="phenomenon")
    # NPI licensing sits under two fields: two units, not one
    assert sorted(phen["task"].values) == ["semantics/NPI licensing", "syntax/Island effects",
                                           "syntaxsemantics/NPI licensing"]
    for seed in (0, 1, 2):
        island = np.mean([curves[(seed, "p1")], curves[(seed, "p2")]], axis=0)
        np.testing.assert_equal(float(phen["acquisition_step"].sel(seed=seed, task="syntax/Island effects")),
                                _brute(STEPS, island, 0.65))


def test_bad_input() -> None:
    table = _table({(0, "p1"): [0.5] * 6, (0, "p2"): [0.7] * 6, (0, "p3"): [0.8] * 6})
    with pytest.raises(ValueError, match="unknown level"):
        aq.acquisition(table, level="field")
    with pytest.raises(ValueError, match="duplicated"):
        aq.acquisition(pd.concat([table, table.head(1)]))
    with pytest.raises(ValueError, match="lacks columns"):
        aq.acquisition(table.drop(columns="accuracy"))
    with pytest.raises(ValueError, match="one model"):
        aq.acquisition(table.assign(model=["a", "b"] * 9))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        aq.order_consistency(aq.acquisition(table))


def _order_table(orders: dict[int, list[int]]) -> pd.DataFrame:
    """Seeds whose units cross 0.6 at the given step indices (index 6 = never)."""
    curves = {}
    for seed, idx in orders.items():
        for unit, i in zip(("p1", "p2", "p3", "p4"), idx):
            curves[(seed, unit)] = [0.9 if j >= i else 0.5 for j in range(6)]
    return _table(curves)


def test_order_consistency_against_scipy_and_exact_enumeration() -> None:
    orders = {0: [1, 2, 3, 4], 1: [1, 3, 2, 6], 2: [2, 1, 3, 4]}  # seed 1 never acquires p4
    ds = aq.acquisition(_order_table(orders))
    res = aq.order_consistency(ds, n_perm=20000, seed=1)
    steps = {s: [float(STEPS[i]) if i < 6 else np.inf for i in idx] for s, idx in orders.items()}
    rhos = {(a, b): stats.spearmanr(steps[a], steps[b]).statistic for a, b in combinations(orders, 2)}
    assert res.pairs[["seed_a", "seed_b"]].apply(tuple, axis=1).tolist() == list(rhos)
    assert res.pairs["rho"].to_numpy() == pytest.approx(list(rhos.values()), abs=1e-12)
    assert res.mean_rho == pytest.approx(np.mean(list(rhos.values())), abs=1e-12)
    # exact null: every combination of label permutations of the three seeds
    ranks = {s: stats.rankdata(v) for s, v in steps.items()}
    null = []
    for perms in product(list(permutations(range(4))), repeat=3):
        r = [ranks[s][list(p)] for s, p in zip(orders, perms)]
        null.append(np.mean([np.corrcoef(r[a], r[b])[0, 1] for a, b in combinations(range(3), 2)]))
    exact = np.mean(np.asarray(null) >= res.mean_rho - 1e-12)
    assert res.p_value == pytest.approx(exact, abs=0.015)  # 20,000 draws: 3 standard errors < 0.011
    assert res.null.mean() == pytest.approx(np.mean(null), abs=0.01)
    assert res.n_units == 4


def test_order_consistency_only_acquired() -> None:
    orders = {0: [1, 2, 3, 4], 1: [1, 3, 2, 6], 2: [2, 1, 3, 4]}
    res = aq.order_consistency(aq.acquisition(_order_table(orders)), n_perm=100, only_acquired=True)
    assert res.n_units == 3
    steps = {s: [float(STEPS[i]) for i in idx[:3]] for s, idx in orders.items()}
    expected = np.mean([stats.spearmanr(steps[a], steps[b]).statistic for a, b in combinations(orders, 2)])
    assert res.mean_rho == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pb.load()


def test_real_acquisition_matches_a_brute_force_pass(real) -> None:
    ds = aq.acquisition(real)
    expected = {}
    for (seed, paradigm), g in real.groupby(["seed", "paradigm"]):
        g = g.sort_values("step")
        expected[(seed, paradigm)] = _brute(g["step"].tolist(), g["accuracy"].tolist(), 0.6)
    got = ds["acquisition_step"].to_series()
    assert len(got) == len(expected) == 670
    for key, value in expected.items():
        np.testing.assert_equal(got[key], value)
    per_seed = pd.Series(expected).notna().groupby(level=0).sum()
    assert ds["acquired"].sum("task").to_series().tolist() == per_seed.tolist()


def test_real_order_consistency_against_scipy(real) -> None:
    ds = aq.acquisition(real)
    res = aq.order_consistency(ds, n_perm=2000)
    wide = ds["acquisition_step"].to_pandas().T.fillna(np.inf)  # task x seed
    rhos = [stats.spearmanr(wide[a], wide[b]).statistic for a, b in combinations(wide.columns, 2)]
    assert len(res.pairs) == 45
    assert res.mean_rho == pytest.approx(np.mean(rhos), abs=1e-12)
    assert abs(res.null.mean()) < 0.01  # permuting labels within seed leaves no agreement on average


def test_real_events(real) -> None:
    ev = aq.events(real)
    assert list(ev.columns) == COLUMNS
    assert len(ev) == 67 * 11
    ds = aq.acquisition(real)
    runs = ev[ev["seed"] != -1]
    assert runs["found"].sum() == int(ds["acquired"].sum())
    assert (runs.loc[runs["found"], "step_lo"] < runs.loc[runs["found"], "step"]).sum() > 0
    pooled = ev[ev["seed"] == -1].set_index(ev.loc[ev["seed"] == -1, "measure"].str.split().str[1])
    every = ds["n_acquired"].to_series() == 10
    assert pooled["found"].sort_index().tolist() == every.sort_index().tolist()
    ok = pooled[pooled["found"]]
    assert (ok["step_lo"] <= ok["step"]).all() and (ok["step"] <= ok["step_hi"]).all()
    assert set(ev["model"]) == {"pythia-160m"} and set(ev["kind"]) == {"acquisition"}
