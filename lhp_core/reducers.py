"""Reducers: pool token activations into words, stimuli or tokens on the device.

A reducer is a string id (``word_mean``, ``word_last``, ``word_sum``, ``stimulus_mean``,
``stimulus_last``, ``stimulus_max``, ``per_token``; ``sentence_*`` are aliases of ``stimulus_*``
and ``token`` of ``per_token``)
naming a *group* axis and a pooling *op*. Pooling happens on the device batch by batch into
one accumulator per (site, reducer), so only the pooled arrays ever move to the host.

Head scores are the attention-pattern analogue: a function
``(pattern: Tensor[batch, head, query, key], info: BatchInfo) -> Tensor[batch, head]``
registered in :data:`HEAD_SCORES`: ``bos``, ``entropy`` and the previous-token, induction and
duplicate-token scores of the induction probe (:mod:`lhp_core.metrics.heads`), in its ``"lhp"`` and
``"transformer_lens"`` conventions, all defined here so that the registry is complete on import.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lhp_core.registry import Registry

OPS = ("mean", "sum", "last", "max", "copy")


@dataclass(frozen=True)
class Reducer:
    """Pool along ``group`` (``word``, ``stimulus`` or ``token``) with ``op``."""

    name: str
    group: str
    op: str

    def describe(self, noun: str) -> str:
        """What the pooled value of ``noun`` is: ``"mean residual-stream activation over the word's tokens"``."""
        if self.op == "copy":
            return f"{noun} of each token"
        if self.op == "last":
            return f"{noun} at the {self.group}'s last token"
        op = {"mean": "mean", "sum": "sum of", "max": "maximum"}[self.op]
        return f"{op} {noun} over the {self.group}'s tokens"


REDUCERS: Registry[Reducer] = Registry("reducer")
for _group in ("word", "stimulus"):
    for _op in ("mean", "sum", "last", "max"):
        REDUCERS.register(f"{_group}_{_op}", (lambda g=_group, o=_op: Reducer(f"{g}_{o}", g, o)))
# Not "token": results are stored under the reducer id, and `token` is already a dimension.
REDUCERS.register("per_token", lambda: Reducer("per_token", "token", "copy"))
_ALIASES = {f"sentence_{op}": f"stimulus_{op}" for op in ("mean", "sum", "last", "max")} | {"token": "per_token"}


def get_reducer(name: str) -> Reducer:
    """Look up a reducer by id; unknown ids raise ``KeyError`` listing the valid ones."""
    return REDUCERS.get(_ALIASES.get(name, name))


class Accumulator:
    """Device-side pooled values for one reducer: ``[n_slots, n_groups, *feature]``.

    ``n_slots`` is the number of layers (or 1 for sites without layers). Values are kept in
    float32 whatever the model dtype, so bf16 activations are pooled without loss.
    """

    def __init__(self, reducer: Reducer, n_slots: int, n_groups: int, feature: tuple[int, ...],
                 last_token: torch.Tensor, device: torch.device) -> None:
        self.reducer = reducer
        shape = (n_slots, n_groups, *feature)
        fill = float("-inf") if reducer.op == "max" else 0.0
        self.values = torch.full(shape, fill, dtype=torch.float32, device=device)
        self.count = torch.zeros((n_slots, n_groups), dtype=torch.float32, device=device)
        self.last_token = last_token  # [n_groups]: global index of each group's last token

    def add(self, slot: int, values: torch.Tensor, group: torch.Tensor, token: torch.Tensor,
            all_grouped: bool = False) -> None:
        """Pool ``values`` ``[n, *feature]`` of tokens ``token`` ``[n]`` into groups ``group`` ``[n]``.

        Tokens with ``group == -1`` (whitespace-only tokens for word reducers) are skipped;
        ``all_grouped=True`` says the caller knows there are none (no copy of ``values`` is made).
        """
        if not all_grouped:
            ok = group >= 0
            values, group, token = values[ok], group[ok], token[ok]
        values = values.float()
        op = self.reducer.op
        if op in ("mean", "sum"):
            self.values[slot].index_add_(0, group, values)
        elif op == "max":
            idx = group.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
            self.values[slot].scatter_reduce_(0, idx, values, reduce="amax", include_self=True)
        elif op == "last":
            is_last = self.last_token[group] == token
            self.values[slot].index_copy_(0, group[is_last], values[is_last])
        else:  # copy
            self.values[slot].index_copy_(0, group, values)
        self.count[slot].index_add_(0, group, torch.ones_like(group, dtype=torch.float32))

    def result(self) -> torch.Tensor:
        """Pooled values ``[n_slots, n_groups, *feature]``; NaN for slots/groups never filled.

        Computed in place (the accumulator is finished: a step's pooled arrays are the largest thing a
        sweep holds, so no second copy is made); call it once, after the last :meth:`add`.
        """
        empty = (self.count == 0).view(*self.count.shape, *([1] * (self.values.dim() - 2)))
        if self.reducer.op == "mean":
            self.values.div_(self.count.clamp(min=1).view_as(empty))
        return self.values.masked_fill_(empty, float("nan"))


# ---- head scores ------------------------------------------------------------------------
@dataclass
class BatchInfo:
    """What a head score may need about a batch of probe sequences.

    Attributes
    ----------
    input_ids
        ``[batch, seq]`` token ids, BOS at position 0, right-padded.
    attention_mask
        ``[batch, seq]`` bool, True on real tokens.
    lengths
        ``[batch]`` number of real tokens (BOS included).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: torch.Tensor


