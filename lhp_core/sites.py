"""Where activations are read: the modules of a decoder, found from its structure, and the forward hooks.

Sites
-----
``resid``     residual stream, dims ``(layer, hidden)``: layer 0 is the embedding output and
              layer ``i`` the output of block ``i``; as in Hugging Face's
              ``output_hidden_states``, the last layer is taken *after* the final layer norm.
``mlp``       MLP neuron activations after the nonlinearity (the input of the MLP's output
              projection, so gated MLPs give ``act(gate) * up``), dims ``(layer, neuron)``.
              Not defined for mixture-of-experts MLPs (a token runs only some experts, so
              there is no neuron axis shared by all tokens): refused there.
``attn_out``  output of the attention's output projection (before the residual add), dims
              ``(layer, hidden)``.
``linear``    outputs of every linear layer of a block (qkv, attention dense, MLP in, MLP
              out) concatenated along ``neuron``; coordinate ``neuron_module`` names the
              sub-module, for the expert-neuron study. Refused for mixture-of-experts MLPs.
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

Finding the modules
-------------------
:func:`site_map` reads the module tree of a Hugging Face causal LM (no forward pass), so any
decoder laid out like GPT-2, GPT-NeoX, Llama (Mistral, Qwen, Gemma, OLMo, ...), Falcon, Phi,
OPT or their mixture-of-experts variants is mapped without an entry per architecture:

* **blocks**: the ``nn.ModuleList`` under ``model.base_model`` whose entries all share one class,
  preferring one with ``config.num_hidden_layers`` entries, then the most parameters.
* **attention**: the block's child whose class name contains ``Attention`` (or that is named
  ``attn``, ``self_attn``, ``attention``, ``self_attention``); its forward returns
  ``(output, weights)``, the weights being the ``heads`` site under eager attention.
* **MLP**: the block's child named ``mlp``, ``ffn``, ``feed_forward``, ``block_sparse_moe`` or
  whose class name contains ``MLP``, ``FeedForward`` or ``MoE``; without one (OPT, XGLM), the
  block's own linear layers. It is a mixture of experts (in any block) when it holds a module
  named ``experts`` or ``router``, or whose class name ends in ``MoE``, ``MoeBlock`` or ``Experts``.
* **output projections**: of the linear layers (``nn.Linear`` or GPT-2's ``Conv1D``) in the
  attention / MLP, the one that writes the residual stream: out features = hidden size. When
  several do (a full-width ``q_proj``), the one named like an output projection (``o_proj``,
  ``dense``, ``c_proj``, ``out_proj``, ``down_proj``, ``fc2``, ...), else the last registered.
* **final norm**: the last-registered norm module (class name contains ``Norm``) of the base
  model outside the blocks; ``""`` for models without one (post-norm GPT-1).

Every block must give the same paths. The ``linear`` site orders a block's layers as
``qkv`` (the attention's layers other than its output projection), ``attn_dense`` (the
attention's output projection), ``mlp_in`` (the MLP's other layers), ``mlp_out`` (the MLP's
output projection), each group in registration order.

An architecture the rules get wrong is mapped by hand: ``SITE_MAPS[config.model_type] =
SiteMap(...)`` takes precedence over discovery.
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

SITES = ("resid", "mlp", "attn_out", "linear", "logprobs", "logprobs_bow", "heads")
#: Sites with one value per token and no layer axis.
TOKEN_SITES = ("logprobs", "logprobs_bow")
#: Sites that need a dense MLP (one output projection whose input is the neuron axis).
DENSE_MLP_SITES = ("mlp", "linear")


@dataclass(frozen=True)
class SiteInfo:
    """What a site's values are, for the attrs of the variables a sweep stores (CF-style ``units``)."""

    noun: str  # what one value is, to be pooled: "residual-stream activation"
    units: str
    description: str


