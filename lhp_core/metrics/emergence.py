"""Downstream performance as a function of pre-training loss (Du et al., NeurIPS 2024).

Claim under test: checkpoints with the same pre-training loss perform the same on a task
whatever their size (performance *collapses* onto one curve of loss), and some tasks stay
at chance until the loss falls below a threshold.

* :func:`collapse` – how much worse one shared curve of loss does than one curve per
  model size: in-sample R² of both (cubic regression splines on the same knots), the
  nested-model F-test, and leave-one-size-out R² (the shared curve predicting a size it
  never saw).
* :func:`fit_hinge` – continuous piecewise-linear fit, flat at chance above the threshold
  loss ``τ`` and linear below; :func:`bootstrap_threshold` – percentile interval for ``τ``;
  :func:`fit_logistic` – a smooth alternative.
* :func:`is_emergent` – at chance above the threshold *and* clearly above chance below it.
* :func:`loss_table` / :func:`pythia_loss_table` – put every checkpoint at its held-out
  loss (our suites) or at LAMBADA log-perplexity (Pythia's published evaluations).

All inputs are tidy tables (one row per checkpoint × task × metric); functions are pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from lhp_core import schema

if TYPE_CHECKING:
    import xarray as xr

# ---------------------------------------------------------------- collapse


def spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Cubic regression-spline design (truncated powers).

    Parameters
    ----------
    x
        ``(n,)`` predictor (loss).
    knots
        ``(m,)`` interior knots.

    Returns
    -------
    ``(n, 4 + m)`` design ``[1, x, x², x³, (x − κ_j)₊³]`` (x centred and scaled first, so
    the columns are well conditioned).
    """
    x = np.asarray(x, dtype=float)
    cols = [np.ones_like(x), x, x**2, x**3] + [np.clip(x - k, 0, None) ** 3 for k in np.asarray(knots)]
    return np.column_stack(cols)


def _fit(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, int]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return coef, float(resid @ resid), int(np.linalg.matrix_rank(design))


@dataclass(frozen=True)
class Collapse:
    """Result of :func:`collapse`.

    ``r2_shared`` / ``r2_per_group``: in-sample R² of one curve of loss for all sizes vs one
    curve per size. ``f_stat``, ``p_value``: F-test of the shared (restricted) model against
    the per-size (full) model. ``r2_leave_one_out``: R² over all points when each size is
    predicted by a shared curve fitted to the other sizes. ``collapse_ratio`` = RSS_per /
    RSS_shared (1 = one curve explains the sizes as well as separate curves do).
    """

    r2_shared: float
    r2_per_group: float
    r2_leave_one_out: float
    f_stat: float
    p_value: float
    collapse_ratio: float
    n: int
    n_groups: int


