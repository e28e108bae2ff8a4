"""Concept similarity, RSA, hierarchy and nulls: hand-computed toys and scipy/sklearn references."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from lhp_core.deprecation import RenamedWarning
from lhp_core.metrics import similarity as sim

TOL = 1e-12


def test_jaccard_hand_computed() -> None:
    experts = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    j = sim.jaccard_similarity(experts)
    assert j[0, 1] == pytest.approx(1 / 3, abs=TOL)  # {0,1} vs {1,2}
    assert j[0, 2] == pytest.approx(2 / 4, abs=TOL)
    assert j[1, 2] == pytest.approx(2 / 4, abs=TOL)
    assert j[3, 3] == 0.0 and j[0, 3] == 0.0
    np.testing.assert_allclose(np.diag(j)[:3], 1.0)


def test_profile_similarity_is_pearson() -> None:
    rng = np.random.default_rng(0)
    ap = rng.uniform(size=(5, 30))
    out = sim.profile_similarity(ap)
    assert out[1, 3] == pytest.approx(np.corrcoef(ap[1], ap[3])[0, 1], abs=TOL)
    with pytest.raises(ValueError, match="constant"):
        sim.profile_similarity(np.vstack([ap, np.zeros(30)]))


def test_embedding_similarity() -> None:
    e = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(sim.embedding_similarity(e, "dot"), e @ e.T)
    cos = sim.embedding_similarity(e, "cosine")
    assert cos[0, 1] == pytest.approx(1 / np.sqrt(2), abs=TOL) and cos[0, 2] == pytest.approx(0.0, abs=TOL)
    with pytest.raises(ValueError, match="metric"):
        sim.embedding_similarity(e, "l2")


def test_rsa_matches_scipy_spearman_over_pairs() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    a = a + a.T
    b = a + rng.normal(size=(8, 8))
    b = b + b.T
    iu = np.triu_indices(8, 1)
    assert sim.rsa(a, b) == pytest.approx(spearmanr(a[iu], b[iu]).statistic, abs=TOL)
    assert sim.rsa(a, a) == pytest.approx(1.0, abs=TOL)
    with pytest.raises(ValueError, match="same concepts"):
        sim.rsa(a, b[:5, :5])


def test_rsa_null_centred_and_bootstrap_covers_value() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3))
    human = x @ x.T
    model = human + 0.5 * rng.normal(size=(20, 20))
    model = (model + model.T) / 2
    observed = sim.rsa(model, human)
    null = sim.rsa_null(model, human, n_perm=500, seed=0)
    assert abs(null.mean()) < 0.03  # relabelling destroys the pairing
    assert observed > np.quantile(null, 0.99)
    # the null of each permutation equals scipy on the explicitly permuted matrix
    perm = np.random.default_rng(0).permutation(20)
    iu = np.triu_indices(20, 1)
    assert null[0] == pytest.approx(spearmanr(model[np.ix_(perm, perm)][iu], human[iu]).statistic, abs=TOL)
    boot = sim.rsa_bootstrap(model, human, n_boot=300, seed=0)
    lo, hi = np.nanquantile(boot, [0.025, 0.975])
    assert lo < observed < hi


def test_containment_hand_computed_and_null() -> None:
    members = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=bool)
    cats = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 1]], dtype=bool)
    out = sim.containment(members, cats[[0, 1, 1]])
    np.testing.assert_allclose(out[:2], [0.5, 2 / 3], atol=TOL)
    assert np.isnan(out[2])
    # with two categories, the "other" category is fixed, so the null is deterministic
    null = sim.containment_null(members, cats, [0, 1, 1], n_perm=20, seed=0)
    expected = np.nanmean(sim.containment(members, cats[[1, 0, 0]]))  # (0 + 0) / 2
    np.testing.assert_allclose(null, expected, atol=TOL)


def test_containment_null_random_sets_near_chance() -> None:
    # Random independent expert sets: containment expected = category density.
    rng = np.random.default_rng(3)
    members = rng.uniform(size=(40, 400)) < 0.1
    cats = rng.uniform(size=(4, 400)) < 0.25
    null = sim.containment_null(members, cats, rng.integers(0, 4, 40), n_perm=200, seed=1)
    assert null.mean() == pytest.approx(cats.mean(), abs=0.02)


def test_cluster_agreement_recovers_blocks_and_null_centred() -> None:
    cats = np.repeat(["animal", "food", "tool"], 5)
    block = (cats[:, None] == cats[None, :]).astype(float)
    rng = np.random.default_rng(4)
    noisy = block + 0.1 * rng.normal(size=block.shape)
    noisy = (noisy + noisy.T) / 2
    assert sim.cluster_agreement(noisy, cats) == pytest.approx(1.0, abs=TOL)
    labels = sim.cluster_labels(noisy, 3)
    assert adjusted_rand_score(cats, labels) == pytest.approx(1.0)
    null = sim.cluster_agreement_null(noisy, cats, n_perm=400, seed=0)
    assert abs(null.mean()) < 0.03


def test_adjusted_rand_equals_sklearn() -> None:
    rng = np.random.default_rng(11)
    for n, ka, kb in [(2, 1, 2), (15, 3, 3), (40, 1, 1), (40, 40, 40), (200, 7, 4), (500, 12, 30)]:
        for _ in range(20):
            a, b = rng.integers(0, ka, n), rng.integers(0, kb, n)
            a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
            assert sim.adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    # the permutation null draws the same permutations as permuting the category names
    cats = np.repeat(["animal", "food", "tool", "vehicle"], 6)
    block = (cats[:, None] == cats[None, :]) + 0.8 * rng.normal(size=(24, 24))
    block = (block + block.T) / 2
    labels = sim.cluster_labels(block, 4)
    r = np.random.default_rng(5)
    expected = [adjusted_rand_score(r.permutation(cats), labels) for _ in range(300)]
    np.testing.assert_allclose(sim.cluster_agreement_null(block, cats, n_perm=300, seed=5), expected,
                               rtol=0, atol=1e-12)


def test_onset_step() -> None:
    steps = [0, 10, 100, 1000]
    assert sim.onset_step(steps, [0.0, 0.3, 0.1, 0.4], 0.2) == 1000  # dip at 100: not yet for good
    assert sim.onset_step(steps, [0.0, 0.3, 0.3, 0.4], [0.2, 0.2, 0.2, 0.2]) == 10
    assert sim.onset_step(steps, [0.0, 0.0, 0.0, 0.0], 0.2) is None
    boot = np.array([[0.0, 0.5], [0.3, 0.5], [0.3, 0.0], [0.3, 0.5]])
    np.testing.assert_array_equal(sim.onset_bootstrap(steps, boot, 0.2), [10, 1000])
    with pytest.raises(ValueError, match="increasing"):
        sim.onset_step([0, 0, 1, 2], [0, 0, 0, 0], 0.1)


def test_pair_rsa_uses_only_matching_pairs() -> None:
    import pandas as pd

    words = ["dog", "cat", "car", "bus"]
    m = np.array([[1, .9, .1, .2], [.9, 1, .3, .1], [.1, .3, 1, .8], [.2, .1, .8, 1]])
    pairs = pd.DataFrame({"word1": ["dog", "car", "cat", "dog", "emu"], "word2": ["cat", "bus", "car", "bus", "dog"],
                          "score": [9.0, 8.0, 1.0, 2.0, 5.0]})
    rho, n = sim.pair_rsa(m, words, pairs)
    assert n == 4
    assert rho == pytest.approx(spearmanr([.9, .8, .3, .2], [9, 8, 1, 2]).statistic, abs=TOL)
    assert np.isnan(sim.pair_rsa(m, words, pairs.iloc[:2])[0])


def test_alignment_on_planted_structure() -> None:
    import xarray as xr

    # Two categories whose members share experts with each other and with their category at
    # the late step, and random APs at the early step.
    rng = np.random.default_rng(5)
    members = ["a1", "a2", "a3", "b1", "b2", "b3"]
    cats = ["A"] * 3 + ["B"] * 3
    n_units = 60
    late = rng.uniform(0, 0.5, size=(8, n_units))
    for i, c in enumerate(cats):
        block = slice(0, 20) if c == "A" else slice(30, 50)
        late[i, block] += 0.5
    late[6, 0:20] += 0.5
    late[7, 30:50] += 0.5
    early = rng.uniform(size=(8, n_units))
    ap = xr.DataArray(np.stack([early, late]), dims=("step", "concept", "neuron"),
                      coords={"step": [0, 100], "concept": members + ["A", "B"]})
    x = rng.normal(size=(6, 2)) + np.repeat([[3, 0], [0, 3]], 3, axis=0)
    human = x @ x.T
    import pandas as pd

    args = (xr.Dataset({"ap": ap.expand_dims(model=["m"])}), pd.DataFrame({"word": members, "category": cats}), human)
    res = sim.alignment(*args, top_k=15, n_perm=100, n_boot=100)
    with pytest.warns(RenamedWarning, match="renamed lhp_core.metrics.similarity.alignment in"):
        old = sim.alignment_over_training(*args, top_k=15, n_perm=100, n_boot=100)
    xr.testing.assert_identical(old, res)
    late_res = res.sel(model="m", step=100)
    assert float(late_res.ari) == pytest.approx(1.0)
    assert float(late_res.containment) > float(late_res.containment_null)
    assert float(late_res.rsa_jaccard) > float(late_res.null_q95)
    assert float(res.sel(model="m", step=0).containment) < float(late_res.containment)
