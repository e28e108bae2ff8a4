"""Held-out language-modelling loss of any suite's checkpoints, for plotting measures against loss.

lhp suites record their held-out loss while training (``training_record()["val_loss"]``); hub
suites (Pythia, OLMo) publish none per checkpoint. :func:`loss_over_steps` measures it the same
way for every suite: mean next-token cross-entropy (nats/token) over held-out texts read in
BOS-prefixed sliding windows at the suite's context, through the sweep engine (site ``logprobs``),
so a long run resumes. Good held-out texts are WikiText-2 (``lhp_core.data.corpora.documents(
"wikitext2_test")``) or the bundled corpus's held-out split (``lhp_core.corpus.load().val``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from lhp_core import schema
from lhp_core.measures import Checkpoint, Features, Measure, over_steps
from lhp_core.stimuli import Stimuli


def loss_over_steps(suite, texts: Sequence[str] | Stimuli, models: Sequence[str] | None = None,
                    steps: Sequence[int] | None = None, device: str = "cpu", dtype: str = "float32",
                    batch_size: int = 8, cache: bool = True, progress: bool = True) -> xr.Dataset:
    """Mean held-out cross-entropy (nats/token) of each (model, step).

    Parameters
    ----------
    suite
        A suite id, folder or :class:`lhp_core.suites.Suite`.
    texts
        Held-out documents (never the training data of the suite).
    models, steps
        Default: every model, every step it has. Steps a model lacks stay NaN.

    Returns
    -------
    xarray.Dataset
        ``loss`` ``(model, step)`` in nats/token, ``loss_per_text`` ``(model, step, stimulus)``,
        ``n_scored`` ``(stimulus)`` tokens scored per text, coordinate ``tokens_seen``.
    """
    stim = texts if isinstance(texts, Stimuli) else Stimuli.from_texts(list(texts))

    def compute(ck: Checkpoint) -> xr.Dataset:
        total = ck.features("logprobs", "stimulus_sum").values.astype(np.float64)
        mean = ck.features("logprobs", "stimulus_mean").values.astype(np.float64)
        # Tokens scored per text, recovered exactly from its sum and mean (float32 of the same values).
        counts = np.rint(total / mean).astype(np.int64)
        return xr.Dataset({
            "loss": ((), -total.sum() / counts.sum(), {
                "units": "nats/token", "description": "mean next-token cross-entropy over all held-out tokens"}),
            "loss_per_text": (schema.STIMULUS, -total / counts, {
                "units": "nats/token", "description": "mean next-token cross-entropy of each text"}),
            "n_scored": (schema.STIMULUS, counts, {"units": "tokens", "description": "tokens scored in each text"}),
        }, coords={schema.STIMULUS: list(stim.ids)})

    measure = Measure("loss", compute, {"stimuli": stim.fingerprint()},
                      features=Features(stim, ("logprobs",), ("stimulus_sum", "stimulus_mean"), batch_size=batch_size),
                      description="held-out next-token cross-entropy, BOS-prefixed sliding windows "
                                  "at the suite's context")
    ds = over_steps(suite, measure, models, steps, device=device, dtype=dtype, cache=cache, progress=progress)
    ds["n_scored"] = ds["n_scored"].max([schema.MODEL, schema.STEP]).astype(np.int64)  # the same at every checkpoint
    ds["n_scored"].attrs.update(units="tokens", description="tokens scored in each text")
    ds.attrs.update(n_texts=int(len(stim.ids)), n_scored=int(ds["n_scored"].sum()))
    return ds
