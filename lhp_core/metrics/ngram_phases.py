"""Behavioural phases: when a model's word probabilities track n-gram statistics most closely.

Michaelov, Levy & Bergen (NeurIPS 2025) correlate, at each checkpoint, a model's word
log-probabilities with 1- to 5-gram log-probabilities of its training corpus; each
correlation rises, peaks and falls as the model moves past that n-gram ("overfits to n-grams
of increasing n"). Input is :func:`lhp_core.data.pythia_behavioral_phases.correlations`.

* :func:`peaks` -- per model, seed and n: the step where the correlation is highest (the
  argmax over saved checkpoints), whether the peaks come in order of n, and per model the
  peak of the mean-over-seeds curve with a bootstrap interval over seeds
  (:func:`lhp_core.metrics.changepoint.peak`, seeds as the resampled units).
* :func:`size_consistency` -- per n: do the peaks fall at the same step across model sizes
  (Kruskal-Wallis test over the sizes with several seeds)? Every Pythia size trains on
  2,097,152 tokens per step, so the same step is the same number of tokens.
* :func:`semantic_trend` -- the slope of the semantic-similarity correlation on log10(step)
  after a run's last n-gram peak.
* :func:`events` -- the peaks as timeline events (:mod:`lhp_core.metrics.events`).

Correlations are Pearson's r by default (upstream's main correlation figure, ``corrs_pearson.pdf``
of ``analyses/create_plots_final.Rmd``); ``measure="spearman_rho"`` uses Spearman's rho.
Sizes 14m-410m have ten runs (PolyPythia seeds 1-9 and the standard run, seed 1234); 1b-12b
have the standard run only, so they get no interval across seeds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from lhp_core import schema
from lhp_core.data.pythia_evals import nominal_params
from lhp_core.metrics import changepoint
from lhp_core.metrics.events import POOLED, event_table
from lhp_core.schema import describe

STUDY = "behavioral_phases"
MEASURES = {"pearson_r": "Pearson r", "spearman_rho": "Spearman rho"}
CORPORA = ("Pile", "OpenWebText")
SEMANTIC = ("ucd_cc", "wcd_cc", "ucd_wiki", "wcd_wiki")
_NEED = ["model", "seed", "step", "tokens_seen", "predictor", "kind", "corpus", "order"]


def _check(corr: pd.DataFrame, measure: str, corpus: str) -> None:
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; use one of {list(MEASURES)}")
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; use one of {CORPORA}")
    missing = [c for c in [*_NEED, measure] if c not in corr.columns]
    if missing:
        raise ValueError(
            f"correlation table lacks columns {missing}; pass lhp_core.data.pythia_behavioral_phases.correlations()"
        )


def _ngram_curves(corr: pd.DataFrame, corpus: str, measure: str) -> pd.DataFrame:
    """Wide table: index (model, seed, ngram), columns step; NaN-free, one value per cell."""
    sel = corr[(corr["kind"] == "ngram") & (corr["corpus"] == corpus)]
    if sel.empty:
        raise ValueError(f"no {corpus} n-gram rows in the correlation table")
    keys = ["model", "seed", "order", "step"]
    dup = sel.duplicated(keys)
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} duplicated (model, seed, order, step) rows, e.g. {sel[dup][keys].iloc[0].tolist()}"
        )
    if sel[measure].isna().any():
        raise ValueError(f"{int(sel[measure].isna().sum())} NaN {measure} values among the {corpus} n-gram rows")
    wide = sel.pivot(index=["model", "seed", "order"], columns="step", values=measure)
    # Every order of a run must have the same steps, or peaks of different n are not comparable.
    differs = (wide.notna().groupby(level=["model", "seed"]).nunique() > 1).any(axis=1)
    if differs.any():
        raise ValueError(f"runs whose n-gram orders have different steps: {differs[differs].index.tolist()[:3]}")
    return wide.rename_axis(index={"order": schema.NGRAM})


def _tokens_per_step(corr: pd.DataFrame) -> pd.Series:
    """Tokens per step of each model, read from the table's ``tokens_seen`` (NaN where it is missing)."""
    rows = corr[corr["step"] > 0]
    ratio = rows["tokens_seen"].astype(float) / rows["step"].astype(float)
    per_model = ratio.groupby(rows["model"]).unique()
    mixed = [m for m, v in per_model.items() if len(v) > 1]
    if mixed:
        raise ValueError(f"models {mixed} have more than one tokens_seen / step ratio; "
                         "tokens_seen must be step x tokens per step")
    return per_model.map(lambda v: float(v[0]))


