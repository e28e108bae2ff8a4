"""Inverse scaling over training: tasks whose accuracy falls as Pythia trains (Michaelov & Bergen, 2023).

Input is :func:`lhp_core.data.pythia_inverse_scaling.load` (8 sizes x 8 steps, 2,000-143,000,
12 tasks) and, for the loss axis, :func:`lhp_core.data.pythia_evals.load` (LAMBADA).

* :func:`trends` -- per size and task, the OLS slope of accuracy on log10(step) with its t
  interval (``declines`` = the whole interval is below 0; ``p_holm`` corrects over every
  (size, task) tested together), the step where accuracy peaks and, where LAMBADA was
  evaluated, the held-out loss there.
* :func:`lambada_loss` / :func:`loss_at` / :func:`loss_coverage` -- LAMBADA loss = ln(perplexity)
  of LAMBADA-OpenAI (0-shot, the standard non-deduplicated models; the loss axis of
  :func:`lhp_core.metrics.emergence.pythia_loss_table`), linearly interpolated in log10(step)
  between the two evaluated steps around a step. Pythia's LAMBADA evaluations are at 0, 1, 2, 4,
  ..., 512, 1000, 3000, 13000, 23000, ..., 143000, so 2,000-143,000 are all inside the evaluated
  range; 143,000 is evaluated, the others are interpolated. A step outside the evaluated
  positive steps (or a model without evaluations) is reported ``missing``, never extrapolated.
* :func:`events` -- the declines as timeline events (:mod:`lhp_core.metrics.events`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lhp_core import schema
from lhp_core.data.pythia_evals import TOKENS_PER_STEP
from lhp_core.data.pythia_inverse_scaling import TASK_NAMES
from lhp_core.metrics.events import POOLED, event_table
from lhp_core.schema import describe

STUDY = "inverse_scaling"
_NEED = ["model", "seed", "step", "task", "accuracy"]


def lambada_loss(evals: pd.DataFrame) -> pd.DataFrame:
    """LAMBADA-OpenAI loss (ln perplexity, nats/token) of the standard models at every evaluated step.

    Parameters
    ----------
    evals
        :func:`lhp_core.data.pythia_evals.load` (all variants, or ``load("main")``).

    Returns
    -------
    pandas.DataFrame
        ``model``, ``step``, ``loss``: main variant, 0-shot, non-deduplicated models (the
        models the inverse-scaling study evaluated).
    """
    need = {"model", "variant", "deduped", "shots", "step", "task", "metric", "value"}
    if need - set(evals.columns):
        raise ValueError(
            f"pythia evals table lacks columns {sorted(need - set(evals.columns))}; pass pythia_evals.load()"
        )
    sel = evals[
        (evals["variant"] == "main") & (~evals["deduped"]) & (evals["shots"] == 0)
        & (evals["task"] == "lambada_openai") & (evals["metric"] == "ppl")
    ]
    if sel.empty:
        raise ValueError("no 0-shot LAMBADA-OpenAI perplexity of the main non-deduplicated models in the evals table")
    if sel.duplicated(["model", "step"]).any():
        raise ValueError("more than one LAMBADA perplexity per (model, step) in the evals table")
    out = sel[["model", "step"]].assign(loss=np.log(sel["value"].to_numpy(dtype=float)))
    return out.sort_values(["model", "step"]).reset_index(drop=True)


def loss_at(loss: pd.DataFrame, model: str, steps) -> pd.DataFrame:
    """LAMBADA loss of ``model`` at ``steps``, interpolated linearly in log10(step).

    Parameters
    ----------
    loss
        :func:`lambada_loss` output.
    steps
        Shape ``[n]``.

    Returns
    -------
    pandas.DataFrame
        One row per step: ``step``, ``loss`` (NaN where missing), ``status`` (``"evaluated"``,
        ``"interpolated"`` or ``"missing"``), ``below`` / ``above`` (the evaluated steps used;
        equal for an evaluated step, NaN when missing).
    """
    own = loss[(loss["model"] == model) & (loss["step"] > 0)].sort_values("step")
    known = own["step"].to_numpy(dtype=float)
    values = own["loss"].to_numpy(dtype=float)
    rows = []
    for step in np.asarray(steps, dtype=float):
        if step in known:
            i = int(np.flatnonzero(known == step)[0])
            rows.append((step, values[i], "evaluated", step, step))
        elif known.size and known[0] < step < known[-1]:
            j = int(np.searchsorted(known, step))
            x0, x1 = np.log10(known[j - 1]), np.log10(known[j])
            w = (np.log10(step) - x0) / (x1 - x0)
            rows.append((step, (1 - w) * values[j - 1] + w * values[j], "interpolated", known[j - 1], known[j]))
        else:
            rows.append((step, np.nan, "missing", np.nan, np.nan))
    return pd.DataFrame(rows, columns=["step", "loss", "status", "below", "above"])


def loss_coverage(results: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """For every (model, step) of ``results``: is LAMBADA evaluated there, interpolated, or missing?

    Returns :func:`loss_at`'s columns with ``model`` first.
    """
    loss = lambada_loss(evals)
    frames = []
    for model, g in results.groupby("model", sort=False):
        frames.append(loss_at(loss, model, sorted(g["step"].unique())).assign(model=model))
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "step", "loss", "status", "below", "above"]]


def trends(results: pd.DataFrame, evals: pd.DataFrame | None = None, level: float = 0.95) -> xr.Dataset:
    """Does accuracy fall with training? Per (model, task) OLS trend on log10(step) and the peak.

    Parameters
    ----------
    results
        :func:`lhp_core.data.pythia_inverse_scaling.load` (or rows of it).
    evals
        :func:`lhp_core.data.pythia_evals.load`, for ``peak_loss``; None leaves it NaN.
    level
        Coverage of the slope interval.

    Returns
    -------
    xarray.Dataset
        Dims ``(model, task)`` (models by size; coord ``task_name``): ``slope`` (accuracy per
        decade of steps, ``scipy.stats.linregress``), ``slope_lo`` / ``slope_hi`` (t interval,
        n - 2 df), ``p_value`` (two-sided, slope = 0), ``p_holm`` (Holm-adjusted over all
        (model, task) in ``results``), ``declines`` (``slope_hi < 0``), ``n_steps``,
        ``peak_step`` (first step of the highest accuracy), ``next_step`` (the saved step after
        it, NaN at the last step), ``peak_accuracy``, ``final_accuracy``, ``drop`` (peak minus
        final), ``peak_loss`` (LAMBADA ln perplexity at ``peak_step``, :func:`loss_at`) and
        ``peak_loss_status``.
    """
    missing = [c for c in _NEED if c not in results.columns]
    if missing:
        raise ValueError(f"results lack columns {missing}; pass lhp_core.data.pythia_inverse_scaling.load()")
    if results.duplicated(["model", "step", "task"]).any():
        raise ValueError("duplicated (model, step, task) rows in results")
    if results["accuracy"].isna().any():
        raise ValueError(f"{int(results['accuracy'].isna().sum())} NaN accuracies in results")
    loss = lambada_loss(evals) if evals is not None else None
    rows = []
    for (model, task), g in results.groupby(["model", "task"], sort=False):
        g = g.sort_values("step")
        steps, acc = g["step"].to_numpy(dtype=float), g["accuracy"].to_numpy(dtype=float)
        n = len(steps)
        if n < 3:
            raise ValueError(f"{model} {task}: {n} steps; a slope with an interval needs at least 3")
        fit = stats.linregress(np.log10(steps), acc)
        half = stats.t.ppf(0.5 + level / 2, df=n - 2) * fit.stderr
        i = int(np.argmax(acc))
        peak_loss, status = np.nan, "not computed"
        if loss is not None:
            at = loss_at(loss, model, [steps[i]]).iloc[0]
            peak_loss, status = float(at["loss"]), str(at["status"])
        rows.append((
            model, task, fit.slope, fit.slope - half, fit.slope + half, fit.pvalue, n, steps[i],
            steps[i + 1] if i + 1 < n else np.nan, acc[i], acc[-1], peak_loss, status,
        ))
    cols = ["model", schema.TASK, "slope", "slope_lo", "slope_hi", "p_value", "n_steps", "peak_step", "next_step",
            "peak_accuracy", "final_accuracy", "peak_loss", "peak_loss_status"]
    table = pd.DataFrame(rows, columns=cols)
    table["p_holm"] = multipletests(table["p_value"], method="holm")[1]
    models = list(dict.fromkeys(results["model"]))
    ds = table.set_index(["model", schema.TASK]).to_xarray().reindex(model=models)
    ds["declines"] = ds["slope_hi"] < 0
    ds["drop"] = ds["peak_accuracy"] - ds["final_accuracy"]
    ds = ds.assign_coords(task_name=(schema.TASK, [TASK_NAMES.get(t, t) for t in ds[schema.TASK].values]))

    describe(ds["slope"], "accuracy per decade of steps", "OLS slope of accuracy on log10(step)")
    describe(ds["slope_lo"], "accuracy per decade of steps", f"lower end of the {level:.0%} t interval of slope")
    describe(ds["slope_hi"], "accuracy per decade of steps", f"upper end of the {level:.0%} t interval of slope")
    describe(ds["p_value"], "probability", "two-sided p value of slope = 0")
    describe(ds["p_holm"], "probability", "p_value Holm-adjusted over every (model, task) in the call")
    describe(ds["declines"], "bool", f"the {level:.0%} interval of slope is below 0 (uncorrected)")
    describe(ds["n_steps"], "checkpoints", "saved steps in the fit")
    describe(ds["peak_step"], "steps", "first saved step of the highest accuracy")
    describe(ds["next_step"], "steps", "saved step after peak_step (NaN if the peak is the last step)")
    describe(ds["peak_accuracy"], "proportion correct", "highest accuracy")
    describe(ds["final_accuracy"], "proportion correct", "accuracy at the last saved step")
    describe(ds["drop"], "proportion correct", "peak_accuracy - final_accuracy")
    describe(ds["peak_loss"], "nats/token",
             "LAMBADA-OpenAI ln perplexity at peak_step, interpolated linearly in log10(step)")
    describe(ds["peak_loss_status"], "label", "evaluated / interpolated / missing (never extrapolated) / not computed")
    ds.attrs.update(level=float(level), tokens_per_step=int(TOKENS_PER_STEP),
                    description="trend of accuracy over training and the step of its peak, per model and task")
    schema.check_attrs(ds.attrs)
    schema.check_dims(tuple(ds.sizes))
    return ds


def events(results: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Declines as timeline events (:data:`lhp_core.metrics.events.COLUMNS`).

    One ``kind="decline"`` row per (model, task), found where the accuracy trend is
    significantly negative (:func:`trends` ``declines``) and the peak is before the last step:
    ``step`` = the peak step (accuracy is highest there and lower at the next saved step, so
    the decline begins in ``[peak_step, next_step]``, the interval given). A peak at the first
    evaluated step (2,000) means the decline may have begun earlier; the data cannot say.
    Each model is one run (seed 1234), so the pooled row (seed -1) repeats it.
    """
    ds = trends(results, None, level)
    seeds = results.groupby("model")["seed"].unique()
    rows = []
    for model in ds["model"].values:
        if len(seeds[model]) != 1:
            raise ValueError(f"{model} has runs {list(seeds[model])}; inverse-scaling events expect one run per model")
        for task in ds[schema.TASK].values:
            r = ds.sel(model=model, task=task)
            found = bool(r["declines"]) and bool(np.isfinite(float(r["next_step"])))
            step, nxt = (float(r["peak_step"]), float(r["next_step"])) if found else (np.nan, np.nan)
            name = f"{r['task_name'].item()} accuracy"
            for run in (int(seeds[model][0]), POOLED):
                rows.append((STUDY, name, model, run, "decline", step, step, nxt, found))
    cols = ["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi", "found"]
    return event_table(pd.DataFrame(rows, columns=cols))
