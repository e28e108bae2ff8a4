"""Concept similarity from expert units and its agreement with human similarity.

Model side: concepts are similar when they share experts (Jaccard overlap of expert
sets) or when their AP profiles over all units correlate. Human side: similarity of
SPoSE embeddings (odd-one-out judgements, Hebart et al. 2020) or word-similarity
ratings. Agreement is the Spearman correlation over concept pairs ``i < j``
(representational similarity analysis), judged against a null that permutes concept
labels and against a baseline (input-embedding similarity).

Hierarchy: *containment* is the share of a member concept's experts that are also
experts of its category (``dog`` within ``animal``); *clustering agreement* is the
adjusted Rand index between a clustering of concepts from the model similarity and
the human category labels.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from lhp_core.deprecation import renamed
from lhp_core.measures import Checkpoint, Measure, over_steps
from lhp_core.metrics.experts import expert_ap_over_steps, model_ap, select_experts
from lhp_core.provenance import config_sha256
from lhp_core.schema import MODEL, RESAMPLE, STEP, TOKENS_SEEN

__all__ = [
    "jaccard_similarity",
    "profile_similarity",
    "embedding_similarity",
    "upper_triangle",
    "rsa",
    "rsa_null",
    "rsa_bootstrap",
    "containment",
    "containment_null",
    "cluster_labels",
    "cluster_agreement",
    "cluster_agreement_null",
    "onset_step",
    "onset_bootstrap",
    "pair_rsa",
    "input_embedding_similarity",
    "evaluate",
    "embedding_rsa_over_steps",
    "alignment",
    "alignment_over_steps",
]


def _square(sim: np.ndarray, name: str = "similarity") -> np.ndarray:
    sim = np.asarray(sim, dtype=float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"{name} must be a square (concept, concept) matrix; got shape {sim.shape}")
    return sim


def jaccard_similarity(experts: np.ndarray) -> np.ndarray:
    """Jaccard overlap of expert sets.

    Parameters
    ----------
    experts
        ``(n_concepts, n_units)`` boolean expert mask.

    Returns
    -------
    np.ndarray
        ``(n_concepts, n_concepts)``: ``|E_i & E_j| / |E_i | E_j|``; 0 where both sets are empty.
    """
    m = np.asarray(experts, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"experts must be a (concept, unit) boolean mask; got shape {m.shape}")
    f = m.astype(np.float64)
    inter = f @ f.T
    size = f.sum(axis=1)
    union = size[:, None] + size[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def profile_similarity(ap: np.ndarray) -> np.ndarray:
    """Pearson correlation between concepts' AP profiles over units.

    Parameters
    ----------
    ap
        ``(n_concepts, n_units)`` AP values.

    Returns
    -------
    np.ndarray
        ``(n_concepts, n_concepts)`` correlation matrix.
    """
    a = np.asarray(ap, dtype=float)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"ap must be (concept, unit) with at least 2 units; got shape {a.shape}")
    if np.any(a.std(axis=1) == 0):
        raise ValueError("a concept has a constant AP profile, so its correlation is undefined; drop it or add units")
    return np.corrcoef(a)


def embedding_similarity(emb: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Similarity of embedding rows.

    Parameters
    ----------
    emb
        ``(n_concepts, n_dims)`` embedding (SPoSE, or a model's input embedding of the word).
    metric
        ``"cosine"`` or ``"dot"`` (SPoSE's own similarity is the dot product of its
        non-negative dimensions).

    Returns
    -------
    np.ndarray
        ``(n_concepts, n_concepts)``.
    """
    e = np.asarray(emb, dtype=float)
    if e.ndim != 2:
        raise ValueError(f"emb must be (concept, dim); got shape {e.shape}")
    if metric == "dot":
        return e @ e.T
    if metric == "cosine":
        norm = np.linalg.norm(e, axis=1)
        if np.any(norm == 0):
            raise ValueError("an embedding row is all zeros, so cosine similarity is undefined; drop that concept")
        u = e / norm[:, None]
        return u @ u.T
    raise ValueError(f"metric must be 'cosine' or 'dot'; got {metric!r}")


