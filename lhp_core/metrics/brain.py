"""Encoding models: how well a layer's sentence representations predict brain responses.

The score of a layer is the Pearson correlation between held-out ridge predictions and
the measured per-sentence response (Schrimpf et al. 2021; Tuckute et al. 2024). The
pieces, in order:

* features are standardised inside each outer fold (mean / population std of the
  training part only), so no test information leaks into the scaling;
* the ridge penalty is chosen per fold by exact leave-one-out error on the training
  part -- the same criterion as scikit-learn's ``RidgeCV`` (``cv=None``), computed for
  every alpha at once from one SVD of the fold's design matrix;
* 10-fold outer cross-validation; the score is Pearson r between predictions and
  responses *within each test fold*, averaged over folds (Brain-Score's convention), with
  a bootstrap interval that resamples sentences within folds. The pooled r over the
  concatenated predictions (``cross_val_predict`` then ``pearsonr``) is reported too as
  ``r_pooled``, but it is not the headline: when the penalty is large, predictions are
  close to each fold's training mean, which is anti-correlated with that fold's held-out
  responses, so pooled r sits well below zero at chance (about -0.2 in our tests) while
  the within-fold score is centred on zero;
* a permutation null (responses shuffled, whole pipeline re-run, alpha re-chosen per
  permutation) shares the fold SVDs with the real fit, so it costs one extra matrix
  product per alpha rather than a new decomposition;
* a transfer split that trains on baseline sentences and tests on drive / suppress ones.

Everything runs in numpy, or in torch on ``device`` (the GPU path); both give the same
numbers to floating-point precision.

Any sentence-level table works: the functions take a feature array and a response
vector (plus an optional condition label), not a particular dataset.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import torch
import xarray as xr
from sklearn.model_selection import KFold

from lhp_core import schema
from lhp_core.measures import (
    Checkpoint,
    Features,
    Measure,
    over_steps,
    step_grid,
)
from lhp_core.metrics import segmentation
from lhp_core.provenance import config_sha256
from lhp_core.stimuli import Stimuli
from lhp_core.suites import get_suite

#: Default ridge penalties (for standardised features). Wide on purpose: with a few
#: thousand sentences and hundreds of features the best alpha is often 1e3-1e5.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-1, 7, 17)


# ----------------------------------------------------------------------------- checks


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be 2-D (n_sentences, n_features); got shape {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"responses must be 1-D (n_sentences,) or 2-D (n_sentences, n_targets); got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"features have {X.shape[0]} rows but responses have {y.shape[0]}; pass one response per sentence, "
            "in the same order as the feature rows"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("features contain NaN or inf; drop those sentences or fix the extraction first")
    if not np.all(np.isfinite(y)):
        raise ValueError("responses contain NaN or inf; drop those sentences from the table first")
    return X, y


def _check_alphas(alphas: Sequence[float]) -> np.ndarray:
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or np.any(a <= 0):
        raise ValueError(f"alphas must be a non-empty 1-D list of positive penalties; got {alphas!r}")
    return a


# ------------------------------------------------------------------- one fold, numpy


def _standardise_np(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    # A constant feature keeps scale 1, as sklearn's StandardScaler does.
    std = np.where(std == 0, 1.0, std)
    return (train - mean) / std, (test - mean) / std


def _fold_numpy(
    Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with LOO-chosen alpha per target on one training set.

    Parameters
    ----------
    Xtr : (n_train, p), Ytr : (n_train, T), Xte : (n_test, p), alphas : (A,)

    Returns
    -------
    predictions (n_test, T) and the chosen alpha index per target (T,).
    """
    Xs, Xt = _standardise_np(Xtr, Xte)
    n = Xs.shape[0]
    ybar = Ytr.mean(axis=0)
    Yc = Ytr - ybar
    U, s, Vt = np.linalg.svd(Xs, full_matrices=False)
    UtY = U.T @ Yc  # (r, T)
    U2 = U**2
    s2 = s**2
    loo_mse = np.empty((alphas.size, Yc.shape[1]))
    for i, a in enumerate(alphas):
        f = s2 / (s2 + a)
        fitted = U @ (f[:, None] * UtY)
        # The unpenalised intercept adds 1/n to every leverage (centred design).
        h = U2 @ f + 1.0 / n
        loo_mse[i] = np.mean(((Yc - fitted) / (1.0 - h)[:, None]) ** 2, axis=0)
    best = np.argmin(loo_mse, axis=0)  # first minimum, as RidgeCV
    g = s[:, None] / (s2[:, None] + alphas[best][None, :])  # (r, T)
    coef = Vt.T @ (g * UtY)  # (p, T)
    return Xt @ coef + ybar, best


