"""Wordbank: which words American English-learning children produce, by age (MacArthur-Bates CDI).

Parent reports on the CDI Words & Sentences form for 9,093 children aged 16-30 months, one row per
(child, word) for the form's 680 words, and Wordbank's own age-of-acquisition (AoA) estimates for
588 of them (Frank et al. 2017). The data are CC BY 4.0 with some contributing datasets
CC BY-NC 4.0; the pooled files do not say which, so treat them as non-commercial and cite them
(``lhp data info wordbank``).
"""
from __future__ import annotations

import json

import pandas as pd

from lhp_core.data.fetch import fetch

DATASET_ID = "wordbank"
RESPONSES = "slices/responses/english_american_ws.parquet"
PUBLISHED_AOA = "slices/networks/english_american.json"
_COLUMNS = ["data_id", "item_id", "item_definition", "category", "uni_lemma", "age", "produces"]


def responses(drop_missing: bool = False) -> pd.DataFrame:
    """Every child's report for every CDI word.

    Parameters
    ----------
    drop_missing
        Drop the rows whose ``produces`` is missing (24,094 of 6,183,240 in this file).

    Returns
    -------
    pandas.DataFrame
        One row per (administration, word): ``data_id`` (administration), ``item_id``, ``item_definition``
        (the word as printed on the form, e.g. ``"chicken (animal)"``), ``category`` (one of 22 CDI
        sections), ``uni_lemma``, ``age`` (months, 16-30), ``produces`` (``boolean`` with ``<NA>`` where
        the report is missing unless ``drop_missing``).
    """
    df = pd.read_parquet(fetch(DATASET_ID, RESPONSES), columns=_COLUMNS)
    df["produces"] = df["produces"].astype("boolean")
    df["age"] = df["age"].astype(int)
    if drop_missing:
        df = df[df["produces"].notna()].reset_index(drop=True)
    return df


def words() -> pd.DataFrame:
    """The 680 words of the form: ``item_id, item_definition, category, uni_lemma``, in form order."""
    df = pd.read_parquet(fetch(DATASET_ID, RESPONSES), columns=["item_id", "item_definition", "category", "uni_lemma"])
    df = df.drop_duplicates("item_id")
    order = df["item_id"].str.removeprefix("item_").astype(int)
    return df.assign(_o=order).sort_values("_o").drop(columns="_o").reset_index(drop=True)


def published_aoa() -> pd.DataFrame:
    """Wordbank's own AoA estimates (months, rounded to whole months) for 588 words.

    Returns
    -------
    pandas.DataFrame
        ``word`` (as ``item_definition``), ``category``, ``uni_lemma``, ``aoa`` (months, int).
    """
    with open(fetch(DATASET_ID, PUBLISHED_AOA)) as fh:
        raw = json.load(fh)
    return pd.DataFrame({k: raw[k] for k in ("word", "category", "uni_lemma", "aoa")}).astype({"aoa": int})
