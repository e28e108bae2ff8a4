"""Expert pipeline on the tiny trained suite: sweep -> units -> AP, checked against sklearn and the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score

from lhp_core import checkpoints, concepts
from lhp_core.metrics import experts, similarity


def _pool() -> pd.DataFrame:
    texts = [f"The {w} number {i} was seen near the old house today." for w in ("dog", "cat", "apple", "animal")
             for i in range(4)]
    texts += [f"Nothing in sentence {i} is about any object at all." for i in range(12)]
    return pd.DataFrame({"text": texts, "split": "held_out"})


def test_expert_ap_matches_sklearn_and_model(tiny_suite: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    texts, table = concepts.build_stimuli(["dog", "cat", "apple", "animal"], _pool(), n_corpus=3, n_template=2,
                                          n_negative_pool=8)
    suite = str(tiny_suite)
    ds = experts.expert_ap_over_steps(suite, texts, table, models=["s", "m"], steps=[0, 24], progress=False)
    assert ds["ap"].dims == ("model", "step", "concept", "neuron") and list(ds["step"].values) == [0, 24]
    a = experts.model_ap(ds, "s")
    x = experts.unit_activations(suite, texts, "s", 24)
    assert a.dims == ("step", "concept", "neuron") and a.sizes["neuron"] == x.sizes["neuron"]
    assert experts.model_ap(ds, "m").sizes["neuron"] > a.sizes["neuron"]  # m is deeper: the stack pads s with NaN
    assert set(np.unique(x["layer"].values)) == set(range(1, int(x["layer"].max()) + 1))
    np.testing.assert_array_equal(a["module"].values, x["module"].values)
    # AP of a few units at step 24 equals sklearn on the stored activations
    part = table[table.concept == "dog"]
    sel = x.sel(stimulus=part.stimulus.values).values
    for u in (0, 7, sel.shape[1] - 1):
        assert abs(float(a.sel(step=24, concept="dog").values[u])
                   - average_precision_score(part.label, sel[:, u])) < 1e-6
    # the stored max-pooled unit equals a direct forward pass: last unit = MLP output of the last block
    model, tok = checkpoints.load(suite, "s", 24)
    text = texts.text.iloc[0]
    ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    captured = {}
    block = model.gpt_neox.layers[-1]
    h = block.mlp.dense_4h_to_h.register_forward_hook(lambda m, i, o: captured.setdefault("o", o))
    with torch.no_grad():
        model(torch.tensor([ids]))
    h.remove()
    direct = captured["o"][0, 1:].max(0).values[-1].item()
    stored = float(x.sel(stimulus=texts.stimulus.iloc[0]).values[-1])
    assert abs(direct - stored) < 1e-4
    # and the input-embedding baseline is a proper similarity matrix
    emb = similarity.input_embedding_similarity(model, tok, ["dog", "cat", "apple"])
    assert emb.shape == (3, 3) and np.allclose(np.diag(emb), 1.0)


def test_alignment_over_steps_goes_through_the_runner(tiny_suite: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    food = pd.DataFrame({"text": [f"The food number {i} was seen near the old house today." for i in range(4)],
                         "split": "held_out"})
    texts, table = concepts.build_stimuli(["dog", "cat", "apple", "animal", "food"], pd.concat([_pool(), food]),
                                          n_corpus=3, n_template=2, n_negative_pool=8)
    members = pd.DataFrame({"word": ["dog", "cat", "apple"], "category": ["animal", "animal", "food"]})
    human = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 1.0]])
    suite, grid = str(tiny_suite), dict(models=["s", "m"], steps=[0, 24])
    kw = dict(top_k=5, n_perm=50, n_boot=50, seed=3)
    res = similarity.alignment_over_steps(suite, texts, table, members, human, **grid, progress=False, **kw)
    assert res.attrs["measure"] == "expert_alignment" and res.attrs["n_computed"] == 4 and "git_commit" in res.attrs
    assert res["rsa_jaccard"].dims == ("model", "step") and res["onset_found_share"].dims == ("model",)
    assert np.isfinite(res["rsa_profile"].values).all() and np.isfinite(res["rsa_embedding"].values).all()
    # the same numbers as the analysis of the AP table in memory (the per-step code and the onset over steps)
    ap = experts.expert_ap_over_steps(suite, texts, table, **grid, progress=False)
    emb = similarity.embedding_rsa_over_steps(suite, members.word.tolist(), human, **grid, progress=False)
    ref = similarity.alignment(ap, members, human, embedding_rsa=emb["rsa_embedding"], **kw)
    for k in ref.data_vars:
        np.testing.assert_allclose(res[k].values, ref[k].transpose(*res[k].dims).values, rtol=0, atol=1e-12,
                                   err_msg=k)
    # cached by the weights: a second call computes nothing
    again = similarity.alignment_over_steps(suite, texts, table, members, human, **grid, progress=False, **kw)
    assert again.attrs["n_computed"] == 0
    np.testing.assert_array_equal(again["rsa_jaccard"].values, res["rsa_jaccard"].values)
