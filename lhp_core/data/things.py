"""THINGS object concepts (Hebart et al., 2019) and their SPoSE similarity embeddings.

Row order of both embeddings is ``unique_id.txt`` (1,854 concept ids such as
``aardvark``, ``bat1``, ``bat2``). ``words.csv`` lists the same ids in a *different*
order, so its display words and disambiguating categories are joined on ``id``, never
by position.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.io import loadmat

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv

DATASET_ID = "things"
_META = {
    "Bottom-up Category (Human Raters)": "bottom_up_category",
    "Top-down Category (WordNet)": "top_down_category",
    "All Bottom-up Categories": "all_bottom_up_categories",
    "WordNet ID": "wordnet_id",
    "Wordnet ID4": "wordnet_synset",
    "Dominant Part of Speech": "pos",
    "Concreteness (M)": "concreteness",
    "Percent_known": "percent_known",
    "SUBTLEX freq": "subtlex_freq",
    "Definition (from WordNet, Google, or Wikipedia)": "definition",
}


@lru_cache(maxsize=1)
def concept_ids() -> tuple[str, ...]:
    """The 1,854 concept ids in embedding-row order (unique_id.txt)."""
    ids = tuple(line.strip() for line in fetch(DATASET_ID, "unique_id.txt").read_text().splitlines() if line.strip())
    if len(set(ids)) != len(ids):
        raise ValueError("unique_id.txt has duplicated concept ids")
    return ids


def concepts() -> pd.DataFrame:
    """One row per concept, in embedding-row order.

    Returns
    -------
    pandas.DataFrame
        ``id`` (THINGS unique id), ``word`` (display word), ``category`` (disambiguating
        category from words.csv for the 207 ambiguous concepts, e.g. ``bat1`` -> ``animal``;
        NaN otherwise), ``label`` (``"bat (animal)"`` where ambiguous, else the word), and
        from Wordlist_ratings-Final.csv (joined on ``uniqueID``): ``bottom_up_category``,
        ``top_down_category``, ``all_bottom_up_categories``, ``wordnet_id`` (e.g.
        ``n02082791``; NaN for concepts not in WordNet, e.g. ``bubble_wrap``), ``wordnet_synset``
        (``aardvark.n.01``), ``pos``, ``concreteness``,
        ``percent_known``, ``subtlex_freq``, ``definition``.
    """
    ids = pd.DataFrame({"id": list(concept_ids())})
    words = read_csv(fetch(DATASET_ID, "words.csv"), keep_default_na=False, na_values={"new_category": [""]})
    words = words.rename(columns={"new_category": "category", "word_with_category_parenthesis": "label"})
    words["label"] = words["label"].where(words["label"] != "", words["word"])
    meta = read_csv(fetch(DATASET_ID, "Wordlist_ratings-Final.csv"))
    meta = meta[["uniqueID", *_META]].rename(columns={"uniqueID": "id", **_META})
    df = ids.merge(words[["id", "word", "category", "label"]], on="id", how="left", validate="1:1")
    df = df.merge(meta.assign(_in_meta=True), on="id", how="left", validate="1:1")
    missing = df["word"].isna() | df["_in_meta"].isna()
    if missing.any():
        raise ValueError(f"concept ids missing from words.csv or the word list: {df.loc[missing, 'id'].tolist()[:10]}")
    return df.drop(columns="_in_meta")


def dimension_labels(dims: int = 49) -> list[str]:
    """Labels of the SPoSE dimensions (labels_49.mat or labels_66.txt), in column order."""
    if dims == 49:
        mat = loadmat(fetch(DATASET_ID, "labels_49.mat"))["labels"]
        return [str(np.asarray(cell).ravel()[0]) for cell in mat.ravel()]
    if dims == 66:
        return [s.strip() for s in fetch(DATASET_ID, "labels_66.txt").read_text().splitlines() if s.strip()]
    raise ValueError(f"dims must be 49 or 66, not {dims!r}")


def spose_embedding(dims: int = 49) -> pd.DataFrame:
    """SPoSE embedding of the 1,854 concepts learned from human odd-one-out judgements.

    Parameters
    ----------
    dims
        49 (Hebart et al., 2020) or 66 (Hebart et al., 2023).

    Returns
    -------
    pandas.DataFrame
        Shape ``(1854, dims)``, non-negative weights; index ``id`` (concept id, in
        unique_id.txt order), columns the dimension labels. ``.to_numpy()`` gives the
        ``(concept, dimension)`` array.
    """
    labels = dimension_labels(dims)
    values = np.loadtxt(fetch(DATASET_ID, f"spose_embedding_{dims}d_sorted.txt"))
    ids = concept_ids()
    if values.shape != (len(ids), len(labels)):
        raise ValueError(f"embedding has shape {values.shape}, expected {(len(ids), len(labels))}")
    return pd.DataFrame(values, index=pd.Index(ids, name="id"), columns=labels)
