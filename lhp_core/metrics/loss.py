"""Held-out language-modelling loss of any suite's checkpoints, for plotting measures against loss.

lhp suites record their held-out loss while training (``training_record()["val_loss"]``); hub
suites (Pythia, OLMo) publish none per checkpoint. :func:`loss_over_steps` measures it the same
way for every suite: mean next-token cross-entropy (nats/token) over held-out texts read in
BOS-prefixed sliding windows at the suite's context, through the sweep engine (site ``logprobs``),
so a long run resumes. :func:`repeat_probe_over_steps` measures the induction signature of the
same checkpoints: the loss on a held-out span and on its exact copy right after it (the probe
``lhp train`` records while training). Good held-out texts are WikiText-2 (``lhp_core.data.corpora.documents(
"wikitext2_test")``) or the bundled corpus's held-out split (``lhp_core.corpus.load().val``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from lhp_core import schema
from lhp_core.measures import Checkpoint, Features, Measure, over_steps
from lhp_core.provenance import config_sha256
from lhp_core.stimuli import Stimuli


def loss_over_steps(suite, texts: Sequence[str] | Stimuli, models: Sequence[str] | None = None,
                    steps: Sequence[int] | None = None, device: str = "cpu", dtype: str | None = None,
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


def repeat_spans(tokenizer, texts: Sequence[str], n_seq: int, seq_len: int, seed: int = 0) -> np.ndarray:
    """``n_seq`` probes ``[EOS, span, span]`` of ``seq_len``-token spans cut from ``texts``, ``[n_seq, 1 + 2 L]``.

    Spans start at seeded random places of the texts' concatenation (EOS between texts), so a
    probe is natural held-out text followed by its exact copy, as ``lhp train`` builds the
    training record's probe from its held-out split.
    """
    if n_seq < 1 or seq_len < 2:
        raise ValueError(f"need n_seq >= 1 and seq_len >= 2, got n_seq={n_seq}, seq_len={seq_len}")
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] + [eos]
    if len(ids) < seq_len + 1:
        raise ValueError(f"{len(ids)} tokens of held-out text cannot hold a {seq_len}-token span; give more text")
    stream = np.asarray(ids, dtype=np.int64)
    starts = np.random.default_rng(seed).integers(0, len(stream) - seq_len, size=n_seq)
    spans = np.stack([stream[s:s + seq_len] for s in starts])
    return np.concatenate([np.full((n_seq, 1), eos, dtype=np.int64), spans, spans], axis=1)


def repeat_losses(model, probes: np.ndarray, device: str = "cpu") -> tuple[float, float]:
    """Mean next-token loss (nats) on the first and the second copy of ``probes`` ``[n, 1 + 2 L]``.

    The first token of each copy has no in-context cue and is left out of both means, as in the
    training record's probe.
    """
    x = torch.as_tensor(probes, device=device)
    with torch.inference_mode():
        logits = model(input_ids=x).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none")
    half = (x.shape[1] - 1) // 2
    # nll[:, t] is the loss of token t + 1: tokens 2..L of the first copy, then L + 2..2L of the second.
    return float(nll[:, 1:half].mean()), float(nll[:, half + 1:].mean())


def repeat_probe_over_steps(suite, texts: Sequence[str], models: Sequence[str] | None = None,
                            steps: Sequence[int] | None = None, n_seq: int = 64, seq_len: int = 32, seed: int = 0,
                            device: str = "cpu", progress: bool = True) -> xr.Dataset:
    """First- and second-copy loss of repeated held-out spans (:func:`repeat_spans`) at each (model, step).

    Returns
    -------
    xarray.Dataset
        ``first_loss`` and ``second_loss`` ``(model, step)`` in nats/token; the second far below the
        first is the induction signature (Olsson et al. 2022).
    """
    def compute(ck: Checkpoint) -> xr.Dataset:
        first, second = repeat_losses(ck.lm, repeat_spans(ck.tokenizer, texts, n_seq, seq_len, seed), ck.device)
        return xr.Dataset({
            "first_loss": ((), first, {"units": "nats/token",
                                       "description": "loss on a held-out span (repeated-span probe, 1st copy)"}),
            "second_loss": ((), second, {"units": "nats/token",
                                         "description": "loss on the span's exact copy right after it (2nd copy)"}),
        })

    measure = Measure("repeat_probe", compute, {"texts": config_sha256({"t": list(texts)}), "n_seq": n_seq,
                                                "seq_len": seq_len, "seed": seed},
                      description="first- and second-copy loss of repeated held-out spans")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)
