"""Feature norms loader on the real McRae and CSLB files; similarity against scipy's cosine distance.

Tolerance: 1e-12 (the same float64 cosine computed two ways).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from lhp_core.data import feature_norms as fn

IDS = ["dog", "cat", "horse", "accordion", "guitar", "bat1", "baseball_bat", "hammer", "xylophone_not_a_concept"]


@pytest.mark.parametrize("name, n_concepts, n_rows", [("mcrae", 541, 7259), ("cslb", 638, 22667)])
def test_load_counts_and_columns(name, n_concepts, n_rows):
    df = fn.load(name)
    assert len(df) == n_rows and df["concept"].nunique() == n_concepts
    assert {"concept", "feature", "feature_type", "pf"} <= set(df.columns)
    assert (df["pf"] >= (5 if name == "mcrae" else 2)).all() and (df["pf"] <= 30).all()
    assert fn.TAXONOMIC in set(df["feature_type"])


def test_duplicated_labels_are_summed():
    df = fn.load("cslb")
    assert df[(df.concept == "hamster") & (df.feature == "has fur_hair")]["pf"].tolist() == [18, 13]
    mat, feats, covered = fn.feature_matrix("cslb", ["hamster"])
    assert covered.tolist() == [True] and mat[0, feats.index("has fur_hair")] == 31


def _row(table, key: tuple[str, str], columns: list[str]) -> list:
    # a one-row frame on every pandas (before 3.0 a full key on an unsorted MultiIndex gave a frame, not a row)
    rows = table.loc[[key], columns]
    assert len(rows) == 1, rows
    return rows.iloc[0].tolist()


def test_known_rows():
    mc, cs = fn.load("mcrae").set_index(["concept", "feature"]), fn.load("cslb").set_index(["concept", "feature"])
    assert _row(mc, ("accordion", "a_musical_instrument"), ["feature_type", "pf"]) == ["taxonomic", 28]
    want = ["visual perceptual", 22, "nonliving"]
    assert _row(cs, ("accordion", "has keys"), ["feature_type", "pf", "domain"]) == want


def test_things_names_use_the_mapping():
    mc, cs = fn.things_names("mcrae"), fn.things_names("cslb")
    assert mc["bat1"] == "bat_(animal)" and mc["baseball_bat"] == "bat_(baseball)" and mc["dog"] == "dog"
    assert cs["bat2"] == "bat_(sporting)" and "baseball_bat" not in cs  # empty cell: no such concept in CSLB
    assert 300 < len(mc) < 541 and 300 < len(cs) < 638


def _reference(name: str, ids, taxonomic: bool) -> np.ndarray:
    """Pivot the raw rows with pandas and take scipy's cosine, independently of feature_matrix."""
    df = fn.load(name)
    df = df[taxonomic | (df["feature_type"] != fn.TAXONOMIC)]
    names = fn.things_names(name)
    wide = df.pivot_table(index="concept", columns="feature", values="pf", aggfunc="sum", fill_value=0)
    wide = wide.where(wide >= 5, 0)
    rows = np.array([wide.loc[names[c]].to_numpy(float) if c in names else np.zeros(wide.shape[1]) for c in ids])
    rows = rows[:, rows.any(axis=0)]
    out = 1.0 - cdist(rows, rows, metric="cosine")
    missing = ~np.array([c in names for c in ids])
    out[missing] = np.nan
    out[:, missing] = np.nan
    return out


@pytest.mark.parametrize("name", fn.NORMS)
@pytest.mark.parametrize("taxonomic", [True, False])
def test_similarity_equals_scipy_cosine(name, taxonomic):
    got = fn.similarity(name, IDS, taxonomic=taxonomic)
    np.testing.assert_allclose(got, _reference(name, IDS, taxonomic), rtol=0, atol=1e-12)
    i = {c: k for k, c in enumerate(IDS)}
    assert got[i["dog"], i["cat"]] > 0.3 > got[i["dog"], i["accordion"]]
    assert np.isnan(got[i["xylophone_not_a_concept"]]).all()
    np.testing.assert_allclose(np.diag(got)[np.isfinite(np.diag(got))], 1.0, atol=1e-12)


def test_taxonomic_features_matter():
    with_tax = fn.similarity("mcrae", ["dog", "cat"])[0, 1]
    without = fn.similarity("mcrae", ["dog", "cat"], taxonomic=False)[0, 1]
    assert with_tax != pytest.approx(without, abs=1e-3)


def test_pairs_table_and_errors():
    words = [c.split("1")[0] for c in IDS]
    table = fn.pairs("mcrae", IDS, words)
    n_cov = sum(c in fn.things_names("mcrae") for c in IDS)
    assert len(table) == n_cov * (n_cov - 1) // 2
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["word1", "word2", "score"]
    with pytest.raises(ValueError, match="THINGS ids but"):
        fn.pairs("mcrae", IDS, words[:2])
    with pytest.raises(KeyError, match="valid names: mcrae, cslb"):
        fn.load("norms")


def test_every_manifest_loader_imports():
    import importlib

    from lhp_core.data.manifests import get_manifest, list_datasets

    for dataset in list_datasets():
        m = get_manifest(dataset)
        assert m.loader is not None, f"{dataset} has no loader"
        importlib.import_module(m.loader)
