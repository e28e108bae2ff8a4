"""Tuckute et al. (2024) drive/suppress sentences: language-network fMRI response per sentence.

``EffectSize`` in the shipped CSV is the mean over participants of the session-z-scored
BOLD response of the left-hemisphere language network (``lang_LH_netw``) to each sentence.
The file was reassembled from a text index (see the dataset's SOURCE.md). Use
:func:`sentence_table` to bring your own sentence/response table into the same shape.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv

DATASET_ID = "brain_tuckute2024"
CONDITIONS = {"B": "baseline", "D": "drive", "S": "suppress"}


def sentence_table(
    df: pd.DataFrame,
    sentence: str = "sentence",
    response: str = "response",
    condition: str | None = "condition",
    item_id: str | None = None,
) -> pd.DataFrame:
    """Validate a user table of sentences and responses and return it in the standard shape.

    Parameters
    ----------
    df
        Any table with one row per sentence.
    sentence, response
        Names of the sentence-text and numeric-response columns.
    condition
        Name of a condition column, or None if there is none (then ``condition`` is ``"all"``).
    item_id
        Name of an item-id column, or None to number the rows 0..n-1.

    Returns
    -------
    pandas.DataFrame
        ``item_id``, ``sentence`` (str), ``response`` (float), ``condition`` (str).

    Raises
    ------
    KeyError
        A named column is missing (the message lists the available columns).
    ValueError
        Empty or duplicated sentences, or non-numeric / non-finite responses.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"sentence_table expects a pandas DataFrame, got {type(df).__name__}")
    wanted = {"sentence": sentence, "response": response, "condition": condition, "item_id": item_id}
    for role, col in wanted.items():
        if col is not None and col not in df.columns:
            raise KeyError(
                f"column {col!r} (the {role} column) is not in the table; available columns: "
                f"{', '.join(map(str, df.columns))}. Pass {role}=<column name>"
                + (f" or {role}=None" if role in ("condition", "item_id") else "")
            )
    if len(df) == 0:
        raise ValueError("the sentence table is empty")
    text = df[sentence]
    if not text.map(lambda s: isinstance(s, str) and s.strip() != "").all():
        bad = df.index[~text.map(lambda s: isinstance(s, str) and s.strip() != "")][:5].tolist()
        raise ValueError(f"column {sentence!r} must hold non-empty strings; bad rows (first 5): {bad}")
    values = pd.to_numeric(df[response], errors="coerce").astype(float)
    if not np.isfinite(values).all():
        bad = df.index[~np.isfinite(values)][:5].tolist()
        raise ValueError(f"column {response!r} must be finite numbers; bad rows (first 5): {bad}")
    ids = df[item_id].to_numpy() if item_id is not None else np.arange(len(df))
    if item_id is not None and pd.Series(ids).duplicated().any():
        raise ValueError(f"column {item_id!r} has duplicated item ids")
    out = pd.DataFrame(
        {
            "item_id": ids,
            "sentence": text.astype(str).to_numpy(),
            "response": values.to_numpy(),
            "condition": df[condition].astype(str).to_numpy() if condition is not None else "all",
        }
    )
    return out


def load() -> pd.DataFrame:
    """The 2,000 sentences with their participant-averaged language-network response.

    Returns
    -------
    pandas.DataFrame
        ``item_id`` (0..1999, row order of the shipped CSV, which is sorted by sentence; not
        an id from the original study), ``sentence``, ``response`` (``EffectSize``),
        ``condition`` (``baseline`` 1000 / ``drive`` 500 / ``suppress`` 500).
    """
    raw = read_csv(fetch(DATASET_ID, "tuckute_averaged.csv"), keep_default_na=False)
    unknown = set(raw["cond"]) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"tuckute_averaged.csv has unexpected cond values {sorted(unknown)}")
    raw["condition"] = raw["cond"].map(CONDITIONS)
    return sentence_table(raw, sentence="Sentence", response="EffectSize", condition="condition")
