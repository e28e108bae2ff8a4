"""Held-out language-modelling loss of any suite's checkpoints, for plotting measures against loss.

lhp suites record their held-out loss while training (``training_record()["val_loss"]``); hub
suites (Pythia, OLMo) publish none per checkpoint. :func:`loss_over_steps` measures it the same
way for every suite: mean next-token cross-entropy (nats/token) over held-out texts read in
BOS-prefixed sliding windows at the suite's context, through the sweep engine (site ``logprobs``),
so a long run resumes. Good held-out texts are WikiText-2 (``lhp_core.data.corpora.documents(
"wikitext2_test")``) or the bundled corpus's held-out split (``lhp_core.corpus.load().val``).
"""
from __future__ import annotations

import hashlib
import json
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

    from lhp_core import config, schema
    from lhp_core.store import concat_models
    from lhp_core.suites import get_suite
    from lhp_core.sweep import sweep

    s = get_suite(suite)
    stim = texts if isinstance(texts, Stimuli) else Stimuli.from_texts(list(texts))
    models = list(models or s.models)
    all_steps = sorted({int(t) for m in models for t in (steps if steps is not None else s.steps(m))})
    step_map = {m: [t for t in all_steps if t in set(s.steps(m))] for m in models}
    swept = [m for m in models if step_map[m]]
    if not swept:
        raise ValueError(f"none of steps {all_steps[:5]}... is a checkpoint of models {models}")
    if store is None:
        key = hashlib.sha256(json.dumps({"stimuli": stim.fingerprint(), "steps": step_map, "dtype": dtype},
                                        sort_keys=True).encode()).hexdigest()[:16]
        store = config.results_dir() / "loss" / str(s.id).replace("/", "_") / f"{key}.zarr"
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    sweep(s, stim, store, sites=["logprobs"], reducers=["stimulus_sum", "stimulus_mean"], models=swept,
          steps={m: step_map[m] for m in swept}, device=device, dtype=dtype, batch_size=batch_size, progress=progress)
    total = concat_models(store, "logprobs", "stimulus_sum", swept).load()
    mean = concat_models(store, "logprobs", "stimulus_mean", swept).load()
    # Tokens scored per text, recovered exactly from its sum and mean (both are float32 of the same values).
    counts = xr.DataArray(np.rint((total / mean).max([schema.MODEL, schema.STEP]).values).astype(np.int64),
                          dims=schema.STIMULUS)
    full = {schema.MODEL: models, schema.STEP: all_steps}
    per_text = (-total / counts).reindex(full)
    loss = (-total.sum(schema.STIMULUS, skipna=False) / counts.sum()).reindex(full)
    tokens = np.array([[s.tokens_seen(m, t) if t in step_map[m] else np.nan for t in all_steps] for m in models], float)
    ds = xr.Dataset({"loss": loss, "loss_per_text": per_text,
                     "n_scored": counts},
                    coords={schema.TOKENS_SEEN: ((schema.MODEL, schema.STEP), tokens)})
    ds.attrs.update(suite=str(s.id), units="nats/token", n_texts=int(len(stim.ids)), n_scored=int(counts.sum()),
                    store=str(store))
    return ds
