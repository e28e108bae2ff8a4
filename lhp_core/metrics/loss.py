"""Held-out language-modelling loss of any suite's checkpoints, for plotting measures against loss.

lhp suites record their held-out loss while training (``training_record()["val_loss"]``); hub
suites (Pythia, OLMo) publish none per checkpoint. :func:`loss_over_steps` measures it the same
way for every suite: mean next-token cross-entropy (nats/token) over held-out texts read in
BOS-prefixed sliding windows at the suite's context, through the sweep engine (site ``logprobs``),
so a long run resumes. Good held-out texts are WikiText-2 (``lhp_core.data.corpora.documents(
"wikitext2_test")``) or the bundled corpus's held-out split (``lhp_core.corpus.load().val``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lhp_core.stimuli import Stimuli


def loss_over_steps(suite, texts: Sequence[str] | Stimuli, models: Sequence[str] | None = None,
                    steps: Sequence[int] | None = None, device: str = "cpu", dtype: str = "float32",
                    batch_size: int = 8, store: str | Path | None = None, progress: bool = True):
    """Mean held-out cross-entropy (nats/token) of each (model, step).

    Parameters
    ----------
    suite
        A suite id, folder or :class:`lhp_core.suites.Suite`.
    texts
        Held-out documents (never the training data of the suite).
    models, steps
        Default: every model, every step it has. Steps a model lacks stay NaN.
    store
        The sweep store (default: ``config.results_dir()/loss/<suite>/<key>.zarr``, one per
        texts, models and steps).

    Returns
    -------
    xarray.Dataset
        ``loss`` ``(model, step)`` in nats/token, ``loss_per_text`` ``(model, step, stimulus)``,
        ``n_scored`` ``(stimulus)`` tokens scored per text, coordinate ``tokens_seen``.
    """
    import xarray as xr

    from lhp_core import schema
    from lhp_core.suites import get_suite
    from lhp_core.sweep import sweep_grid

    stim = texts if isinstance(texts, Stimuli) else Stimuli.from_texts(list(texts))
    values, tokens, store = sweep_grid(suite, stim, ["logprobs"], ["stimulus_sum", "stimulus_mean"], "loss",
                                       models=models, steps=steps, device=device, dtype=dtype, batch_size=batch_size,
                                       store=store, progress=progress)
    if not values:
        raise ValueError(f"none of steps {tokens[schema.STEP].values[:5].tolist()}... is a checkpoint of models "
                         f"{tokens[schema.MODEL].values.tolist()}")
    total, mean = values["logprobs", "stimulus_sum"], values["logprobs", "stimulus_mean"]
    # Tokens scored per text, recovered exactly from its sum and mean (both are float32 of the same values).
    counts = xr.DataArray(np.rint((total / mean).max([schema.MODEL, schema.STEP]).values).astype(np.int64),
                          dims=schema.STIMULUS)
    ds = xr.Dataset({"loss": -total.sum(schema.STIMULUS, skipna=False) / counts.sum(), "loss_per_text": -total / counts,
                     "n_scored": counts}, coords={schema.TOKENS_SEEN: tokens})
    ds.attrs.update(suite=str(get_suite(suite).id), units="nats/token", n_texts=int(len(stim.ids)),
                    n_scored=int(counts.sum()), store=store)
    return ds
