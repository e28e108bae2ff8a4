"""POS probes against scikit-learn and hand-built features whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lhp_core.metrics import probing

TAGS = np.array(["NOUN", "VERB", "DET", "ADJ"])


def _toy(n_sent: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    tags, groups = [], []
    for s in range(n_sent):
        k = rng.integers(3, 8)
        tags += list(rng.choice(TAGS, size=k, p=[0.4, 0.3, 0.2, 0.1]))
        groups += [s] * k
    return np.array(tags), np.array(groups), rng


def test_accuracy_equals_sklearn_grouped_cross_val_predict() -> None:
    tags, groups, rng = _toy()
    X = rng.normal(size=(tags.size, 6)) + (tags[:, None] == TAGS[None, :2]).repeat(3, axis=1)
    sc = probing.probe_accuracy(X, tags, groups, n_folds=5)
    ref = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)), X, tags,
                            groups=groups, cv=GroupKFold(5))
    assert sc.accuracy == pytest.approx(np.mean(ref == tags), abs=1e-12)


def test_one_hot_tags_are_decoded_perfectly_and_noise_gives_majority_level() -> None:
    tags, groups, rng = _toy()
    onehot = (tags[:, None] == TAGS[None, :]).astype(float) + 0.01 * rng.normal(size=(tags.size, 4))
    assert probing.probe_accuracy(onehot, tags, groups).accuracy == 1.0
    noise = rng.normal(size=(tags.size, 4))
    sc = probing.probe_accuracy(noise, tags, groups)
    # Majority tag has p = 0.4; a probe on pure noise cannot beat it by more than noise.
    assert abs(sc.majority - 0.4) < 0.08
    assert sc.accuracy < sc.majority + 0.06


def test_control_task_is_a_function_of_word_type_with_the_tag_distribution() -> None:
    words = ["the", "dog", "The", "cat", "dog"] * 200
    tags = ["DET", "NOUN", "DET", "NOUN", "NOUN"] * 200
    ctrl = probing.control_tags(words, tags, seed=1)
    by_type: dict[str, set[str]] = {}
    for w, c in zip(words, ctrl):
        by_type.setdefault(w.lower(), set()).add(c)
    assert all(len(v) == 1 for v in by_type.values())
    assert set(ctrl) <= {"DET", "NOUN"}


def test_probe_layers_selectivity_separates_pos_from_word_identity() -> None:
    # Layer 0 encodes word identity only (random vector per type), layer 1 encodes the tag.
    rng = np.random.default_rng(3)
    vocab = {t: [f"{t.lower()}{i}" for i in range(15)] for t in TAGS}
    words, tags, groups = [], [], []
    for s in range(80):
        for t in rng.choice(TAGS, size=5):
            words.append(str(rng.choice(vocab[t])))
            tags.append(t)
            groups.append(s)
    emb = {w: rng.normal(size=8) for ws in vocab.values() for w in ws}
    layer0 = np.stack([emb[w] for w in words])
    layer1 = np.stack([(TAGS == t).astype(float) for t in tags]) + 0.05 * rng.normal(size=(len(tags), 4))
    layer1 = np.concatenate([layer1, rng.normal(size=(len(tags), 4))], axis=1)
    ds = probing.probe_layers(np.stack([layer0, layer1], axis=1), tags, groups, words=words)
    assert float(ds.accuracy[1]) > 0.95
    assert float(ds.selectivity[1]) > float(ds.selectivity[0]) + 0.2


def test_sample_and_errors() -> None:
    sents = [[("A", "DET"), ("dog", "NOUN")], [("runs", "VERB")], [("x", "X")] * 50]
    words, table = probing.sample_tagged_words(sents, 2, seed=0)
    assert words == [["A", "dog"], ["runs"]] and list(table.tag) == ["DET", "NOUN", "VERB"]
    with pytest.raises(ValueError, match="only 2 have"):
        probing.sample_tagged_words(sents, 3)
    with pytest.raises(ValueError, match="grouped folds"):
        probing.probe_accuracy(np.zeros((4, 2)), ["a", "b", "a", "b"], [0, 0, 1, 1])
