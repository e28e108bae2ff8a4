"""Linear part-of-speech probes over layers and training steps.

A probe is multinomial logistic regression on standardised per-word features, scored by
cross-validated accuracy with folds grouped by sentence (words of one sentence never sit
on both sides of a split, so context shared within a sentence cannot leak). Two
references make the accuracy readable:

* ``majority``: accuracy of always guessing the training fold's most frequent tag;
* ``control``: the same probe on a *control task* (Hewitt & Liang 2019) in which every
  word type gets a fixed random tag drawn from the tag distribution. A probe that learns
  word identity scores well there too; ``selectivity = accuracy - control`` is what the
  representation says about part of speech beyond memorising words.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from lhp_core import schema
from lhp_core.measures import Checkpoint, Features, Measure, over_steps
from lhp_core.provenance import config_sha256
from lhp_core.stimuli import Stimuli


def sample_tagged_words(
    sentences: Sequence[Sequence[tuple[str, str]]], n_sentences: int, seed: int = 0, max_words: int = 40
) -> tuple[list[list[str]], pd.DataFrame]:
    """A deterministic random subset of tagged sentences, flattened to a word table.

    Parameters
    ----------
    sentences : e.g. ``lhp_core.data.corpora.brown_tagged_sentences()``
    n_sentences : how many to draw (without replacement)
    max_words : longer sentences are skipped (keeps forward passes short)

    Returns
    -------
    words per sentence (for ``Stimuli.from_words``), and a table with one row per word in
    the same order: ``sentence`` (index into the subset), ``word``, ``tag``.
    """
    keep = [i for i, s in enumerate(sentences) if 0 < len(s) <= max_words]
    if n_sentences > len(keep):
        raise ValueError(f"asked for {n_sentences} sentences but only {len(keep)} have 1..{max_words} words")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(keep, size=n_sentences, replace=False).tolist())
    words, rows = [], []
    for k, i in enumerate(chosen):
        ws = [w for w, _ in sentences[i]]
        if any(not w or any(c.isspace() for c in w) for w in ws):
            raise ValueError(f"sentence {i} has an empty word or one with whitespace: {ws}")
        words.append(ws)
        rows += [(k, w, t) for w, t in sentences[i]]
    return words, pd.DataFrame(rows, columns=["sentence", "word", "tag"])


def control_tags(words: Sequence[str], tags: Sequence[str], seed: int = 0) -> np.ndarray:
    """Hewitt & Liang control task: one random tag per word type (lower-cased), drawn from the tag distribution.

    Returns
    -------
    (n_words,) control labels
    """
    words = [w.lower() for w in words]
    tags = np.asarray(tags)
    values, counts = np.unique(tags, return_counts=True)
    rng = np.random.default_rng(seed)
    types = sorted(set(words))
    assign = dict(zip(types, rng.choice(values, size=len(types), p=counts / counts.sum())))
    return np.array([assign[w] for w in words])


@dataclass
class ProbeScore:
    """Cross-validated probe accuracy.

    Attributes
    ----------
    accuracy : share of held-out words tagged correctly (pooled over folds)
    majority : same for the training fold's most frequent tag
    fold_accuracy : (n_folds,)
    """

    accuracy: float
    majority: float
    fold_accuracy: np.ndarray


def probe_accuracy(
    X: np.ndarray, labels: Sequence[str], groups: Sequence[int], n_folds: int = 5, C: float = 1.0, max_iter: int = 300
) -> ProbeScore:
    """Cross-validated multinomial logistic-regression accuracy, folds grouped by sentence.

    Parameters
    ----------
    X : (n_words, hidden)
    labels : (n_words,) tags
    groups : (n_words,) sentence index of each word (``GroupKFold`` groups)
    C : inverse L2 penalty of ``LogisticRegression``

    Returns
    -------
    :class:`ProbeScore`
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(labels)
    g = np.asarray(groups)
    if X.ndim != 2 or X.shape[0] != y.size or g.size != y.size:
        raise ValueError(f"X must be (n_words, hidden) with one label and one group per row; got X {X.shape}, "
                         f"{y.size} labels, {g.size} groups")
    if not np.all(np.isfinite(X)):
        raise ValueError("probe features contain NaN or inf; check the extraction of this checkpoint")
    if np.unique(g).size < n_folds:
        raise ValueError(f"{np.unique(g).size} sentences cannot make {n_folds} grouped folds; use more sentences")
    correct = np.zeros(y.size, dtype=bool)
    major = np.zeros(y.size, dtype=bool)
    fold_acc = []
    for tr, te in GroupKFold(n_splits=n_folds).split(X, y, g):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
        if np.unique(y[tr]).size < 2:
            pred = np.full(te.size, y[tr][0])
        else:
            # lbfgs on a few thousand rows is latency-bound: threaded BLAS only spins, and on a
            # shared 2-core machine it made each fit ~60x slower (71 s vs 1.2 s for 5 folds).
            with threadpool_limits(limits=1, user_api="blas"):
                pred = model.fit(X[tr], y[tr]).predict(X[te])
        correct[te] = pred == y[te]
        vals, counts = np.unique(y[tr], return_counts=True)
        major[te] = y[te] == vals[np.argmax(counts)]
        fold_acc.append(correct[te].mean())
    return ProbeScore(float(correct.mean()), float(major.mean()), np.array(fold_acc))


