"""Provo passages read with Mouse Tracking for Reading (Wilcox et al., 2024): word-level measures.

Words are whitespace tokens of each passage (punctuation attached), indexed by
``para_nr`` (= ``item_id`` of the passage) and ``word_nr`` (0-based). The reader files
keep their upstream column names; durations are in ms and 0 means the word was not
fixated (skipped), so per-word means must decide whether to count those zeros
(:func:`word_means`, ``skipped=``).
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from lhp_core import progress
from lhp_core.data.fetch import fetch
from lhp_core.data.manifests import get_manifest
from lhp_core.data.tables import read_csv

DATASET_ID = "provo_motr"
DURATIONS = ("first_duration", "gaze_duration", "total_duration", "right_bounded_rt", "go_past_time")
"""Reading-time measures (ms): first fixation, gaze (first-pass) duration, total duration, right-bounded RT,
go-past time."""
BINARY = ("FPFix", "FPReg", "RegIn_excl", "RegIn_incl")
"""Per-reader indicators/counts: fixated in first pass, first-pass regression out, regressions in (excl./incl.)."""
_READER = re.compile(r"^provo_f160/reader_(\d+)_reading_measures\.csv$")


def passages() -> pd.DataFrame:
    """The 55 Provo passages with their comprehension questions (provo_items.tsv).

    Returns
    -------
    pandas.DataFrame
        ``item_id`` (1–55, = ``para_nr`` in the reader files), ``condition`` (``real``, or
        ``practice`` for passage 37), ``condition_id`` (1 / 2), ``text``, ``question``,
        ``response_true``, ``response_distractors``, ``n_words`` (whitespace tokens).
    """
    raw = read_csv(fetch(DATASET_ID, "provo_items.tsv"), sep="\t", index_col=0, quoting=csv.QUOTE_MINIMAL)
    df = raw[["item_id", "condition", "condition_id", "text", "question", "response_true", "response_distractors"]]
    df = df.assign(text=df["text"].str.strip())
    df["n_words"] = df["text"].str.split().str.len()
    return df.sort_values("item_id").reset_index(drop=True)


def passage_words() -> pd.DataFrame:
    """One row per word of every passage: ``para_nr``, ``word_nr`` (0-based), ``word``."""
    rows = [
        (item, i, w) for item, text in zip(*passages()[["item_id", "text"]].T.values)
        for i, w in enumerate(text.split())
    ]
    return pd.DataFrame(rows, columns=["para_nr", "word_nr", "word"]).astype({"para_nr": int, "word_nr": int})


def readers() -> list[int]:
    """Ids of the 51 readers (from the ``reader_<ID>_reading_measures.csv`` file names), sorted."""
    ids = [int(m.group(1)) for f in get_manifest(DATASET_ID).files if (m := _READER.match(f.path))]
    return sorted(ids)


@lru_cache(maxsize=1)
def _all_readers() -> pd.DataFrame:
    frames = []
    for reader in progress.bar(readers(), desc="Provo MoTR readers", leave=False, disable=None):
        df = read_csv(fetch(DATASET_ID, f"provo_f160/reader_{reader}_reading_measures.csv"))
        df.insert(0, "reader", reader)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def reading_measures(include_practice: bool = False) -> pd.DataFrame:
    """Per-reader, per-word MoTR measures for all 51 readers (fixation threshold 160 ms).

    Parameters
    ----------
    include_practice
        Keep the practice passage (``cond_id == 2``, Provo passage 37). Off by default, as
        upstream analyses use ``cond_id == 1`` only.

    Returns
    -------
    pandas.DataFrame
        ``reader`` plus the upstream columns: ``expr_id``, ``cond_id``, ``para_nr``, ``word``,
        ``word_nr``, ``response_true``, ``response_chosen``, ``correctness`` (comprehension
        answer correct), :data:`DURATIONS` (ms, 0 = skipped) and :data:`BINARY`.
    """
    df = _all_readers()
    if not include_practice:
        df = df[df["cond_id"] == 1]
    return df.reset_index(drop=True)


def word_means(skipped: Literal["exclude", "zero"] = "exclude") -> pd.DataFrame:
    """Per-word means across readers (real passages only).

    Parameters
    ----------
    skipped
        ``"exclude"`` (default): a duration of 0 (word not fixated) is treated as missing, so
        duration means are over the readers who fixated the word (NaN if nobody did), the
        usual convention for eye-tracking durations. ``"zero"``: zeros count as 0 ms.
        Binary measures always average over all readers.

    Returns
    -------
    pandas.DataFrame
        One row per (``para_nr``, ``word_nr``): ``word``, ``n_readers``, ``skip_rate``
        (fraction with ``total_duration == 0``), the mean of each of :data:`DURATIONS` and
        :data:`BINARY` (same names).
    """
    if skipped not in ("exclude", "zero"):
        raise ValueError(f"skipped must be 'exclude' or 'zero', not {skipped!r}")
    df = reading_measures()
    durations = df[list(DURATIONS)]
    if skipped == "exclude":
        durations = durations.where(durations > 0)
    values = pd.concat([df[["para_nr", "word_nr"]], durations, df[list(BINARY)].astype(float)], axis=1)
    values["skip_rate"] = (df["total_duration"] == 0).astype(float)
    g = values.groupby(["para_nr", "word_nr"], sort=True)
    out = g.mean()
    out.insert(0, "n_readers", g.size())
    out.insert(0, "word", df.groupby(["para_nr", "word_nr"], sort=True)["word"].first())
    cols = ["word", "n_readers", "skip_rate", *DURATIONS, *BINARY]
    return out[cols].reset_index().astype({"n_readers": np.int64})


def word_stats() -> pd.DataFrame:
    """By-word predictability statistics of the Provo texts (provo_stats.csv), as shipped.

    ``text_id`` (1–55), ``sent_id``, ``trigger_idx`` (1-based word index *within the
    sentence*; sentence-initial words are absent), ``word`` (lower-cased, punctuation
    stripped), ``freq``, ``surp`` and PMI-family columns, ``len``. Its indexing differs from
    the reader files' passage-level ``word_nr``.
    """
    return read_csv(fetch(DATASET_ID, "provo_stats.csv"), index_col=0)
