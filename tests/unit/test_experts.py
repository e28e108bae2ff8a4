"""Expert units: batched AP against scikit-learn, expert selection, top sentences."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from sklearn.metrics import average_precision_score

from lhp_core.metrics import experts as experts_mod
from lhp_core.metrics.experts import average_precision, concept_ap, select_experts, top_stimuli

TOL = 1e-6


def _sk(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([average_precision_score(labels, scores[:, j]) for j in range(scores.shape[1])])


def test_ap_matches_sklearn_continuous(device: str) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=60)
    labels[0] = 1
    scores = rng.normal(size=(60, 40)) + labels[:, None] * rng.normal(size=40)
    ours = average_precision(torch.as_tensor(scores, device=device), labels).cpu().numpy()
    np.testing.assert_allclose(ours, _sk(scores, labels), atol=TOL, rtol=0)


def test_ap_matches_sklearn_with_heavy_ties() -> None:
    # Rounded scores make many tie groups that mix positives and negatives: the case
    # where a naive per-position AP differs from sklearn.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=50)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=(50, 30)), 0)
    scores[:, 0] = 0.0  # all tied: AP = prevalence
    ours = average_precision(scores, labels, chunk=7).numpy()
    np.testing.assert_allclose(ours, _sk(scores, labels), atol=TOL, rtol=0)
    assert ours[0] == pytest.approx(labels.mean(), abs=TOL)


def test_ap_closed_forms() -> None:
    labels = np.array([1, 0, 1, 0])
    assert float(average_precision(np.array([4.0, 3, 2, 1]), labels)) == pytest.approx((1 + 2 / 3) / 2, abs=TOL)
    assert float(average_precision(np.array([1.0, 0, 1, 0]), labels)) == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize(
    "scores,labels,match",
    [
        (np.zeros((3, 2)), np.zeros(3), "no positive"),
        (np.zeros((3, 2)), np.array([0, 1, 2]), "0/1"),
        (np.zeros((3, 2)), np.array([0, 1]), "one label per stimulus"),
        (np.array([[np.nan], [0.0]]), np.array([0, 1]), "NaN"),
    ],
)
def test_ap_bad_input(scores: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        average_precision(scores, labels)


def _toy() -> tuple[xr.DataArray, pd.DataFrame]:
    rng = np.random.default_rng(2)
    n_stim, n_units = 30, 12
    acts = rng.normal(size=(n_stim, n_units))
    ids = [f"s{i}" for i in range(n_stim)]
    table = pd.DataFrame(
        {"concept": ["dog"] * 20 + ["cat"] * 20,
         "stimulus": ids[:20] + ids[10:30],
         "label": [1] * 10 + [0] * 10 + [1] * 10 + [0] * 10}
    )
    da = xr.DataArray(acts, dims=("stimulus", "neuron"),
                      coords={"stimulus": ids, "layer": ("neuron", np.repeat([1, 2], 6))})
    return da, table


def test_concept_ap_uses_each_concepts_own_sets() -> None:
    da, table = _toy()
    ap = concept_ap(da, table, progress=False)
    assert ap.dims == ("concept", "neuron") and list(ap["concept"].values) == ["dog", "cat"]
    assert "layer" in ap.coords
    for concept in ["dog", "cat"]:
        part = table[table.concept == concept]
        expected = _sk(da.sel(stimulus=part.stimulus.values).values, part.label.values)
        np.testing.assert_allclose(ap.sel(concept=concept).values, expected, atol=TOL, rtol=0)


def test_concept_ap_unknown_stimulus() -> None:
    da, table = _toy()
    table.loc[0, "stimulus"] = "nope"
    with pytest.raises(KeyError, match="no activations"):
        concept_ap(da, table, progress=False)


def test_select_experts_tau_and_topk() -> None:
    ap = xr.DataArray([[0.9, 0.5, 0.95, 0.1], [0.2, 0.8, 0.8, 0.99]], dims=("concept", "neuron"))
    np.testing.assert_array_equal(select_experts(ap, tau=0.9).values, [[1, 0, 1, 0], [0, 0, 0, 1]])
    # ties at 0.8: stable order keeps the lower unit index
    np.testing.assert_array_equal(select_experts(ap, top_k=2).values, [[1, 0, 1, 0], [0, 1, 0, 1]])
    assert select_experts(ap, top_k=3).values.sum(axis=1).tolist() == [3, 3]
    with pytest.raises(ValueError, match="exactly one"):
        select_experts(ap)
    with pytest.raises(ValueError, match="top_k"):
        select_experts(ap, top_k=5)
    with pytest.raises(ValueError, match="tau"):
        select_experts(ap, tau=1.5)


def test_top_stimuli_orders_by_activation() -> None:
    da = xr.DataArray([[0.1, 5.0], [3.0, 1.0], [2.0, 4.0]], dims=("stimulus", "neuron"),
                      coords={"stimulus": ["a", "b", "c"]})
    texts = pd.Series({"a": "A.", "b": "B.", "c": "C."})
    out = top_stimuli(da, [0, 1], texts, k=2)
    assert out[out.neuron == 0].stimulus.tolist() == ["b", "c"]
    assert out[out.neuron == 1].text.tolist() == ["A.", "C."]


def test_flatten_units_drops_embedding_layer_and_keeps_layout() -> None:
    vals = np.arange(3 * 2 * 4, dtype=float).reshape(3, 2, 4)  # (layer, stimulus, neuron)
    pooled = xr.DataArray(vals, dims=("layer", "stimulus", "neuron"),
                          coords={"layer": [0, 1, 2], "stimulus": ["a", "b"],
                                  "neuron_module": ("neuron", ["qkv", "qkv", "mlp_in", "mlp_out"])})
    flat = experts_mod.flatten_units(pooled)
    assert flat.dims == ("stimulus", "neuron") and flat.shape == (2, 8)
    assert flat["layer"].values.tolist() == [1] * 4 + [2] * 4
    assert flat["module"].values.tolist()[4:] == ["qkv", "qkv", "mlp_in", "mlp_out"]
    # stimulus b, layer 2, unit 3 is vals[2, 1, 3]
    assert float(flat.sel(stimulus="b").values[7]) == vals[2, 1, 3]


def test_inspect_concept_returns_top_units_and_their_sentences() -> None:
    da, table = _toy()
    ap = xr.concat([concept_ap(da, table, progress=False), concept_ap(da * -1, table, progress=False)],
                   dim=xr.DataArray([0, 10], dims="step", name="step"))
    acts = -da  # the activations at step 10
    texts = pd.DataFrame({"stimulus": da.stimulus.values, "text": [f"t{i}" for i in range(30)]})
    out = experts_mod.inspect_concept(ap, acts, texts, "dog", 10, n_experts=3, k=2)
    best = ap.sel(concept="dog", step=10).values
    assert out["experts"]["ap"].tolist() == sorted(best, reverse=True)[:3]
    assert len(out["trajectory"]) == 6 and len(out["sentences"]) == 6
    with pytest.raises(KeyError, match="concepts"):
        experts_mod.inspect_concept(ap, acts, texts, "emu", 10)


def test_concept_ap_with_ties_and_small_blocks_matches_sklearn() -> None:
    """Ties inside and across concepts, overlapping sentence sets of different sizes."""
    rng = np.random.default_rng(5)
    n_stim, n_units = 40, 23
    acts = rng.integers(0, 4, size=(n_stim, n_units)).astype(float)  # many ties
    ids = [f"s{i}" for i in range(n_stim)]
    table = pd.DataFrame({
        "concept": ["a"] * 12 + ["b"] * 25 + ["c"] * 7,
        "stimulus": ids[:12] + ids[5:30] + [ids[i] for i in (39, 0, 33, 17, 8, 21, 2)],
        "label": [1, 0] * 6 + [0] * 20 + [1] * 5 + [1, 0, 0, 0, 0, 0, 0],
    })
    da = xr.DataArray(acts, dims=("stimulus", "neuron"), coords={"stimulus": ids})
    ap = concept_ap(da, table, progress=False)
    for concept in "abc":
        part = table[table.concept == concept]
        expected = _sk(da.sel(stimulus=part.stimulus.values).values, part.label.values)
        np.testing.assert_allclose(ap.sel(concept=concept).values, expected, atol=TOL, rtol=0)
    no_pos = table.assign(label=np.where(table.concept == "c", 0, table.label))
    with pytest.raises(ValueError, match="no positive"):
        concept_ap(da, no_pos, progress=False)