def probe_layers(
    features: xr.DataArray | np.ndarray,
    tags: Sequence[str],
    sentence: Sequence[int],
    words: Sequence[str] | None = None,
    n_folds: int = 5,
    C: float = 1.0,
    seed: int = 0,
) -> xr.Dataset:
    """POS-probe accuracy of every layer of one checkpoint.

    Parameters
    ----------
    features : (word, layer, hidden) per-word representations (e.g. the sweep's
        ``word_mean`` or ``word_last`` reducer)
    tags, sentence : (word,) tag and sentence index of each word
    words : (word,) word strings; if given, the control task is run too

    Returns
    -------
    Dataset (layer,) with ``accuracy``, ``majority`` and, with ``words``, ``control`` and
    ``selectivity``.
    """
    if isinstance(features, xr.DataArray):
        F = features.transpose(schema.WORD, schema.LAYER, schema.HIDDEN).values
        layers = features[schema.LAYER].values if schema.LAYER in features.coords else np.arange(F.shape[1])
    else:
        F = np.asarray(features)
        if F.ndim != 3:
            raise ValueError(f"features must be (word, layer, hidden); got shape {F.shape}")
        layers = np.arange(F.shape[1])
    L = F.shape[1]
    out = {k: np.full(L, np.nan) for k in ("accuracy", "majority", "control", "selectivity")}
    ctrl = control_tags(words, tags, seed) if words is not None else None
    for li in range(L):
        sc = probe_accuracy(F[:, li], tags, sentence, n_folds, C)
        out["accuracy"][li], out["majority"][li] = sc.accuracy, sc.majority
        if ctrl is not None:
            out["control"][li] = probe_accuracy(F[:, li], ctrl, sentence, n_folds, C).accuracy
            out["selectivity"][li] = sc.accuracy - out["control"][li]
    if ctrl is None:
        del out["control"], out["selectivity"]
    ds = xr.Dataset({k: ((schema.LAYER,), v) for k, v in out.items()}, coords={schema.LAYER: layers},
                    attrs={"n_folds": n_folds, "C": float(C), "n_words": int(F.shape[0])})
    schema.check_attrs(ds.attrs)
    return ds


#: Units and descriptions of :func:`probe_layers`' variables.
VARIABLES = {
    "accuracy": ("share of words", "cross-validated accuracy of the part-of-speech probe (folds grouped by sentence)"),
    "majority": ("share of words", "accuracy of always guessing the training fold's most frequent tag"),
    "control": ("share of words", "accuracy of the same probe on the control task (a fixed random tag per word type)"),
    "selectivity": ("share of words", "accuracy minus control accuracy (Hewitt & Liang 2019)"),
}


def pos_probe_over_steps(
    suite, sentences: Sequence[Sequence[tuple[str, str]]], n_sentences: int = 200,
    models: Sequence[str] | None = None, steps: Sequence[int] | None = None, reducer: str = "word_mean",
    n_folds: int = 5, C: float = 1.0, control: bool = True, seed: int = 0, device: str = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """POS-probe accuracy of every layer at every checkpoint, on per-word features from the sweep engine.

    Parameters
    ----------
    sentences
        Tagged sentences (``lhp_core.data.corpora.brown_tagged_sentences()``); ``n_sentences`` of
        them are drawn with ``seed`` (:func:`sample_tagged_words`).
    reducer
        Per-word representation (``word_mean`` or ``word_last``).

    Returns
    -------
    xarray.Dataset
        ``(model, step, layer)``: ``accuracy``, ``majority`` (and ``control``, ``selectivity``),
        coordinate ``tokens_seen``.
    """
    words, table = sample_tagged_words(sentences, n_sentences, seed=seed)
    tags, sent = table.tag.to_numpy(), table.sentence.to_numpy()

    def compute(ck: Checkpoint) -> xr.Dataset:
        ds = probe_layers(ck.features("resid", reducer), tags, sent, words=table.word.tolist() if control else None,
                          n_folds=n_folds, C=C, seed=seed)
        for v in ds.data_vars:
            ds[v].attrs.update(units=VARIABLES[v][0], description=VARIABLES[v][1])
        return ds

    key = {"words": config_sha256({"w": words, "t": tags.tolist()}), "reducer": reducer, "n_folds": n_folds,
           "C": float(C), "control": control, "seed": seed}
    measure = Measure("pos_probe", compute, key,
                      features=Features(Stimuli.from_words(words), ("resid",), (reducer,)),
                      description="linear part-of-speech probe of every layer (Brown tags)")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)
