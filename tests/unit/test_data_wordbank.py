"""Wordbank loaders: the documented counts, and rows re-read with pyarrow and the json module."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from lhp_core.data import wordbank
from lhp_core.data.fetch import fetch


def test_responses_counts_and_missing() -> None:
    df = wordbank.responses()
    assert len(df) == 6_183_240
    assert df.data_id.nunique() == 9_093 and df.item_id.nunique() == 680
    assert int(df.produces.isna().sum()) == 24_094
    assert df.age.between(16, 30).all() and df.category.nunique() == 22
    assert len(wordbank.responses(drop_missing=True)) == 6_183_240 - 24_094


def test_responses_rows_match_the_file() -> None:
    raw = pq.read_table(fetch("wordbank", wordbank.RESPONSES), columns=["data_id", "item_id", "produces"])
    raw = raw.slice(1_000_000, 5).to_pylist()
    df = wordbank.responses().iloc[1_000_000:1_000_005]
    assert df[["data_id", "item_id"]].values.tolist() == [[r["data_id"], r["item_id"]] for r in raw]
    assert [None if v is None else bool(v) for v in df.produces.astype(object).where(df.produces.notna(), None)] == [
        r["produces"] for r in raw]


def test_words_in_form_order_and_published_aoa() -> None:
    w = wordbank.words()
    assert len(w) == 680 and w.item_id.iloc[0] == "item_1" and w.item_id.iloc[-1] == "item_680"
    with open(fetch("wordbank", wordbank.PUBLISHED_AOA)) as fh:
        raw = json.load(fh)
    p = wordbank.published_aoa()
    assert len(p) == 588 and p.word.tolist() == raw["word"] and p.aoa.tolist() == raw["aoa"]
    assert set(p.word) <= set(w.item_definition)
