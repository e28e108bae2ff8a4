"""Phase transitions and peaks along the training-step axis, with bootstrap intervals.

Steps are log-spaced early in training, so regimes are fitted in ``x = log10(step + 1)``
(``+1`` keeps step 0 on the axis).

* :func:`changepoint` ``kind="mean"``: one change in level (least squares over every split,
  as ``ruptures.Dynp(model="l2")`` with one breakpoint); the change step is the first step of
  the new regime. Suits a score that jumps (induction heads forming).
* :func:`changepoint` ``kind="slope"``: continuous piecewise-linear fit with one hinge,
  hinge searched on a fine grid in ``x``; the change step is ``10**hinge - 1``. Suits a
  curve that bends (loss, ICL score).
* Interval: residual bootstrap -- refit on ``fitted + resampled residuals`` ``n_boot``
  times; the 2.5 / 97.5 % quantiles of the refitted change steps. Residuals of a training
  curve are autocorrelated, so read it as a lower bound on the uncertainty. A level shift is
  only located between two saved steps, so for ``kind="mean"`` the interval also spans the
  checkpoint gap: it starts at the last saved step before the earliest bootstrap change (a
  sharp jump that every resample puts at step 3600 reads [3300, 3600], not [3600, 3600]).
* :func:`peak`: the step where the mean over units (words, folds) is largest, with the
  interval of that argmax over units resampled with replacement.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class ChangePoint:
    """A change of regime along steps.

    Attributes
    ----------
    step
        Estimated change step (float for ``slope``, a saved step for ``mean``).
    lo, hi
        95 % bootstrap interval of the change step; for ``mean``, ``lo`` is the saved step
        before the earliest bootstrap change step (the change happened after ``lo``, by ``hi``).
    kind
        ``"mean"`` or ``"slope"``.
    boot
        Bootstrap change steps, shape ``[n_boot]``.
    fitted
        The fitted curve at the given steps, shape ``[n_steps]``.
    """

    step: float
    lo: float
    hi: float
    kind: str
    boot: np.ndarray
    fitted: np.ndarray

    def covers(self, step: float) -> bool:
        return self.lo <= step <= self.hi


def _xy(steps, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    if steps.shape != y.shape or steps.ndim != 1:
        raise ValueError(f"steps {steps.shape} and values {y.shape} must be 1-d of equal length")
    ok = np.isfinite(y)
    if ok.sum() < 4:
        raise ValueError(f"need at least 4 finite values to find a change point, got {ok.sum()}")
    if (steps < 0).any():
        raise ValueError("steps must be >= 0")
    order = np.argsort(steps[ok])
    s = steps[ok][order]
    return s, np.log10(s + 1.0), y[ok][order]


def mean_shift(y: np.ndarray, min_size: int = 2) -> tuple[int, np.ndarray]:
    """Best single split of ``y`` ``[n]`` into two constant segments (least squares).

    Returns ``(k, fitted)``: the new regime starts at index ``k``.
    """
    n = len(y)
    c1, c2 = np.cumsum(y), np.cumsum(y**2)
    best, k_best = np.inf, -1
    for k in range(min_size, n - min_size + 1):
        left = c2[k - 1] - c1[k - 1] ** 2 / k
        rs, rs2 = c1[-1] - c1[k - 1], c2[-1] - c2[k - 1]
        cost = left + rs2 - rs**2 / (n - k)
        if k_best < 0 or cost < best - 1e-12 * abs(best):
            best, k_best = cost, k
    fitted = np.r_[np.full(k_best, y[:k_best].mean()), np.full(n - k_best, y[k_best:].mean())]
    return k_best, fitted


def hinge(x: np.ndarray, y: np.ndarray, n_grid: int = 200) -> tuple[float, np.ndarray]:
    """Continuous piecewise-linear fit ``a + b x + c max(x - h, 0)`` with the best hinge ``h``.

    Hinges are searched on ``n_grid`` points strictly inside the second to the second-last x.
    Returns ``(h, fitted [n])``.
    """
    lo, hi = x[1], x[-2]
    if not hi > lo:
        raise ValueError("need at least 4 distinct steps for a hinge fit")
    best, h_best, f_best = np.inf, lo, None
    for h in np.linspace(lo, hi, n_grid):
        X = np.column_stack([np.ones_like(x), x, np.maximum(x - h, 0.0)])
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        f = X @ beta
        sse = float(((y - f) ** 2).sum())
        if sse < best:
            best, h_best, f_best = sse, float(h), f
    return h_best, f_best


def changepoint(steps, values, kind: str = "mean", n_boot: int = 500, seed: int = 0) -> ChangePoint:
    """The step at which ``values`` change regime, with a residual-bootstrap 95 % interval.

    Parameters
    ----------
    steps
        Training steps, shape ``[n]`` (any order; NaN values are dropped).
    values
        The curve, shape ``[n]`` (a head score, ICL score, loss...).
    kind
        ``"mean"`` (level shift) or ``"slope"`` (hinge in log step).
    """
    if kind not in ("mean", "slope"):
        raise ValueError(f"unknown kind {kind!r}; use 'mean' (level shift) or 'slope' (hinge in log step)")
    s, x, y = _xy(steps, values)

    def fit(yy: np.ndarray) -> tuple[float, np.ndarray]:
        if kind == "mean":
            k, f = mean_shift(yy)
            return float(s[k]), f
        h, f = hinge(x, yy)
        return float(10**h - 1), f

    est, fitted = fit(y)
    resid = y - fitted
    rng = np.random.default_rng(seed)
    boot = np.array([fit(fitted + rng.choice(resid, size=len(resid), replace=True))[0] for _ in range(n_boot)])
    if kind == "mean":
        first = np.quantile(boot, 0.025, method="lower")  # a saved step: the first of the new regime
        lo = s[max(int(np.searchsorted(s, first)) - 1, 0)]
        hi = np.quantile(boot, 0.975, method="higher")
    else:
        lo, hi = np.quantile(boot, [0.025, 0.975])
    return ChangePoint(est, float(lo), float(hi), kind, boot, fitted)


@dataclass
class Peak:
    """Where a curve is highest, with a bootstrap interval over units.

    Attributes
    ----------
    step, value
        Step of the maximum of the mean curve, and that maximum.
    lo, hi
        2.5 / 97.5 % quantiles of the argmax step over bootstrap resamples of units.
    boot
        Bootstrap argmax steps, shape ``[n_boot]``.
    """

    step: float
    value: float
    lo: float
    hi: float
    boot: np.ndarray

    def covers(self, step: float) -> bool:
        return self.lo <= step <= self.hi


def peak(steps, per_unit: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Peak:
    """Peak step of ``mean(per_unit, axis=1)`` and its interval, resampling units (columns).

    Parameters
    ----------
    steps
        Shape ``[n_steps]``.
    per_unit
        Shape ``[n_steps, n_units]``: e.g. per-word held-out Delta LL at each step (the same
        words at every step, so a resample keeps words paired across steps).
    """
    steps = np.asarray(steps, dtype=float)
    m = np.asarray(per_unit, dtype=float)
    if m.ndim != 2 or m.shape[0] != len(steps):
        raise ValueError(f"per_unit must be [n_steps={len(steps)}, n_units], got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("per_unit has NaN/inf; drop units missing at any step so resamples stay paired")
    mean = m.mean(axis=1)
    i = int(np.argmax(mean))
    rng = np.random.default_rng(seed)
    n = m.shape[1]
    boot = np.empty(n_boot)
    # Chunks keep the [n_steps, chunk, n_units] index array small for many words.
    for c in range(0, n_boot, 50):
        idx = rng.integers(0, n, size=(min(50, n_boot - c), n))
        boot[c:c + len(idx)] = steps[np.argmax(m[:, idx].mean(axis=2), axis=0)]
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return Peak(float(steps[i]), float(mean[i]), float(lo), float(hi), boot)


def per_model(curve, kind: str = "mean", n_boot: int = 500, seed: int = 0, min_jump: float = 0.0):
    """:func:`changepoint` of every model's curve, as one table.

    Parameters
    ----------
    curve
        ``xarray.DataArray`` with dims ``(model, step)`` (NaN where a model lacks a step).
    kind, n_boot, seed
        As :func:`changepoint`.
    min_jump
        The smallest change of level (in the curve's units) that counts as a transition; a smaller
        fitted jump leaves ``found`` False (the step and interval are still reported).

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``step``, ``lo``, ``hi``, ``first`` / ``last`` (the curve's
        first and last values), ``jump`` (fitted level after minus before, ``kind="mean"``; last
        minus first fitted value for ``slope``) and ``found``.
    """
    rows = []
    for m in curve["model"].values:
        c = curve.sel(model=m).dropna("step")
        if c.sizes["step"] < 3:
            rows.append({"model": m, "step": np.nan, "lo": np.nan, "hi": np.nan, "first": np.nan, "last": np.nan,
                         "jump": np.nan, "found": False})
            continue
        cp = changepoint(c["step"].values, c.values, kind=kind, n_boot=n_boot, seed=seed)
        jump = float(cp.fitted[-1] - cp.fitted[0])
        rows.append({"model": m, "step": cp.step, "lo": cp.lo, "hi": cp.hi, "first": float(c.values[0]),
                     "last": float(c.values[-1]), "jump": jump, "found": bool(abs(jump) >= min_jump)})
    return pd.DataFrame(rows, columns=["model", "step", "lo", "hi", "first", "last", "jump", "found"])


def overlap(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """True when the intervals ``[a_lo, a_hi]`` and ``[b_lo, b_hi]`` share a point (False with NaN)."""
    return bool(max(a_lo, b_lo) <= min(a_hi, b_hi))
