"""THINGS loader: id-based joins and embedding row order."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from lhp_core.data import things
from lhp_core.data.fetch import fetch


def test_concepts_joined_on_id() -> None:
    c = things.concepts()
    assert len(c) == 1854 and c.id.is_unique
    assert c.id.tolist() == fetch("things", "unique_id.txt").read_text().split()
    with open(fetch("things", "words.csv"), newline="") as fh:
        by_id = {r["id"]: r for r in csv.DictReader(fh)}
    # words.csv is in a different order: a positional join would mislabel these
    order = list(by_id)
    assert order.index("bat1") != c.index[c.id == "bat1"].item()
    for cid in ("bat1", "bat2", "baton3", "aardvark", "zucchini"):
        row = c.set_index("id").loc[cid]
        assert row.word == by_id[cid]["word"]
        assert (row.category if isinstance(row.category, str) else "") == by_id[cid]["new_category"]
    bat = c.set_index("id").loc[["bat1", "bat2"]]
    assert bat.label.tolist() == ["bat (animal)", "bat (sports equipment)"]
    assert c.category.notna().sum() == 207
    assert c.set_index("id").loc["aardvark", "wordnet_id"] == "n02082791"


@pytest.mark.parametrize("dims, first", [(49, "made of metal / artificial / hard"), (66, "metallic/artificial")])
def test_embedding_rows_follow_unique_id(dims: int, first: str) -> None:
    e = things.spose_embedding(dims)
    assert e.shape == (1854, dims) and e.columns[0] == first
    assert list(e.index) == list(things.concept_ids())
    lines = fetch("things", f"spose_embedding_{dims}d_sorted.txt").read_text().splitlines()
    i = things.concept_ids().index("dog")
    np.testing.assert_array_equal(e.loc["dog"].to_numpy(), np.array(lines[i].split(), dtype=float))
    assert (e.to_numpy() > -0.01).all()
    # semantic sanity check from SOURCE.md: dog loads most on the animal dimension, apple on food
    assert "animal" in e.loc["dog"].idxmax() and "food" in e.loc["apple"].idxmax()
    assert "metal" in e.loc["hammer"].idxmax()


def test_bad_dims() -> None:
    with pytest.raises(ValueError, match="49 or 66"):
        things.spose_embedding(50)
