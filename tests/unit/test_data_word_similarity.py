"""Word-similarity loaders: pair counts, scales, and rows re-read with the csv module."""
from __future__ import annotations

import csv

import pytest

from lhp_core.data import word_similarity as ws
from lhp_core.data.fetch import fetch


@pytest.mark.parametrize("name, n", [("simlex999", 999), ("men", 3000), ("wordsim353", 353), ("mturk287", 287),
                                     ("mturk771", 771)])
def test_counts_columns_and_scale(name: str, n: int) -> None:
    df = ws.load(name)
    assert len(df) == n
    assert list(df.columns[:3]) == ["word1", "word2", "score"]
    lo, hi = ws.SCALES[name]
    assert df.score.between(lo, hi).all()
    assert df.word1.map(lambda w: isinstance(w, str) and w != "").all()
    assert df.word2.map(lambda w: isinstance(w, str) and w != "").all()


def test_simlex_rows_and_pos() -> None:
    df = ws.load("simlex999")
    with open(fetch("word_similarity", "simlex999/SimLex-999.txt"), newline="") as fh:
        raw = list(csv.DictReader(fh, delimiter="\t"))
    assert df[["word1", "word2"]].values.tolist() == [[r["word1"], r["word2"]] for r in raw]
    assert df.score.tolist() == [float(r["SimLex999"]) for r in raw]
    assert df.pos.value_counts().to_dict() == {"N": 666, "A": 111, "V": 222}
    # a case where the word list itself (not a parse) tells the answer: 'old'/'new' rated dissimilar
    assert df.iloc[0].tolist() == ["old", "new", 1.58, "A"]


def test_men_pos_from_lemma_file() -> None:
    df = ws.load("men")
    assert df.iloc[0][["word1", "word2", "score", "pos"]].tolist() == ["sun", "sunlight", 50.0, "N"]
    assert set(df.pos.str.split("-").explode()) <= {"N", "V", "A"}
    row = df[(df.word1 == "stairs")].iloc[0]
    assert row.lemma1 == "stair"


def test_mturk_drops_pandas_index_and_unknown_name() -> None:
    df = ws.load("mturk287")
    assert list(df.columns) == ["word1", "word2", "score"]
    assert df.iloc[0].tolist() == ["episcopal", "russia", 2.75]
    with pytest.raises(KeyError, match="valid names: simlex999"):
        ws.load("simlex")
