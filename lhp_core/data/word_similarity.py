"""Word-pair similarity / relatedness benchmarks with human ratings.

``simlex999`` (similarity, 0–10), ``men`` (relatedness, 0–50), ``wordsim353``
(similarity+relatedness, 0–10), ``mturk287`` and ``mturk771`` (relatedness, 1–5).
Scores are on each dataset's own scale (:data:`SCALES`); rank correlations, the usual
way to score a model, do not care.
"""
from __future__ import annotations

import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv

DATASET_ID = "word_similarity"
SCALES: dict[str, tuple[float, float]] = {
    "simlex999": (0.0, 10.0),
    "men": (0.0, 50.0),
    "wordsim353": (0.0, 10.0),
    "mturk287": (1.0, 5.0),
    "mturk771": (1.0, 5.0),
}
_MEN_POS = {"n": "N", "v": "V", "j": "A"}  # same letters as SimLex: Noun, Verb, Adjective


def names() -> list[str]:
    """Benchmark names accepted by :func:`load`."""
    return list(SCALES)


def _simlex() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "simlex999/SimLex-999.txt"), sep="\t", keep_default_na=False)
    return pd.DataFrame(
        {"word1": raw["word1"], "word2": raw["word2"], "score": raw["SimLex999"].astype(float), "pos": raw["POS"]}
    )


def _men() -> pd.DataFrame:
    opts = dict(sep=" ", header=None, names=["word1", "word2", "score"], keep_default_na=False)
    natural = read_csv(fetch(DATASET_ID, "men/MEN_dataset_natural_form_full"), **opts)
    lemma = read_csv(fetch(DATASET_ID, "men/MEN_dataset_lemma_form_full"), **opts)
    if len(natural) != len(lemma) or not (natural["score"] == lemma["score"]).all():
        raise ValueError("MEN natural and lemma files are not row-aligned")
    pos1 = lemma["word1"].str.rsplit("-", n=1).str[1].map(_MEN_POS)
    pos2 = lemma["word2"].str.rsplit("-", n=1).str[1].map(_MEN_POS)
    return natural.assign(
        score=natural["score"].astype(float),
        pos=pos1.where(pos1 == pos2, pos1 + "-" + pos2),
        lemma1=lemma["word1"].str.rsplit("-", n=1).str[0],
        lemma2=lemma["word2"].str.rsplit("-", n=1).str[0],
    )


def _wordsim353() -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, "wordsim353/combined.csv"), keep_default_na=False)
    return pd.DataFrame({"word1": raw["Word 1"], "word2": raw["Word 2"], "score": raw["Human (mean)"].astype(float)})


def _mturk(n: int) -> pd.DataFrame:
    raw = read_csv(fetch(DATASET_ID, f"mturk_{n}/mturk-{n}.csv"), index_col=0, keep_default_na=False)
    return pd.DataFrame({"word1": raw["word1"], "word2": raw["word2"], "score": raw["similarity"].astype(float)})


def load(name: str) -> pd.DataFrame:
    """One benchmark as a table of word pairs.

    Parameters
    ----------
    name
        One of :func:`names`.

    Returns
    -------
    pandas.DataFrame
        ``word1``, ``word2``, ``score`` (mean human rating on the scale in :data:`SCALES`);
        plus ``pos`` for ``simlex999`` (``A``/``N``/``V``) and ``men`` (from the lemma file;
        ``"N-A"`` etc. when the two words differ), and ``lemma1``/``lemma2`` for ``men``.
        Rows in file order (SimLex 999, MEN 3000, WordSim 353, MTurk 287 / 771).
    """
    loaders = {
        "simlex999": _simlex,
        "men": _men,
        "wordsim353": _wordsim353,
        "mturk287": lambda: _mturk(287),
        "mturk771": lambda: _mturk(771),
    }
    if name not in loaders:
        raise KeyError(f"unknown word-similarity benchmark {name!r}; valid names: {', '.join(names())}")
    return loaders[name]().reset_index(drop=True)