def upper_triangle(sim: np.ndarray) -> np.ndarray:
    """Entries ``sim[i, j]`` for ``i < j`` (row-major), shape ``(n (n - 1) / 2,)``."""
    s = _square(sim)
    return s[np.triu_indices(s.shape[0], k=1)]


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman r between each row of ``x`` ``(k, p)`` and ``y`` ``(p,)`` (average ranks for ties)."""
    rx = rankdata(x, axis=-1)
    ry = rankdata(y)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean()
    denom = np.sqrt((rx**2).sum(axis=-1) * (ry**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(axis=-1) / np.where(denom > 0, denom, 1), np.nan)


def rsa(model_sim: np.ndarray, human_sim: np.ndarray) -> float:
    """Spearman correlation of two similarity matrices over concept pairs ``i < j``.

    Parameters
    ----------
    model_sim, human_sim
        ``(n_concepts, n_concepts)``, same concept order.
    """
    m, h = _square(model_sim, "model_sim"), _square(human_sim, "human_sim")
    if m.shape != h.shape:
        raise ValueError(f"model_sim {m.shape} and human_sim {h.shape} must cover the same concepts in the same order")
    if m.shape[0] < 3:
        raise ValueError(f"need at least 3 concepts for a pairwise correlation; got {m.shape[0]}")
    return float(_spearman_rows(upper_triangle(m)[None], upper_triangle(h))[0])


def rsa_null(model_sim: np.ndarray, human_sim: np.ndarray, n_perm: int = 1000, seed: int = 0) -> np.ndarray:
    """RSA under random relabelling of the model's concepts (rows and columns permuted together).

    Returns
    -------
    np.ndarray
        ``(n_perm,)`` null Spearman values; centred on 0 when the matrices are unrelated.
    """
    m, h = _square(model_sim, "model_sim"), _square(human_sim, "human_sim")
    rng = np.random.default_rng(seed)
    n = m.shape[0]
    iu = np.triu_indices(n, k=1)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])
    permuted = m[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]]
    return _spearman_rows(permuted, h[iu])


def rsa_bootstrap(
    model_sim: np.ndarray, human_sim: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """RSA over concepts resampled with replacement.

    Pairs of two copies of the same concept are left out (their "similarity" is a
    self-similarity, not a pair).

    Returns
    -------
    np.ndarray
        ``(n_boot,)`` bootstrap RSA values (NaN when a resample has too few distinct pairs).
    """
    m, h = _square(model_sim, "model_sim"), _square(human_sim, "human_sim")
    rng = np.random.default_rng(seed)
    n = m.shape[0]
    iu = np.triu_indices(n, k=1)
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        a, c = idx[iu[0]], idx[iu[1]]
        keep = a != c
        if keep.sum() < 3:
            out[b] = np.nan
            continue
        out[b] = _spearman_rows(m[a[keep], c[keep]][None], h[a[keep], c[keep]])[0]
    return out


def containment(member_experts: np.ndarray, category_experts: np.ndarray) -> np.ndarray:
    """Share of each member concept's experts that are also experts of its category.

    Parameters
    ----------
    member_experts
        ``(n_members, n_units)`` boolean mask.
    category_experts
        ``(n_members, n_units)`` boolean mask of the matching category, row by row.

    Returns
    -------
    np.ndarray
        ``(n_members,)`` ``|E_member & E_category| / |E_member|``; NaN for members without experts.
    """
    m = np.asarray(member_experts, dtype=bool)
    c = np.asarray(category_experts, dtype=bool)
    if m.shape != c.shape or m.ndim != 2:
        raise ValueError(f"member_experts {m.shape} and category_experts {c.shape} must both be (member, unit)")
    size = m.sum(axis=1).astype(float)
    inter = (m & c).sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, inter / np.where(size > 0, size, 1), np.nan)


def containment_null(
    member_experts: np.ndarray,
    category_masks: np.ndarray,
    member_category: Sequence[int],
    n_perm: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Mean containment when members are paired with a random *other* category.

    Parameters
    ----------
    member_experts
        ``(n_members, n_units)`` boolean mask.
    category_masks
        ``(n_categories, n_units)`` boolean mask per category.
    member_category
        ``(n_members,)`` index of each member's true category in ``category_masks``.

    Returns
    -------
    np.ndarray
        ``(n_perm,)`` mean containment under the null.
    """
    m = np.asarray(member_experts, dtype=bool)
    cats = np.asarray(category_masks, dtype=bool)
    true = np.asarray(member_category, dtype=int)
    n_cat = cats.shape[0]
    if n_cat < 2:
        raise ValueError("the containment null needs at least 2 categories to pair members with a wrong one")
    rng = np.random.default_rng(seed)
    out = np.empty(n_perm)
    for p in range(n_perm):
        shift = rng.integers(1, n_cat, size=len(true))
        out[p] = np.nanmean(containment(m, cats[(true + shift) % n_cat]))
    return out


