"""metrics.loss.loss_over_steps: held-out cross-entropy through the sweep, against HF's own loss.

Reference: ``model(x, labels=x).loss`` on each BOS-prefixed text that fits one window (HF's mean
next-token cross-entropy), and reading.token_scores' full softmax for a text read in several
windows. Tolerance 1e-5 nats (float32).
"""
from __future__ import annotations

import numpy as np
import torch

from lhp_core import checkpoints
from lhp_core.metrics import reading
from lhp_core.metrics.loss import loss_over_steps
from lhp_core.stimuli import Stimuli
from lhp_core.suites import context_length, get_suite

SHORT = ["The old man walked to the market.", "Birds sang in the rain while the river ran fast.",
         "A small house stood near the bridge"]


def test_loss_equals_hf_loss_and_resumes(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    suite = get_suite(str(tiny_suite))
    long = " ".join(SHORT * 12)
    texts = SHORT + [long]
    ds = loss_over_steps(suite, texts, steps=[0, 24, 999], progress=False)
    assert ds["loss"].dims == ("model", "step") and np.isnan(ds["loss"].sel(step=999)).all()
    ctx = context_length(suite)
    for m in suite.models:
        model, tok = checkpoints.load(suite, m, 24)
        n_long = len(tok(long, add_special_tokens=False).input_ids)
        assert n_long > ctx  # the long text spans several windows
        want, n = [], []
        for t in SHORT:
            x = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False).input_ids])
            with torch.no_grad():
                want.append(model(x, labels=x).loss.item())
            n.append(x.shape[1] - 1)
        sc = reading.token_scores(model, tok, Stimuli.from_texts([long]), max_length=ctx)
        want.append(-float(np.mean(sc.logprob)))
        n.append(n_long)
        got = ds["loss_per_text"].sel(model=m, step=24).values
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=m)
        assert ds["n_scored"].values.tolist() == n
        np.testing.assert_allclose(float(ds["loss"].sel(model=m, step=24)), np.dot(want, n) / sum(n), rtol=0, atol=1e-5)
    # Training lowers the held-out loss of every model.
    assert (ds["loss"].sel(step=24) < ds["loss"].sel(step=0) - 0.5).all()

    def refuse(*a, **k):
        raise AssertionError("a finished loss sweep must not load checkpoints again")

    monkeypatch.setattr(checkpoints, "load", refuse)
    again = loss_over_steps(suite, texts, steps=[0, 24, 999], progress=False)
    np.testing.assert_array_equal(again["loss"].values, ds["loss"].values)


def test_precision_default_comes_from_lhp_dtype(tiny_suite, tmp_path, monkeypatch):
    """A call naming no dtype runs in LHP_DTYPE (what `lhp book` sets from a profile's `dtype`), caches under it,
    and says so in its attrs; the bf16 loss stays within 0.05 nats of float32's (bf16 keeps 8 bits of mantissa)."""
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    suite = get_suite(str(tiny_suite))
    f32 = loss_over_steps(suite, SHORT, steps=[24], progress=False)
    assert f32.attrs["dtype"] == "float32"
    monkeypatch.setenv("LHP_DTYPE", "bfloat16")
    bf16 = loss_over_steps(suite, SHORT, steps=[24], progress=False)
    assert bf16.attrs["dtype"] == "bfloat16" and bf16.attrs["n_computed"] == bf16.attrs["n_checkpoints"] > 0
    diff = np.abs(bf16["loss"].values - f32["loss"].values)
    assert (diff > 0).any() and (diff < 0.05).all()
    named = loss_over_steps(suite, SHORT, steps=[24], dtype="float32", progress=False)  # a named dtype wins
    np.testing.assert_array_equal(named["loss"].values, f32["loss"].values)
