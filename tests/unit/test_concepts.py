"""Concept selection and stimulus construction on a synthetic pool; SPoSE similarity on THINGS."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lhp_core import concepts as C


def _pool() -> pd.DataFrame:
    words = ["dog", "cat", "horse", "apple", "pear", "fig", "animal", "fruit"]
    texts = []
    for w in words:
        for i in range(8):
            texts.append(f"Sentence {i} here mentions the {w} quite clearly.")
    texts += [f"A filler sentence number {i} without any concept." for i in range(60)]
    texts.append("Two dogs and three horses walked by today.")
    return pd.DataFrame({"text": texts, "split": "held_out"})


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["dog", "cat", "horse", "apple", "pear", "fig", "bat1", "ice_cream", "fruit", "hammer"],
        "word": ["dog", "cat", "horse", "apple", "pear", "fig", "bat", "ice cream", "fruit", "hammer"],
        "category": [np.nan] * 6 + ["animal", np.nan, np.nan, np.nan],
        "bottom_up_category": ["animal"] * 3 + ["fruit"] * 3 + ["animal", "food", "food", "tool, weapon"],
    })


def test_split_sentences() -> None:
    docs = ["One two three four five. Short one.\nSix seven eight nine ten eleven!", "One two three four five."]
    assert C.split_sentences(docs) == ["One two three four five.", "Six seven eight nine ten eleven!"]


def test_word_index_counts_plurals_not_substrings() -> None:
    idx = C.WordIndex(["The dogs ran.", "A dog.", "Hotdog stand.", "Big boxes here.", "The DOG barked."])
    assert idx.mentions("dog").tolist() == [0, 1, 4]
    assert idx.mentions("box").tolist() == [3]


def test_eligible_concepts_drops_ambiguous_multiword_and_category_names() -> None:
    out = C.eligible_concepts(_table())
    assert out["id"].tolist() == ["dog", "cat", "horse", "apple", "pear", "fig"]
    assert out.set_index("id")["category"].to_dict()["pear"] == "fruit"
    with pytest.raises(ValueError, match="things.concepts"):
        C.eligible_concepts(_table().drop(columns="bottom_up_category"))


def test_select_concepts_ranks_by_mentions() -> None:
    idx = C.WordIndex(_pool()["text"].tolist())
    sel = C.select_concepts(C.eligible_concepts(_table()), idx, n_categories=2, per_category=2, min_sentences=5)
    # dog and horse have 9 mentions (the extra plural sentence), cat 8
    assert sel["word"].tolist() == ["dog", "horse", "apple", "fig"]
    assert sel["n_sentences"].tolist() == [9, 9, 8, 8]
    with pytest.raises(ValueError, match="only 2 categories"):
        C.select_concepts(C.eligible_concepts(_table()), idx, n_categories=3, per_category=2)
    with pytest.raises(ValueError, match="usable categories"):
        C.select_concepts(C.eligible_concepts(_table()), idx, categories=["tool"], n_categories=1)


def test_build_stimuli_balanced_correct_and_deterministic() -> None:
    words = ["dog", "cat", "apple", "animal"]
    texts, table = C.build_stimuli(words, _pool(), n_corpus=5, n_template=4, n_negative_pool=30, seed=1)
    text_of = texts.set_index("stimulus")["text"]
    source_of = texts.set_index("stimulus")["source"]
    assert texts["stimulus"].is_unique
    for w in words:
        part = table[table.concept == w]
        pos, neg = part[part.label == 1], part[part.label == 0]
        assert len(pos) == len(neg) == 9
        for lab, rows in ((1, pos), (0, neg)):
            has = [bool(re.search(rf"\b{w}s?\b", text_of[s].lower())) for s in rows.stimulus]
            assert all(has) if lab == 1 else not any(has)
            assert (source_of[rows.stimulus] == "template").sum() == 4
    again = C.build_stimuli(words, _pool(), n_corpus=5, n_template=4, n_negative_pool=30, seed=1)
    pd.testing.assert_frame_equal(again[1], table)
    other = C.build_stimuli(words, _pool(), n_corpus=5, n_template=4, n_negative_pool=30, seed=2)[1]
    assert not other.equals(table)


def test_build_stimuli_bad_input() -> None:
    with pytest.raises(ValueError, match="no corpus sentence"):
        C.build_stimuli(["dog", "zebra"], _pool(), n_corpus=3, n_template=2)
    with pytest.raises(ValueError, match="n_template"):
        C.build_stimuli(["dog", "cat"], _pool(), n_template=50)
    with pytest.raises(ValueError, match="unique"):
        C.build_stimuli(["dog", "dog"], _pool())


def test_spose_similarity_matches_direct_dot_product() -> None:
    from lhp_core.data import things

    ids = ["dog", "cat", "hammer", "apple"]
    emb = things.spose_embedding(49).loc[ids].to_numpy()
    np.testing.assert_allclose(C.spose_similarity(ids), emb @ emb.T, rtol=0, atol=1e-12)
    s = C.spose_similarity(ids, metric="cosine")
    assert s[0, 1] > s[0, 2]  # humans: dog is closer to cat than to hammer
    with pytest.raises(KeyError, match="THINGS concept ids"):
        C.spose_similarity(["dog", "notaconcept"])


def test_sentence_pool_cache_round_trips(tmp_path, monkeypatch) -> None:
    """The cached pool (a parquet file) reads back equal to a fresh split of the real corpus."""
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    fresh = C.sentence_pool(cache=False)
    written = C.sentence_pool(cache=True)
    assert list((tmp_path / "concepts").glob("pool-*.parquet")), "the pool was not cached"
    cached = C.sentence_pool(cache=True)
    pd.testing.assert_frame_equal(written, fresh)
    pd.testing.assert_frame_equal(cached, fresh)
    assert fresh["split"].iloc[0] == "held_out" and set(fresh["split"]) == {"held_out", "train"}
    assert fresh["text"].is_unique
    pd.testing.assert_frame_equal(C.sentence_pool(max_sentences=10), fresh.iloc[:10])
