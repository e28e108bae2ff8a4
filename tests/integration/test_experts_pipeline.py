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
