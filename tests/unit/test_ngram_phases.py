"""n-gram behavioural phases: hand-built curves with known peaks and slopes, scipy/statsmodels
references, and the real Michaelov et al. (2025) correlations re-derived with plain pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from lhp_core.data import pythia_behavioral_phases as bp
from lhp_core.metrics import ngram_phases as ng
from lhp_core.metrics.events import COLUMNS

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 143000]


def _curve(peak_index: int) -> np.ndarray:
    """A hump over the 20 steps, highest (1.0) at ``peak_index``."""
    return 1.0 - (np.arange(len(STEPS)) - peak_index) ** 2 / 400.0


def _table(runs: dict[tuple[str, int], list[int]],
           semantic: dict[tuple[str, int], np.ndarray] | None = None) -> pd.DataFrame:
    rows = []
    for (model, seed), peak_idx in runs.items():
        for n, idx in enumerate(peak_idx, start=1):
            for step, v in zip(STEPS, _curve(idx)):
                for corpus, shift in (("Pile", 0.0), ("OpenWebText", -0.1)):
                    rows.append((model, seed, step, f"{corpus}_{n}gram", "ngram", corpus, n, v + shift, v + shift))
        sem = semantic[(model, seed)] if semantic else np.linspace(0, 1, len(STEPS))
        for step, v in zip(STEPS, sem):
            rows.append((model, seed, step, "ucd_cc", "semantic", "CommonCrawl", pd.NA, v, v))
    cols = ["model", "seed", "step", "predictor", "kind", "corpus", "order", "pearson_r", "spearman_rho"]
    table = pd.DataFrame(rows, columns=cols).astype({"order": "Int64"})
    return table.assign(tokens_seen=table["step"] * 2_097_152)


# pythia-70m: two runs; pythia-1b: one run whose 3-gram peaks after its 4-gram and whose 5-gram peaks at the end
RUNS = {
    ("pythia-70m", 1): [8, 10, 11, 12, 13],
    ("pythia-70m", 2): [8, 10, 12, 12, 15],
    ("pythia-1b", 1234): [8, 10, 14, 13, 19],
}


def test_peaks_of_hand_built_curves() -> None:
    ds = ng.peaks(_table(RUNS), n_boot=200)
    assert list(ds["model"].values) == ["pythia-70m", "pythia-1b"]  # by size
    for (model, seed), idx in RUNS.items():
        got = ds["peak_step"].sel(model=model, seed=seed).values
        assert got.tolist() == [STEPS[i] for i in idx]
        assert ds["peak_value"].sel(model=model, seed=seed).values == pytest.approx(1.0)
        final = [1.0 - (19 - i) ** 2 / 400.0 for i in idx]
        assert ds["drop"].sel(model=model, seed=seed).values == pytest.approx([1.0 - f for f in final], abs=1e-12)
    assert np.isnan(ds["peak_step"].sel(model="pythia-1b", seed=1)).all()  # no such run
    assert ds["in_order"].sel(model="pythia-70m", seed=1) == 1
    assert ds["strictly_in_order"].sel(model="pythia-70m", seed=1) == 1
    assert ds["in_order"].sel(model="pythia-70m", seed=2) == 1
    assert ds["strictly_in_order"].sel(model="pythia-70m", seed=2) == 0
    assert ds["in_order"].sel(model="pythia-1b", seed=1234) == 0
    assert ds["interior"].sel(model="pythia-1b", seed=1234).values.tolist() == [1, 1, 1, 1, 0]
    assert ds["peak_tokens"].sel(model="pythia-70m", seed=1, ngram=1) == 128 * 2_097_152
    assert ds["n_seeds"].values.tolist() == [2, 1]
    for var in ds.data_vars:
        assert ds[var].attrs["units"] and ds[var].attrs["description"], var


def test_pooled_peak_is_the_argmax_of_the_seed_mean() -> None:
    ds = ng.peaks(_table(RUNS), n_boot=300)
    for n in range(1, 6):
        mean = (_curve(RUNS[("pythia-70m", 1)][n - 1]) + _curve(RUNS[("pythia-70m", 2)][n - 1])) / 2
        assert ds["pooled_step"].sel(model="pythia-70m", ngram=n) == STEPS[int(np.argmax(mean))]
        lo = float(ds["pooled_lo"].sel(model="pythia-70m", ngram=n))
        hi = float(ds["pooled_hi"].sel(model="pythia-70m", ngram=n))
        seeds_peaks = {STEPS[RUNS[("pythia-70m", s)][n - 1]] for s in (1, 2)}
        # A resample of two runs is {1, 1}, {2, 2} (a quarter each) or both: the 2.5 / 97.5 %
        # quantiles of its argmax are the two runs' own peaks.
        assert (lo, hi) == (min(seeds_peaks), max(seeds_peaks))
    one = ds.sel(model="pythia-1b")
    assert (one["pooled_step"] == one["pooled_lo"]).all() and (one["pooled_step"] == one["pooled_hi"]).all()
    assert one["pooled_step"].values.tolist() == [STEPS[i] for i in RUNS[("pythia-1b", 1234)]]
    assert bool(ds["pooled_in_order"].sel(model="pythia-70m"))
    assert not bool(ds["pooled_in_order"].sel(model="pythia-1b"))


def test_size_consistency_against_scipy_kruskal() -> None:
    runs = {("pythia-70m", s): [8, 10, 11 + s % 2, 12, 13 + s % 3] for s in range(1, 6)}
    runs |= {("pythia-160m", s): [8, 10, 11, 13 + s % 2, 14 + s % 3] for s in range(1, 6)}
    runs |= {("pythia-1b", 1234): [8, 10, 11, 12, 14]}
    table = _table(runs)
    res = ng.size_consistency(ng.peaks(table, n_boot=100))
    pile = table[(table["kind"] == "ngram") & (table["corpus"] == "Pile")]
    argmax = pile.loc[pile.groupby(["model", "seed", "order"])["pearson_r"].idxmax()]
    for n in range(1, 6):
        sub = argmax[argmax["order"] == n]
        groups = [sub.loc[sub["model"] == m, "step"].to_numpy() for m in ("pythia-70m", "pythia-160m")]
        if n <= 2:  # every run peaks at the same step
            assert (res["kruskal_h"].sel(ngram=n), res["kruskal_p"].sel(ngram=n)) == (0.0, 1.0)
        else:
            h, p = stats.kruskal(*groups)
            assert res["kruskal_h"].sel(ngram=n) == pytest.approx(h, rel=1e-12)
            assert res["kruskal_p"].sel(ngram=n) == pytest.approx(p, rel=1e-12)
        assert res["n_models_tested"].sel(ngram=n) == 2
    assert res["fold_range"].sel(ngram=1) == 1.0


def test_semantic_trend_against_statsmodels() -> None:
    rng = np.random.default_rng(3)
    x = np.log10(np.maximum(STEPS, 1))
    sem = {key: 0.5 - 0.02 * x + rng.normal(0, 0.003, len(STEPS)) for key in RUNS}
    table = _table(RUNS, semantic=sem)
    ds = ng.semantic_trend(table, level=0.9)
    slopes = []
    for (model, seed), idx in RUNS.items():
        after = STEPS[max(idx)]
        keep = np.asarray(STEPS) >= after
        assert ds["after_step"].sel(model=model, seed=seed) == after
        assert ds["n_points"].sel(model=model, seed=seed) == keep.sum()
        if keep.sum() < 3:
            assert np.isnan(ds["slope"].sel(model=model, seed=seed))
            continue
        fit = sm.OLS(sem[(model, seed)][keep], sm.add_constant(x[keep])).fit()
        lo, hi = fit.conf_int(alpha=0.1)[1]
        got = ds.sel(model=model, seed=seed)
        assert float(got["slope"]) == pytest.approx(fit.params[1], rel=1e-9)
        assert (float(got["slope_lo"]), float(got["slope_hi"])) == pytest.approx((lo, hi), rel=1e-9)
        if model == "pythia-70m":
            slopes.append(fit.params[1])
    lo, hi = stats.t.interval(0.9, len(slopes) - 1, loc=np.mean(slopes), scale=stats.sem(slopes))
    m = ds.sel(model="pythia-70m")
    assert float(m["mean_slope"]) == pytest.approx(np.mean(slopes), rel=1e-12)
    assert (float(m["mean_lo"]), float(m["mean_hi"])) == pytest.approx((lo, hi), rel=1e-9)
    assert np.isnan(ds["slope"].sel(model="pythia-1b", seed=1234))  # last peak at the final step: nothing to fit
    assert int(ds["n_runs"].sel(model="pythia-1b")) == 0


def test_a_pure_log_linear_trend_has_its_slope_exactly() -> None:
    x = np.log10(np.maximum(STEPS, 1))
    runs = {("pythia-70m", 1): [8, 9, 10, 11, 12]}
    ds = ng.semantic_trend(_table(runs, semantic={("pythia-70m", 1): 0.3 - 0.05 * x}))
    assert float(ds["slope"].sel(model="pythia-70m", seed=1)) == pytest.approx(-0.05, abs=1e-12)
    assert float(ds["slope_hi"].sel(model="pythia-70m", seed=1)) == pytest.approx(-0.05, abs=1e-7)
    assert np.isnan(ds["mean_lo"].sel(model="pythia-70m"))  # one run: no interval across seeds


def test_bad_input() -> None:
    table = _table(RUNS)
    with pytest.raises(ValueError, match="unknown measure"):
        ng.peaks(table, measure="kendall")
    with pytest.raises(ValueError, match="unknown corpus"):
        ng.peaks(table, corpus="C4")
    with pytest.raises(ValueError, match="duplicated"):
        ng.peaks(pd.concat([table, table.head(1)]))
    with pytest.raises(ValueError, match="lacks columns"):
        ng.peaks(table.drop(columns="order"))
    with pytest.raises(ValueError, match="unknown semantic predictor"):
        ng.semantic_trend(table, predictor="cosine")


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return bp.correlations()


@pytest.mark.parametrize(("corpus", "measure"), [("Pile", "pearson_r"), ("OpenWebText", "spearman_rho")])
def test_real_peaks_equal_a_pandas_argmax(real, corpus, measure) -> None:
    ds = ng.peaks(real, corpus=corpus, measure=measure, n_boot=50)
    sub = real[(real["kind"] == "ngram") & (real["corpus"] == corpus)]
    argmax = sub.loc[sub.groupby(["model", "seed", "order"])[measure].idxmax()]
    assert len(argmax) == 55 * 5  # 5 sizes x 10 runs + 5 sizes x 1 run
    got = ds["peak_step"].to_dataframe().dropna().reset_index()
    merged = argmax.merge(got, left_on=["model", "seed", "order"], right_on=["model", "seed", "ngram"])
    assert len(merged) == len(argmax)
    assert (merged["step"] == merged["peak_step"]).all()


def test_real_unigram_peaks_before_five_gram_where_the_data_say_so(real) -> None:
    pile = real[(real["kind"] == "ngram") & (real["corpus"] == "Pile")]
    argmax = pile.loc[pile.groupby(["model", "seed", "order"])["pearson_r"].idxmax()]
    wide = argmax.pivot_table(index=["model", "seed"], columns="order", values="step")
    before = (wide[1] < wide[5])
    ds = ng.peaks(real, n_boot=50)
    got = (ds["peak_step"].sel(ngram=1) < ds["peak_step"].sel(ngram=5)).where(ds["peak_step"].sel(ngram=1).notnull())
    got = got.to_series().dropna().astype(bool)
    assert got.sort_index().equals(before.sort_index().rename(got.name))
    assert before.sum() > 0
    # the standard runs of the sizes with one run: strictly increasing peaks, computed independently
    big = wide.loc[[(m, 1234) for m in ("pythia-1b", "pythia-1.4b", "pythia-2.8b", "pythia-6.9b", "pythia-12b")]]
    strictly = (big.diff(axis=1).iloc[:, 1:] > 0).all(axis=1)
    for (model, _), expected in strictly.items():
        assert bool(ds["strictly_in_order"].sel(model=model, seed=1234)) == expected


def test_real_events(real) -> None:
    ev = ng.events(real, n_boot=50)
    assert list(ev.columns) == COLUMNS
    assert len(ev) == (55 + 10) * 5
    pooled = ev[ev["seed"] == -1]
    assert len(pooled) == 50 and set(pooled["study"]) == {"behavioral_phases"}
    pile = real[(real["kind"] == "ngram") & (real["corpus"] == "Pile")]
    argmax = pile.loc[pile.groupby(["model", "seed", "order"])["pearson_r"].idxmax()]
    runs = ev[ev["seed"] != -1].copy()
    runs["order"] = runs["measure"].str.extract(r"Pile (\d)-gram").astype(int)[0]
    merged = runs.merge(argmax, on=["model", "seed", "order"], suffixes=("", "_raw"))
    assert len(merged) == 275
    interior = merged["step_raw"] < 143000
    assert (merged["found"] == interior).all()
    assert (merged.loc[interior, "step"] == merged.loc[interior, "step_raw"]).all()
    assert merged.loc[~interior, "step"].isna().all()
    assert (merged.loc[interior, "tokens_seen"] == merged.loc[interior, "step_raw"] * 2_097_152).all()
    assert (ev.loc[ev["found"], "step_lo"] <= ev.loc[ev["found"], "step_hi"]).all()


def test_other_families_pool_over_shared_steps_and_have_no_tokens() -> None:
    every = bp.correlations(None)
    gpt2 = every[every["family"] == "gpt2"]
    ds = ng.peaks(gpt2, corpus="OpenWebText", n_boot=50)
    # one GPT-2 medium run lacks a step the others have: counted, not silently dropped
    steps = gpt2.groupby(["model", "run"])["step"].apply(set)
    for model in ("gpt2-small", "gpt2-medium"):
        runs = steps[model]
        union, shared = set.union(*runs), set.intersection(*runs)
        assert int(ds["pooled_steps_dropped"].sel(model=model)) == len(union - shared)
    assert int(ds["pooled_steps_dropped"].sel(model="gpt2-medium")) > 0
    assert ds["peak_tokens"].isnull().all()  # the data give no tokens per step for GPT-2
    ev = ng.events(gpt2, corpus="OpenWebText", n_boot=50)
    assert ev["tokens_seen"].isna().all() and ev.loc[ev["found"], "step"].notna().all()
    with pytest.raises(ValueError, match="tokens_seen / step ratio"):
        ng.peaks(_table(RUNS).assign(tokens_seen=lambda t: t["step"] ** 2))
