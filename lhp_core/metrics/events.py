"""Developmental events on the training axis, in one table shape for every study.

A study's ``events`` function returns one row per event (a correlation peaks, a BLiMP
paradigm is acquired, accuracy starts to decline) with exactly :data:`COLUMNS`, so tables of
different studies concatenate into one timeline:

``study``, ``measure``, ``model``, ``seed`` (the run; :data:`POOLED` = -1 for a row pooled
over all of the model's runs in the data, which repeats the run's row when there is one run),
``kind``, ``step``, ``step_lo``, ``step_hi`` (the interval; equal to ``step`` when there is
none), ``tokens_seen``, ``tokens_lo``, ``tokens_hi`` (the steps times tokens per step) and
``found`` (False where the event did not happen in the data; its steps are then NaN).

A study's ``curves`` function returns the measures it follows over training as :class:`Curve`
objects: a name (written once, where the measure is defined; an event on that curve carries the
same name in ``measure``), units, the chance or null level, and the values on ``(model, step)``
with the ``tokens_seen`` coordinate. The Timeline draws one panel per curve name and puts each
event on the panel of its ``measure``, reading nothing else of a study.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.data.pythia_evals import TOKENS_PER_STEP
from lhp_core.metrics import changepoint

COLUMNS = [
    "study", "measure", "model", "seed", "kind",
    "step", "step_lo", "step_hi", "tokens_seen", "tokens_lo", "tokens_hi", "found",
]
POOLED = -1
"""``seed`` of a row pooled over all runs of a model."""
_GIVEN = ["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi", "found"]


def event_table(rows: pd.DataFrame, tokens_per_step: float | np.ndarray = TOKENS_PER_STEP) -> pd.DataFrame:
    """Check a study's event rows and add the token columns.

    Parameters
    ----------
    rows
        Columns ``study, measure, model, seed, kind, step, step_lo, step_hi, found``; steps of
        rows with ``found`` False must be NaN, steps of found rows finite with
        ``step_lo <= step <= step_hi``.
    tokens_per_step
        Training tokens per optimiser step (Pythia: 2,097,152 = 1,024 x 2,048), one number or
        one per row (NaN where unknown: the token columns are then NaN).

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`COLUMNS`, in that order; steps and tokens as float (NaN where not found).
    """
    missing = [c for c in _GIVEN if c not in rows.columns]
    if missing:
        raise ValueError(f"event rows lack columns {missing}; need {_GIVEN}")
    out = rows[_GIVEN].copy()
    if not out["found"].map(lambda v: isinstance(v, (bool, np.bool_))).all():
        raise TypeError("event column 'found' must hold booleans")
    out["found"] = out["found"].astype(bool)
    out["seed"] = out["seed"].astype("int64")
    steps = out[["step", "step_lo", "step_hi"]].astype(float)
    found = out["found"].to_numpy()
    if steps[~found].notna().any().any():
        raise ValueError("events with found=False must have NaN steps; set step, step_lo and step_hi to NaN")
    ok = steps[found]
    if ok.isna().any().any():
        raise ValueError("found events need finite step, step_lo and step_hi "
                         "(use step_lo = step_hi = step without an interval)")
    if ((ok["step_lo"] > ok["step"]) | (ok["step"] > ok["step_hi"])).any():
        bad = out[found][(ok["step_lo"] > ok["step"]) | (ok["step"] > ok["step_hi"])].head(3)
        raise ValueError(f"events need step_lo <= step <= step_hi; first offending rows:\n{bad}")
    out[["step", "step_lo", "step_hi"]] = steps
    per_row = np.broadcast_to(np.asarray(tokens_per_step, dtype=float), (len(out),))
    for step_col, token_col in (("step", "tokens_seen"), ("step_lo", "tokens_lo"), ("step_hi", "tokens_hi")):
        out[token_col] = steps[step_col].to_numpy() * per_row
    return out[COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class Curve:
    """One measure a study follows over training, as the Timeline draws it.

    Attributes
    ----------
    name
        The measure's name, e.g. ``"largest induction score"``; events on this curve have it as ``measure``.
    units
        Units of ``values`` (``"nats/word"``, ``"share"``, ``"Spearman rho"``, ...).
    values
        ``(model, step)`` with coordinate ``tokens_seen(model, step)``; NaN where a model lacks a step.
    null
        The chance or null level drawn beside the curve, or None where the study defines none.
    description
        One sentence: what is measured, on what.
    """

    name: str
    units: str
    values: xr.DataArray
    null: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        dims = set(self.values.dims)
        if dims != {schema.MODEL, schema.STEP}:
            raise ValueError(f"curve {self.name!r} has dims {tuple(self.values.dims)}; reduce it to "
                             f"({schema.MODEL}, {schema.STEP}) first (e.g. .max('{schema.HEAD}'))")
        if schema.TOKENS_SEEN not in self.values.coords:
            raise ValueError(f"curve {self.name!r} has no {schema.TOKENS_SEEN} coordinate; keep the one the "
                             "measure runner gives (lhp_core.measures.over_steps)")

    @property
    def label(self) -> str:
        """The panel title: name and units."""
        return f"{self.name} ({self.units})"

    def frame(self) -> pd.DataFrame:
        """Long table ``model, step, tokens_seen, value`` (NaN values dropped)."""
        df = self.values.to_dataframe(name="value").reset_index()
        return df[[schema.MODEL, schema.STEP, schema.TOKENS_SEEN, "value"]].dropna(subset=["value"])


def tokens_per_step(curve: Curve) -> pd.Series:
    """Training tokens per optimiser step of each model of ``curve``, from its ``tokens_seen`` coordinate at the
    model's last step after 0 (NaN for a model with no such step).

    Returns
    -------
    pandas.Series
        Indexed by model.
    """
    tok = curve.values[schema.TOKENS_SEEN].broadcast_like(curve.values)
    steps = curve.values[schema.STEP].values.astype(float)
    out = {}
    for m in curve.values[schema.MODEL].values:
        t = tok.sel({schema.MODEL: m}).values.astype(float)
        ok = np.isfinite(t) & (steps > 0) & np.isfinite(curve.values.sel({schema.MODEL: m}).values)
        out[m] = t[ok][-1] / steps[ok][-1] if ok.any() else np.nan
    return pd.Series(out, dtype=float)


def changepoint_events(curve: Curve, study: str, kind: str = "transition", min_jump: float = 0.0,
                       n_boot: int = 500, seed: int = 0, run_seed: int = 0) -> pd.DataFrame:
    """The step at which each model's ``curve`` changes level, as events on that curve.

    :func:`lhp_core.metrics.changepoint.per_model` with ``kind="mean"`` (level shift, residual-bootstrap
    95 % interval); an event is found where the fitted jump is at least ``min_jump`` (in the curve's units).

    Parameters
    ----------
    curve
        The measure, ``values`` on ``(model, step)``; the events' ``measure`` is its name.
    study
        The events' ``study`` (the contributor's name).
    kind
        The events' ``kind``.
    n_boot, seed
        Bootstrap resamples and their seed.
    run_seed
        The training run the checkpoints come from (the events' ``seed`` column).

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`COLUMNS`, one row per model; tokens from the curve's ``tokens_seen``.
    """
    cp = changepoint.per_model(curve.values, kind="mean", n_boot=n_boot, seed=seed, min_jump=min_jump)
    found = cp["found"].astype(bool).to_numpy()
    rows = pd.DataFrame({"study": study, "measure": curve.name, "model": cp["model"], "seed": run_seed, "kind": kind,
                         "step": np.where(found, cp["step"], np.nan),
                         # an event's interval holds its step (event_table checks it)
                         "step_lo": np.where(found, np.fmin(cp["lo"], cp["step"]), np.nan),
                         "step_hi": np.where(found, np.fmax(cp["hi"], cp["step"]), np.nan), "found": found})
    return event_table(rows, tokens_per_step(curve).reindex(cp["model"]).to_numpy())
