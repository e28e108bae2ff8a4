"""Phases of a training curve: continuous piecewise-linear fits with 0, 1 or 2 breakpoints.

Nakagi et al. (2025, "Triple Phase Transitions", arXiv 2502.20779) describe brain
alignment over training as rise -> fall -> rise. This module asks whether a curve
(score against log tokens seen) supports that, rather than assuming it:

* fit continuous piecewise-linear models with k = 0, 1, 2 breakpoints (hinge basis
  ``[1, x, (x - b1)+, (x - b2)+]``; breakpoints by exhaustive grid search over
  positions between data points, then Nelder-Mead refinement);
* compare them by leave-one-out prediction error (every fit redone without the point,
  breakpoints included) and by BIC (Gaussian likelihood; breakpoints count as parameters);
* bootstrap the breakpoints of the two-breakpoint fit (residual bootstrap: x fixed,
  resampled residuals added to the fit) for percentile intervals;
* "three phases supported" = both criteria choose two breakpoints and the slopes go
  up, down, up.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from lhp_core.progress import bar


def hinge_design(x: np.ndarray, breakpoints: np.ndarray | list[float]) -> np.ndarray:
    """Design matrix ``[1, x, (x - b1)+, ...]`` of a continuous piecewise-linear curve.

    Parameters
    ----------
    x : (n,); breakpoints : (k,)

    Returns
    -------
    (n, 2 + k)
    """
    x = np.asarray(x, dtype=np.float64)
    cols = [np.ones_like(x), x] + [np.maximum(x - b, 0.0) for b in breakpoints]
    return np.stack(cols, axis=1)


def _sse(x: np.ndarray, y: np.ndarray, bps) -> tuple[float, np.ndarray]:
    D = hinge_design(x, bps)
    coef, *_ = np.linalg.lstsq(D, y, rcond=None)
    resid = y - D @ coef
    return float(resid @ resid), coef


def _batched_sse(x: np.ndarray, y: np.ndarray, bps: np.ndarray) -> np.ndarray:
    """SSE of the hinge fit for many breakpoint sets at once.

    Parameters
    ----------
    bps : (C, k) candidate breakpoint sets

    Returns
    -------
    (C,) residual sums of squares
    """
    D = np.concatenate(
        [np.broadcast_to(hinge_design(x, [])[None], (bps.shape[0], x.size, 2)),
         np.maximum(x[None, :, None] - bps[:, None, :], 0.0)],
        axis=2,
    )
    # lstsq per candidate through one batched QR: the hinge columns can be nearly
    # collinear for breakpoints near the ends, where normal equations would lose digits.
    Q, _ = np.linalg.qr(D)
    proj = np.einsum("cnk,n->ck", Q, y)
    return float(y @ y) - np.einsum("ck,ck->c", proj, proj)


@dataclass
class PiecewiseFit:
    """A continuous piecewise-linear fit.

    Attributes
    ----------
    breakpoints : (k,) sorted x positions
    coef : (2 + k,) hinge-basis coefficients
    slopes : (k + 1,) slope of each segment
    sse : residual sum of squares
    n : number of points
    """

    breakpoints: np.ndarray
    coef: np.ndarray
    slopes: np.ndarray
    sse: float
    n: int

    @property
    def n_breaks(self) -> int:
        return int(self.breakpoints.size)

    @property
    def n_params(self) -> int:
        """Coefficients plus breakpoints (the noise variance is not counted, as statsmodels)."""
        return 2 + 2 * self.n_breaks

    @property
    def bic(self) -> float:
        """``-2 log L + n_params log n`` with the Gaussian maximum likelihood."""
        n = self.n
        sigma2 = max(self.sse / n, 1e-300)
        loglik = -0.5 * n * (np.log(2 * np.pi * sigma2) + 1.0)
        return float(-2 * loglik + self.n_params * np.log(n))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return hinge_design(x, self.breakpoints) @ self.coef

    @property
    def phases(self) -> str:
        """Direction of each segment, e.g. ``"rise/fall/rise"``."""
        return "/".join("rise" if s > 0 else "fall" for s in self.slopes)


def _check_curve(x: np.ndarray, y: np.ndarray, n_breaks: int, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length; got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite; drop NaN scores and step 0 (log tokens of 0 is -inf) first")
    need = (n_breaks + 1) * min_points
    if x.size < need:
        raise ValueError(
            f"{n_breaks} breakpoint(s) with at least {min_points} points per segment need {need} points; got {x.size} "
            "(score more checkpoints or lower min_points)"
        )
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def fit_piecewise(x: np.ndarray, y: np.ndarray, n_breaks: int, min_points: int = 3,
                  refine: bool = True) -> PiecewiseFit:
    """Least-squares continuous piecewise-linear fit with ``n_breaks`` breakpoints.

    Parameters
    ----------
    x, y : (n,) the curve (e.g. log10 tokens seen, brain score)
    n_breaks : 0, 1 or 2
    min_points : every segment keeps at least this many points (breakpoints cannot sit
        on the curve's ends, where a hinge would fit one point)
    refine : move breakpoints off the midpoint grid by Nelder-Mead (exact least squares);
        the many refits inside LOO and the bootstrap skip it (midpoint grid only) for speed

    Returns
    -------
    :class:`PiecewiseFit`
    """
    if n_breaks not in (0, 1, 2):
        raise ValueError(f"n_breaks must be 0, 1 or 2; got {n_breaks}")
    x, y = _check_curve(x, y, n_breaks, min_points)
    n = x.size
    if n_breaks == 0:
        sse, coef = _sse(x, y, [])
        return PiecewiseFit(np.empty(0), coef, coef[1:2].copy(), sse, n)
    # Candidate positions: midpoints between neighbours, so that segment membership is
    # unambiguous; index i means "between x[i-1] and x[i]" (i points to the left).
    mids = (x[:-1] + x[1:]) / 2
    cands = range(min_points, n - min_points + 1)
    combos = np.array(
        [c for c in itertools.combinations(cands, n_breaks) if all(b - a >= min_points for a, b in zip(c, c[1:]))]
    )
    if combos.size == 0:
        raise ValueError(f"no placement of {n_breaks} breakpoints leaves {min_points} points per segment")
    sse_grid = _batched_sse(x, y, mids[combos - 1])
    combo = combos[int(np.argmin(sse_grid))]
    best = (float(sse_grid.min()), combo)
    if not refine:
        bps = mids[combo - 1]
        sse, coef = _sse(x, y, bps)
        slopes = coef[1] + np.concatenate([[0.0], np.cumsum(coef[2:])])
        return PiecewiseFit(bps.astype(np.float64), coef, slopes, sse, n)
    # Refine within the grid cell: each breakpoint may move between its neighbouring points.
    lo = np.array([x[i - 1] for i in combo])
    hi = np.array([x[i] for i in combo])
    start = np.array([mids[i - 1] for i in combo])

    def objective(b: np.ndarray) -> float:
        if np.any(b < lo) or np.any(b > hi):
            return np.inf
        return _sse(x, y, b)[0]

    res = minimize(objective, start, method="Nelder-Mead",
                   options={"xatol": 1e-6 * (x[-1] - x[0] + 1e-12), "fatol": 1e-14})
    bps = res.x if res.fun <= best[0] else start
    sse, coef = _sse(x, y, bps)
    slopes = coef[1] + np.concatenate([[0.0], np.cumsum(coef[2:])])
    return PiecewiseFit(np.sort(np.asarray(bps, dtype=np.float64)), coef, slopes, sse, n)


def loo_errors(x: np.ndarray, y: np.ndarray, n_breaks: int, min_points: int = 3) -> np.ndarray:
    """Squared leave-one-out prediction error of every point (n,), refitting breakpoints each time."""
    x, y = _check_curve(x, y, n_breaks, min_points)
    errs = np.empty(x.size)
    for i in range(x.size):
        keep = np.arange(x.size) != i
        fit = fit_piecewise(x[keep], y[keep], n_breaks, min_points, refine=False)
        errs[i] = (fit.predict(x[i : i + 1])[0] - y[i]) ** 2
    return errs


@dataclass
class Segmentation:
    """Model comparison for a curve and the chosen fit.

    Attributes
    ----------
    fits : {k: PiecewiseFit} for k = 0, 1, 2
    table : one row per k: ``sse``, ``bic``, ``loo_mse``, ``phases``
    k_bic : number of breakpoints with the lowest BIC
    k_loo : the fewest breakpoints whose LOO error is within one standard error of the
        lowest (the one-standard-error rule: LOO alone lets breakpoints chase noise)
    break_lo, break_hi : (2,) bootstrap percentile interval of the two-breakpoint fit
    boot_breakpoints : (n_boot, 2)
    """

    fits: dict[int, PiecewiseFit]
    table: pd.DataFrame
    k_bic: int
    k_loo: int
    break_lo: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    break_hi: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    boot_breakpoints: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))

    @property
    def three_phases(self) -> bool:
        """Both criteria choose two breakpoints and the segments go rise / fall / rise."""
        return self.k_bic == 2 and self.k_loo == 2 and self.fits[2].phases == "rise/fall/rise"

    def summary(self) -> dict[str, float | int | str | bool]:
        """Flat numbers for ``lhp_core.book.record``."""
        f2 = self.fits[2]
        return {
            "k_bic": self.k_bic, "k_loo": self.k_loo, "three_phases": self.three_phases,
            "phases_2break": f2.phases,
            "break1": float(f2.breakpoints[0]), "break2": float(f2.breakpoints[1]),
            "break1_lo": float(self.break_lo[0]), "break1_hi": float(self.break_hi[0]),
            "break2_lo": float(self.break_lo[1]), "break2_hi": float(self.break_hi[1]),
        }


def segment(
    x: np.ndarray,
    y: np.ndarray,
    min_points: int = 3,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> Segmentation:
    """Fit 0, 1 and 2 breakpoints, compare them, and bootstrap the two breakpoints.

    Parameters
    ----------
    x : (n,) position along training, normally ``log10(tokens_seen)`` (step 0 dropped)
    y : (n,) the curve, e.g. best-layer brain score
    n_boot : residual-bootstrap resamples for the breakpoint intervals (0 to skip)

    Returns
    -------
    :class:`Segmentation`
    """
    x, y = _check_curve(x, y, 2, min_points)
    if x.size < 3 * min_points + 1:
        raise ValueError(
            f"segment needs {3 * min_points + 1} points (3 segments of {min_points}, plus one left out by "
            f"leave-one-out); got {x.size} (score more checkpoints or lower min_points)"
        )
    fits = {k: fit_piecewise(x, y, k, min_points) for k in (0, 1, 2)}
    loo = {k: loo_errors(x, y, k, min_points) for k in (0, 1, 2)}
    table = pd.DataFrame(
        {
            "n_breaks": [0, 1, 2],
            "sse": [fits[k].sse for k in (0, 1, 2)],
            "bic": [fits[k].bic for k in (0, 1, 2)],
            "loo_mse": [loo[k].mean() for k in (0, 1, 2)],
            "loo_se": [loo[k].std(ddof=1) / np.sqrt(x.size) for k in (0, 1, 2)],
            "phases": [fits[k].phases for k in (0, 1, 2)],
        }
    )
    kmin = int(table.loo_mse.idxmin())
    k_loo = int(np.flatnonzero(table.loo_mse.values <= table.loo_mse[kmin] + table.loo_se[kmin])[0])
    seg = Segmentation(fits, table, int(table.bic.idxmin()), k_loo)
    if n_boot:
        f2 = fits[2]
        fitted = f2.predict(x)
        resid = y - fitted
        resid = resid - resid.mean()
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, 2))
        for b in bar(range(n_boot), desc="bootstrap breakpoints", disable=not progress):
            boots[b] = fit_piecewise(x, fitted + rng.choice(resid, size=x.size, replace=True), 2, min_points,
                                     refine=False).breakpoints
        q = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
        seg.break_lo, seg.break_hi, seg.boot_breakpoints = q[0], q[1], boots
    return seg
