"""Grammar acquisition over training: when each BLiMP paradigm is learned, and whether seeds agree on the order.

Input is :func:`lhp_core.data.pythia_blimp.load` (Pythia-160m, seeds 0-9, 24 checkpoints).

* :func:`acquisition` -- per seed and paradigm (or phenomenon), the **acquisition step**: the
  first saved step from which accuracy stays at or above ``chance + margin`` at that step and
  every later saved step (a sustained crossing). Default ``0.5 + 0.1 = 0.6``: chance is 0.5 on a
  minimal pair, and a 0.1 margin is about seven standard errors of a 1,000-pair accuracy
  (sqrt(0.25 / 1000) = 0.016), so checkpoint noise alone does not cross it; requiring it to
  hold to the end keeps a paradigm that rises and falls back (U-shaped learning) from counting
  as acquired. A paradigm whose final accuracy is below the threshold is never acquired. A
  paradigm already above the threshold at initialisation (an untrained model's length or
  frequency bias) is acquired at the first step; ``initial_accuracy`` shows these.
* :func:`order_consistency` -- do seeds acquire paradigms in the same order? Spearman's rho
  between two seeds' acquisition steps over paradigms, averaged over all pairs of seeds, against
  a null that permutes paradigm labels within each seed independently; one-sided permutation
  p value. Never-acquired paradigms rank tied last (after every acquired one).
* :func:`events` -- acquisitions as timeline events (:mod:`lhp_core.metrics.events`).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from lhp_core import schema
from lhp_core.data.pythia_blimp import CHANCE
from lhp_core.data.pythia_evals import TOKENS_PER_STEP
from lhp_core.metrics.events import POOLED, event_table
from lhp_core.schema import describe

STUDY = "blimp_acquisition"
LEVELS = ("paradigm", "phenomenon")
_NEED = ["seed", "step", "field", "phenomenon", "paradigm", "accuracy"]


def acquisition_step(steps: np.ndarray, accuracy: np.ndarray, threshold: float) -> tuple[float, float]:
    """First step of a sustained crossing of ``threshold`` in one curve.

    Parameters
    ----------
    steps, accuracy
        Shape ``[n_steps]``, steps increasing.

    Returns
    -------
    (step, previous)
        The first saved step from which ``accuracy >= threshold`` at every later step, and the
        saved step before it (the crossing happened after ``previous``, by ``step``; equal to
        ``step`` at the first saved step). Both NaN when the last accuracy is below threshold.
    """
    below = np.flatnonzero(np.asarray(accuracy) < threshold)
    if below.size == 0:
        return float(steps[0]), float(steps[0])
    last_below = int(below[-1])
    if last_below == len(steps) - 1:
        return np.nan, np.nan
    return float(steps[last_below + 1]), float(steps[last_below])


def _curves(blimp: pd.DataFrame, level: str) -> pd.DataFrame:
    missing = [c for c in _NEED if c not in blimp.columns]
    if missing:
        raise ValueError(f"BLiMP table lacks columns {missing}; pass lhp_core.data.pythia_blimp.load()")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")
    _one_model(blimp)
    if blimp["accuracy"].isna().any():
        raise ValueError(f"{int(blimp['accuracy'].isna().sum())} NaN accuracies in the BLiMP table")
    dup = blimp.duplicated(["seed", "step", "paradigm"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicated (seed, step, paradigm) rows")
    if level == "paradigm":
        return blimp.assign(task=blimp["paradigm"])[["seed", "step", "task", "field", "phenomenon", "accuracy"]]
    # BLiMP's phenomenon score is the mean over its paradigms; "NPI licensing" is under two fields.
    g = blimp.groupby(["seed", "step", "field", "phenomenon"], as_index=False)["accuracy"].mean()
    return g.assign(task=g["field"] + "/" + g["phenomenon"])[
        ["seed", "step", "task", "field", "phenomenon", "accuracy"]
    ]


def acquisition(blimp: pd.DataFrame, margin: float = 0.1, chance: float = CHANCE,
                level: str = "paradigm") -> xr.Dataset:
    """Acquisition step of every paradigm (or phenomenon) in every seed.

    Parameters
    ----------
    blimp
        :func:`lhp_core.data.pythia_blimp.load` (or rows of it).
    margin, chance
        Threshold ``chance + margin`` (default 0.6), sustained to the last saved step.
    level
        ``"paradigm"`` (67 units) or ``"phenomenon"`` (13 units: a phenomenon is identified by
        field and name, e.g. ``"semantics/NPI licensing"``; its accuracy is the mean over its
        paradigms).

    Returns
    -------
    xarray.Dataset
        Dims ``(seed, task)`` (``task`` = paradigm id, or ``field/phenomenon``; coords ``field``
        and ``phenomenon`` along ``task``): ``acquisition_step`` (NaN if never),
        ``previous_step``, ``acquisition_tokens``, ``acquired``, ``initial_accuracy`` (first
        saved step), ``final_accuracy``. Along ``task``: ``n_acquired`` (seeds),
        ``median_step`` (lower median over seeds, an observed step; NaN unless every seed
        acquired the unit), ``first_step`` / ``last_step`` (min / max over seeds, same rule).
    """
    curves = _curves(blimp, level)
    threshold = chance + margin
    rows = []
    for (run, task), g in curves.groupby(["seed", "task"], sort=True):
        g = g.sort_values("step")
        steps, acc = g["step"].to_numpy(dtype=float), g["accuracy"].to_numpy(dtype=float)
        step, previous = acquisition_step(steps, acc, threshold)
        rows.append((run, task, step, previous, acc[0], acc[-1]))
    cols = ["seed", schema.TASK, "acquisition_step", "previous_step", "initial_accuracy", "final_accuracy"]
    ds = pd.DataFrame(rows, columns=cols).set_index(["seed", schema.TASK]).to_xarray()
    ds["acquired"] = ds["acquisition_step"].notnull()
    ds["acquisition_tokens"] = ds["acquisition_step"] * float(TOKENS_PER_STEP)
    meta = curves.drop_duplicates("task").set_index("task")
    ds = ds.assign_coords(
        field=(schema.TASK, meta.loc[ds[schema.TASK].values, "field"].to_numpy()),
        phenomenon=(schema.TASK, meta.loc[ds[schema.TASK].values, "phenomenon"].to_numpy()),
    )
    ds["n_acquired"] = ds["acquired"].sum("seed")
    per_run = pd.DataFrame(rows, columns=cols).groupby(schema.TASK)["acquisition_step"]
    # A unit some seed never acquired has no median acquisition step (it is beyond the data).
    pooled = pd.DataFrame({
        "median_step": per_run.agg(lambda s: np.quantile(s, 0.5, method="lower") if s.notna().all() else np.nan),
        "first_step": per_run.agg(lambda s: s.min() if s.notna().all() else np.nan),
        "last_step": per_run.agg(lambda s: s.max() if s.notna().all() else np.nan),
    })
    ds = ds.merge(pooled.rename_axis(schema.TASK).to_xarray())

    rule = f"accuracy >= {threshold:g} at this and every later saved step"
    describe(ds["acquisition_step"], "steps", f"first saved step with {rule}; NaN if never")
    describe(ds["previous_step"], "steps", "saved step before acquisition_step: the crossing happened after it")
    describe(ds["acquisition_tokens"], "tokens", "acquisition_step x 2,097,152 training tokens per step")
    describe(ds["acquired"], "bool", "the unit was acquired by the last saved step")
    describe(ds["initial_accuracy"], "proportion correct", "accuracy at the first saved step (initialisation)")
    describe(ds["final_accuracy"], "proportion correct", "accuracy at the last saved step")
    describe(ds["n_acquired"], "seeds", "seeds that acquired the unit")
    describe(ds["median_step"], "steps",
             "lower median of acquisition_step over seeds; NaN unless every seed acquired it")
    describe(ds["first_step"], "steps", "earliest acquisition_step over seeds; NaN unless every seed acquired it")
    describe(ds["last_step"], "steps", "latest acquisition_step over seeds; NaN unless every seed acquired it")
    ds.attrs.update(level=level, chance=float(chance), margin=float(margin), threshold=float(threshold),
                    description=f"acquisition step of BLiMP {level}s: first saved step with {rule}")
    schema.check_attrs(ds.attrs)
    schema.check_dims(tuple(ds.sizes))
    return ds


@dataclass
class OrderConsistency:
    """Agreement between seeds on the order of acquisition.

    Attributes
    ----------
    mean_rho
        Mean over pairs of seeds of Spearman's rho between their acquisition steps.
    p_value
        One-sided permutation p value, ``(1 + #(null >= mean_rho)) / (1 + n_perm)``.
    null
        Mean pairwise rho with unit labels permuted within each seed, shape ``[n_perm]``.
    pairs
        One row per pair of seeds: ``seed_a``, ``seed_b``, ``rho``.
    n_units
        Units (paradigms or phenomena) compared.
    """

    mean_rho: float
    p_value: float
    null: np.ndarray
    pairs: pd.DataFrame
    n_units: int


def _mean_pairwise(z: np.ndarray) -> float:
    """Mean Pearson correlation over pairs of rows of ``z`` [n_seeds, n_units] (rows centred, unit norm).

    sum over pairs of z_a . z_b = (|sum_a z_a|^2 - n_seeds) / 2, as every row has norm 1.
    """
    k = z.shape[0]
    total = z.sum(axis=0)
    return float((total @ total - k) / (k * (k - 1)))


def order_consistency(acq: xr.Dataset, n_perm: int = 10000, seed: int = 0,
                      only_acquired: bool = False) -> OrderConsistency:
    """Do seeds acquire units in the same order? Mean pairwise Spearman rho against a label-permutation null.

    Parameters
    ----------
    acq
        :func:`acquisition` output.
    n_perm
        Permutations for the null: each draws an independent shuffle of unit labels per seed.
    only_acquired
        Keep only units every seed acquired (default False: never-acquired units rank tied last).
    """
    steps = acq["acquisition_step"].transpose("seed", schema.TASK).values.copy()
    if only_acquired:
        steps = steps[:, np.isfinite(steps).all(axis=0)]
    steps[np.isnan(steps)] = np.inf
    k, n = steps.shape
    if k < 2 or n < 3:
        raise ValueError(f"need at least 2 seeds and 3 units to compare orders, got {k} seeds and {n} units")
    ranks = np.vstack([stats.rankdata(row) for row in steps])  # average ranks: ties stay ties
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a seed acquired every unit at the same step: its order has no ranks to compare")
    z = centred / norms
    seeds = acq["seed"].values
    pairs = pd.DataFrame(
        [(seeds[a], seeds[b], float(z[a] @ z[b])) for a, b in combinations(range(k), 2)],
        columns=["seed_a", "seed_b", "rho"],
    )
    observed = _mean_pairwise(z)
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for start in range(0, n_perm, 1000):
        chunk = min(1000, n_perm - start)
        # permuted(axis=2) shuffles every (draw, seed) row on its own: labels permuted within seed
        shuffled = rng.permuted(np.repeat(z[None], chunk, axis=0), axis=2)
        total = shuffled.sum(axis=1)
        null[start:start + chunk] = ((total * total).sum(axis=1) - k) / (k * (k - 1))
    p = (1 + int((null >= observed - 1e-12).sum())) / (1 + n_perm)
    return OrderConsistency(observed, p, null, pairs, n)


def events(blimp: pd.DataFrame, margin: float = 0.1, chance: float = CHANCE, level: str = "paradigm") -> pd.DataFrame:
    """Acquisitions as timeline events (:data:`lhp_core.metrics.events.COLUMNS`).

    One ``kind="acquisition"`` row per (seed, unit): ``step`` = acquisition step, interval
    (previous saved step, acquisition step], the checkpoint gap in which the crossing happened.
    One pooled row (seed -1) per unit: lower median over seeds with the range (min, max) over
    seeds as interval; found only if every seed acquired the unit.
    """
    ds = acquisition(blimp, margin, chance, level)
    model = _one_model(blimp)
    rows = []
    for task in ds[schema.TASK].values:
        name = f"BLiMP {task} accuracy >= {ds.attrs['threshold']:g}"
        for run in ds["seed"].values:
            r = ds.sel(seed=run, task=task)
            found = bool(r["acquired"])
            step, prev = float(r["acquisition_step"]), float(r["previous_step"])
            rows.append((STUDY, name, model, int(run), "acquisition", step, prev, step, found))
        p = ds.sel(task=task)
        found = bool(np.isfinite(float(p["median_step"])))
        rows.append((STUDY, name, model, POOLED, "acquisition", float(p["median_step"]), float(p["first_step"]),
                     float(p["last_step"]), found))
    cols = ["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi", "found"]
    return event_table(pd.DataFrame(rows, columns=cols))


def _one_model(blimp: pd.DataFrame) -> str:
    models = sorted(blimp["model"].unique()) if "model" in blimp.columns else []
    if len(models) != 1:
        raise ValueError(f"need a BLiMP table of one model (with a 'model' column); got models {models}")
    return str(models[0])