# ------------------------------------------------------------------- one fold, torch


def _fold_torch(Xtr, Ytr, Xte, alphas):  # tensors on one device; same maths as _fold_numpy

    mean = Xtr.mean(dim=0)
    std = Xtr.std(dim=0, unbiased=False)
    std = torch.where(std == 0, torch.ones_like(std), std)
    Xs, Xt = (Xtr - mean) / std, (Xte - mean) / std
    n = Xs.shape[0]
    ybar = Ytr.mean(dim=0)
    Yc = Ytr - ybar
    U, s, Vh = torch.linalg.svd(Xs, full_matrices=False)
    UtY = U.T @ Yc
    U2 = U**2
    s2 = s**2
    loo = []
    for a in alphas:
        f = s2 / (s2 + a)
        fitted = U @ (f[:, None] * UtY)
        h = U2 @ f + 1.0 / n
        loo.append((((Yc - fitted) / (1.0 - h)[:, None]) ** 2).mean(dim=0))
    loo_mse = torch.stack(loo)
    # torch.argmin does not promise the first index on ties; numpy does (as RidgeCV).
    best = torch.from_numpy(np.argmin(loo_mse.cpu().numpy(), axis=0)).to(alphas.device)
    g = s[:, None] / (s2[:, None] + alphas[best][None, :])
    coef = Vh.T @ (g * UtY)
    return Xt @ coef + ybar, best


# ------------------------------------------------------------------------ public API


def _outer_folds(n: int, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be between 2 and the number of sentences ({n}); got {n_folds}")
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.arange(n)))


