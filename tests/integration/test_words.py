"""The model side of word acquisition on a real trained suite: surprisal equals a hand forward pass, and
each word's AoA is the sigmoid crossing of its own mean-surprisal curve."""
from __future__ import annotations

import numpy as np
import torch

from lhp_core import checkpoints
from lhp_core.data import corpora
from lhp_core.metrics import words
from lhp_core.suites import get_suite

STEPS = [0, 1, 2, 4, 8, 16, 24]


def test_word_surprisal_equals_a_hand_forward_pass_and_aoa_its_curve(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    docs = corpora.documents("inaugural")[:6]
    contexts, counts = words.word_contexts(["people", "nation", "the"], docs, max_per_word=4, context_chars=80)
    ds = words.word_aoa_over_steps(get_suite(str(tiny_suite)), contexts, models=["m"], steps=STEPS, n_boot=20,
                                   progress=False)
    assert ds["n_contexts"].values.tolist() == [min(4, counts[w]) for w in ["people", "nation", "the"]]
    lm, tok = checkpoints.load(str(tiny_suite), "m", 24)
    for row in contexts.itertuples():
        ctx = [tok.bos_token_id, *tok.encode(row.context, add_special_tokens=False)]
        tgt = tok.encode(row.target, add_special_tokens=False)
        ids = torch.tensor([ctx + tgt])
        with torch.inference_mode():
            logp = torch.log_softmax(lm(ids).logits.double(), -1)[0]
        ref = -sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(tgt)) / np.log(2)
        got = float(ds["surprisal"].sel(model="m", step=24, stimulus=row.stimulus))
        np.testing.assert_allclose(got, ref, rtol=1e-4)  # float32 forward, padded batch vs one sequence
    curves = ds["mean_surprisal"].sel(model="m").transpose("word", "step").values
    np.testing.assert_allclose(ds["aoa_step"].sel(model="m").values, words.curve_aoa(np.array(STEPS), curves))
    found = np.isfinite(ds["aoa_step"].values)
    assert found.any()
    assert (ds["aoa_step"].values[found] >= 1).all() and (ds["aoa_step"].values[found] <= 24).all()
    # A second reading (the Timeline's) fits nothing: the fit is kept by the grid it came from.

    def refuse(*args, **kwargs):
        raise AssertionError("the AoA fit of a cached grid must not run again")

    monkeypatch.setattr(words, "curve_aoa", refuse)
    again = words.word_aoa_over_steps(get_suite(str(tiny_suite)), contexts, models=["m"], steps=STEPS, n_boot=20,
                                      progress=False)
    for name in ("aoa_step", "aoa_lo", "aoa_hi"):
        np.testing.assert_array_equal(again[name].values, ds[name].values)