def cluster_labels(sim: np.ndarray, n_clusters: int) -> np.ndarray:
    """Average-linkage clusters of concepts with distance ``max(sim) - sim``.

    Returns
    -------
    np.ndarray
        ``(n_concepts,)`` integer cluster labels.
    """
    s = _square(sim)
    d = s.max() - s
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return fcluster(linkage(squareform(d, checks=False), method="average"), t=n_clusters, criterion="maxclust")


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labellings given as integer codes ``0..k-1``, each ``[n]``.

    Hubert & Arabie's index from the pair confusion matrix, as :func:`sklearn.metrics.adjusted_rand_score`
    computes it (1.0 when neither labelling splits a pair the other joins); without its input checks,
    which cost a thousand-permutation null most of its time.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = a.size
    kb = int(b.max()) + 1
    cont = np.bincount(a * kb + b, minlength=(int(a.max()) + 1) * kb).astype(float)
    squares = float(cont @ cont)
    rows = np.bincount(a).astype(float)
    cols = np.bincount(b).astype(float)
    tp = squares - n
    fp = float(cols @ cols) - squares
    fn = float(rows @ rows) - squares
    tn = float(n) * n - fp - fn - squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def cluster_agreement(sim: np.ndarray, categories: Sequence[str] | np.ndarray) -> float:
    """Adjusted Rand index between similarity clusters (as many as categories) and categories."""
    cats = np.asarray(categories)
    if len(cats) != _square(sim).shape[0]:
        raise ValueError(f"categories has {len(cats)} entries but sim covers {sim.shape[0]} concepts")
    codes = pd.factorize(cats)[0]
    return adjusted_rand(codes, cluster_labels(sim, codes.max() + 1) - 1)


def cluster_agreement_null(
    sim: np.ndarray, categories: Sequence[str] | np.ndarray, n_perm: int = 1000, seed: int = 0
) -> np.ndarray:
    """ARI against permuted category labels: ``(n_perm,)``, centred on 0."""
    codes = pd.factorize(np.asarray(categories))[0]
    labels = cluster_labels(sim, codes.max() + 1) - 1
    rng = np.random.default_rng(seed)
    return np.array([adjusted_rand(rng.permutation(codes), labels) for _ in range(n_perm)])


