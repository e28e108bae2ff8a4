"""Where activations are read: a site map per architecture and the forward hooks.

Sites
-----
``resid``     residual stream, dims ``(layer, hidden)``: layer 0 is the embedding output and
              layer ``i`` the output of block ``i``; as in Hugging Face's
              ``output_hidden_states``, the last layer is taken *after* the final layer norm.
``mlp``       MLP neuron activations after the nonlinearity (the input of the MLP's output
              projection, so gated MLPs give ``act(gate) * up``), dims ``(layer, neuron)``.
``attn_out``  attention-module output (before the residual add), dims ``(layer, hidden)``.
``linear``    outputs of every linear layer of a block (qkv, attention dense, MLP in, MLP
              out) concatenated along ``neuron``; coordinate ``neuron_module`` names the
              sub-module, for the expert-neuron study.
``logprobs``  log-probability of the actual next token, float32, computed in chunks from
              the final hidden state so full logits are never stored.
``logprobs_bow``  the same with the word-boundary terms of Pimentel & Meister (2024) folded
              into each word's first and last token (see :mod:`lhp_core.metrics.reading`):
              its ``word_sum`` is the corrected ``log p(word | context)`` of leading-space
              tokenizers, where ``logprobs``' ``word_sum`` is the probability of a prefix.
``heads``     head scores from attention patterns (see :mod:`lhp_core.reducers`), dims
              ``(layer, head)``; needs eager attention, switched on only for this site.

Block sites (everything but ``resid`` and the log-prob sites) use layer ``i`` for block ``i`` (1..L)
and are NaN at layer 0, so every site of a model shares one ``layer`` axis 0..L.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

SITES = ("resid", "mlp", "attn_out", "linear", "logprobs", "logprobs_bow", "heads")
#: Sites with one value per token and no layer axis.
TOKEN_SITES = ("logprobs", "logprobs_bow")


@dataclass(frozen=True)
class SiteMap:
    """Module paths of one architecture, relative to the causal-LM model."""

    blocks: str
    final_norm: str
    attn: str  # relative to a block
    mlp_out: str  # relative to a block: the MLP's output projection
    linear: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> module paths in a block


SITE_MAPS: dict[str, SiteMap] = {
    "gpt_neox": SiteMap(
        "gpt_neox.layers", "gpt_neox.final_layer_norm", "attention", "mlp.dense_4h_to_h",
        {"qkv": ("attention.query_key_value",), "attn_dense": ("attention.dense",),
         "mlp_in": ("mlp.dense_h_to_4h",), "mlp_out": ("mlp.dense_4h_to_h",)},
    ),
    "gpt2": SiteMap(
        "transformer.h", "transformer.ln_f", "attn", "mlp.c_proj",
        {"qkv": ("attn.c_attn",), "attn_dense": ("attn.c_proj",), "mlp_in": ("mlp.c_fc",),
         "mlp_out": ("mlp.c_proj",)},
    ),
}
for _arch in ("llama", "olmo", "olmo2"):
    SITE_MAPS[_arch] = SiteMap(
        "model.layers", "model.norm", "self_attn", "mlp.down_proj",
        {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "attn_dense": ("self_attn.o_proj",),
         "mlp_in": ("mlp.gate_proj", "mlp.up_proj"), "mlp_out": ("mlp.down_proj",)},
    )


def check_sites(sites: list[str] | tuple[str, ...]) -> None:
    unknown = [s for s in sites if s not in SITES]
    if unknown:
        raise KeyError(f"unknown site(s) {unknown}; valid sites: {', '.join(SITES)}")


def site_map(model: nn.Module) -> SiteMap:
    """The site map for ``model``'s architecture (``config.model_type``)."""
    arch = model.config.model_type
    if arch not in SITE_MAPS:
        raise NotImplementedError(
            f"no site map for architecture {arch!r}; supported: {', '.join(sorted(SITE_MAPS))}. "
            "Add a SiteMap to lhp_core.sites.SITE_MAPS with the module paths of its blocks."
        )
    return SITE_MAPS[arch]


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.get_submodule(site_map(model).blocks)


def linear_layout(model: nn.Module) -> tuple[list[str], list[int]]:
    """``(module name, unit index)`` of every unit along the ``linear`` site's ``neuron`` axis."""
    sm = site_map(model)
    block = blocks(model)[0]
    names, units = [], []
    for name, paths in sm.linear.items():
        for path in paths:
            width = _out_features(block.get_submodule(path))
            label = name if len(paths) == 1 else f"{name}.{path.rsplit('.', 1)[-1]}"
            names += [label] * width
            units += list(range(width))
    return names, units


def _out_features(mod: nn.Module) -> int:
    if hasattr(mod, "out_features"):
        return int(mod.out_features)
    if hasattr(mod, "nf"):  # GPT-2's Conv1D
        return int(mod.nf)
    return int(mod.weight.shape[0])


def feature_sizes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Feature shape per site for ``model``: e.g. ``{"resid": (d_model,), "logprobs": ()}``."""
    cfg = model.config
    d = model.get_input_embeddings().weight.shape[1]
    block = blocks(model)[0]
    mlp_out = block.get_submodule(site_map(model).mlp_out)
    d_mlp = mlp_out.in_features if hasattr(mlp_out, "in_features") else mlp_out.weight.shape[0]
    n_heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head")
    return {"resid": (d,), "attn_out": (d,), "mlp": (int(d_mlp),), "linear": (len(linear_layout(model)[0]),),
            "logprobs": (), "logprobs_bow": (), "heads": (int(n_heads),)}


def install_hooks(model: nn.Module, sites: list[str], sink) -> list[torch.utils.hooks.RemovableHandle]:
    """Register forward hooks that pass ``(site, layer, tensor [batch, seq, *feature])`` to ``sink``.

    ``heads`` passes the attention pattern ``[batch, head, query, key]``. ``resid`` at the
    last layer is not hooked here: the caller takes it from the final hidden state.
    """
    sm = site_map(model)
    handles = []
    for i, block in enumerate(blocks(model)):
        if "resid" in sites:
            def pre(mod, args, kwargs, layer=i):
                h = args[0] if args else kwargs["hidden_states"]
                sink("resid", layer, h)
            handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        if "mlp" in sites:
            def mlp_pre(mod, args, layer=i + 1):
                sink("mlp", layer, args[0])
            handles.append(block.get_submodule(sm.mlp_out).register_forward_pre_hook(mlp_pre))
        if "attn_out" in sites or "heads" in sites:
            def attn_hook(mod, args, out, layer=i + 1):
                if "attn_out" in sites:
                    sink("attn_out", layer, out[0] if isinstance(out, tuple) else out)
                if "heads" in sites:
                    if not isinstance(out, tuple) or out[1] is None:
                        raise RuntimeError("attention weights were not returned; the heads site needs eager attention")
                    sink("heads", layer, out[1])
            handles.append(block.get_submodule(sm.attn).register_forward_hook(attn_hook))
        if "linear" in sites:
            parts: dict[int, torch.Tensor] = {}
            paths = [p for ps in sm.linear.values() for p in ps]
            for k, path in enumerate(paths):
                def lin_hook(mod, args, out, layer=i + 1, k=k, n=len(paths), parts=parts):
                    parts[k] = out
                    if len(parts) == n:  # every linear layer of the block has run: emit in layout order
                        sink("linear", layer, torch.cat([parts[j] for j in range(n)], dim=-1))
                        parts.clear()
                handles.append(block.get_submodule(path).register_forward_hook(lin_hook))
    return handles
