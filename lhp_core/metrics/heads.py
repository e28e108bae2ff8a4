"""Attention-head specialisation: previous-token, induction and duplicate-token scores; ICL score.

Probe: ``n_seq`` sequences of ``seq_len`` random tokens, each repeated twice (Olsson et al. 2022).
Three conventions for drawing and scoring it (:data:`CONVENTIONS`):

* ``"aoyama_wilcox"`` (Aoyama & Wilcox 2025, their ``head_detector.py``; the default of
  :func:`head_scores`): ids drawn uniformly over the whole vocabulary (:func:`random_probe`), **no
  BOS**, so the first copy is at ``0..L-1`` and the second at ``L..2L-1``; every score averages
  over the queries of the second copy only: previous-token ``q -> q - 1``, induction
  ``q -> q - L + 1`` (the token that followed the earlier occurrence), duplicate-token
  ``q -> q - L`` (the earlier occurrence; their code has no duplicate score, this is its analogue).
* ``"lhp"`` (this project's sweep, text-based): BOS at 0, the copies at ``1..L`` and ``L+1..2L``,
  random whole-word tokens that re-tokenize to themselves (:func:`induction_probe`), because the
  sweep takes text. Previous-token averages ``q -> q - 1`` over ``q = 2..2L`` (``q = 1``'s previous
  token is BOS, the attention sink); duplicate and induction average over the second copy, with
  the offsets above (TransformerLens's offsets).
* ``"transformer_lens"``: TransformerLens ``detect_head`` (``error_measure="mul"``, no BOS or
  current-token exclusion, its defaults) on the BOS-prefixed probe: a 0/1 detection pattern built
  from the tokens (previous token: ``k = q - 1`` for every ``q >= 1``; duplicate: every earlier
  ``k`` with the same token; induction: the duplicate pattern shifted one key to the right), and
  the score ``sum(attention * pattern) / sum(attention)`` per sequence (the denominator counts
  every query row, BOS and first copy included), averaged over sequences.

The ``"lhp"`` scores are registered in :data:`lhp_core.reducers.HEAD_SCORES` as ``prev_token``,
``duplicate_token`` and ``induction``, and the ``"transformer_lens"`` ones as ``prev_token_tl``,
``duplicate_token_tl`` and ``induction_tl``, so ``lhp_core.sweep.sweep(..., sites=["heads"],
head_scores=[...])`` computes them for every checkpoint. Random ids over the whole vocabulary
do not survive a round trip through text, so the ``"aoyama_wilcox"`` probe runs in memory:
:func:`head_scores` scores a loaded model on probe ids in any convention.

ICL score (Olsson et al. 2022): mean loss at a late context position minus mean loss at an
early one, on held-out natural text (negative = the model uses long context). Pythia uses
token 500 vs token 50 of a 2048 context; for a context of ``n_ctx`` tokens we keep the 10:1
ratio with ``late = min(500, n_ctx - 1)`` and ``early = late // 10`` (see :func:`icl_positions`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from lhp_core import schema
from lhp_core.checkpoints import load_config, load_tokenizer
from lhp_core.deprecation import DEFAULT, Default, changed_default
from lhp_core.measures import Checkpoint, Measure, over_steps, step_grid
from lhp_core.metrics import changepoint
from lhp_core.provenance import config_sha256
from lhp_core.reducers import BatchInfo, register_head_score
from lhp_core.stimuli import Stimuli
from lhp_core.suites import context_length, get_suite

SCORES = ("prev_token", "induction", "duplicate_token")
#: Probe and scoring conventions of :func:`head_scores` (see the module docstring).
CONVENTIONS = ("aoyama_wilcox", "lhp", "transformer_lens")
#: Registered sweep scores in the ``"transformer_lens"`` convention, by score.
TL_SCORES = {name: f"{name}_tl" for name in SCORES}


# ----------------------------------------------------------------------------- probe


def probe_vocabulary(tokenizer, min_chars: int = 2) -> np.ndarray:
    """Token ids that are a leading space plus letters and re-tokenize to themselves.

    Returns
    -------
    ids : int array, shape ``[n]``, sorted.
    """
    vocab = tokenizer.get_vocab()
    ok = []
    for tok, i in vocab.items():
        if not tok.startswith("Ġ") or not tok[1:].isalpha() or len(tok) - 1 < min_chars:
            continue
        text = tokenizer.convert_tokens_to_string([tok])
        if tokenizer(text, add_special_tokens=False)["input_ids"] == [i]:
            ok.append(i)
    if len(ok) < 10:
        raise ValueError(f"only {len(ok)} whole-word tokens with a leading space in this vocabulary; "
                         "the induction probe needs a byte-level BPE tokenizer (Pythia / lhp suites)")
    return np.array(sorted(ok), dtype=np.int64)


def induction_probe(tokenizer, n_seq: int = 100, seq_len: int = 50, seed: int = 0) -> tuple[Stimuli, np.ndarray]:
    """Repeated random-token sequences as text, and their token ids (the ``"lhp"`` convention).

    Returns
    -------
    stimuli
        ``n_seq`` texts ``" w1 w2 ... wL w1 w2 ... wL"`` (ids ``"rep000"``...).
    ids
        Token ids without BOS, shape ``[n_seq, 2 * seq_len]``; the sweep prepends BOS.
    """
    _check_probe_size(n_seq, seq_len)
    vocab = probe_vocabulary(tokenizer)
    rng = np.random.default_rng(seed)
    first = vocab[rng.integers(0, len(vocab), size=(n_seq, seq_len))]
    ids = np.concatenate([first, first], axis=1)
    texts = [tokenizer.decode(row.tolist()) for row in ids]
    for t, row in zip(texts, ids):
        if tokenizer(t, add_special_tokens=False)["input_ids"] != row.tolist():
            raise RuntimeError("an induction probe text does not re-tokenize to its tokens; report this tokenizer")
    return Stimuli.from_texts(texts, [f"rep{i:03d}" for i in range(n_seq)]), ids


def random_probe(vocab_size: int, n_seq: int = 100, seq_len: int = 50, seed: int = 0,
                 exclude: Sequence[int] = ()) -> np.ndarray:
    """Aoyama & Wilcox's probe: ids uniform over the vocabulary, each sequence repeated twice.

    Their defaults (``seq_len=50``, 100 sequences). They draw ``torch.randint(0, len(vocab) - 1)``,
    i.e. ids ``0..V-2``: pass ``vocab_size=len(tokenizer) - 1`` to draw from the same range (for
    GPT-2's tokenizer that leaves out exactly ``<|endoftext|>``), or ``exclude=`` special ids.

    Returns
    -------
    ids : int array, shape ``[n_seq, 2 * seq_len]``, no BOS.
    """
    _check_probe_size(n_seq, seq_len)
    allowed = np.setdiff1d(np.arange(vocab_size), np.asarray(exclude, dtype=np.int64))
    if len(allowed) < 2:
        raise ValueError(f"vocab_size={vocab_size} less exclude leaves {len(allowed)} ids; a probe needs at least 2")
    first = allowed[np.random.default_rng(seed).integers(0, len(allowed), size=(n_seq, seq_len))]
    return np.concatenate([first, first], axis=1)


def _check_probe_size(n_seq: int, seq_len: int) -> None:
    if seq_len < 2 or n_seq < 1:
        raise ValueError(f"need n_seq >= 1 and seq_len >= 2, got n_seq={n_seq}, seq_len={seq_len}")


# ----------------------------------------------------------------------------- scores


def _offset_score(pattern: torch.Tensor, lengths: torch.Tensor, which: str, bos: bool = True) -> torch.Tensor:
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
    return _offset_score(pattern, info.lengths, "prev_token")


@register_head_score("induction", description="mean fraction of attention from the second copy of a "
                     "repeated sequence to the token after the earlier occurrence (lhp convention)")
def induction_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the token after the earlier occurrence, ``-> [batch, head]``."""
    return _offset_score(pattern, info.lengths, "induction")


@register_head_score("duplicate_token", description="mean fraction of attention from the second copy of a "
                     "repeated sequence to the earlier occurrence of the same token (lhp convention)")
def duplicate_token_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the earlier occurrence of the same token, ``-> [batch, head]``."""
    return _offset_score(pattern, info.lengths, "duplicate_token")


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


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {list(CONVENTIONS)}")


def scores_from_patterns(patterns: Sequence[torch.Tensor], convention: str = "lhp",
                         input_ids: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """All three scores from per-layer patterns of full-length probe sequences (no padding).

    Parameters
    ----------
    patterns
        One tensor per layer, ``[batch, head, seq, seq]`` (``output_attentions=True``), of
        BOS-prefixed sequences for ``"lhp"`` and ``"transformer_lens"``, of sequences without BOS
        for ``"aoyama_wilcox"``.
    convention
        See :data:`CONVENTIONS`; default ``"lhp"``, the layout the sweep's probe has.
    input_ids
        ``[batch, seq]`` the sequences' ids (BOS included); needed by ``"transformer_lens"``.

    Returns
    -------
    ``{score: array [layer, head]}`` averaged over the batch (layers counted from 0 here).
    """
    _check_convention(convention)
    B, _, S, _ = patterns[0].shape
    lengths = torch.full((B,), S)
    if convention == "transformer_lens":
        if input_ids is None or tuple(input_ids.shape) != (B, S):
            raise ValueError(f"the transformer_lens convention needs input_ids of shape ({B}, {S}), the patterns' "
                             "sequences with BOS")
        return {w: torch.stack([tl_score(p, input_ids, lengths, w).mean(0) for p in patterns]).cpu().numpy()
                for w in SCORES}
    bos = convention == "lhp"
    return {w: torch.stack([_offset_score(p, lengths, w, bos=bos).mean(0) for p in patterns]).cpu().numpy()
            for w in SCORES}


def _attentions(model, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-layer attention patterns ``[batch, head, q, k]`` of ``x`` ``[batch, seq]``, eager attention."""
    prev = getattr(model.config, "_attn_implementation", None)
    if prev != "eager" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            return model(input_ids=x, output_attentions=True).attentions
    finally:
        if prev not in (None, "eager") and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(prev)


def _changed_convention(function: str, convention: str | Default) -> str:
    """The probe convention a call relied on: Aoyama & Wilcox's since 0.2.0, which warns that it changed."""
    # stacklevel 4: warn -> changed_default -> this helper -> the public function -> its caller.
    return changed_default(function, "convention", convention, new="aoyama_wilcox", old="lhp", since="0.2.0",
                           keep="convention='lhp' (the BOS-prefixed probe)", stacklevel=4)


def head_scores(model, ids: np.ndarray, convention: str | Default = DEFAULT, bos_token_id: int | None = None,
                device: str = "cpu", batch_size: int = 16) -> dict[str, np.ndarray]:
    """Previous-token, induction and duplicate-token scores of every head of a loaded model.

    Parameters
    ----------
    model
        A Hugging Face causal LM (``output_attentions=True`` is used; eager attention is set for
        the call and restored).
    ids
        Probe ids without BOS, shape ``[n_seq, 2 * seq_len]``, each row a sequence repeated twice
        (:func:`random_probe` for ``"aoyama_wilcox"``, :func:`induction_probe` for ``"lhp"``).
    convention
        ``"aoyama_wilcox"`` (default: the paper's probe, no BOS), ``"lhp"`` or
        ``"transformer_lens"`` (both prepend BOS); see the module docstring. The default was the
        BOS-prefixed ``"lhp"`` probe before 0.2.0: a call that relies on it gets a
        :class:`~lhp_core.deprecation.ChangedDefaultWarning`.
    bos_token_id
        Prepended for ``"lhp"`` / ``"transformer_lens"``; default ``model.config.bos_token_id``.

    Returns
    -------
    ``{score: float array [layer, head]}`` for :data:`SCORES`, averaged over the sequences; layer
    0 is the first block (the sweep's ``layer`` coordinate counts it as 1).
    """
    convention = _changed_convention("heads.head_scores", convention)
    _check_convention(convention)
    ids = np.asarray(ids, dtype=np.int64)
    half = ids.shape[1] // 2 if ids.ndim == 2 else 0
    if ids.ndim != 2 or ids.shape[1] % 2 or ids.shape[1] < 4 or (ids[:, :half] != ids[:, half:]).any():
        raise ValueError(f"ids of shape {ids.shape} are not sequences repeated twice, [n_seq, 2 * seq_len]; "
                         "make them with random_probe() or induction_probe()")
    if convention != "aoyama_wilcox":
        bos_token_id = bos_token_id if bos_token_id is not None else getattr(model.config, "bos_token_id", None)
        if bos_token_id is None:
            raise ValueError(f"the {convention} convention prepends BOS and this model config has no "
                             "bos_token_id; pass bos_token_id=")
        ids = np.concatenate([np.full((len(ids), 1), bos_token_id, dtype=np.int64), ids], axis=1)
    ctx = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if ctx and ids.shape[1] > ctx:
        raise ValueError(f"probe sequences of {ids.shape[1]} tokens exceed the model's {ctx}-token context; "
                         "use a shorter seq_len")
    total = None
    for s in range(0, len(ids), batch_size):
        x = torch.as_tensor(ids[s:s + batch_size], device=device)
        att = _attentions(model, x)
        part = scores_from_patterns(att, convention, input_ids=x)
        part = {k: v * len(x) for k, v in part.items()}
        total = part if total is None else {k: total[k] + part[k] for k in total}
    return {k: v / len(ids) for k, v in total.items()}


def attention_patterns(model, ids: np.ndarray, bos_token_id: int | None = None, device: str = "cpu") -> np.ndarray:
    """Attention of every head on one probe sequence (for inspecting heads).

    Parameters
    ----------
    ids
        Token ids, shape ``[seq]``; ``bos_token_id`` is prepended when given (the ``"lhp"`` and
        ``"transformer_lens"`` conventions), not for the authors' probe.

    Returns
    -------
    patterns : float array, shape ``[layer, head, query, key]``; ``layer`` 0 is the first block.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if bos_token_id is not None:
        ids = np.concatenate([[bos_token_id], ids])
    att = _attentions(model, torch.as_tensor(ids, device=device)[None])
    return np.stack([a[0].float().cpu().numpy() for a in att])


# ----------------------------------------------------------------------------- ICL score


def icl_positions(n_ctx: int) -> tuple[int, int]:
    """``(early, late)`` 0-based token positions for the ICL score in a context of ``n_ctx`` tokens.

    Pythia (n_ctx 2048) gives ``(50, 500)``; shorter contexts keep the 10:1 ratio.
    """
    late = min(500, n_ctx - 1)
    early = late // 10
    if early < 1:
        raise ValueError(f"context of {n_ctx} tokens is too short for an ICL score; need at least 11")
    return early, late


def position_losses(model, windows: np.ndarray, bos_token_id: int, device: str = "cpu",
                    batch_size: int = 16) -> np.ndarray:
    """Next-token loss (nats) at every position of full-context windows.

    Parameters
    ----------
    windows
        Token ids, shape ``[n, T]``; BOS is prepended, so ``T + 1`` must fit the context.

    Returns
    -------
    loss : float array, shape ``[n, T]``; ``loss[:, i]`` is the loss of token ``i`` given BOS and
    tokens ``< i`` (position ``i`` has ``i`` tokens of context besides BOS).
    """
    windows = np.asarray(windows, dtype=np.int64)
    out = np.empty(windows.shape)
    with torch.inference_mode():
        for s in range(0, len(windows), batch_size):
            w = torch.as_tensor(windows[s:s + batch_size], device=device)
            x = torch.cat([torch.full((len(w), 1), bos_token_id, device=device), w], dim=1)
            logp = torch.log_softmax(model(input_ids=x).logits[:, :-1].float(), dim=-1)
            out[s:s + len(w)] = -torch.gather(logp, 2, w[..., None])[..., 0].cpu().numpy()
    return out


def icl_score(losses: np.ndarray, early: int, late: int) -> float:
    """Mean loss at position ``late`` minus at ``early`` (nats), from ``losses [n, T]``."""
    losses = np.asarray(losses)
    if late >= losses.shape[1]:
        raise ValueError(f"late position {late} beyond the {losses.shape[1]} positions given")
    return float(losses[:, late].mean() - losses[:, early].mean())


def text_windows(tokenizer, texts: list[str], length: int) -> np.ndarray:
    """Non-overlapping windows of ``length`` tokens cut from the concatenated texts, ``[n, length]``."""
    ids: list[int] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] + [tokenizer.eos_token_id]
    n = len(ids) // length
    if n == 0:
        raise ValueError(f"{len(ids)} tokens of text cannot fill one window of {length}; give more text")
    return np.asarray(ids[: n * length], dtype=np.int64).reshape(n, length)


# ----------------------------------------------------------------------------- over training

#: Units and descriptions of the per-head scores.
_SCORE_TEXT = {
    "prev_token": "attention from each query to the token before it",
    "induction": "attention from a second-copy query to the token after the query's earlier occurrence",
    "duplicate_token": "attention from a second-copy query to the query's earlier occurrence",
}


def _probes(s, models, grid, n_seq: int, seq_len: int, seed: int, convention: str) -> dict[str, np.ndarray]:
    """Probe ids per model (models of a suite may ship their own tokenizers), checked against the context."""
    probes = {}
    for m in models:
        last = grid[m][-1]
        tok = load_tokenizer(s, m, last)
        ctx = context_length(s, load_config(s, m, last))
        length = 2 * seq_len + (0 if convention == "aoyama_wilcox" else 1)
        if length > ctx:
            # Positions past the training context were never trained: scores there say nothing about the model.
            raise ValueError(f"the probe ({length} tokens: 2 x seq_len={seq_len}"
                             f"{'' if convention == 'aoyama_wilcox' else ' + BOS'}) is longer than the {ctx}-token "
                             f"context of {s.id!r} {m!r}; use seq_len <= "
                             f"{(ctx - (0 if convention == 'aoyama_wilcox' else 1)) // 2}")
        if convention == "aoyama_wilcox":
            probes[m] = random_probe(len(tok) - 1, n_seq=n_seq, seq_len=seq_len, seed=seed)
        else:
            probes[m] = induction_probe(tok, n_seq=n_seq, seq_len=seq_len, seed=seed)[1]
    return probes


def head_scores_over_steps(suite, models=None, steps=None, n_seq: int = 100, seq_len: int = 50, seed: int = 0,
                           convention: str | Default = DEFAULT, device: str = "cpu",
                           progress: bool = True) -> xr.Dataset:
    """Previous-token, induction and duplicate-token scores of every head at every checkpoint.

    Parameters
    ----------
    n_seq, seq_len
        Probe size: ``n_seq`` sequences of ``seq_len`` tokens repeated twice; the probe must fit
        the context the suite was trained with (:func:`lhp_core.suites.context_length`).
    convention
        ``"aoyama_wilcox"`` (default, Aoyama & Wilcox 2025: ids over the whole vocabulary, no BOS,
        second-copy queries), ``"lhp"`` (BOS, whole-word tokens, TransformerLens offsets) or
        ``"transformer_lens"`` (``detect_head`` normalisation); see :func:`head_scores`. It was
        ``"lhp"`` before 0.2.0: relying on the default warns.

    Returns
    -------
    xarray.Dataset
        :data:`SCORES` with dims ``(model, step, layer, head)`` (layer 1..L, averaged over the probe
        sequences; NaN past a model's depth or width), ``probe_ids (model, stimulus, token)``.
    """
    convention = _changed_convention("heads.head_scores_over_steps", convention)
    _check_convention(convention)
    s = get_suite(suite)
    grid = step_grid(s, models, steps)
    probes = _probes(s, list(grid), grid, n_seq, seq_len, seed, convention)

    def compute(ck: Checkpoint) -> xr.Dataset:
        got = head_scores(ck.lm, probes[ck.model], convention=convention, device=ck.device,
                          bos_token_id=ck.tokenizer.bos_token_id)
        n_layer, n_head = got[SCORES[0]].shape
        coords = {schema.LAYER: np.arange(1, n_layer + 1), schema.HEAD: np.arange(n_head)}
        return xr.Dataset({k: ((schema.LAYER, schema.HEAD), got[k],
                                {"units": "attention probability", "description": _SCORE_TEXT[k]}) for k in SCORES},
                          coords=coords)

    measure = Measure("head_scores", compute, {"n_seq": n_seq, "seq_len": seq_len, "seed": seed,
                                               "convention": convention},
                      per_checkpoint=lambda ck: {"probe": config_sha256({"ids": probes[ck.model].tolist()})},
                      description=f"attention-head scores on repeated random sequences ({convention} convention)")
    ds = over_steps(s, measure, list(grid), steps, device=device, progress=progress)
    ds["probe_ids"] = xr.DataArray(np.stack([probes[m] for m in ds[schema.MODEL].values]),
                                   dims=(schema.MODEL, schema.STIMULUS, schema.TOKEN),
                                   attrs={"units": "token id", "description": "probe sequences (no BOS), "
                                          "each a random sequence repeated twice"})
    ds.attrs.update(convention=convention, n_seq=int(n_seq), seq_len=int(seq_len))
    return ds


def icl_over_steps(suite, texts: Sequence[str], models=None, steps=None, n_windows: int | None = None,
                   device: str = "cpu", progress: bool = True) -> xr.Dataset:
    """ICL score (nats; late minus early position loss) for every checkpoint on held-out ``texts``.

    Windows fill the model's context minus BOS (:func:`text_windows`); positions from
    :func:`icl_positions` (Pythia's 50 and 500 of 2048, scaled).

    Returns
    -------
    xarray.Dataset
        ``icl``, ``loss_early``, ``loss_late`` with dims ``(model, step)``; attrs ``early``,
        ``late`` (0-based positions), ``n_ctx`` and ``n_windows``.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("no texts given; pass held-out documents for the ICL score")

    def compute(ck: Checkpoint) -> xr.Dataset:
        n_ctx = context_length(ck.suite, ck.lm)
        early, late = icl_positions(n_ctx - 1)
        wins = text_windows(ck.tokenizer, texts, n_ctx - 1)[:n_windows]
        loss = position_losses(ck.lm, wins, ck.tokenizer.bos_token_id, device=ck.device)
        e, lt = float(loss[:, early].mean()), float(loss[:, late].mean())
        return xr.Dataset(
            {"icl": ((), lt - e, {"units": "nats/token",
                                  "description": f"loss at token {late} minus loss at token {early}"}),
             "loss_early": ((), e, {"units": "nats/token", "description": f"mean next-token loss at position {early}"}),
             "loss_late": ((), lt, {"units": "nats/token", "description": f"mean next-token loss at position {late}"})},
            attrs={"early": early, "late": late, "n_ctx": int(n_ctx), "n_windows": int(len(wins))})

    measure = Measure("icl", compute, {"texts": config_sha256({"texts": texts}), "n_windows": n_windows},
                      description="in-context learning score (Olsson et al. 2022): late minus early token loss")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)


#: The smallest level shift of the largest induction score (attention probability) that counts as
#: an induction transition: below it the fitted "change" is noise around a flat curve.
MIN_JUMP = 0.05
#: The smallest level shift of the ICL score (nats) that counts as a change: smaller ones are the
#: noise of a few windows.
MIN_ICL_JUMP = 0.1


def transition(scores: xr.Dataset, score: str = "induction", n_boot: int = 500, seed: int = 0,
               min_jump: float = MIN_JUMP) -> pd.DataFrame:
    """The transition of each model: level-shift change point of its largest ``score`` over all heads.

    Olsson et al. (2022) see induction heads form in a sharp phase change; the largest induction
    score over the model's heads jumps there. A fitted jump below ``min_jump`` is reported with
    ``found`` False (no transition).

    Returns
    -------
    :func:`lhp_core.metrics.changepoint.per_model` table (``model, step, lo, hi, first, last, jump, found``).
    """
    best = scores[score].max([schema.LAYER, schema.HEAD], skipna=True)
    return changepoint.per_model(best.where(np.isfinite(best)), kind="mean", n_boot=n_boot, seed=seed,
                                 min_jump=min_jump)