def _run_peaks(wide: pd.DataFrame) -> pd.DataFrame:
    """Per (model, seed, ngram) row of ``wide``: the argmax step, its value, last step and value."""
    out = []
    for key, row in wide.iterrows():
        curve = row.dropna()
        steps = curve.index.to_numpy(dtype=float)
        values = curve.to_numpy(dtype=float)
        i = int(np.argmax(values))
        out.append((*key, steps[i], values[i], steps[-1], values[-1]))
    cols = ["model", "seed", schema.NGRAM, "peak_step", "peak_value", "last_step", "final_value"]
    return pd.DataFrame(out, columns=cols)


def _by_size(models) -> list[str]:
    """Models smallest first; names without a stated size (``gpt2-small``) last, by name."""
    def key(model: str) -> tuple[int, float, str]:
        try:
            return (0, nominal_params(model), model)
        except ValueError:
            return (1, 0.0, model)

    return sorted(models, key=key)


def peaks(
    corr: pd.DataFrame, corpus: str = "Pile", measure: str = "pearson_r", n_boot: int = 1000, seed: int = 0
) -> xr.Dataset:
    """Where each n-gram correlation peaks, per run and pooled over a model's runs.

    Parameters
    ----------
    corr
        :func:`lhp_core.data.pythia_behavioral_phases.correlations` (any filter of it).
    corpus
        Whose n-grams: ``"Pile"`` (Pythia's training data, the default) or ``"OpenWebText"``.
    measure
        ``"pearson_r"`` (default) or ``"spearman_rho"``.
    n_boot, seed
        Bootstrap resamples of seeds for the pooled interval, and its random seed.

    Returns
    -------
    xarray.Dataset
        Per run, dims ``(model, seed, ngram)`` (NaN where a model has no such run):
        ``peak_step`` (first step of the highest correlation, argmax over saved steps),
        ``peak_tokens``, ``peak_value``, ``final_value`` (at the run's last step), ``drop``
        (peak minus final value: near 0 means a plateau, not a peak) and ``interior`` (the
        peak is before the last step, i.e. the correlation fell by the end of training);
        ``in_order`` and ``strictly_in_order`` ``(model, seed)``: the peak steps never decrease
        / strictly increase with n. Pooled, dims ``(model, ngram)``: ``pooled_step`` (argmax of
        the mean-over-seeds curve, over the steps every run of the model has), ``pooled_lo`` /
        ``pooled_hi`` (2.5 / 97.5 % quantiles of that argmax over ``n_boot`` resamples of seeds;
        equal to ``pooled_step`` for one run), ``pooled_interior``; along ``model``:
        ``n_seeds``, ``pooled_in_order`` and ``pooled_steps_dropped`` (steps left out of the
        pooled curve because some run lacks them; 0 for every Pythia size).
    """
    _check(corr, measure, corpus)
    wide = _ngram_curves(corr, corpus, measure)
    per_run = _run_peaks(wide).set_index(["model", "seed", schema.NGRAM])
    ds = per_run.to_xarray()
    ds["drop"] = ds["peak_value"] - ds["final_value"]
    ds["interior"] = (ds["peak_step"] < ds["last_step"]).where(ds["peak_step"].notnull())
    tps = _tokens_per_step(corr)
    ds["peak_tokens"] = ds["peak_step"] * xr.DataArray(tps.reindex(ds["model"].values).to_numpy(), dims="model")
    diffs = ds["peak_step"].diff(schema.NGRAM)
    have = ds["peak_step"].notnull().all(schema.NGRAM)
    ds["in_order"] = (diffs >= 0).all(schema.NGRAM).where(have)
    ds["strictly_in_order"] = (diffs > 0).all(schema.NGRAM).where(have)

    pooled = []
    dropped = {}
    for model, block in wide.groupby(level="model"):
        runs = block.droplevel("model")
        n_seeds = runs.index.get_level_values("seed").nunique()
        # The mean over runs needs every run at every step: pool over the steps all runs share.
        shared = runs.notna().all(axis=0)
        dropped[model] = int((runs.notna().any(axis=0) & ~shared).sum())
        for n, per_n in runs.loc[:, shared].groupby(level=schema.NGRAM):
            steps = per_n.columns.to_numpy(dtype=float)
            values = per_n.to_numpy(dtype=float).T  # [n_steps, n_seeds]
            if n_seeds > 1:
                pk = changepoint.peak(steps, values, n_boot=n_boot, seed=seed)
                step, lo, hi = pk.step, pk.lo, pk.hi
            else:
                step = lo = hi = float(steps[int(np.argmax(values[:, 0]))])
            pooled.append((model, n, step, lo, hi, step < steps[-1], n_seeds))
    pool = pd.DataFrame(pooled, columns=["model", schema.NGRAM, "pooled_step", "pooled_lo", "pooled_hi",
                                         "pooled_interior", "n_seeds"])
    pds = pool.drop(columns="n_seeds").set_index(["model", schema.NGRAM]).to_xarray()
    ds = ds.merge(pds)
    ds["n_seeds"] = pool.groupby("model")["n_seeds"].first().rename_axis("model").to_xarray()
    ds["pooled_steps_dropped"] = pd.Series(dropped).rename_axis("model").to_xarray()
    ds["pooled_in_order"] = (ds["pooled_step"].diff(schema.NGRAM) >= 0).all(schema.NGRAM)
    ds = ds.drop_vars("last_step").reindex(model=_by_size(ds["model"].values))

    what = f"{MEASURES[measure]} between word log-probability and {corpus} n-gram log-probability"
    describe(ds["peak_step"], "steps", f"first saved step where the {what} is highest, per run")
    describe(ds["peak_tokens"], "tokens",
             "peak_step x the model's tokens per step (2,097,152 for Pythia; NaN where the "
             "table has no tokens_seen)")
    describe(ds["peak_value"], "correlation", f"highest {what} of the run")
    describe(ds["final_value"], "correlation", f"{what} at the run's last saved step")
    describe(ds["drop"], "correlation", "peak_value - final_value: how far the correlation fell after its peak")
    describe(ds["interior"], "1 = true, 0 = false",
             "the peak is before the run's last step (the correlation fell within "
             "training); NaN where the model has no such run")
    describe(ds["in_order"], "1 = true, 0 = false",
             "peak steps never decrease with n (ties allowed: checkpoints are coarse); "
             "NaN where the model has no such run")
    describe(ds["strictly_in_order"], "1 = true, 0 = false",
             "peak steps strictly increase with n; NaN where no such run")
    describe(ds["pooled_step"], "steps", "argmax step of the mean over the model's runs")
    describe(ds["pooled_lo"], "steps",
             "2.5 % quantile of pooled_step over bootstrap resamples of runs (pooled_step for one run)")
    describe(ds["pooled_hi"], "steps",
             "97.5 % quantile of pooled_step over bootstrap resamples of runs (pooled_step for one run)")
    describe(ds["pooled_interior"], "bool", "pooled_step is before the last step")
    describe(ds["n_seeds"], "runs", "number of runs (seeds) of the model in the data")
    describe(ds["pooled_steps_dropped"], "checkpoints",
             "saved steps left out of the pooled curve because some run lacks them")
    describe(ds["pooled_in_order"], "bool", "pooled peak steps never decrease with n")
    ds.attrs.update(
        corpus=corpus, measure=measure, n_boot=int(n_boot), bootstrap_seed=int(seed),
        description=f"step of the peak of the {what}, per run and pooled over runs",
    )
    schema.check_attrs(ds.attrs)
    schema.check_dims(tuple(ds.sizes))
    return ds