def onset_step(
    steps: Sequence[int], ci_low: Sequence[float], null_q95: Sequence[float] | float
) -> int | None:
    """First step whose bootstrap lower bound exceeds the null's 95th percentile, and stays above.

    Parameters
    ----------
    steps
        ``(n_steps,)`` checkpoint steps in increasing order.
    ci_low
        ``(n_steps,)`` lower bound of the alignment's bootstrap interval per step.
    null_q95
        ``(n_steps,)`` or scalar: 95th percentile of the null per step.

    Returns
    -------
    int or None
        The onset step, or ``None`` if alignment never rises above the null for good.
    """
    steps = np.asarray(steps)
    low = np.asarray(ci_low, dtype=float)
    q = np.broadcast_to(np.asarray(null_q95, dtype=float), low.shape)
    if steps.shape != low.shape:
        raise ValueError(f"steps {steps.shape} and ci_low {low.shape} must have one entry per step")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    above = low > q
    # "stays above": a single lucky early step should not count as the onset
    for i in range(len(steps)):
        if above[i:].all():
            return int(steps[i])
    return None


def onset_bootstrap(
    steps: Sequence[int], boot: np.ndarray, null_q95: Sequence[float] | float
) -> np.ndarray:
    """Onset step of each bootstrap replicate (the interval of the onset).

    Parameters
    ----------
    steps
        ``(n_steps,)`` increasing checkpoint steps.
    boot
        ``(n_steps, n_boot)`` alignment per step for each concept resample (same
        resample index across steps, so a replicate is one consistent concept set).
    null_q95
        ``(n_steps,)`` or scalar 95th percentile of the null.

    Returns
    -------
    np.ndarray
        ``(n_boot,)`` float onset step per replicate; NaN where it never rises above for good.
    """
    b = np.asarray(boot, dtype=float)
    q = np.asarray(null_q95, dtype=float)
    q = q[:, None] if q.ndim == 1 else q
    out = np.full(b.shape[1], np.nan)
    for j in range(b.shape[1]):
        found = onset_step(steps, b[:, j], np.broadcast_to(q, b.shape)[:, j])
        out[j] = np.nan if found is None else found
    return out


def pair_rsa(model_sim: np.ndarray, words: Sequence[str], pairs: pd.DataFrame) -> tuple[float, int]:
    """Spearman correlation of model similarity with rated word pairs (SimLex-999, MEN ...).

    Parameters
    ----------
    model_sim
        ``(n_concepts, n_concepts)`` model similarity.
    words
        ``(n_concepts,)`` the word of each concept.
    pairs
        ``word1``, ``word2``, ``score`` (:func:`lhp_core.data.word_similarity.load`).

    Returns
    -------
    (rho, n_pairs)
        ``rho`` is NaN when fewer than 3 rated pairs have both words among the concepts.
    """
    pos = {w: i for i, w in enumerate(words)}
    keep = pairs[pairs["word1"].isin(pos) & pairs["word2"].isin(pos) & (pairs["word1"] != pairs["word2"])]
    if len(keep) < 3:
        return float("nan"), int(len(keep))
    m = _square(model_sim)[keep["word1"].map(pos).to_numpy(), keep["word2"].map(pos).to_numpy()]
    return float(_spearman_rows(m[None], keep["score"].to_numpy(dtype=float))[0]), int(len(keep))


def input_embedding_similarity(model, tokenizer, words: Sequence[str]) -> np.ndarray:
    """Cosine similarity of words' input embeddings (mean over the word's tokens, with a leading space).

    The baseline the expert-based similarity has to beat.

    Returns
    -------
    np.ndarray
        ``(n_words, n_words)``.
    """
    table = model.get_input_embeddings().weight.detach().float().cpu()
    rows = []
    for w in words:
        ids = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        rows.append(table[torch.as_tensor(ids)].mean(0).numpy())
    return embedding_similarity(np.stack(rows), "cosine")