def _scale(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (x - ref.mean()) / (ref.std() or 1.0)


def collapse(df: pd.DataFrame, x: str = "loss", y: str = "value", group: str = schema.MODEL,
             n_knots: int = 2) -> Collapse:
    """Does one curve of loss explain every model size?

    Parameters
    ----------
    df
        Tidy table with columns ``x``, ``y``, ``group`` (one row per checkpoint).
    n_knots
        Interior knots of the cubic spline, at pooled quantiles of ``x``.
    """
    missing = {x, y, group} - set(df.columns)
    if missing:
        raise ValueError(f"collapse needs columns {sorted(missing)}; got {list(df.columns)}")
    d = df[[x, y, group]].dropna()
    groups = list(pd.unique(d[group]))
    if len(groups) < 2:
        raise ValueError(f"collapse compares model sizes: need >= 2 values of {group!r}, got {groups}")
    xv = d[x].to_numpy(float)
    xs = _scale(xv, xv)
    yv = d[y].to_numpy(float)
    knots = np.quantile(xs, np.linspace(0, 1, n_knots + 2)[1:-1])
    X = spline_basis(xs, knots)
    _, rss_shared, p_shared = _fit(X, yv)
    tss = float(((yv - yv.mean()) ** 2).sum())
    rss_per, p_per = 0.0, 0
    g = d[group].to_numpy()
    for name in groups:
        m = g == name
        _, r, p = _fit(X[m], yv[m])
        rss_per += r
        p_per += p
    n = yv.size
    df_num, df_den = p_per - p_shared, n - p_per
    if df_num > 0 and df_den > 0 and rss_per > 0:
        f = ((rss_shared - rss_per) / df_num) / (rss_per / df_den)
        pval = float(stats.f.sf(f, df_num, df_den))
    else:
        f, pval = float("nan"), float("nan")
    # Leave one size out: fit on the others, predict it (x clipped to the fitted range,
    # so the cubic does not extrapolate wildly beyond the losses it saw).
    press = 0.0
    for name in groups:
        m = g == name
        lo, hi = xs[~m].min(), xs[~m].max()
        coef, *_ = np.linalg.lstsq(X[~m], yv[~m], rcond=None)
        pred = spline_basis(np.clip(xs[m], lo, hi), knots) @ coef
        press += float(((yv[m] - pred) ** 2).sum())
    return Collapse(
        r2_shared=1 - rss_shared / tss,
        r2_per_group=1 - rss_per / tss,
        r2_leave_one_out=1 - press / tss,
        f_stat=float(f),
        p_value=pval,
        collapse_ratio=rss_per / rss_shared if rss_shared > 0 else 1.0,
        n=n,
        n_groups=len(groups),
    )


# ---------------------------------------------------------------- thresholds


def hinge(x: np.ndarray, tau: float, level: float, slope: float) -> np.ndarray:
    """``level`` for ``x ≥ τ``; ``level + slope · (τ − x)`` below (performance rises as loss falls)."""
    return level + slope * np.clip(tau - np.asarray(x, dtype=float), 0, None)


@dataclass(frozen=True)
class HingeFit:
    tau: float
    level: float
    slope: float
    rss: float


def _profile(x: np.ndarray, y: np.ndarray, taus: np.ndarray, chance: float | None) -> tuple[np.ndarray, ...]:
    """``(level, slope, rss)`` of the least-squares hinge at each threshold in ``taus``, each ``[len(taus)]``.

    For a fixed threshold the hinge is a straight line in ``h = max(τ − x, 0)``, so the fit is the
    closed-form simple regression (through ``chance`` when it is fixed); a threshold below every loss
    (``h`` all zero) fits the flat part alone.
    """
    h = np.clip(taus[:, None] - x[None, :], 0, None)  # [tau, n]
    if chance is None:
        hc = h - h.mean(axis=1, keepdims=True)
        yc = y - y.mean()
        sxx, sxy = np.einsum("tn,tn->t", hc, hc), hc @ yc
        slope = np.divide(sxy, sxx, out=np.zeros_like(sxx), where=sxx > 0)
        level = y.mean() - slope * h.mean(axis=1)
    else:
        hh, hy = np.einsum("tn,tn->t", h, h), h @ (y - chance)
        slope = np.divide(hy, hh, out=np.zeros_like(hh), where=hh > 0)
        level = np.full_like(slope, chance)
    r = y[None, :] - level[:, None] - slope[:, None] * h
    return level, slope, np.einsum("tn,tn->t", r, r)


def _hinge_at(x: np.ndarray, y: np.ndarray, tau: float, chance: float | None) -> HingeFit:
    level, slope, rss = (float(v[0]) for v in _profile(x, y, np.array([float(tau)]), chance))
    return HingeFit(tau=float(tau), level=level, slope=slope, rss=rss)


def fit_hinge(x: np.ndarray, y: np.ndarray, chance: float | None = None, min_points: int = 3) -> HingeFit:
    """Least-squares hinge fit; the threshold is profiled over the observed losses.

    Parameters
    ----------
    x, y
        ``(n,)`` loss and task performance.
    chance
        Fix the flat part at this level (the task's chance); ``None`` fits it.
    min_points
        Minimum points on each side of the threshold.

    Notes
    -----
    For a fixed ``τ`` the model is linear, so the profile RSS is exact; it is minimised
    on a grid between the ``min_points``-th smallest and largest losses and then refined
    with a bounded scalar search around the best grid point.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 * min_points + 1:
        raise ValueError(f"fit_hinge needs at least {2 * min_points + 1} finite points, got {x.size}")
    xs = np.sort(x)
    lo, hi = xs[min_points - 1], xs[-min_points]
    if not hi > lo:
        raise ValueError("losses do not vary enough to place a threshold")
    grid = np.linspace(lo, hi, 200)
    rss = _profile(x, y, grid, chance)[2]
    i = int(np.argmin(rss))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda t: _hinge_at(x, y, t, chance).rss, bounds=(a, b), method="bounded",
                                   options={"xatol": 1e-6 * (hi - lo)})
    best = _hinge_at(x, y, float(res.x), chance)
    return best if best.rss <= rss[i] else _hinge_at(x, y, grid[i], chance)


@dataclass(frozen=True)
class Threshold:
    tau: float
    lo: float
    hi: float
    level: float
    slope: float
    n_boot: int


def bootstrap_threshold(
    x: np.ndarray, y: np.ndarray, chance: float | None = None, n_boot: int = 200, ci: float = 0.95, seed: int = 0
) -> Threshold:
    """Hinge threshold with a percentile bootstrap interval (checkpoints resampled with replacement)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    fit = fit_hinge(x, y, chance)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        try:
            taus.append(fit_hinge(x[idx], y[idx], chance).tau)
        except ValueError:  # a resample with too few distinct losses
            continue
    q = (1 - ci) / 2
    lo, hi = np.quantile(taus, [q, 1 - q])
    return Threshold(tau=fit.tau, lo=float(lo), hi=float(hi), level=fit.level, slope=fit.slope, n_boot=len(taus))


def logistic(x: np.ndarray, tau: float, width: float, chance: float, top: float) -> np.ndarray:
    """``chance + (top − chance) · σ((τ − x) / width)``."""
    return chance + (top - chance) * special.expit((tau - np.asarray(x, dtype=float)) / width)


def fit_logistic(x: np.ndarray, y: np.ndarray, chance: float) -> dict[str, float]:
    """Logistic fit of performance against loss with the floor fixed at chance.

    Returns ``{"tau", "width", "top"}``: midpoint loss, width (loss units) and ceiling.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    p0 = [float(np.median(x)), float(np.std(x) / 4 or 1.0), float(max(y.max(), chance + 1e-3))]
    popt, _ = optimize.curve_fit(
        lambda xx, t, w, top: logistic(xx, t, w, chance, top), x, y, p0=p0,
        bounds=([x.min() - np.ptp(x), 1e-6, chance], [x.max() + np.ptp(x), 10 * np.ptp(x) + 1e-6, np.inf]),
        maxfev=20000,
    )
    return {"tau": float(popt[0]), "width": float(popt[1]), "top": float(popt[2])}


def mean_task(evals: pd.DataFrame, prefix: str, name: str, metric: str = "acc") -> pd.DataFrame:
    """Average the tasks whose id starts with ``prefix`` (e.g. the 57 ``hendrycksTest-`` MMLU subjects).

    The new rows have task ``name``; ``stderr`` = sqrt(Σ stderr²) / n_tasks (independent subtasks).
    """
    sub = evals[evals["task"].str.startswith(prefix) & (evals["metric"] == metric)]
    if sub.empty:
        raise ValueError(f"no tasks starting with {prefix!r} and metric {metric!r}")
    keys = [c for c in sub.columns if c not in ("task", "value", "stderr", "path")]
    g = sub.groupby(keys, dropna=False)
    out = g["value"].mean().to_frame()
    out["stderr"] = g["stderr"].apply(lambda s: float(np.sqrt((s**2).sum()) / s.size))
    return out.reset_index().assign(task=name)


def chance_band(chance: float, n_items: int, z: float = 2.0) -> float:
    """Half-width of the chance band: ``z`` binomial standard errors of accuracy at chance on ``n_items``."""
    if n_items < 1:
        raise ValueError("n_items must be positive")
    return float(z * np.sqrt(chance * (1 - chance) / n_items))


def is_emergent(
    x: np.ndarray, y: np.ndarray, chance: float, band: float, tau: float, frac: float = 0.9, min_above: float = 0.2
) -> bool:
    """Emergent = a real plateau at chance above the threshold, clearly above chance below it.

    At least ``frac`` of the checkpoints with loss above ``τ`` lie within ``chance ± band``,
    those checkpoints are at least a fraction ``min_above`` of all (a threshold at the edge
    of the data is a smooth rise, not a plateau), and the best checkpoint below ``τ``
    exceeds ``chance + band``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    above, below = y[x > tau], y[x <= tau]
    if above.size < max(1, min_above * x.size) or below.size == 0:
        return False
    flat = np.mean(np.abs(above - chance) <= band) >= frac
    return bool(flat and below.max() > chance + band)


# ---------------------------------------------------------------- placing checkpoints by loss


def loss_table(metrics: pd.DataFrame, record: xr.Dataset, loss: str = "val_loss") -> pd.DataFrame:
    """Add each checkpoint's held-out pre-training loss to a tidy metrics table.

    Parameters
    ----------
    metrics
        Columns ``model, step, ...`` (e.g. ``evaluate_suite(...).to_dataframe()``).
    record
        ``suite.training_record()``: dims ``(model, step)`` with ``val_loss``.
    """
    if loss not in record:
        raise ValueError(f"training record has no {loss!r}; variables: {list(record.data_vars)}")
    rec = record[loss].to_dataframe(name="loss").reset_index()[[schema.MODEL, schema.STEP, "loss"]]
    out = metrics.merge(rec, on=[schema.MODEL, schema.STEP], how="left")
    if out["loss"].isna().any():
        miss = out.loc[out["loss"].isna(), [schema.MODEL, schema.STEP]].drop_duplicates().head(5).values.tolist()
        raise ValueError(f"no {loss} in the training record for checkpoints {miss}; was the suite trained with them?")
    return out


def pythia_loss_table(evals: pd.DataFrame, shots: int = 0, deduped: bool | None = None,
                      metric: str = "acc") -> pd.DataFrame:
    """Pythia's published accuracies placed at LAMBADA log-perplexity.

    Parameters
    ----------
    evals
        ``lhp_core.data.pythia_evals`` table: ``model, deduped, shots, step, task, metric, value, stderr``.

    Returns
    -------
    Columns ``model, deduped, step, task, value, stderr, loss`` where ``loss`` =
    ln(LAMBADA-OpenAI perplexity) of that checkpoint (a per-token loss in nats on
    held-out text, the closest thing to pre-training loss that Pythia publishes).
    """
    need = {"model", "deduped", "shots", "step", "task", "metric", "value"}
    if need - set(evals.columns):
        raise ValueError(f"pythia evals table lacks columns {sorted(need - set(evals.columns))}")
    if "variant" in evals.columns and evals["variant"].nunique() > 1:
        raise ValueError(
            f"pythia evals table mixes variants {sorted(evals['variant'].unique())}; "
            "pass one, e.g. lhp_core.data.pythia_evals.load('main')"
        )
    e = evals[evals["shots"] == shots]
    if deduped is not None:
        e = e[e["deduped"] == deduped]
    keys = ["model", "deduped", "step"]
    ppl = e[(e["task"] == "lambada_openai") & (e["metric"] == "ppl")][keys + ["value"]]
    ppl = ppl.assign(loss=np.log(ppl["value"].astype(float))).drop(columns="value")
    acc = e[e["metric"] == metric]
    cols = keys + ["task", "value"] + (["stderr"] if "stderr" in e.columns else [])
    return acc[cols].merge(ppl, on=keys, how="inner")


# ---------------------------------------------------------------- tables over tasks

#: Chance accuracy of the Pythia evaluation tasks the emergence study reads (multiple choice:
#: 1 / options; LAMBADA is exact match).
PYTHIA_CHANCE = {"lambada_openai": 0.0, "piqa": 0.5, "winogrande": 0.5, "wsc": 0.5, "arc_easy": 0.25,
                 "arc_challenge": 0.25, "sciq": 0.25, "logiqa": 0.25, "mmlu": 0.25}


def item_band(chance: float, n_items: int) -> float:
    """Chance band of a battery task: 2 binomial standard errors at chance on ``n_items``, and at least
    one item's worth (exact-match tasks have chance 0, where the binomial band is empty)."""
    return max(chance_band(chance, n_items) if chance > 0 else 0.0, 1.0 / n_items)


def collapse_table(df: pd.DataFrame, tasks, metrics, group: str = schema.MODEL) -> pd.DataFrame:
    """:func:`collapse` of every (task, metric) with at least 3 distinct values and 2 groups.

    Parameters
    ----------
    df
        Long table ``task, metric, <group>, loss, value``.

    Returns
    -------
    ``task, metric, r2_shared, r2_per_size, r2_leave_one_size_out, p_value``.
    """
    rows = []
    for t in tasks:
        for m in metrics:
            d = df[(df["task"] == t) & (df["metric"] == m)]
            if d["value"].nunique() < 3 or d[group].nunique() < 2:
                continue
            c = collapse(d, group=group)
            rows.append({"task": t, "metric": m, "r2_shared": c.r2_shared, "r2_per_size": c.r2_per_group,
                         "r2_leave_one_size_out": c.r2_leave_one_out, "p_value": c.p_value})
    return pd.DataFrame(rows,
                        columns=["task", "metric", "r2_shared", "r2_per_size", "r2_leave_one_size_out", "p_value"])


def threshold_table(df: pd.DataFrame, chance, band, value: str = "value", n_boot: int = 200,
                    seed: int = 0) -> pd.DataFrame:
    """Hinge threshold (with bootstrap interval) and the emergence verdict of every task.

    Parameters
    ----------
    df
        Long table ``task, loss, <value>`` (all sizes together).
    chance
        ``task -> chance accuracy`` (tasks not in it are skipped).
    band
        ``band(task, chance) -> half-width`` of the chance band.

    Returns
    -------
    ``task, chance, band, tau, tau_lo, tau_hi, slope, best, emergent`` (tasks with at least 7 rows and
    3 distinct values).
    """
    rows = []
    for t, c in dict(chance).items():
        d = df[df["task"] == t]
        if len(d) < 7 or d[value].nunique() < 3:
            continue
        th = bootstrap_threshold(d["loss"].to_numpy(), d[value].to_numpy(), chance=float(c), n_boot=n_boot, seed=seed)
        b = band(t, c)
        rows.append({"task": t, "chance": c, "band": b, "tau": th.tau, "tau_lo": th.lo, "tau_hi": th.hi,
                     "slope": th.slope, "best": d[value].max(),
                     "emergent": is_emergent(d["loss"].to_numpy(), d[value].to_numpy(), float(c), b, th.tau)})
    out = pd.DataFrame(rows, columns=["task", "chance", "band", "tau", "tau_lo", "tau_hi", "slope", "best", "emergent"])
    return out.astype({"emergent": bool})


def loss_to_step(steps, losses, level: float) -> float:
    """The step at which a loss curve first reaches ``level`` (falls to or below it).

    Linear interpolation in log10(step) between the two checkpoints around the crossing (the
    axis checkpoints are spaced on); the first checkpoint when it is already below; NaN when the
    curve never reaches ``level``.
    """
    s = np.asarray(steps, dtype=float)
    y = np.asarray(losses, dtype=float)
    ok = np.isfinite(y) & (s > 0)
    s, y = s[ok], y[ok]
    order = np.argsort(s)
    s, y = s[order], y[order]
    below = np.flatnonzero(y <= level)
    if not below.size or not np.isfinite(level):
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(s[0])
    x0, x1 = np.log10(s[i - 1]), np.log10(s[i])
    frac = (y[i - 1] - level) / (y[i - 1] - y[i])
    return float(10 ** (x0 + frac * (x1 - x0)))
