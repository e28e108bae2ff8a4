"""One checkpoint's pass: run the stimuli through a model and pool every site on the device.

:func:`extract` is what the sweep calls for each (model, step); it is also the function to
use directly for a single model. It returns host numpy arrays only after pooling, so the
memory it needs grows with the number of words / stimuli, not with sequence length × layers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lhp_core import sites as S
from lhp_core.reducers import HEAD_SCORES, REDUCERS, Accumulator, BatchInfo, get_reducer
from lhp_core.scoring import token_logprobs
from lhp_core.stimuli import Encoded, Stimuli, encode
from lhp_core.suites import context_length
from lhp_core.tokenizer import bow_mask

LOGPROB_CHUNK = 2048  # rows of [chunk, vocab] float32 logits alive at once


@dataclass
class Extracted:
    """Pooled values of one checkpoint.

    Attributes
    ----------
    values
        ``values[site][reducer]``: ``[layer, group, *feature]`` for layer sites,
        ``[group]`` for ``logprobs`` and ``logprobs_bow``; ``values["heads"][score]``: ``[layer, head, stimulus]``.
    n_tokens
        Real tokens run through the model (BOS and window overlaps included).
    """

    values: dict[str, dict[str, np.ndarray]]
    n_tokens: int
    encoded: Encoded
    features: dict[str, tuple[int, ...]] = field(default_factory=dict)


def check_tokenizer(model: nn.Module, tokenizer, enc: Encoded | None = None) -> None:
    """Raise ``ValueError`` if the tokenizer can produce ids the model has no embedding for."""
    n_vocab = model.get_input_embeddings().num_embeddings
    top = int(enc.token_id.max()) if enc is not None and enc.n_tokens else -1
    if len(tokenizer) > n_vocab or top >= n_vocab:
        raise ValueError(
            f"tokenizer mismatch: the tokenizer has {len(tokenizer)} tokens (largest id used {top}) but the "
            f"model's embedding has {n_vocab} rows; load the tokenizer saved with this checkpoint "
            "(lhp_core.checkpoints.load returns the matching pair)"
        )


def extract(
    model: nn.Module,
    tokenizer,
    stimuli: Stimuli,
    sites: Sequence[str],
    reducers: Sequence[str],
    head_scores: Sequence[str] = (),
    batch_size: int = 8,
    max_length: int | None = None,
    where: str = "model",
) -> Extracted:
    """Run ``stimuli`` through ``model`` and pool each site with each reducer.

    Parameters
    ----------
    model
        A Hugging Face causal LM in eval mode whose modules :func:`lhp_core.sites.site_map` maps
        (GPT-2, GPT-NeoX/Pythia, Llama-style such as Mistral, Qwen, Gemma, OLMo, Falcon, Phi, ...).
    tokenizer
        Its tokenizer (``bos_token_id`` set).
    sites, reducers
        Ids from :data:`lhp_core.sites.SITES` and :data:`lhp_core.reducers.REDUCERS`.
    head_scores
        Ids from :data:`lhp_core.reducers.HEAD_SCORES`, for the ``heads`` site.
    max_length
        Window length including BOS (default: the model's context, at most 2048).
    where
        Names the checkpoint in error messages, e.g. ``"model 's' step 128"``.
    """
    sites = list(sites)
    S.check_sites(sites, model)
    reds = [get_reducer(r) for r in reducers]
    scores = {name: HEAD_SCORES.get(name) for name in head_scores}
    if "heads" in sites and not scores:
        raise ValueError("the heads site needs head_scores; valid: " + ", ".join(HEAD_SCORES.names()))
    if set(sites) - {"heads"} and not reds:
        raise ValueError("no reducers given; valid reducers: " + ", ".join(REDUCERS.names()))

    device = next(model.parameters()).device
    max_length = max_length or context_length(None, model)
    enc = encode(stimuli, tokenizer, max_length)
    check_tokenizer(model, tokenizer, enc)
    if "heads" in sites and len(enc.windows) != enc.n_stimuli:
        raise ValueError(
            f"head scores need each stimulus in one window of {max_length} tokens; shorten the probe sequences"
        )

    n_layers = len(S.blocks(model))
    feats = S.feature_sizes(model)
    groups = {r.group for r in reds}
    group_of = {g: torch.as_tensor(enc.group_index(g), device=device) for g in groups}
    last_token = {}
    for g in groups:
        idx = enc.group_index(g)
        last = np.full(enc.n_groups(g), -1, dtype=np.int64)
        ok = idx >= 0
        np.maximum.at(last, idx[ok], np.nonzero(ok)[0])
        last_token[g] = torch.as_tensor(last, device=device)

    layer_sites = [s for s in sites if s not in (*S.TOKEN_SITES, "heads")]
    token_sites = [s for s in S.TOKEN_SITES if s in sites]
    acc: dict[str, dict[str, Accumulator]] = {}
    for s in layer_sites + token_sites:
        slots = 1 if s in S.TOKEN_SITES else n_layers + 1
        acc[s] = {r.name: Accumulator(r, slots, enc.n_groups(r.group), feats[s], last_token[r.group], device)
                  for r in reds}
    n_heads = feats["heads"][0]
    head_acc = {name: torch.full((n_layers + 1, n_heads, enc.n_stimuli), float("nan"), device=device)
                for name in scores}

    state: dict = {}
    if "logprobs_bow" in sites:
        state["bow"] = _bow_terms(model, tokenizer, enc, device)

    def sink(site: str, layer: int, t: torch.Tensor) -> None:
        if site == "heads":
            info = state["info"]
            for name, fn in scores.items():
                head_acc[name][layer][:, state["stim"]] = fn(t, info).float().T
            return
        flat = t.reshape(-1, t.shape[-1])
        flat = flat[state["kept_flat"]] if state["kept_slice"] is None else flat[state["kept_slice"]]
        for a in acc[site].values():
            g = a.reducer.group
            a.add(layer, flat, state["group"][g], state["token"], all_grouped=state["all_grouped"][g])

    prev_attn = getattr(model.config, "_attn_implementation", None)
    if "heads" in sites and prev_attn != "eager":
        model.set_attn_implementation("eager")
    handles = S.install_hooks(model, layer_sites + (["heads"] if "heads" in sites else []), sink)
    n_tokens = 0
    try:
        with torch.inference_mode():
            for batch in batches(enc, batch_size, pad=device.type != "cpu"):
                n_tokens += _run_batch(model, enc, batch, device, n_layers, group_of, state, sink, acc, sites)
    finally:
        for h in handles:
            h.remove()
        if "heads" in sites and prev_attn != "eager" and prev_attn is not None:
            model.set_attn_implementation(prev_attn)

    _check_finite(acc, where)
    values: dict[str, dict[str, np.ndarray]] = {}
    for s, by_red in acc.items():
        values[s] = {name: (a.result().cpu().numpy()[0] if s in S.TOKEN_SITES else a.result().cpu().numpy())
                     for name, a in by_red.items()}
    if head_acc:
        values["heads"] = {name: t.cpu().numpy() for name, t in head_acc.items()}
        for name, v in values["heads"].items():
            if np.isnan(v[1:]).any():
                raise FloatingPointError(
                    f"NaN head score {name!r} at {where}: rerun with dtype=float32 or drop this step"
                )
    return Extracted(values, n_tokens, enc, feats)


def batches(enc: Encoded, batch_size: int, pad: bool = True) -> list[list[int]]:
    """Windows in batches of at most ``batch_size``, longest first.

    ``pad=False`` (the CPU) batches only windows of equal length: on a CPU a padded batch runs
    attention through its mask, slower than the unmasked causal kernel, and computes the padding
    for nothing; windows of one length run as one unpadded batch. With ``pad`` (a GPU), windows of
    similar length share a batch and the shorter ones are padded, which the device absorbs.
    """
    order = sorted(range(len(enc.windows)), key=lambda w: -len(enc.windows[w]))
    out: list[list[int]] = []
    for w in order:
        if out and len(out[-1]) < batch_size and (pad or len(enc.windows[out[-1][0]]) == len(enc.windows[w])):
            out[-1].append(w)
        else:
            out.append([w])
    return out


def _check_finite(acc: dict[str, dict[str, Accumulator]], where: str) -> None:
    """Raise ``FloatingPointError`` naming the checkpoint, the sites and the first layer with NaN."""
    bad = {}
    for site, by_red in acc.items():
        for a in by_red.values():
            nan_slots = torch.isnan(a.values).flatten(1).any(1).nonzero()
            if len(nan_slots):
                bad[site] = min(bad.get(site, 10**9), int(nan_slots[0]))
    if bad:
        first = min(bad.values())
        detail = ", ".join(f"{s!r} from layer {layer}" for s, layer in bad.items())
        raise FloatingPointError(
            f"NaN activations at {where}: sites {detail} (first at layer {first}); the checkpoint's weights "
            "are NaN or this dtype overflows: rerun with dtype=float32, or drop this step from the sweep"
        )


def _run_batch(model, enc: Encoded, batch: list[int], device, n_layers: int, group_of, state, sink, acc, sites) -> int:
    lens = [len(enc.windows[w]) for w in batch]
    width = max(lens)
    ids = np.full((len(batch), width), enc.bos_token_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=bool)
    kept_flat, token = [], []
    for b, w in enumerate(batch):
        n = lens[b]
        ids[b, :n] = enc.windows[w]
        mask[b, :n] = True
        pos = np.nonzero(enc.keep[w])[0]
        kept_flat.append(b * width + pos)
        token.append(enc.token_of[w][pos])
    kept_np, token_np = np.concatenate(kept_flat), np.concatenate(token)
    kept_flat_t = torch.as_tensor(kept_np, device=device)
    token_t = torch.as_tensor(token_np, device=device)
    # One unpadded window keeps a contiguous run of positions (all after BOS): a view, not a gather.
    contiguous = len(kept_np) > 0 and kept_np[-1] - kept_np[0] == len(kept_np) - 1
    kept_slice = slice(int(kept_np[0]), int(kept_np[-1]) + 1) if contiguous else None
    ids_t = torch.as_tensor(ids, device=device)
    mask_t = torch.as_tensor(mask, device=device)
    state.update(
        kept_flat=kept_flat_t,
        kept_slice=kept_slice,
        token=token_t,
        group={g: idx[token_t] for g, idx in group_of.items()},
        # known on the host, so the device is never asked (no sync on a GPU)
        all_grouped={g: bool((enc.group_index(g)[token_np] >= 0).all()) for g in group_of},
        stim=torch.as_tensor(enc.window_stimulus[batch], device=device),
        info=BatchInfo(ids_t, mask_t, mask_t.sum(1)),
    )
    # Without padding, no mask: the model takes its unmasked causal path (the fast kernel on a CPU).
    padded = min(lens) < width
    out = model.base_model(input_ids=ids_t, attention_mask=mask_t.long() if padded else None)
    last = out.last_hidden_state
    if "resid" in sites:
        sink("resid", n_layers, last)
    if any(s in sites for s in S.TOKEN_SITES):
        bow = state.get("bow")
        lp, bow_prev, bow_next = _next_token_logprobs(model, last.reshape(-1, last.shape[-1]), ids_t.reshape(-1),
                                                      kept_flat_t, None if bow is None else bow["ids"])
        per_site = {"logprobs": lp}
        if bow is not None:
            # log p(word) = sum of its tokens' log-probs + log P_bow after its last token
            #               - log P_bow before its first token (if that token carries the space)
            per_site["logprobs_bow"] = (lp + torch.where(bow["last"][token_t], bow_next, 0.0)
                                        - torch.where(bow["first"][token_t], bow_prev, 0.0))
        for site in S.TOKEN_SITES:
            for a in acc.get(site, {}).values():
                a.add(0, per_site[site], state["group"][a.reducer.group], token_t)
    return int(sum(lens))


def _bow_terms(model: nn.Module, tokenizer, enc: Encoded, device) -> dict[str, torch.Tensor]:
    """Device tensors for the word-boundary correction: the ids of word-initial tokens ``[n_bow]`` and, per global
    token, whether it ends a word (``last``) and whether it starts one with a leading space (``first``)."""
    n_vocab = model.get_output_embeddings().weight.shape[0]
    mask = bow_mask(tokenizer, n_vocab)
    tw = enc.token_word
    in_word = tw >= 0
    # Subwords of a word are contiguous, so a word starts where the word index changes.
    starts = in_word & np.r_[True, tw[1:] != tw[:-1]]
    ends = in_word & np.r_[tw[1:] != tw[:-1], True]
    first = starts & mask[np.clip(enc.token_id, 0, n_vocab - 1)]
    return {"ids": torch.as_tensor(np.flatnonzero(mask), device=device), "first": torch.as_tensor(first, device=device),
            "last": torch.as_tensor(ends, device=device)}


def _next_token_logprobs(model: nn.Module, hidden: torch.Tensor, ids: torch.Tensor, kept_flat: torch.Tensor,
                         bow: torch.Tensor | None = None):
    """log p(token at ``kept_flat`` | prefix), float32, shape ``[n_kept]``, and given the ids of the
    word-initial tokens (``bow``, ``[n_bow]``) also ``log P_bow`` of the distributions before and
    after each kept token.

    The prediction of position ``p`` comes from the final hidden state at ``p - 1``; logits are
    formed and normalised ``LOGPROB_CHUNK`` rows at a time.

    Returns
    -------
    ``(logprob, bow_prev, bow_next)``, each ``[n_kept]``; the last two are ``None`` without ``bow``.
    """
    head = model.get_output_embeddings()
    weight = head.weight.float()
    bias = head.bias.float() if getattr(head, "bias", None) is not None else None
    # Rows whose distribution is needed: before each kept token and, for bow, after it too
    # (kept tokens are contiguous in a window, so that adds one row per window).
    rows = kept_flat - 1 if bow is None else torch.unique(torch.cat([kept_flat - 1, kept_flat]))
    target = ids[(rows + 1).clamp(max=len(ids) - 1)]  # rows after the last kept token: value unused
    lp_rows = torch.empty(len(rows), dtype=torch.float32, device=hidden.device)
    bow_rows = torch.empty_like(lp_rows) if bow is not None else None
    for c in range(math.ceil(len(rows) / LOGPROB_CHUNK)):
        sl = slice(c * LOGPROB_CHUNK, (c + 1) * LOGPROB_CHUNK)
        logits = hidden[rows[sl]].float() @ weight.T
        if bias is not None:
            logits = logits + bias
        lp, mass = token_logprobs(logits, target[sl], bow)
        lp_rows[sl] = lp
        if bow is not None:
            bow_rows[sl] = mass
    if bow is None:
        return lp_rows, None, None
    prev = torch.searchsorted(rows, kept_flat - 1)
    return lp_rows[prev], bow_rows[prev], bow_rows[torch.searchsorted(rows, kept_flat)]