def evaluate(
    model_sim: np.ndarray,
    human_sim: np.ndarray,
    n_perm: int = 500,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """RSA of one model similarity with human similarity, its null and bootstrap interval.

    Returns
    -------
    dict
        ``rsa``, ``null_mean``, ``null_q95``, ``ci_low``, ``ci_high`` (2.5 / 97.5 % over
        concept resamples) and ``boot`` (the ``(n_boot,)`` resamples, same seed -> same
        resamples, so replicates line up across steps for :func:`onset_bootstrap`).
    """
    null = rsa_null(model_sim, human_sim, n_perm, seed)
    boot = rsa_bootstrap(model_sim, human_sim, n_boot, seed)
    # A constant model similarity (no two concepts share an expert yet) has no rank correlation in any
    # permutation or resample: its statistics are NaN, without numpy's all-NaN warnings.
    null_ok, boot_ok = null[np.isfinite(null)], boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot_ok, [0.025, 0.975]) if boot_ok.size else (np.nan, np.nan)
    return {"rsa": rsa(model_sim, human_sim), "null_mean": float(null_ok.mean()) if null_ok.size else np.nan,
            "null_q95": float(np.quantile(null_ok, 0.95)) if null_ok.size else np.nan, "ci_low": float(lo),
            "ci_high": float(hi), "boot": boot}


def embedding_rsa_over_steps(suite, words: Sequence[str], human_sim: np.ndarray, models: Sequence[str] | None = None,
                             steps: Sequence[int] | None = None, device: str = "cpu",
                             progress: bool = True) -> xr.Dataset:
    """The baseline expert similarity has to beat: RSA of input-embedding similarity with human similarity.

    Returns
    -------
    xarray.Dataset
        ``rsa_embedding`` (Spearman over concept pairs) with dims ``(model, step)``.
    """
    words = list(words)
    human = _square(np.asarray(human_sim, dtype=float), "human_sim")
    if len(words) != human.shape[0]:
        raise ValueError(f"{len(words)} words for a {human.shape[0]}x{human.shape[0]} human similarity; one per row")

    def compute(ck: Checkpoint) -> xr.Dataset:
        emb = input_embedding_similarity(ck.lm, ck.tokenizer, words)
        return xr.Dataset({"rsa_embedding": ((), rsa(emb, human), {
            "units": "Spearman rho", "description": "RSA of input-embedding cosine similarity with human similarity"})})

    key = {"words": words, "human": config_sha256({"h": np.round(human, 12).tolist()})}
    measure = Measure("embedding_rsa", compute, key, description="input-embedding similarity against human similarity")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)


#: Units and descriptions of the per-step variables of :func:`alignment` and :func:`alignment_over_steps`.
_ALIGNMENT_TEXT = {
    "rsa_jaccard": ("Spearman rho", "RSA of expert-overlap (Jaccard) similarity with human similarity"),
    "rsa_profile": ("Spearman rho", "RSA of AP-profile correlation with human similarity"),
    "null_mean": ("Spearman rho", "mean RSA under permuted concept labels"),
    "null_q95": ("Spearman rho", "95th percentile of RSA under permuted concept labels"),
    "ci_low": ("Spearman rho", "2.5 % bootstrap bound of rsa_jaccard over concept resamples"),
    "ci_high": ("Spearman rho", "97.5 % bootstrap bound of rsa_jaccard over concept resamples"),
    "rsa_embedding": ("Spearman rho", "RSA of input-embedding similarity (the baseline)"),
    "containment": ("share of experts", "share of a member's experts that are experts of its category"),
    "containment_null": ("share of experts", "containment against a random other category"),
    "containment_null_q95": ("share of experts", "95th percentile of the containment null"),
    "ari": ("adjusted Rand index", "agreement of a clustering by expert overlap with the human categories"),
    "ari_null_q95": ("adjusted Rand index", "95th percentile of ARI under permuted categories"),
}
_ONSET_TEXT = {
    "onset_step": ("step", "first step whose bootstrap lower bound stays above the null's 95th percentile"),
    "onset_q05": ("step", "5th percentile of the onset over concept resamples that find one"),
    "onset_q95": ("step", "95th percentile of the onset over concept resamples that find one"),
    "onset_found_share": ("share of resamples", "resamples in which an onset exists"),
}