#: One entry per site of :data:`SITES`; activations have no physical unit, so their units are "activation".
SITE_INFO: dict[str, SiteInfo] = {
    "resid": SiteInfo("residual-stream activation", "activation",
                      "residual stream: layer 0 the embedding output, layer i the output of block i (the last "
                      "after the final norm)"),
    "mlp": SiteInfo("MLP neuron activation", "activation",
                    "MLP hidden units after the nonlinearity (the input of the MLP's output projection)"),
    "attn_out": SiteInfo("attention output", "activation",
                         "output of the attention's output projection, before the residual add"),
    "linear": SiteInfo("linear-layer output", "activation",
                       "outputs of every linear layer of a block (qkv, attention dense, MLP in, MLP out; "
                       "coordinate neuron_module)"),
    "logprobs": SiteInfo("log-probability", "nats",
                         "natural log-probability of each actual next token given its context"),
    "logprobs_bow": SiteInfo("log-probability, word-boundary corrected (Pimentel & Meister 2024)", "nats",
                             "natural log-probability of each next token with the word-boundary terms of Pimentel & "
                             "Meister (2024) folded into each word's first and last token"),
    "heads": SiteInfo("head score", "1", "scores of each attention head from its attention patterns"),
}


@dataclass(frozen=True)
class SiteMap:
    """Module paths of one architecture.

    ``blocks`` and ``final_norm`` are relative to the causal-LM model, the others to one block
    (``mlp=""``: the block itself holds the MLP's layers, as in OPT).
    """

    blocks: str
    final_norm: str  # "" when the model has no final norm
    attn: str  # returns (output, attention weights)
    attn_out: str  # the attention's output projection
    mlp: str
    mlp_out: str | None  # the MLP's output projection; None: mixture of experts
    linear: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> module paths; empty for MoE


#: Hand-written maps by ``config.model_type``, for architectures the discovery rules get wrong.
SITE_MAPS: dict[str, SiteMap] = {}

_ATTN_NAMES = ("self_attn", "self_attention", "attn", "attention")
_MLP_NAMES = ("mlp", "ffn", "feed_forward", "feedforward", "block_sparse_moe", "moe")
_MLP_CLASS = re.compile(r"mlp|feedforward|moe", re.IGNORECASE)
_MOE = re.compile(r"moe(block|layer)?$|experts?$", re.IGNORECASE)
_OUT_NAMES = ("o_proj", "out_proj", "dense", "c_proj", "down_proj", "dense_4h_to_h", "fc2", "fc_out", "wo", "w2")


def check_sites(sites: list[str] | tuple[str, ...], model: nn.Module | None = None) -> None:
    """Raise ``KeyError`` for unknown site ids and, given ``model``, ``ValueError`` for sites it lacks."""
    unknown = [s for s in sites if s not in SITES]
    if unknown:
        raise KeyError(f"unknown site(s) {unknown}; valid sites: {', '.join(SITES)}")
    if model is not None:
        _require_dense_mlp(model, site_map(model), [s for s in sites if s in DENSE_MLP_SITES])


def site_map(model: nn.Module) -> SiteMap:
    """The site map of ``model``: ``SITE_MAPS[config.model_type]`` if registered, else found from its modules.

    Raises ``NotImplementedError`` listing the modules found when the rules (module docstring) fail.
    """
    arch = model.config.model_type
    if arch in SITE_MAPS:
        return SITE_MAPS[arch]
    found = _DISCOVERED.get(model)
    if found is not None:
        return found
    try:
        found = _discover(model)
    except _NotFound as e:
        raise NotImplementedError(
            f"cannot map the sites of architecture {arch!r} ({type(model).__name__}): {e}. Modules found: "
            f"{_module_summary(model)}. Register its paths: lhp_core.sites.SITE_MAPS[{arch!r}] = SiteMap(blocks=..., "
            "final_norm=..., attn=..., attn_out=..., mlp=..., mlp_out=..., linear={'qkv': (...), 'attn_dense': (...), "
            "'mlp_in': (...), 'mlp_out': (...)}) with blocks/final_norm relative to the model and the rest to a block"
        ) from None
    _DISCOVERED[model] = found
    return found


# A sweep asks for a checkpoint's site map a dozen times (checks, hooks, sizes); walking the module tree
# each time cost a small model a few percent of its forward pass. Keyed weakly: a released model drops out.
_DISCOVERED: weakref.WeakKeyDictionary[nn.Module, SiteMap] = weakref.WeakKeyDictionary()


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.get_submodule(site_map(model).blocks)


