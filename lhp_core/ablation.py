"""Attention-head ablation on any decoder the site discovery maps (:mod:`lhp_core.sites`).

A head's contribution to the residual stream is ``W_O[:, h] z_h``: its slice of the input of the
attention's output projection (``attn_out`` in the site map: GPT-NeoX's ``dense``, GPT-2's
``c_proj``, Llama's ``o_proj``), whose input is the heads' outputs concatenated head-major
(``[batch, seq, n_heads * head_dim]``). Ablating a head replaces that slice, with a forward
pre-hook on the output projection, so the projection's bias and every other head stay as they are:

* ``"zero"``: ``z_h = 0``, the head's contribution removed;
* ``"mean"``: ``z_h`` replaced by its mean over the tokens of a reference text set
  (:func:`head_means`), the head's contribution replaced by its average one.

``preserve_patterns=True`` makes either mode *pattern-preserving* (Olsson et al. 2022): every
attention pattern of the ablated run is the clean run's, so the ablation acts only through what
heads write and read as values, not through the attention of later heads. Each forward call then
runs the clean model once (eager attention, its patterns recorded) and the ablated model with
an attention function that applies the recorded patterns to the ablated run's values.

Heads are ``(layer, head)`` with ``layer`` 1..L (block ``i`` is layer ``i``, as the ``layer``
coordinate of :func:`lhp_core.metrics.heads.head_scores_over_steps`) and ``head`` 0..H-1.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

from lhp_core import sites

MODES = ("zero", "mean")
Head = tuple[int, int]

#: The attention implementation that applies recorded patterns (registered with transformers below).
_FROZEN = "lhp_pattern_preserving"


@dataclass(frozen=True)
class HeadLayout:
    """How a model's heads sit in its attention output projection's input: ``n_heads`` slices of ``head_dim``."""

    n_layers: int
    n_heads: int
    head_dim: int


def head_layout(model: nn.Module) -> HeadLayout:
    """Number of blocks, heads per block and width of one head's output, from the site map and the config."""
    sm = sites.site_map(model)
    blocks = sites.blocks(model)
    cfg = model.config.get_text_config()
    n_heads = int(getattr(cfg, "num_attention_heads", None) or cfg.n_head)
    width = sites._in_features(blocks[0].get_submodule(sm.attn_out))
    if width % n_heads:
        raise NotImplementedError(f"the attention output projection of {model.config.model_type!r} takes {width} "
                                  f"features, not a multiple of its {n_heads} heads; heads cannot be sliced out")
    return HeadLayout(len(blocks), n_heads, width // n_heads)


def check_heads(model: nn.Module, heads: Sequence[Head]) -> list[Head]:
    """``heads`` as sorted unique ``(layer, head)`` ints; ``ValueError`` naming any outside the model."""
    lay = head_layout(model)
    out = sorted({(int(layer), int(h)) for layer, h in heads})
    bad = [(layer, h) for layer, h in out if not (1 <= layer <= lay.n_layers and 0 <= h < lay.n_heads)]
    if bad:
        raise ValueError(f"heads {bad} are not in this model: layers are 1..{lay.n_layers} (block i is layer i) and "
                         f"heads 0..{lay.n_heads - 1}")
    return out


def _out_projections(model: nn.Module) -> list[nn.Module]:
    sm = sites.site_map(model)
    return [block.get_submodule(sm.attn_out) for block in sites.blocks(model)]


def head_means(model: nn.Module, windows: np.ndarray, bos_token_id: int, device: str = "cpu",
               batch_size: int = 16) -> torch.Tensor:
    """Mean output of every head over the tokens of reference windows (BOS included), for ``"mean"`` ablation.

    Parameters
    ----------
    windows
        Token ids, shape ``[n, T]``; BOS is prepended, as :func:`lhp_core.metrics.heads.position_losses` does.

    Returns
    -------
    means : float32 tensor, shape ``[layer, head, head_dim]``; index ``layer - 1`` for layer ``layer``.
    """
    windows = np.asarray(windows, dtype=np.int64)
    if windows.ndim != 2 or not windows.size:
        raise ValueError(f"reference windows of shape {windows.shape}; need token ids [n, T] with n, T >= 1")
    lay = head_layout(model)
    sums = torch.zeros(lay.n_layers, lay.n_heads * lay.head_dim, dtype=torch.float64)
    count = 0

    def grab(i):
        def pre(mod, args):
            sums[i] += args[0].reshape(-1, args[0].shape[-1]).sum(0).double().cpu()
        return pre

    handles = [p.register_forward_pre_hook(grab(i)) for i, p in enumerate(_out_projections(model))]
    try:
        with torch.inference_mode():
            for s in range(0, len(windows), batch_size):
                w = torch.as_tensor(windows[s:s + batch_size], device=device)
                x = torch.cat([torch.full((len(w), 1), bos_token_id, device=device), w], dim=1)
                model(input_ids=x)
                count += x.numel()
    finally:
        for h in handles:
            h.remove()
    return (sums / count).float().reshape(lay.n_layers, lay.n_heads, lay.head_dim)


class _State:
    """What the hooks of one :func:`ablate` context share."""

    def __init__(self) -> None:
        self.clean_pass = False  # inside the clean pass of a pattern-preserving call: hooks off
        self.patterns: dict[int, torch.Tensor] = {}  # id(attention module) -> [batch, head, q, k]


_ACTIVE: dict[int, _State] = {}  # id(model) -> state of its open ablate() context


def _frozen_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The recorded clean pattern ``[batch, head, q, k]`` applied to this run's values ``[batch, kv_head, k, d]``."""
    pattern = next((s.patterns[id(module)] for s in _ACTIVE.values() if id(module) in s.patterns), None)
    if pattern is None:
        raise RuntimeError("pattern-preserving attention ran outside lhp_core.ablation.ablate(); restore the model's "
                           "attention with model.set_attn_implementation('eager')")
    if pattern.shape[-1] != value.shape[-2] or pattern.shape[0] != value.shape[0]:
        raise RuntimeError(f"recorded pattern {tuple(pattern.shape)} does not fit values {tuple(value.shape)}: "
                           "pattern-preserving ablation needs one full forward pass per call (no KV cache)")
    groups = pattern.shape[1] // value.shape[1]  # grouped-query attention shares a key/value head
    v = value.repeat_interleave(groups, dim=1) if groups > 1 else value
    out = torch.matmul(pattern.to(v.dtype), v)
    return out.transpose(1, 2).contiguous(), pattern


AttentionInterface.register(_FROZEN, _frozen_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(_FROZEN, eager_mask)


def _set_attention(model: nn.Module, name: str) -> None:
    model.set_attn_implementation(name)


@contextmanager
def ablate(model: nn.Module, heads: Sequence[Head], mode: str = "zero", means: torch.Tensor | None = None,
           preserve_patterns: bool = False) -> Iterator[nn.Module]:
    """Run ``model`` with ``heads`` ablated inside the ``with`` block; everything is restored on exit.

    Parameters
    ----------
    heads
        ``(layer, head)`` pairs, layer 1..L; empty: nothing ablated (a clean run through the same path).
    mode
        ``"zero"`` or ``"mean"`` (:data:`MODES`).
    means
        For ``"mean"``: :func:`head_means` of the model, shape ``[layer, head, head_dim]``.
    preserve_patterns
        Fix every attention pattern to the clean run's (each call runs the model twice; eager attention).
    """
    if mode not in MODES:
        raise ValueError(f"unknown ablation mode {mode!r}; use one of {list(MODES)}")
    heads = check_heads(model, heads)
    lay = head_layout(model)
    if mode == "mean":
        if means is None or tuple(means.shape) != (lay.n_layers, lay.n_heads, lay.head_dim):
            got = None if means is None else tuple(means.shape)
            raise ValueError(f"mean ablation needs means of shape {(lay.n_layers, lay.n_heads, lay.head_dim)} (got "
                             f"{got}); compute them with lhp_core.ablation.head_means(model, reference_windows, bos)")
    if id(model) in _ACTIVE:
        raise RuntimeError("this model is already inside an ablate() context; ablate all heads in one call")
    state = _State()
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)
    handles = []
    for i, proj in enumerate(_out_projections(model)):
        hs = by_layer.get(i + 1)
        if not hs:
            continue

        def pre(mod, args, hs=hs, layer=i + 1):
            if state.clean_pass:
                return None
            z = args[0].clone()
            for h in hs:
                cut = slice(h * lay.head_dim, (h + 1) * lay.head_dim)
                z[..., cut] = 0.0 if mode == "zero" else means[layer - 1, h].to(z.device, z.dtype)
            return (z, *args[1:])

        handles.append(proj.register_forward_pre_hook(pre))
    prev = getattr(model.config, "_attn_implementation", None)
    if preserve_patterns:
        sm = sites.site_map(model)
        attn_modules = [block.get_submodule(sm.attn) for block in sites.blocks(model)]

        def record(mod, args, kwargs):
            if state.clean_pass:
                return None
            state.clean_pass = True
            try:
                _set_attention(model, "eager")
                att = model(*args, **{**kwargs, "output_attentions": True}).attentions
            finally:
                state.clean_pass = False
                _set_attention(model, _FROZEN)
            if att is None or len(att) != len(attn_modules) or any(a is None for a in att):
                raise RuntimeError(f"{model.config.model_type!r} returned no attention pattern per block under eager "
                                   "attention; pattern-preserving ablation cannot be applied to it")
            state.patterns = {id(m): a.detach() for m, a in zip(attn_modules, att)}
            return None

        handles.append(model.register_forward_pre_hook(record, with_kwargs=True))
        _set_attention(model, _FROZEN)
    _ACTIVE[id(model)] = state
    try:
        yield model
    finally:
        _ACTIVE.pop(id(model), None)
        for h in handles:
            h.remove()
        if preserve_patterns and prev is not None:
            _set_attention(model, prev)