def _step_alignment(step_ap: xr.DataArray, members: pd.DataFrame, human_sim: np.ndarray, top_k: int,
                    benchmarks: Mapping[str, pd.DataFrame] | None, n_perm: int, n_boot: int,
                    seed: int) -> tuple[dict[str, float], np.ndarray]:
    """Every expert measure of one checkpoint's ``(concept, neuron)`` AP, and the ``(n_boot,)`` bootstrap RSAs."""
    words = members["word"].tolist()
    cats = members["category"].tolist()
    cat_names = list(dict.fromkeys(cats))
    mask = select_experts(step_ap, top_k=top_k)
    mem = mask.sel(concept=words).values
    jac = jaccard_similarity(mem)
    res = evaluate(jac, human_sim, n_perm, n_boot, seed)
    out = {k: v for k, v in res.items() if k != "boot"}
    out["rsa_jaccard"] = out.pop("rsa")
    out["rsa_profile"] = rsa(profile_similarity(step_ap.sel(concept=words).values), human_sim)
    cat_mask = mask.sel(concept=cat_names).values
    cat_of = np.array([cat_names.index(c) for c in cats])
    out["containment"] = float(np.nanmean(containment(mem, cat_mask[cat_of])))
    cnull = containment_null(mem, cat_mask, cat_of, n_perm=200, seed=seed) if len(cat_names) > 1 else [np.nan]
    out["containment_null"] = float(np.nanmean(cnull))
    out["containment_null_q95"] = float(np.nanquantile(cnull, 0.95))
    out["ari"] = cluster_agreement(jac, cats)
    out["ari_null_q95"] = float(np.quantile(cluster_agreement_null(jac, cats, n_perm=200, seed=seed), 0.95))
    for name, pairs in (benchmarks or {}).items():
        out[f"rsa_{name}"], out[f"n_pairs_{name}"] = pair_rsa(jac, words, pairs)
    return {k: float(v) for k, v in out.items()}, res["boot"]


def _onsets(steps: np.ndarray, ci_low: np.ndarray, null_q95: np.ndarray, boots: np.ndarray) -> dict[str, float]:
    """One model's alignment onset and its interval over concept resamples (``boots``: ``[step, n_boot]``)."""
    onset = onset_step(steps, ci_low, null_q95)
    onsets = onset_bootstrap(steps, boots, np.asarray(null_q95))
    found = onsets[~np.isnan(onsets)]
    return {
        "onset_step": float("nan") if onset is None else float(onset),
        # share of concept resamples in which alignment rises above the null for good
        "onset_found_share": float(len(found) / len(onsets)),
        "onset_q05": float(np.quantile(found, 0.05)) if len(found) else float("nan"),
        "onset_q95": float(np.quantile(found, 0.95)) if len(found) else float("nan"),
    }


def _describe_alignment(ds: xr.Dataset, benchmarks: Mapping[str, pd.DataFrame] | None) -> xr.Dataset:
    for k, (units, text) in {**_ALIGNMENT_TEXT, **_ONSET_TEXT}.items():
        if k in ds:
            ds[k].attrs.update(units=units, description=text)
    for name in benchmarks or {}:
        ds[f"rsa_{name}"].attrs.update(units="Spearman rho", description=f"RSA of expert overlap with {name} ratings")
        ds[f"n_pairs_{name}"].attrs.update(units="pairs",
                                           description=f"{name} pairs with both words among the concepts")
    return ds