def size_consistency(ds: xr.Dataset) -> xr.Dataset:
    """Do the n-gram peaks fall at the same step (= tokens) across sizes?

    Parameters
    ----------
    ds
        :func:`peaks` output.

    Returns
    -------
    xarray.Dataset
        Dim ``ngram``: ``kruskal_h`` and ``kruskal_p`` (Kruskal-Wallis test that the per-run
        peak steps of the models with at least two runs come from one distribution; p = 1
        when every run peaks at the same step), ``n_models_tested``; over all models,
        ``pooled_min`` / ``pooled_max`` (earliest and latest pooled peak step) and
        ``fold_range`` (their ratio: 1 = every size peaks at the same step).
    """
    multi = [m for m in ds["model"].values if int(ds["n_seeds"].sel(model=m)) >= 2]
    rows = []
    for n in ds[schema.NGRAM].values:
        groups = [ds["peak_step"].sel(model=m, ngram=n).dropna("seed").values for m in multi]
        values = np.concatenate(groups) if groups else np.array([])
        if len(groups) < 2:
            h, p = np.nan, np.nan
        elif np.all(values == values[0]):
            h, p = 0.0, 1.0  # scipy refuses identical values; no difference across sizes at all
        else:
            h, p = stats.kruskal(*groups)
        pooled = ds["pooled_step"].sel(ngram=n).values
        rows.append((n, float(h), float(p), len(groups), float(pooled.min()), float(pooled.max())))
    out = pd.DataFrame(rows,
                       columns=[schema.NGRAM, "kruskal_h", "kruskal_p", "n_models_tested", "pooled_min", "pooled_max"])
    res = out.set_index(schema.NGRAM).to_xarray()
    res["fold_range"] = res["pooled_max"] / res["pooled_min"]
    describe(res["kruskal_h"], "statistic",
             "Kruskal-Wallis H of per-run peak steps grouped by model (models with >= 2 runs)")
    describe(res["kruskal_p"], "probability", "p value of kruskal_h (chi-squared approximation, tie-corrected)")
    describe(res["n_models_tested"], "models", "models with at least two runs entering the test")
    describe(res["pooled_min"], "steps", "earliest pooled peak step over all models")
    describe(res["pooled_max"], "steps", "latest pooled peak step over all models")
    describe(res["fold_range"], "ratio", "pooled_max / pooled_min")
    res.attrs.update(description="consistency of n-gram peak steps across model sizes", corpus=ds.attrs["corpus"],
                     measure=ds.attrs["measure"])
    return res