HeadScore = Callable[[torch.Tensor, BatchInfo], torch.Tensor]
HEAD_SCORES: Registry[HeadScore] = Registry("head score")
#: ``name -> (units, description)`` of each registered head score, for the attrs of stored scores.
HEAD_SCORE_INFO: dict[str, tuple[str, str]] = {}


def register_head_score(name: str, units: str = "1", description: str | None = None
                        ) -> Callable[[HeadScore], HeadScore]:
    """Decorator: register ``fn(pattern [batch, head, query, key], info) -> [batch, head]``.

    ``units``: of the score (``"1"``: dimensionless, such as a fraction of attention); ``description``:
    one line for the stored variable (default: the first sentence of ``fn``'s docstring).
    """

    def _add(fn: HeadScore) -> HeadScore:
        HEAD_SCORES.register(name, lambda: fn)
        first = (fn.__doc__ or name).strip().split("\n")[0].rstrip(".")
        HEAD_SCORE_INFO[name] = (units, description or first)
        return fn

    return _add


def _query_mask(info: BatchInfo) -> torch.Tensor:
    """``[batch, 1, query]`` float mask of real query positions after BOS."""
    m = info.attention_mask.clone()
    m[:, 0] = False
    return m[:, None, :].float()


@register_head_score("bos", description="mean fraction of attention paid to BOS (the attention sink) by real "
                                         "queries after BOS")
def bos_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Mean attention paid to BOS (the attention sink) over real queries after BOS."""
    q = _query_mask(info)
    return (pattern[..., 0].float() * q).sum(-1) / q.sum(-1).clamp(min=1)


@register_head_score("entropy", units="nats",
                     description="mean entropy of each query's attention distribution, over real queries after BOS")
def entropy_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Mean entropy (nats) of each query's attention distribution over real queries after BOS."""
    p = pattern.float()
    ent = -(p * torch.log(p.clamp(min=1e-30))).sum(-1)
    q = _query_mask(info)
    return (ent * q).sum(-1) / q.sum(-1).clamp(min=1)


# ---- attention-pattern scores of Olsson et al. (2022), for the induction probe of lhp_core.metrics.heads ----
#: Probe scores in the ``"lhp"`` convention (see :mod:`lhp_core.metrics.heads`).
SCORES = ("prev_token", "induction", "duplicate_token")
#: Registered sweep scores in the ``"transformer_lens"`` convention, by score.
TL_SCORES = {name: f"{name}_tl" for name in SCORES}