def linear_layout(model: nn.Module) -> tuple[list[str], list[int]]:
    """``(module name, unit index)`` of every unit along the ``linear`` site's ``neuron`` axis."""
    sm = site_map(model)
    _require_dense_mlp(model, sm, ["linear"])
    block = blocks(model)[0]
    names, units = [], []
    for name, paths in sm.linear.items():
        for path in paths:
            width = _out_features(block.get_submodule(path))
            label = name if len(paths) == 1 else f"{name}.{path.rsplit('.', 1)[-1]}"
            names += [label] * width
            units += list(range(width))
    return names, units


def feature_sizes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Feature shape per site for ``model``: e.g. ``{"resid": (d_model,), "logprobs": ()}``.

    ``mlp`` and ``linear`` are absent for mixture-of-experts models.
    """
    sm = site_map(model)
    cfg = model.config.get_text_config()
    d = _hidden_size(model)
    n_heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    out = {"resid": (d,), "attn_out": (d,), "logprobs": (), "logprobs_bow": (), "heads": (int(n_heads),)}
    if sm.mlp_out is not None:
        out["mlp"] = (_in_features(blocks(model)[0].get_submodule(sm.mlp_out)),)
        out["linear"] = (len(linear_layout(model)[0]),)
    return out


def install_hooks(model: nn.Module, sites: list[str], sink) -> list[torch.utils.hooks.RemovableHandle]:
    """Register forward hooks that pass ``(site, layer, tensor [batch, seq, *feature])`` to ``sink``.

    Some blocks run their MLP on flattened tokens (OPT), so ``mlp`` and ``linear`` may come as
    ``[batch * seq, feature]``, batch-major like the 3-d form. ``heads`` passes the attention
    pattern ``[batch, head, query, key]``. ``resid`` at the last layer is not hooked here: the
    caller takes it from the final hidden state.
    """
    sm = site_map(model)
    _require_dense_mlp(model, sm, [s for s in sites if s in DENSE_MLP_SITES])
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
        if "attn_out" in sites:
            def attn_out_hook(mod, args, out, layer=i + 1):
                sink("attn_out", layer, out)
            handles.append(block.get_submodule(sm.attn_out).register_forward_hook(attn_out_hook))
        if "heads" in sites:
            def heads_hook(mod, args, out, layer=i + 1):
                if not isinstance(out, tuple) or len(out) < 2 or out[1] is None:
                    raise RuntimeError(
                        f"'{sm.blocks}.{layer - 1}.{sm.attn}' ({type(mod).__name__}) returned no attention weights: "
                        "the heads site needs eager attention; load the model with attn_implementation='eager' "
                        "(some architectures cannot switch at run time)"
                    )
                sink("heads", layer, out[1])
            handles.append(block.get_submodule(sm.attn).register_forward_hook(heads_hook))
        if "linear" in sites:
            parts: dict[int, torch.Tensor] = {}
            paths = [p for ps in sm.linear.values() for p in ps]
            n_paths = len(paths)
            for k, path in enumerate(paths):
                def lin_hook(mod, args, out, layer=i + 1, k=k, n=n_paths, parts=parts):
                    # [batch * seq, width]: layers see [batch, seq, .], [batch * seq, .] (OPT's MLP) or
                    # [batch, 1, seq, .] (DeepSeek's latent keys/values)
                    parts[k] = out.reshape(-1, out.shape[-1])
                    if len(parts) == n:  # every linear layer of the block has run: emit in layout order
                        sink("linear", layer, torch.cat([parts[j] for j in range(n)], dim=-1))
                        parts.clear()
                handles.append(block.get_submodule(path).register_forward_hook(lin_hook))
    return handles


def _require_dense_mlp(model: nn.Module, sm: SiteMap, sites: list[str]) -> None:
    if sites and sm.mlp_out is None:
        mlp = blocks(model)[0].get_submodule(sm.mlp)
        raise ValueError(
            f"site(s) {sites} need a dense MLP, but {model.config.model_type!r} has a mixture of experts at "
            f"'{sm.blocks}.<i>.{sm.mlp}' ({type(mlp).__name__}): each token runs only some experts, so there is no "
            "neuron axis shared by all tokens; use resid, attn_out, heads or the log-prob sites"
        )


# --- discovery ---------------------------------------------------------------------------------


class _NotFound(Exception):
    """A discovery rule found no (or no single) module."""


@dataclass(frozen=True)
class _BlockLayout:
    attn: str
    attn_in: tuple[str, ...]
    attn_out: str
    mlp: str
    moe: bool
    mlp_in: tuple[str, ...] = ()
    mlp_out: str | None = None


def _discover(model: nn.Module) -> SiteMap:
    base = model.base_model
    prefix = next(name for name, mod in model.named_modules() if mod is base)
    blocks_path, block_list = _find_blocks(model, base)
    d = _hidden_size(model)
    layouts = [_block_layout(block, d, f"{prefix}.{blocks_path}.{i}".lstrip(".")) for i, block in enumerate(block_list)]
    moe = any(lay.moe for lay in layouts)
    first = layouts[0]
    for i, lay in enumerate(layouts[1:], start=1):
        same = (lay.attn, lay.attn_in, lay.attn_out, lay.mlp) == (first.attn, first.attn_in, first.attn_out, first.mlp)
        if not same or (not moe and (lay.mlp_in, lay.mlp_out) != (first.mlp_in, first.mlp_out)):
            raise _NotFound(f"blocks differ: block 0 has {first}, block {i} has {lay}")
    linear = {} if moe else {"qkv": first.attn_in, "attn_dense": (first.attn_out,), "mlp_in": first.mlp_in,
                             "mlp_out": (first.mlp_out,)}
    return SiteMap(
        blocks=f"{prefix}.{blocks_path}".lstrip("."),
        final_norm=_final_norm(base, prefix, blocks_path),
        attn=first.attn,
        attn_out=first.attn_out,
        mlp=first.mlp,
        mlp_out=None if moe else first.mlp_out,
        linear={k: v for k, v in linear.items() if v},
    )


def _find_blocks(model: nn.Module, base: nn.Module) -> tuple[str, nn.ModuleList]:
    lists = [(path, mod) for path, mod in base.named_modules()
             if isinstance(mod, nn.ModuleList) and len(mod) and len({type(b) for b in mod}) == 1]
    if not lists:
        raise _NotFound(f"no nn.ModuleList of identical blocks under the base model ({type(base).__name__})")
    n_layers = getattr(model.config.get_text_config(), "num_hidden_layers", None)

    def rank(item: tuple[str, nn.ModuleList]) -> tuple[bool, int]:
        return len(item[1]) == n_layers, sum(p.numel() for p in item[1].parameters())

    return max(lists, key=rank)


def _block_layout(block: nn.Module, d: int, where: str) -> _BlockLayout:
    children = dict(block.named_children())
    attn = _one(
        [n for n, c in children.items() if not _is_norm(c)
         and ("attention" in type(c).__name__.lower() or n in _ATTN_NAMES)],
        _ATTN_NAMES, f"attention module in {where}",
    )
    attn_lin = _linears(children[attn], attn)
    attn_out = _output_projection(attn_lin, d, f"{where}.{attn}")
    mlp_names = [n for n, c in children.items() if n != attn and not _is_norm(c)
                 and (n in _MLP_NAMES or _MLP_CLASS.search(type(c).__name__))]
    if mlp_names:
        mlp = _one(mlp_names, _MLP_NAMES, f"MLP in {where}")
        mlp_mod = children[mlp]
        if any(n.rsplit(".", 1)[-1] in ("experts", "router") or _MOE.search(type(m).__name__)
               for n, m in mlp_mod.named_modules()):
            return _BlockLayout(attn, tuple(p for p, _ in attn_lin if p != attn_out), attn_out, mlp, moe=True)
        mlp_lin = _linears(mlp_mod, mlp)
    else:  # OPT-style: the MLP's layers sit directly in the block
        mlp = ""
        mlp_lin = [(n, c) for n, c in children.items() if _is_linear(c)]
        if not mlp_lin:
            raise _NotFound(f"no MLP module and no linear layers outside the attention in {where}")
    mlp_out = _output_projection(mlp_lin, d, f"{where}.{mlp}".rstrip("."))
    return _BlockLayout(attn, tuple(p for p, _ in attn_lin if p != attn_out), attn_out, mlp, moe=False,
                        mlp_in=tuple(p for p, _ in mlp_lin if p != mlp_out), mlp_out=mlp_out)


def _one(names: list[str], preferred: tuple[str, ...], what: str) -> str:
    """The single candidate, or among several the first of ``preferred``."""
    if not names:
        raise _NotFound(f"no {what}")
    named = [n for n in preferred if n in names]
    if len(names) > 1 and not named:
        raise _NotFound(f"several candidates {names} for the {what}")
    return names[0] if len(names) == 1 else named[0]


def _linears(mod: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
    """Linear layers under ``mod`` as ``(path relative to the block, module)``, in registration order."""
    return [(f"{path}.{n}", m) for n, m in mod.named_modules() if n and _is_linear(m)]


def _output_projection(linears: list[tuple[str, nn.Module]], d: int, where: str) -> str:
    """The linear layer that writes the residual stream (out features ``d``)."""
    to_resid = [p for p, m in linears if _out_features(m) == d]
    if not to_resid:
        found = ", ".join(f"{p} (out {_out_features(m)})" for p, m in linears) or "none"
        raise _NotFound(f"no linear layer of {where} has out features = hidden size {d} (linear layers: {found})")
    named = [p for p in to_resid if p.rsplit(".", 1)[-1] in _OUT_NAMES]
    return (named or to_resid)[-1]


def _final_norm(base: nn.Module, prefix: str, blocks_path: str) -> str:
    inside = f"{blocks_path}."
    norms = [n for n, m in base.named_modules() if n and not n.startswith(inside) and _is_norm(m)]
    return f"{prefix}.{norms[-1]}".lstrip(".") if norms else ""


def _module_summary(model: nn.Module, limit: int = 40) -> str:
    """The base model's children and the first block's modules, with their classes."""
    base = model.base_model
    prefix = next(name for name, mod in model.named_modules() if mod is base)
    lines = []
    for name, mod in base.named_modules():
        parts = name.split(".")
        if not name or any(p.isdigit() and p != "0" for p in parts):
            continue  # of each list, only its first entry
        if (len(parts) - parts.index("0") - 1 if "0" in parts else len(parts)) > 2:
            continue  # two levels below the base model, and two below a first block
        desc = type(mod).__name__
        if isinstance(mod, nn.ModuleList):
            desc += f" of {len(mod)} {', '.join(sorted({type(b).__name__ for b in mod}))}"
        elif _is_linear(mod):
            desc += f" {_in_features(mod)}->{_out_features(mod)}"
        lines.append(f"{prefix}.{name} ({desc})".lstrip("."))
    more = f", ... {len(lines) - limit} more" if len(lines) > limit else ""
    return ", ".join(lines[:limit]) + more


def _is_linear(mod: nn.Module) -> bool:
    return isinstance(mod, nn.Linear) or type(mod).__name__ == "Conv1D"  # GPT-2's transposed linear


def _is_norm(mod: nn.Module) -> bool:
    return "norm" in type(mod).__name__.lower()


def _hidden_size(model: nn.Module) -> int:
    cfg = model.config.get_text_config()
    d = getattr(cfg, "hidden_size", None)
    return int(d) if d else int(model.get_input_embeddings().weight.shape[1])


def _out_features(mod: nn.Module) -> int:
    if hasattr(mod, "out_features"):
        return int(mod.out_features)
    if hasattr(mod, "nf"):  # GPT-2's Conv1D
        return int(mod.nf)
    return int(mod.weight.shape[0])


def _in_features(mod: nn.Module) -> int:
    if hasattr(mod, "in_features"):
        return int(mod.in_features)
    return int(mod.weight.shape[0])  # GPT-2's Conv1D stores weight as [in, out]