def alignment(
    ap: xr.Dataset,
    members: pd.DataFrame,
    human_sim: np.ndarray,
    top_k: int = 50,
    embedding_rsa: xr.DataArray | None = None,
    benchmarks: Mapping[str, pd.DataFrame] | None = None,
    n_perm: int = 500,
    n_boot: int = 500,
    seed: int = 0,
) -> xr.Dataset:
    """All expert measures for every (model, step) of an AP table already in memory.

    :func:`alignment_over_steps` computes the same from a suite through the measure runner (cached by
    weights, with provenance); this is its analysis on a given ``ap`` (planted structure, a saved table).

    Parameters
    ----------
    ap
        :func:`lhp_core.metrics.experts.expert_ap_over_steps` result: ``ap (model, step, concept,
        neuron)``; ``concept`` holds member words and their category words.
    members
        ``word``, ``category`` per member concept, in the order of ``human_sim``.
    human_sim
        ``(n_members, n_members)`` human similarity (e.g. SPoSE dot product).
    top_k
        Experts per concept.
    embedding_rsa
        ``(model, step)`` baseline (:func:`embedding_rsa_over_steps`); NaN where not given.
    benchmarks
        name -> word-pair table, scored with :func:`pair_rsa` on the expert similarity.

    Returns
    -------
    xr.Dataset
        dims ``(model, step)`` (NaN where a model lacks a step): ``rsa_jaccard``, ``rsa_profile``,
        ``null_mean``, ``null_q95``, ``ci_low``, ``ci_high``, ``rsa_embedding``, ``containment``,
        ``containment_null``, ``containment_null_q95``, ``ari``, ``ari_null_q95``,
        ``rsa_<benchmark>``, ``n_pairs_<benchmark>``; along ``model`` only: ``onset_step`` (first
        step whose bootstrap lower bound stays above the null's 95th percentile), ``onset_q05`` /
        ``onset_q95`` (its interval over concept resamples that find an onset) and
        ``onset_found_share``; coordinate ``tokens_seen``.
    """
    per_model = []
    model_ids = [str(m) for m in ap[MODEL].values]
    for m in model_ids:
        a = model_ap(ap, m)
        rows: dict[str, list[float]] = {}
        boots = []
        for s in a[STEP].values:
            out, boot = _step_alignment(a.sel({STEP: s}), members, human_sim, top_k, benchmarks, n_perm, n_boot, seed)
            out["rsa_embedding"] = (float(embedding_rsa.sel({MODEL: m, STEP: s})) if embedding_rsa is not None
                                    else float("nan"))
            boots.append(boot)
            for k, v in out.items():
                rows.setdefault(k, []).append(v)
        steps = a[STEP].values.astype(int)
        summary = _onsets(steps, rows["ci_low"], rows["null_q95"], np.stack(boots))
        per_model.append(xr.Dataset({**{k: (STEP, np.asarray(v)) for k, v in rows.items()},
                                     **{k: ((), v) for k, v in summary.items()}}, coords={STEP: steps}))
    ds = xr.concat(per_model, dim=xr.DataArray(model_ids, dims=MODEL, name=MODEL), join="outer")
    ds = _describe_alignment(ds, benchmarks)
    if TOKENS_SEEN in ap.coords:
        ds = ds.assign_coords({TOKENS_SEEN: ap[TOKENS_SEEN].sel({STEP: ds[STEP]})})
    ds.attrs.update({"top_k": int(top_k), "n_members": len(members), "n_categories": members["category"].nunique(),
                     "n_perm": int(n_perm), "n_boot": int(n_boot)})
    return ds


#: The previous release's name of :func:`alignment` (warns; :func:`alignment_over_steps` runs it on a suite).
alignment_over_training = renamed("similarity.alignment_over_training", alignment, since="0.2.0")