def offset_score(pattern: torch.Tensor, lengths: torch.Tensor, which: str, bos: bool = True) -> torch.Tensor:
    """Mean ``pattern[b, h, q, k]`` over the query/key pairs of ``which``, shape ``[batch, head]``.

    ``bos``: the ``"lhp"`` convention (BOS at 0, previous-token queries ``2..n-1``); else
    ``"aoyama_wilcox"`` (no BOS, every score over the second copy).
    """
    B, H = pattern.shape[:2]
    dtype = torch.float64 if pattern.dtype == torch.float64 else torch.float32
    out = torch.full((B, H), float("nan"), device=pattern.device, dtype=dtype)
    for b in range(B):
        n = int(lengths[b])
        start = 1 if bos else 0
        L = (n - start) // 2
        if which == "prev_token" and bos:
            q = torch.arange(2, n, device=pattern.device)
            k = q - 1
        else:
            if n != start + 2 * L or L < 2:
                raise ValueError(f"sequence of {n} tokens is not {'BOS + ' if bos else ''}a sequence repeated twice; "
                                 f"use {'induction_probe' if bos else 'random_probe'}()")
            q = torch.arange(start + L, start + 2 * L, device=pattern.device)
            k = q - {"prev_token": 1, "induction": L - 1, "duplicate_token": L}[which]
        out[b] = pattern[b][:, q, k].to(dtype).mean(-1)
    return out


def detection_pattern(ids: torch.Tensor, which: str) -> torch.Tensor:
    """TransformerLens's 0/1 detection pattern for one sequence (BOS included), ``[seq] -> [seq, seq]``.

    ``prev_token``: ``k = q - 1``; ``duplicate_token``: earlier keys holding the query's token;
    ``induction``: the duplicate pattern shifted one key to the right (``head_detector.py``).
    """
    S = len(ids)
    if which == "prev_token":
        return torch.diag(torch.ones(S - 1, dtype=torch.float64), -1)
    dup = torch.tril((ids[:, None] == ids[None, :]).double(), diagonal=-1)
    if which == "duplicate_token":
        return dup
    ind = torch.zeros_like(dup)
    ind[:, 1:] = dup[:, :-1]
    return torch.tril(ind)


def tl_score(pattern: torch.Tensor, input_ids: torch.Tensor, lengths: torch.Tensor, which: str) -> torch.Tensor:
    """TransformerLens ``detect_head`` "mul" score per sequence, ``[batch, head, q, k] -> [batch, head]``.

    ``sum(pattern * detection_pattern) / sum(pattern)`` over the real ``lengths[b]`` positions.
    """
    out = torch.empty(pattern.shape[:2], dtype=torch.float64, device=pattern.device)
    for b in range(pattern.shape[0]):
        n = int(lengths[b])
        a = pattern[b, :, :n, :n].double()
        det = detection_pattern(input_ids[b, :n].cpu(), which).to(a.device)
        out[b] = (a * det).sum((-1, -2)) / a.sum((-1, -2))
    return out


@register_head_score("prev_token", description="mean fraction of attention from each query to the "
                     "previous token (queries 2..n-1; lhp convention)")
def prev_token_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention to the previous token (queries 2..n-1), ``[batch, head, q, k] -> [batch, head]``."""
    return offset_score(pattern, info.lengths, "prev_token")


@register_head_score("induction", description="mean fraction of attention from the second copy of a "
                     "repeated sequence to the token after the earlier occurrence (lhp convention)")
def induction_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the token after the earlier occurrence, ``-> [batch, head]``."""
    return offset_score(pattern, info.lengths, "induction")


@register_head_score("duplicate_token", description="mean fraction of attention from the second copy of a "
                     "repeated sequence to the earlier occurrence of the same token (lhp convention)")
def duplicate_token_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the earlier occurrence of the same token, ``-> [batch, head]``."""
    return offset_score(pattern, info.lengths, "duplicate_token")


@register_head_score(TL_SCORES["prev_token"], description="TransformerLens previous-token score: "
                     "sum(attention x detection pattern) / sum(attention), per sequence, averaged")
def prev_token_tl_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """TransformerLens previous-token score (:func:`tl_score`), ``-> [batch, head]``."""
    return tl_score(pattern, info.input_ids, info.lengths, "prev_token")


@register_head_score(TL_SCORES["induction"], description="TransformerLens induction score: "
                     "sum(attention x detection pattern) / sum(attention), per sequence, averaged")
def induction_tl_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """TransformerLens induction score (:func:`tl_score`), ``-> [batch, head]``."""
    return tl_score(pattern, info.input_ids, info.lengths, "induction")


@register_head_score(TL_SCORES["duplicate_token"], description="TransformerLens duplicate-token score: "
                     "sum(attention x detection pattern) / sum(attention), per sequence, averaged")
def duplicate_token_tl_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """TransformerLens duplicate-token score (:func:`tl_score`), ``-> [batch, head]``."""
    return tl_score(pattern, info.input_ids, info.lengths, "duplicate_token")
