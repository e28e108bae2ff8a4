"""BLiMP accuracy of Pythia-160m over training, ten seeds (ANN-HumLang tutorial, 2024).

Upstream file ``pythia/blimp_160m_acc.csv``: accuracy (share of the 1,000 minimal pairs of a
paradigm where the model gives the grammatical sentence the higher probability; chance 0.5)
of ``pythia-160m-seed<k>`` on the 67 BLiMP paradigms at 24 checkpoints. Paradigms are
grouped into 12 phenomenon names under 4 fields; ``NPI licensing`` appears under both
``semantics`` and ``syntaxsemantics``, so a phenomenon is identified by (field, phenomenon).

Seeds are upstream's 0-9. Seeds 1-9 are the PolyPythia re-runs (``EleutherAI/pythia-160m-seed<k>``);
upstream does not say which run seed 0 is. PolyPythias' own evaluations also list a
``seed0`` beside seeds 1-9 for every size, which suggests it is the standard run (seed 1234
in :mod:`lhp_core.data.pythia_behavioral_phases`), but this file does not state it.
"""
from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.pythia_evals import TOKENS_PER_STEP
from lhp_core.data.tables import read_csv

DATASET_ID = "pythia_blimp"
CHANCE = 0.5
"""Accuracy of guessing on a two-sentence minimal pair."""
COLUMNS = ["model", "seed", "step", "tokens_seen", "field", "phenomenon", "paradigm", "accuracy"]
_MODEL = re.compile(r"^(?P<model>pythia-\d+m)-seed(?P<seed>\d+)$")


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "pythia/blimp_160m_acc.csv"), keep_default_na=False)
    if set(raw["metric"]) != {"acc"}:
        raise ValueError(f"blimp_160m_acc.csv: expected metric 'acc' only, found {sorted(set(raw['metric']))}")
    bad = raw.loc[~raw["paradigm"].str.startswith("blimp_"), "paradigm"].unique()
    if len(bad):
        raise ValueError(f"blimp_160m_acc.csv: paradigms without the blimp_ prefix: {list(bad)[:5]}")
    parsed = raw["model"].str.extract(_MODEL)
    if parsed["model"].isna().any():
        bad = raw.loc[parsed["model"].isna(), "model"].unique()[:5]
        raise ValueError(f"blimp_160m_acc.csv: unreadable model names {bad}")
    if (parsed["seed"].astype("int64") != raw["seed"]).any():
        raise ValueError("blimp_160m_acc.csv: the seed column disagrees with the seed in the model name")
    step = raw["step"].astype("int64")
    df = pd.DataFrame(
        {
            "model": parsed["model"],
            "seed": raw["seed"].astype("int64"),
            "step": step,
            "tokens_seen": step * TOKENS_PER_STEP,
            "field": raw["field"],
            "phenomenon": raw["phenomenon"],
            "paradigm": raw["paradigm"].str.removeprefix("blimp_"),
            "accuracy": raw["score"].astype(float),
        }
    )
    return df.sort_values(["seed", "paradigm", "step"], kind="stable").reset_index(drop=True)


def load() -> pd.DataFrame:
    """Every (seed, checkpoint, paradigm) accuracy as one tidy table (16,080 rows).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``model`` (``"pythia-160m"``), ``seed`` (0-9, upstream's
        numbers), ``step`` (0, 1, 2, 4, ..., 128, 1000, 10000, 20000, ..., 130000, 143000: 24
        steps; SOURCE.md also lists 140000, which the file does not have),
        ``tokens_seen`` (step x 2,097,152), ``field`` (``syntax``, ``morphology``,
        ``semantics``, ``syntaxsemantics``), ``phenomenon`` (e.g. ``Island effects``),
        ``paradigm`` (BLiMP's paradigm id without upstream's ``blimp_`` prefix, e.g.
        ``adjunct_island``), ``accuracy`` (0-1; chance :data:`CHANCE`).
    """
    return _load().copy()


def paradigms() -> pd.DataFrame:
    """The 67 paradigms with their ``field`` and ``phenomenon``, sorted by field, phenomenon, paradigm."""
    cols = ["field", "phenomenon", "paradigm"]
    return _load()[cols].drop_duplicates().sort_values(cols).reset_index(drop=True)
