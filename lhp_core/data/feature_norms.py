"""Semantic feature production norms: McRae et al. (2005) and CSLB (Devereux et al., 2014).

Participants listed properties of a concept ("has keys", "is a musical instrument"); a
feature's production frequency (PF) is how many of them (of 30) named it. Two concepts are
similar when their PF vectors are: the norms' own similarity is the cosine of those vectors
over features with PF >= 5, with or without taxonomic features (CSLB readme,
``cosine_{wTax,noTax}_5pf``; McRae et al. 2005 use the same cosine). McRae lists PF >= 5 only,
CSLB PF >= 2.

THINGS concept ids are matched to norm concepts by name, except for the 30 ids in the
redistributor's ``mapping.csv`` (Hansen & Hebart 2022), whose norm names differ
(``baseball_bat`` -> ``bat_(baseball)``); an empty cell there means the norm has no concept
of that sense. Feature labels are the norms' own (CSLB's normalised labels; its split map
``cslb_syn.csv`` is not applied).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv
from lhp_core.data.things import concept_ids

DATASET_ID = "feature_norms"
NORMS = ("mcrae", "cslb")
#: The norm files' taxonomic feature type ("is an animal", "a_musical_instrument").
TAXONOMIC = "taxonomic"


def _check(name: str) -> None:
    if name not in NORMS:
        raise KeyError(f"unknown feature norms {name!r}; valid names: {', '.join(NORMS)}")


@lru_cache(maxsize=2)
def _load(name: str) -> pd.DataFrame:
    if name == "mcrae":
        with warnings.catch_warnings():  # openpyxl: "Unknown extension is not supported" (Excel metadata)
            warnings.simplefilter("ignore", UserWarning)
            raw = pd.read_excel(fetch(DATASET_ID, "mcrae/CONCS_FEATS_concstats_brm.xlsx"),
                                sheet_name="concepts_features")
        out = pd.DataFrame({"concept": raw["Concept"], "feature": raw["Feature"],
                            "feature_type": raw["BR_Label"], "pf": raw["Prod_Freq"]})
    else:
        raw = read_csv(fetch(DATASET_ID, "cslb/norms.dat"), sep="\t")
        out = pd.DataFrame({"concept": raw["concept"], "feature": raw["feature"],
                            "feature_type": raw["feature type"], "pf": raw["pf"], "domain": raw["domain"]})
    out["pf"] = out["pf"].astype(int)
    return out


def load(name: str) -> pd.DataFrame:
    """One set of norms, one row per (concept, feature).

    Parameters
    ----------
    name
        ``"mcrae"`` (541 concepts, 7,259 rows) or ``"cslb"`` (638 concepts, 22,667 rows).

    Returns
    -------
    pandas.DataFrame
        ``concept``, ``feature``, ``feature_type`` (McRae's ``BR_Label``, e.g.
        ``visual-form_and_surface``, ``taxonomic``; CSLB's ``feature type``), ``pf``
        (production frequency, int); CSLB adds ``domain`` (``living``/``nonliving``).
        Rows are as in the files, where a few (concept, feature) pairs appear twice (McRae 2,
        CSLB 4: responses normalised to the same label in two passes); :func:`feature_matrix`
        sums them, as PF within one row already counts responses.
    """
    _check(name)
    return _load(name).copy()


def things_names(name: str) -> dict[str, str]:
    """THINGS concept id -> concept name in norms ``name``, for every THINGS id the norms cover."""
    _check(name)
    in_norms = set(_load(name)["concept"])
    mapping = read_csv(fetch(DATASET_ID, "mapping.csv"), dtype=str)
    mapped = dict(zip(mapping["things_concept_id"], mapping[f"{name}_concept"]))
    out = {}
    for cid in concept_ids():
        target = mapped[cid] if cid in mapped else cid
        if isinstance(target, str) and target in in_norms:
            out[cid] = target
    return out


def feature_matrix(name: str, things_ids: Sequence[str], min_pf: int = 5,
                   taxonomic: bool = True) -> tuple[np.ndarray, list[str], np.ndarray]:
    """PF vectors of THINGS concepts.

    Parameters
    ----------
    things_ids
        ``(n,)`` THINGS concept ids (:func:`lhp_core.data.things.concept_ids`).
    min_pf
        Features with a lower production frequency (after summing duplicated rows) are
        dropped (5: the norms' convention).
    taxonomic
        Keep taxonomic features ("is an animal")? Without them, similarity cannot come from
        category labels alone.

    Returns
    -------
    (matrix, features, covered)
        ``matrix`` ``[n, n_features]`` PF (0 where a concept lacks the feature; rows of
        uncovered ids are 0), ``features`` the column labels, ``covered`` ``[n]`` bool:
        whether the norms have the concept.
    """
    names = things_names(name)
    norms = _load(name)
    if not taxonomic:
        norms = norms[norms["feature_type"] != TAXONOMIC]
    norms = norms.groupby(["concept", "feature"], as_index=False)["pf"].sum()
    norms = norms[norms["pf"] >= min_pf]
    rows = [names.get(c) for c in things_ids]
    sub = norms[norms["concept"].isin({r for r in rows if r is not None})]
    features = sorted(sub["feature"].unique())
    col = {f: j for j, f in enumerate(features)}
    row_of = {}
    for i, r in enumerate(rows):
        if r is not None:
            row_of.setdefault(r, []).append(i)
    mat = np.zeros((len(rows), len(features)))
    for concept, feature, pf in sub[["concept", "feature", "pf"]].itertuples(index=False):
        for i in row_of[concept]:
            mat[i, col[feature]] = pf
    return mat, features, np.array([r is not None for r in rows])


def similarity(name: str, things_ids: Sequence[str], min_pf: int = 5, taxonomic: bool = True) -> np.ndarray:
    """Cosine similarity of PF vectors, ``[n, n]``; NaN in rows and columns of uncovered ids
    (and of covered concepts left with no feature at this ``min_pf``)."""
    mat, _, covered = feature_matrix(name, things_ids, min_pf=min_pf, taxonomic=taxonomic)
    norm = np.linalg.norm(mat, axis=1)
    ok = covered & (norm > 0)
    unit = np.where(ok[:, None], mat / np.where(norm > 0, norm, 1.0)[:, None], np.nan)
    return unit @ unit.T


def pairs(name: str, things_ids: Sequence[str], words: Sequence[str], min_pf: int = 5,
          taxonomic: bool = True) -> pd.DataFrame:
    """Feature-overlap similarity as a word-pair table, like :func:`lhp_core.data.word_similarity.load`.

    Parameters
    ----------
    things_ids, words
        ``(n,)`` THINGS ids and the word each is known by in the caller's analysis.

    Returns
    -------
    pandas.DataFrame
        ``word1``, ``word2``, ``score`` (cosine) for every pair ``i < j`` both covered.
    """
    if len(words) != len(things_ids):
        raise ValueError(f"{len(things_ids)} THINGS ids but {len(words)} words")
    sim = similarity(name, things_ids, min_pf=min_pf, taxonomic=taxonomic)
    i, j = np.triu_indices(len(words), k=1)
    keep = np.isfinite(sim[i, j])
    w = np.asarray(words, dtype=object)
    return pd.DataFrame({"word1": w[i[keep]], "word2": w[j[keep]], "score": sim[i[keep], j[keep]]})