def alignment_over_steps(
    suite,
    texts: pd.DataFrame,
    table: pd.DataFrame,
    members: pd.DataFrame,
    human_sim: np.ndarray,
    models: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    device: str = "cpu",
    top_k: int = 50,
    benchmarks: Mapping[str, pd.DataFrame] | None = None,
    n_perm: int = 500,
    n_boot: int = 500,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
) -> xr.Dataset:
    """Expert-similarity alignment with human similarity at every (model, step) of a suite.

    Each checkpoint's result goes through the measure runner (:func:`lhp_core.measures.over_steps`):
    cached by the checkpoint's weights, with provenance. It reads that checkpoint's expert AP
    (:func:`lhp_core.metrics.experts.expert_ap_over_steps`) and input-embedding RSA
    (:func:`embedding_rsa_over_steps`), themselves cached, so a study that ran them loads no model
    again. The onset (a property of a model's whole curve) is computed from the stacked steps.

    Parameters
    ----------
    suite
        Suite id, folder or :class:`lhp_core.suites.Suite`.
    texts, table
        Stimuli and concept labels of :func:`lhp_core.metrics.experts.expert_ap_over_steps`.
    members
        ``word``, ``category`` per member concept, in the order of ``human_sim``.
    human_sim
        ``(n_members, n_members)`` human similarity (e.g. SPoSE dot product).
    models, steps, device
        The grid and device, as for every ``*_over_steps`` driver.
    top_k, benchmarks, n_perm, n_boot, seed
        As for :func:`alignment`.

    Returns
    -------
    xr.Dataset
        What :func:`alignment` returns, plus the runner's ``checkpoint_id`` coordinate and
        provenance attrs.
    """
    members = members[["word", "category"]].reset_index(drop=True)
    words = members["word"].tolist()
    human = _square(np.asarray(human_sim, dtype=float), "human_sim")
    if len(words) != human.shape[0]:
        raise ValueError(f"{len(words)} members for a {human.shape[0]}x{human.shape[0]} human similarity; one per row")

    def compute(ck: Checkpoint) -> xr.Dataset:
        grid = dict(models=[ck.model], steps=[ck.step], device=ck.device, progress=False)
        ap = expert_ap_over_steps(ck.suite, texts, table, batch_size=batch_size, **grid)
        out, boot = _step_alignment(model_ap(ap, ck.model).sel({STEP: ck.step}), members, human, top_k, benchmarks,
                                    n_perm, n_boot, seed)
        out["rsa_embedding"] = float(embedding_rsa_over_steps(ck.suite, words, human, **grid)["rsa_embedding"].item())
        ds = xr.Dataset({k: ((), v) for k, v in out.items()})
        ds["boot"] = (RESAMPLE, boot, {"units": "Spearman rho",
                                       "description": "rsa_jaccard of each concept resample (same resamples at "
                                                      "every step, for the onset's interval)"})
        return _describe_alignment(ds, benchmarks)

    key = {"texts": config_sha256({"t": texts[["stimulus", "text"]].values.tolist()}),
           "table": config_sha256({"t": table[["concept", "stimulus", "label"]].values.tolist()}),
           "members": members.values.tolist(), "human": config_sha256({"h": np.round(human, 12).tolist()}),
           "benchmarks": config_sha256({n: p.values.tolist() for n, p in sorted((benchmarks or {}).items())}),
           "top_k": int(top_k), "n_perm": int(n_perm), "n_boot": int(n_boot), "seed": int(seed)}
    measure = Measure("expert_alignment", compute, key,
                      description="expert-overlap similarity against human similarity (Fedzechkina et al. 2025)")
    ds = over_steps(suite, measure, models, steps, device=device, progress=progress)
    onsets = {k: [] for k in _ONSET_TEXT}
    for m in ds[MODEL].values:
        d = ds.sel({MODEL: m})
        have = d["checkpoint_id"].values != ""
        d = d.isel({STEP: np.flatnonzero(have)})
        for k, v in _onsets(d[STEP].values.astype(int), d["ci_low"].values, d["null_q95"].values,
                            d["boot"].transpose(STEP, RESAMPLE).values).items():
            onsets[k].append(v)
    ds = ds.drop_vars("boot").assign({k: (MODEL, np.asarray(v)) for k, v in onsets.items()})
    ds = _describe_alignment(ds, benchmarks)
    ds.attrs.update({"top_k": int(top_k), "n_members": len(words), "n_categories": members["category"].nunique(),
                     "n_perm": int(n_perm), "n_boot": int(n_boot)})
    return ds