def fit_predict(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_test: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    device: str = "cpu",
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise, choose alpha by exact LOO per target, fit ridge, predict.

    Equivalent to ``make_pipeline(StandardScaler(), RidgeCV(alphas, alpha_per_target=True))``.

    Parameters
    ----------
    X_train : (n_train, p)
    Y_train : (n_train,) or (n_train, T)
    X_test : (n_test, p)
    backend : ``"numpy"``, ``"torch"`` or ``"auto"`` (torch unless ``device == "cpu"``)

    Returns
    -------
    predictions (n_test, T) and chosen alphas (T,)
    """
    X_train, Y_train = _check_xy(X_train, Y_train)
    X_test = np.asarray(X_test, dtype=np.float64)
    if X_test.ndim != 2 or X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"test features must be (n_test, {X_train.shape[1]}); got {X_test.shape}")
    a = _check_alphas(alphas)
    Y2 = Y_train[:, None] if Y_train.ndim == 1 else Y_train
    if _use_torch(backend, device):
        t = lambda z: torch.as_tensor(z, dtype=torch.float64, device=device)  # noqa: E731
        pred, best = _fold_torch(t(X_train), t(Y2), t(X_test), t(a))
        pred, best = pred.cpu().numpy(), best.cpu().numpy()
    else:
        pred, best = _fold_numpy(X_train, Y2, X_test, a)
    return pred, a[best]


def _use_torch(backend: str, device: str) -> bool:
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch'; got {backend!r}")
    if backend == "numpy" and device != "cpu":
        raise ValueError(f"the numpy backend runs on cpu only; got device={device!r} (use backend='torch')")
    return backend == "torch" or (backend == "auto" and device != "cpu")


def cross_val_predictions(
    X: np.ndarray,
    Y: np.ndarray,
    n_folds: int = 10,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seed: int = 0,
    device: str = "cpu",
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out ridge predictions from ``n_folds``-fold CV (``KFold(shuffle=True, random_state=seed)``).

    Parameters
    ----------
    X : (n, p) features
    Y : (n,) or (n, T) responses; every column gets its own alpha

    Returns
    -------
    predictions (n, T) -- each row predicted by the model that did not see it --,
    chosen alphas (n_folds, T), and fold (n,): the outer fold that held each row out.
    """
    X, Y = _check_xy(X, Y)
    a = _check_alphas(alphas)
    Y2 = Y[:, None] if Y.ndim == 1 else Y
    folds = _outer_folds(X.shape[0], n_folds, seed)
    pred = np.empty_like(Y2)
    chosen = np.empty((len(folds), Y2.shape[1]))
    fold = np.empty(X.shape[0], dtype=np.int64)
    for k, (_, te) in enumerate(folds):
        fold[te] = k
    if _use_torch(backend, device):
        Xt = torch.as_tensor(X, dtype=torch.float64, device=device)
        Yt = torch.as_tensor(Y2, dtype=torch.float64, device=device)
        at = torch.as_tensor(a, dtype=torch.float64, device=device)
        for k, (tr, te) in enumerate(folds):
            tr_t = torch.as_tensor(tr, device=device)
            te_t = torch.as_tensor(te, device=device)
            p, best = _fold_torch(Xt[tr_t], Yt[tr_t], Xt[te_t], at)
            pred[te], chosen[k] = p.cpu().numpy(), a[best.cpu().numpy()]
    else:
        for k, (tr, te) in enumerate(folds):
            p, best = _fold_numpy(X[tr], Y2[tr], X[te], a)
            pred[te], chosen[k] = p, a[best]
    return pred, chosen, fold


def pearson_columns(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns (or rows of a batch) along axis -2.

    Parameters
    ----------
    pred, y : (..., n, T) broadcastable

    Returns
    -------
    r : (..., T); NaN where either side is constant
    """
    pc = pred - pred.mean(axis=-2, keepdims=True)
    yc = y - y.mean(axis=-2, keepdims=True)
    num = (pc * yc).sum(axis=-2)
    den = np.sqrt((pc**2).sum(axis=-2) * (yc**2).sum(axis=-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def fold_r(pred: np.ndarray, Y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Pearson r within each outer fold.

    Parameters
    ----------
    pred, Y : (n, T); fold : (n,) fold label per row

    Returns
    -------
    r : (n_folds, T), folds in sorted label order
    """
    pred = pred[:, None] if pred.ndim == 1 else pred
    Y = Y[:, None] if Y.ndim == 1 else Y
    return np.stack([pearson_columns(pred[fold == k], Y[fold == k]) for k in np.unique(fold)])


def bootstrap_r_interval(
    pred: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for Pearson r, resampling sentences (pairs).

    With ``fold`` the statistic is the mean within-fold r and sentences are resampled
    within their fold, mirroring how the score itself is computed.

    Parameters
    ----------
    pred, y : (n,); fold : (n,) optional fold label per sentence
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if n_boot < 10:
        raise ValueError(f"n_boot must be at least 10 for a percentile interval; got {n_boot}")
    fold = np.zeros(pred.size, dtype=np.int64) if fold is None else np.asarray(fold)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(fold == k) for k in np.unique(fold)]
    rs = np.zeros(n_boot)
    # Chunks keep memory at ~chunk * group size floats for large n.
    chunk = max(1, 2_000_000 // max(pred.size, 1))
    for g in groups:
        for start in range(0, n_boot, chunk):
            idx = g[rng.integers(0, g.size, size=(min(chunk, n_boot - start), g.size))]
            rs[start : start + idx.shape[0]] += pearson_columns(pred[idx][..., None], y[idx][..., None])[..., 0]
    rs /= len(groups)
    lo, hi = _nanquantile(rs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _nanquantile(x: np.ndarray, q):
    """``np.nanquantile``, NaN without a warning when nothing is finite (a constant prediction has no r)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).any():
        return np.full(np.shape(q), np.nan) if np.ndim(q) else np.nan
    return np.nanquantile(x, q)


@dataclass
class EncodingScore:
    """Cross-validated encoding score of one feature set.

    Attributes
    ----------
    r : mean over outer folds of the within-fold Pearson r (the score)
    r_lo, r_hi : bootstrap interval of ``r``
    r_pooled : Pearson r over all held-out predictions at once (``cross_val_predict``)
    predictions : (n,) held-out predictions
    fold : (n,) outer fold of each sentence
    alphas : (n_folds,) chosen penalty per outer fold
    null : (n_permutations,) ``r`` under shuffled responses (empty if none were run)
    """

    r: float
    r_lo: float
    r_hi: float
    r_pooled: float
    predictions: np.ndarray
    fold: np.ndarray
    alphas: np.ndarray
    null: np.ndarray

    @property
    def p_value(self) -> float:
        """One-sided permutation p-value with the +1 correction; NaN without a null."""
        if self.null.size == 0:
            return float("nan")
        return float((1 + np.sum(self.null >= self.r)) / (1 + self.null.size))


def encoding_score(
    X: np.ndarray,
    y: np.ndarray,
    n_folds: int = 10,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_boot: int = 1000,
    n_permutations: int = 0,
    seed: int = 0,
    device: str = "cpu",
    backend: str = "auto",
) -> EncodingScore:
    """Cross-validated Pearson r of a ridge encoding model, its interval and its null.

    Parameters
    ----------
    X : (n, p) sentence features
    y : (n,) measured responses
    n_permutations : responses are shuffled this many times (same folds) for a null

    Returns
    -------
    :class:`EncodingScore`
    """
    X, y = _check_xy(X, y)
    if y.ndim != 1:
        raise ValueError(f"encoding_score takes one response per sentence (1-D); got shape {y.shape}")
    rng = np.random.default_rng(seed + 1)
    # Real and shuffled responses go through the same fold SVDs as extra columns.
    cols = [y] + [rng.permutation(y) for _ in range(n_permutations)]
    Y = np.stack(cols, axis=1)
    pred, chosen, fold = cross_val_predictions(X, Y, n_folds, alphas, seed, device, backend)
    r_all = np.nanmean(fold_r(pred, Y, fold), axis=0)
    lo, hi = bootstrap_r_interval(pred[:, 0], y, fold, n_boot=n_boot, seed=seed)
    return EncodingScore(
        r=float(r_all[0]), r_lo=lo, r_hi=hi, r_pooled=float(pearson_columns(pred[:, :1], Y[:, :1])[0]),
        predictions=pred[:, 0], fold=fold, alphas=chosen[:, 0], null=r_all[1:],
    )


def transfer_score(
    X: np.ndarray,
    y: np.ndarray,
    train_mask: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    device: str = "cpu",
    backend: str = "auto",
) -> tuple[float, np.ndarray]:
    """Train on one subset (e.g. baseline sentences), test on the rest (drive / suppress).

    Parameters
    ----------
    X : (n, p), y : (n,), train_mask : (n,) bool

    Returns
    -------
    r on the held-out subset, and predictions (n,) with NaN on the training rows.
    """
    X, y = _check_xy(X, y)
    m = np.asarray(train_mask, dtype=bool)
    if m.shape != y.shape:
        raise ValueError(f"train_mask must have one bool per sentence {y.shape}; got {m.shape}")
    if m.sum() < 3 or (~m).sum() < 3:
        raise ValueError(
            f"transfer split needs at least 3 training and 3 test sentences; got {int(m.sum())} / {int((~m).sum())} "
            "(check the condition labels, e.g. baseline='baseline')"
        )
    p, _ = fit_predict(X[m], y[m], X[~m], alphas, device, backend)
    out = np.full(y.shape, np.nan)
    out[~m] = p[:, 0]
    r = pearson_columns(p, y[~m][:, None])[0]
    return float(r), out


# ------------------------------------------------------------- layers, steps, models


def score_layers(
    features: xr.DataArray | np.ndarray,
    response: np.ndarray | pd.Series,
    condition: np.ndarray | pd.Series | None = None,
    baseline: str = "baseline",
    n_folds: int = 10,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_boot: int = 1000,
    n_permutations: int = 0,
    seed: int = 0,
    device: str = "cpu",
    backend: str = "auto",
) -> xr.Dataset:
    """Encoding score of every layer of one checkpoint.

    Parameters
    ----------
    features : (stimulus, layer, hidden) -- a DataArray with those dims, or an array
    response : (stimulus,) measured response per sentence
    condition : (stimulus,) optional labels; if given, also the transfer split
        (train on ``baseline``, test on every other condition)

    Returns
    -------
    Dataset with dims (layer,) -- ``r``, ``r_lo``, ``r_hi``, ``r_pooled``, ``alpha`` (median over folds),
    ``null_mean``, ``null_q95``, ``p_value``, ``r_transfer`` -- and (layer, stimulus)
    ``prediction`` (held-out CV predictions) and ``prediction_transfer``.
    """
    if isinstance(features, xr.DataArray):
        missing = {schema.STIMULUS, schema.LAYER, schema.HIDDEN} - set(features.dims)
        if missing:
            raise ValueError(
                f"features need dims (stimulus, layer, hidden); missing {sorted(missing)} in {features.dims}"
            )
        F = features.transpose(schema.STIMULUS, schema.LAYER, schema.HIDDEN).values
        layers = features[schema.LAYER].values if schema.LAYER in features.coords else np.arange(F.shape[1])
    else:
        F = np.asarray(features, dtype=np.float64)
        if F.ndim != 3:
            raise ValueError(f"features must be (stimulus, layer, hidden); got shape {F.shape}")
        layers = np.arange(F.shape[1])
    y = np.asarray(response, dtype=np.float64)
    if y.shape != (F.shape[0],):
        raise ValueError(f"response must have one value per stimulus ({F.shape[0]}); got shape {y.shape}")
    cond = None if condition is None else np.asarray(condition).astype(str)
    if cond is not None and cond.shape != y.shape:
        raise ValueError(f"condition must have one label per stimulus ({y.size}); got shape {cond.shape}")
    if cond is not None and not np.any(cond == baseline):
        raise ValueError(f"no sentence has condition {baseline!r}; conditions present: {sorted(set(cond))}")

    L, n = F.shape[1], F.shape[0]
    out = {k: np.full(L, np.nan)
           for k in ("r", "r_lo", "r_hi", "r_pooled", "alpha", "null_mean", "null_q95", "p_value", "r_transfer")}
    pred = np.full((L, n), np.nan)
    pred_tr = np.full((L, n), np.nan)
    for li in range(L):
        # Same folds and permutations for every layer, so layers are compared on equal terms.
        sc = encoding_score(F[:, li], y, n_folds, alphas, n_boot, n_permutations, seed, device, backend)
        out["r"][li], out["r_lo"][li], out["r_hi"][li], out["r_pooled"][li] = sc.r, sc.r_lo, sc.r_hi, sc.r_pooled
        out["alpha"][li] = float(np.median(sc.alphas))
        if sc.null.size:
            finite = np.isfinite(sc.null).any()
            out["null_mean"][li] = float(np.nanmean(sc.null)) if finite else np.nan
            out["null_q95"][li] = float(_nanquantile(sc.null, 0.95))
            out["p_value"][li] = sc.p_value
        pred[li], fold = sc.predictions, sc.fold
        if cond is not None:
            out["r_transfer"][li], pred_tr[li] = transfer_score(F[:, li], y, cond == baseline, alphas, device, backend)
    L_, S_ = schema.LAYER, schema.STIMULUS
    ds = xr.Dataset(
        {k: ((L_,), v) for k, v in out.items()}
        | {"prediction": ((L_, S_), pred), "prediction_transfer": ((L_, S_), pred_tr), "fold": ((S_,), fold)},
        coords={L_: layers, S_: np.arange(n)},
        attrs={"n_folds": n_folds, "n_boot": n_boot, "n_permutations": n_permutations, "seed": seed,
               "inner_cv": "exact leave-one-out (RidgeCV, cv=None)"},
    )
    schema.check_attrs(ds.attrs)
    return ds


def best_layer_curve(scores: xr.Dataset, var: str = "r") -> xr.Dataset:
    """Per (model, step): the best layer's score and which layer it is.

    The best layer is chosen per checkpoint (as in Schrimpf et al. 2021), so the curve
    is an upper envelope; ``best_layer`` shows whether the peak moves over training.

    Returns
    -------
    Dataset (model, step) with ``r`` (best score), ``r_lo``/``r_hi`` of that layer when
    present, and ``best_layer``.
    """
    if var not in scores:
        raise KeyError(f"{var!r} not in scores; variables: {list(scores.data_vars)}")
    v = scores[var]
    filled = v.fillna(-np.inf)
    idx = filled.argmax(schema.LAYER)
    out = {var: v.isel({schema.LAYER: idx}), "best_layer": scores[schema.LAYER].isel({schema.LAYER: idx})}
    for extra in ("r_lo", "r_hi", "null_q95"):
        if var == "r" and extra in scores:
            out[extra] = scores[extra].isel({schema.LAYER: idx})
    ds = xr.Dataset({k: x.drop_vars(schema.LAYER, errors="ignore") for k, x in out.items()})
    return ds.where(np.isfinite(v.max(schema.LAYER)))


def phases(best: xr.Dataset, n_boot: int = 200, seed: int = 0) -> dict:
    """Segment each model's best-layer curve against log10 tokens seen (0, 1 and 2 breakpoints).

    Step 0 has seen no tokens and is left out (log undefined). Three points per segment when the
    schedule allows (>= 10 scored checkpoints), fewer for short custom schedules.

    Returns
    -------
    ``{model: lhp_core.metrics.segmentation.Segmentation}``; ``.three_phases`` is the study's
    verdict rule (both criteria pick two breakpoints and the segments go rise / fall / rise).
    """
    out = {}
    for m in best[schema.MODEL].values:
        c = best.sel({schema.MODEL: m})
        ok = np.isfinite(c["r"].values) & (c[schema.TOKENS_SEEN].values > 0)
        x, y = np.log10(c[schema.TOKENS_SEEN].values[ok].astype(float)), c["r"].values[ok]
        out[str(m)] = segmentation.segment(x, y, min_points=max(1, min(3, (x.size - 1) // 3)), n_boot=n_boot, seed=seed)
    return out


def layer_profile(scores: xr.Dataset, var: str = "r") -> xr.DataArray:
    """Score per layer divided by the checkpoint's best layer: where in depth alignment sits.

    Returns
    -------
    DataArray (model, step, layer) in (-inf, 1]; NaN where the best score is not positive.
    """
    v = scores[var]
    best = v.max(schema.LAYER)
    return (v / best.where(best > 0)).rename(f"{var}_relative")


# ------------------------------------------------------------------ over training

#: Units and descriptions of :func:`score_layers`' variables.
VARIABLES = {
    "r": ("Pearson r", "encoding score: held-out prediction vs response, within-fold r averaged over folds"),
    "r_lo": ("Pearson r", "2.5 % bootstrap bound of r (sentences resampled within folds)"),
    "r_hi": ("Pearson r", "97.5 % bootstrap bound of r"),
    "r_pooled": ("Pearson r", "r over the concatenated held-out predictions of all folds"),
    "alpha": ("ridge penalty", "median over folds of the penalty chosen by leave-one-out"),
    "null_mean": ("Pearson r", "mean r of the permutation null (responses shuffled); NaN where not run"),
    "null_q95": ("Pearson r", "95th percentile of the permutation null; NaN where not run"),
    "p_value": ("probability", "share of null scores at or above r (permutation p value)"),
    "r_transfer": ("Pearson r", "r of a model trained on baseline sentences, tested on the others"),
    "prediction": ("response units", "held-out predicted response per sentence"),
    "prediction_transfer": ("response units", "predicted response of the baseline-trained model (NaN for baseline)"),
    "fold": ("fold index", "outer cross-validation fold of each sentence"),
}


def brain_scores_over_steps(
    suite, table: pd.DataFrame, reducer: str = "stimulus_last", models: Sequence[str] | None = None,
    steps: Sequence[int] | None = None, null_steps: Sequence[int] | str = "last", n_folds: int = 10,
    alphas: Sequence[float] = DEFAULT_ALPHAS, n_boot: int = 1000, n_permutations: int = 0, seed: int = 0,
    device: str = "cpu", progress: bool = True,
) -> xr.Dataset:
    """:func:`score_layers` at every checkpoint, on sentence representations from the sweep engine.

    Both sentence representations (``stimulus_last``, ``stimulus_mean``) of every layer's residual
    stream are extracted once, so scoring the other reducer later reads the same features.

    Parameters
    ----------
    table
        Sentence table with ``sentence``, ``response`` and (optional) ``condition``
        (``lhp_core.data.tuckute.load()``).
    reducer
        Sentence representation: ``"stimulus_last"`` (last token) or ``"stimulus_mean"``.
    null_steps
        Steps that also get the permutation null: ``"last"`` (each model's last step of the
        grid), ``"all"`` or a list; the null barely depends on the checkpoint and costs
        ``n_permutations`` extra fits.

    Returns
    -------
    xarray.Dataset
        ``(model, step, layer[, stimulus])``: :data:`VARIABLES`; coordinate ``tokens_seen``.
    """
    if reducer not in ("stimulus_last", "stimulus_mean"):
        raise ValueError(f"reducer {reducer!r} is not a sentence representation; use stimulus_last or stimulus_mean")
    for col in ("sentence", "response"):
        if col not in table:
            raise KeyError(f"the sentence table needs a {col!r} column; columns: {list(table.columns)}")
    s = get_suite(suite)
    grid = step_grid(s, models, steps)
    nulls = {m: (set(ss[-1:]) if null_steps == "last" else set(ss) if null_steps == "all"
                 else {int(t) for t in null_steps})
             for m, ss in grid.items()}
    response = table["response"].to_numpy(dtype=float)
    cond = table["condition"].to_numpy() if "condition" in table else None

    def compute(ck: Checkpoint) -> xr.Dataset:
        feats = ck.features("resid", reducer)
        ds = score_layers(feats, response, cond, n_folds=n_folds, alphas=alphas, n_boot=n_boot,
                          n_permutations=n_permutations if ck.step in nulls[ck.model] else 0, seed=seed,
                          device=ck.device)
        for v, (units, text) in VARIABLES.items():
            ds[v].attrs.update(units=units, description=text)
        return ds

    key = {"sentences": config_sha256({"s": table["sentence"].tolist()}),
           "response": config_sha256({"r": response.tolist()}),
           "condition": None if cond is None else config_sha256({"c": cond.tolist()}), "reducer": reducer,
           "n_folds": n_folds, "alphas": [float(a) for a in alphas], "n_boot": n_boot,
           "n_permutations": n_permutations, "seed": seed}
    measure = Measure("brain_scores", compute, key,
                      features=Features(Stimuli.from_sentences(table["sentence"].tolist()), ("resid",),
                                        ("stimulus_last", "stimulus_mean")),
                      per_checkpoint=lambda ck: {"null": ck.step in nulls[ck.model]},
                      description="ridge encoding score of every layer's sentence representation for a brain response")
    out = over_steps(s, measure, list(grid), steps, device=device, progress=progress)
    out.attrs.update(reducer=reducer, n_permutations=int(n_permutations), n_boot=int(n_boot),
                     null_steps=null_steps if isinstance(null_steps, str) else ",".join(map(str, null_steps)))
    return out


def prediction_table(scores: xr.Dataset, table: pd.DataFrame, model: str, step: int, layer: int) -> pd.DataFrame:
    """Measured vs held-out predicted response per sentence for one checkpoint and layer (the inspector).

    Returns
    -------
    DataFrame with ``sentence``, ``condition``, ``measured``, ``predicted`` (10-fold CV) and
    ``predicted_transfer`` (trained on baseline sentences; NaN for those).
    """
    for dim, v in ((schema.MODEL, model), (schema.STEP, step), (schema.LAYER, layer)):
        if v not in scores[dim].values:
            raise KeyError(f"{dim} {v!r} not scored; available: {scores[dim].values.tolist()}")
    sel = scores.sel({schema.MODEL: model, schema.STEP: step, schema.LAYER: layer})
    if np.all(np.isnan(sel["prediction"].values)):
        raise KeyError(f"no scores for model {model!r} at step {step}; that checkpoint was not scored")
    return pd.DataFrame({
        "sentence": table["sentence"].to_numpy(),
        "condition": table.get("condition", pd.Series(["all"] * len(table))).to_numpy(),
        "measured": table["response"].to_numpy(), "predicted": sel["prediction"].values,
        "predicted_transfer": sel["prediction_transfer"].values,
    })


def condition_summary(pred: pd.DataFrame) -> pd.DataFrame:
    """Per condition: mean measured and mean predicted response, and r within the condition."""
    rows = []
    for c, g in pred.groupby("condition", sort=True):
        r = pearson_columns(g[["predicted"]].to_numpy(), g[["measured"]].to_numpy())[0] if len(g) > 2 else np.nan
        rows.append({"condition": c, "n": len(g), "measured_mean": g.measured.mean(),
                     "predicted_mean": g.predicted.mean(), "r_within": r})
    return pd.DataFrame(rows)


def stratified_subset(table: pd.DataFrame, n: int | None, by: str = "condition", seed: int = 0) -> pd.DataFrame:
    """``n`` rows drawn without replacement, each ``by`` group keeping its share (rounded), in table order.

    ``n=None`` or ``n >= len(table)`` returns the table unchanged.
    """
    if n is None or n >= len(table):
        return table.reset_index(drop=True)
    if n < 1:
        raise ValueError(f"n must be a positive number of sentences or None; got {n}")
    if by not in table:
        raise KeyError(f"column {by!r} not in the table; columns: {list(table.columns)}")
    rng = np.random.default_rng(seed)
    shares = table[by].value_counts(normalize=True).sort_index()
    counts = np.floor(shares.values * n).astype(int)
    # Largest remainders get the leftover rows so the total is exactly n.
    rest = np.argsort(-(shares.values * n - counts), kind="stable")[: n - counts.sum()]
    counts[rest] += 1
    keep = []
    for (g, k) in zip(shares.index, counts):
        idx = np.flatnonzero(table[by].to_numpy() == g)
        keep += rng.choice(idx, size=k, replace=False).tolist()
    return table.iloc[sorted(keep)].reset_index(drop=True)


def inspect_predictions(scores: xr.Dataset, table: pd.DataFrame, model: str, step: int, layer: int):
    """The inspector's chart: held-out predicted vs measured response per sentence, coloured by condition.

    Returns
    -------
    ``altair.Chart`` (scatter with an identity reference line), data = :func:`prediction_table`.
    """
    pred = prediction_table(scores, table, model, step, layer)
    r = float(scores["r"].sel({schema.MODEL: model, schema.STEP: step, schema.LAYER: layer}))
    lo, hi = (float(min(pred.measured.min(), pred.predicted.min())),
              float(max(pred.measured.max(), pred.predicted.max())))
    points = alt.Chart(pred).mark_circle(size=18, opacity=0.6).encode(
        x=alt.X("predicted:Q", title="predicted response (held-out)", scale=alt.Scale(domain=[lo, hi])),
        y=alt.Y("measured:Q", title="measured response", scale=alt.Scale(domain=[lo, hi])),
        color=alt.Color("condition:N"),
        tooltip=["sentence", "condition", alt.Tooltip("measured:Q", format=".2f"),
                 alt.Tooltip("predicted:Q", format=".2f")],
    )
    diag = alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(color="gray", strokeDash=[4, 4]).encode(
        x="x", y="y"
    )
    return (diag + points).properties(
        width=360, height=300, title=f"{model} · step {step} · layer {layer} · r = {r:.3f}"
    )