def semantic_trend(
    corr: pd.DataFrame, predictor: str = "ucd_cc", corpus: str = "Pile", measure: str = "pearson_r",
    min_points: int = 3, level: float = 0.95,
) -> xr.Dataset:
    """Slope of the semantic-similarity correlation on log10(step) after the last n-gram peak.

    Per run, the last n-gram peak is the latest argmax step over n = 1..5 (:func:`peaks`);
    the trend is the OLS slope of the ``predictor`` correlation on log10(step) over the saved
    steps from that peak (inclusive) to the end, with its t interval. Runs with fewer than
    ``min_points`` such steps get NaN.

    Parameters
    ----------
    predictor
        One of :data:`SEMANTIC` (default ``ucd_cc``: fastText Common Crawl, unweighted context).
    level
        Coverage of the intervals.

    Returns
    -------
    xarray.Dataset
        Dims ``(model, seed)``: ``after_step``, ``n_points``, ``slope`` (correlation per
        decade of steps), ``slope_lo``, ``slope_hi``. Dim ``model``: ``mean_slope`` over runs
        with a slope, ``mean_lo`` / ``mean_hi`` (t interval of that mean across runs; NaN for a
        model with one run: no interval across seeds), ``n_runs``.
    """
    _check(corr, measure, corpus)
    if predictor not in SEMANTIC:
        raise ValueError(f"unknown semantic predictor {predictor!r}; use one of {SEMANTIC}")
    last = _run_peaks(_ngram_curves(corr, corpus, measure)).groupby(["model", "seed"])["peak_step"].max()
    sem = corr[corr["predictor"] == predictor]
    if sem.empty:
        raise ValueError(f"no {predictor} rows in the correlation table")
    rows = []
    for (model, run), g in sem.groupby(["model", "seed"]):
        if (model, run) not in last.index:
            raise ValueError(f"run {model} seed {run} has {predictor} rows but no {corpus} n-gram rows")
        after = float(last[(model, run)])
        g = g[g["step"] >= after].sort_values("step")
        n = len(g)
        slope = lo = hi = np.nan
        if n >= min_points:
            fit = stats.linregress(np.log10(g["step"].to_numpy(dtype=float)), g[measure].to_numpy(dtype=float))
            q = stats.t.ppf(0.5 + level / 2, df=n - 2)
            slope, lo, hi = fit.slope, fit.slope - q * fit.stderr, fit.slope + q * fit.stderr
        rows.append((model, run, after, n, slope, lo, hi))
    per_run = pd.DataFrame(rows, columns=["model", "seed", "after_step", "n_points", "slope", "slope_lo", "slope_hi"])
    ds = per_run.set_index(["model", "seed"]).to_xarray()
    summary = []
    for model, g in per_run.groupby("model"):
        s = g["slope"].dropna().to_numpy()
        mean = float(s.mean()) if len(s) else np.nan
        lo = hi = np.nan
        if len(s) >= 2:
            half = stats.t.ppf(0.5 + level / 2, df=len(s) - 1) * s.std(ddof=1) / np.sqrt(len(s))
            lo, hi = mean - half, mean + half
        summary.append((model, mean, lo, hi, len(s)))
    sds = (pd.DataFrame(summary, columns=["model", "mean_slope", "mean_lo", "mean_hi", "n_runs"])
           .set_index("model").to_xarray())
    ds = ds.merge(sds).reindex(model=_by_size(ds["model"].values))
    what = f"{MEASURES[measure]} of word log-probability with {predictor}"
    describe(ds["after_step"], "steps", f"the run's last {corpus} n-gram peak step (start of the fit, inclusive)")
    describe(ds["n_points"], "checkpoints", "saved steps in the fit")
    describe(ds["slope"], "correlation per decade of steps", f"OLS slope of the {what} on log10(step)")
    describe(ds["slope_lo"], "correlation per decade of steps", f"lower end of the {level:.0%} t interval of slope")
    describe(ds["slope_hi"], "correlation per decade of steps", f"upper end of the {level:.0%} t interval of slope")
    describe(ds["mean_slope"], "correlation per decade of steps", "mean slope over the model's runs")
    describe(ds["mean_lo"], "correlation per decade of steps",
           f"lower end of the {level:.0%} t interval of the mean across runs")
    describe(ds["mean_hi"], "correlation per decade of steps",
           f"upper end of the {level:.0%} t interval of the mean across runs")
    describe(ds["n_runs"], "runs", "runs with a slope (enough steps after the last n-gram peak)")
    ds.attrs.update(predictor=predictor, corpus=corpus, measure=measure, min_points=int(min_points), level=float(level),
                    description=f"trend of the {what} after the last {corpus} n-gram peak")
    schema.check_attrs(ds.attrs)
    return ds


def events(corr: pd.DataFrame, corpus: str = "Pile", measure: str = "pearson_r", n_boot: int = 1000,
           seed: int = 0) -> pd.DataFrame:
    """The n-gram correlation peaks as timeline events (:data:`lhp_core.metrics.events.COLUMNS`).

    One ``kind="peak"`` row per (model, run, n) and one pooled row (seed -1) per (model, n).
    A run's row has no interval (step_lo = step_hi = step). A pooled row is the argmax of the
    mean-over-runs curve with the 2.5 / 97.5 % bootstrap interval over runs (:func:`peaks`).
    ``found`` is False (steps NaN) where the highest correlation is at the last saved step:
    the correlation had not peaked by the end of training. Tokens are the steps times the
    model's tokens per step as the table's ``tokens_seen`` gives it (NaN for the non-Pythia
    families, whose tokens per step the data do not give).
    """
    ds = peaks(corr, corpus, measure, n_boot, seed)
    rows = []
    for model in ds["model"].values:
        for n in ds[schema.NGRAM].values:
            name = f"{corpus} {n}-gram correlation ({MEASURES[measure]})"
            for run in ds["seed"].values:
                step = float(ds["peak_step"].sel(model=model, seed=run, ngram=n))
                if np.isnan(step):
                    continue  # no such run for this model
                found = bool(ds["interior"].sel(model=model, seed=run, ngram=n))
                s = step if found else np.nan
                rows.append((STUDY, name, model, int(run), "peak", s, s, s, found))
            p = ds.sel(model=model, ngram=n)
            found = bool(p["pooled_interior"])
            vals = [float(p[v]) if found else np.nan for v in ("pooled_step", "pooled_lo", "pooled_hi")]
            rows.append((STUDY, name, model, POOLED, "peak", *vals, found))
    cols = ["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi", "found"]
    table = pd.DataFrame(rows, columns=cols)
    return event_table(table, tokens_per_step=table["model"].map(_tokens_per_step(corr)).to_numpy(dtype=float))
