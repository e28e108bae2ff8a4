"""Attention-head specialisation: previous-token, induction and duplicate-token scores; ICL score.

Probe (Olsson et al. 2022; TransformerLens conventions): ``n_seq`` sequences of ``seq_len``
random tokens, each repeated twice, BOS prepended, so a sequence has ``1 + 2 * seq_len``
positions: BOS at 0, the first copy at ``1..L``, the second at ``L+1..2L``. For a query at
position ``q``:

* previous-token score: attention from ``q`` to ``q - 1``, averaged over ``q = 2..2L`` (``q = 1``
  is left out because its previous token is BOS, the attention sink);
* duplicate-token score: attention from ``q`` in the second copy to ``q - L``, the earlier
  occurrence of the same token;
* induction score: attention from ``q`` in the second copy to ``q - L + 1``, the token that
  *followed* the earlier occurrence.

The scores are registered in :data:`lhp_core.reducers.HEAD_SCORES` as ``prev_token``,
``duplicate_token`` and ``induction``, so ``lhp_core.sweep.sweep(..., sites=["heads"],
head_scores=[...])`` computes them for every checkpoint. The probe is a
:class:`~lhp_core.stimuli.Stimuli` table whose text re-tokenizes to exactly the chosen
tokens (random whole-word tokens with a leading space), because the sweep takes text.

ICL score (Olsson et al. 2022): mean loss at a late context position minus mean loss at an
early one, on held-out natural text (negative = the model uses long context). Pythia uses
token 500 vs token 50 of a 2048 context; for a context of ``n_ctx`` tokens we keep the 10:1
ratio with ``late = min(500, n_ctx - 1)`` and ``early = late // 10`` (see :func:`icl_positions`).
"""
from __future__ import annotations

import numpy as np
import torch

from lhp_core.reducers import BatchInfo, register_head_score
from lhp_core.stimuli import Stimuli

SCORES = ("prev_token", "induction", "duplicate_token")


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
    """Repeated random-token sequences as text, and their token ids.

    Returns
    -------
    stimuli
        ``n_seq`` texts ``" w1 w2 ... wL w1 w2 ... wL"`` (ids ``"rep000"``...).
    ids
        Token ids without BOS, shape ``[n_seq, 2 * seq_len]``; the sweep prepends BOS.
    """
    if seq_len < 2 or n_seq < 1:
        raise ValueError(f"need n_seq >= 1 and seq_len >= 2, got n_seq={n_seq}, seq_len={seq_len}")
    vocab = probe_vocabulary(tokenizer)
    rng = np.random.default_rng(seed)
    first = vocab[rng.integers(0, len(vocab), size=(n_seq, seq_len))]
    ids = np.concatenate([first, first], axis=1)
    texts = [tokenizer.decode(row.tolist()) for row in ids]
    for t, row in zip(texts, ids):
        if tokenizer(t, add_special_tokens=False)["input_ids"] != row.tolist():
            raise RuntimeError("an induction probe text does not re-tokenize to its tokens; report this tokenizer")
    return Stimuli.from_texts(texts, [f"rep{i:03d}" for i in range(n_seq)]), ids


# ----------------------------------------------------------------------------- scores


def _offset_score(pattern: torch.Tensor, lengths: torch.Tensor, which: str) -> torch.Tensor:
    """Mean ``pattern[b, h, q, q - d]`` over the query positions of ``which``, shape ``[batch, head]``."""
    B, H, Q, K = pattern.shape
    dtype = torch.float64 if pattern.dtype == torch.float64 else torch.float32
    out = torch.full((B, H), float("nan"), device=pattern.device, dtype=dtype)
    for b in range(B):
        n = int(lengths[b])
        L = (n - 1) // 2
        if which == "prev_token":
            q = torch.arange(2, n, device=pattern.device)
            k = q - 1
        else:
            if n != 1 + 2 * L or L < 2:
                raise ValueError(f"sequence of {n} tokens is not BOS + a sequence repeated twice; use induction_probe()")
            q = torch.arange(L + 1, 2 * L + 1, device=pattern.device)
            k = q - L + (1 if which == "induction" else 0)
        out[b] = pattern[b][:, q, k].to(dtype).mean(-1)
    return out


@register_head_score("prev_token")
def prev_token_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention to the previous token (queries 2..n-1), ``[batch, head, q, k] -> [batch, head]``."""
    return _offset_score(pattern, info.lengths, "prev_token")


@register_head_score("induction")
def induction_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the token after the earlier occurrence, ``-> [batch, head]``."""
    return _offset_score(pattern, info.lengths, "induction")


@register_head_score("duplicate_token")
def duplicate_token_score(pattern: torch.Tensor, info: BatchInfo) -> torch.Tensor:
    """Attention from the second copy to the earlier occurrence of the same token, ``-> [batch, head]``."""
    return _offset_score(pattern, info.lengths, "duplicate_token")


def scores_from_patterns(patterns: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    """All three scores from per-layer patterns of full-length probe sequences (no padding).

    Parameters
    ----------
    patterns
        One tensor per layer, ``[batch, head, seq, seq]`` (``output_attentions=True``).

    Returns
    -------
    ``{score: array [layer, head]}`` averaged over the batch (layers counted from 0 here).
    """
    B, _, S, _ = patterns[0].shape
    lengths = torch.full((B,), S)
    info = BatchInfo(torch.zeros(B, S, dtype=torch.long), torch.ones(B, S, dtype=torch.bool), lengths)
    fns = {"prev_token": prev_token_score, "induction": induction_score, "duplicate_token": duplicate_token_score}
    return {name: torch.stack([fn(p, info).mean(0) for p in patterns]).cpu().numpy() for name, fn in fns.items()}


def attention_on_probe(model, ids: np.ndarray, bos_token_id: int, layer: int, head: int, device: str = "cpu") -> np.ndarray:
    """Attention pattern of one head on one probe sequence (for the inspector).

    Parameters
    ----------
    ids
        Token ids without BOS, shape ``[seq]``.
    layer
        Block number, 1-based (as the ``layer`` dim of the sweep's ``heads`` site).

    Returns
    -------
    pattern : float array, shape ``[seq + 1, seq + 1]`` (query, key), BOS at 0.
    """
    prev = getattr(model.config, "_attn_implementation", None)
    if prev != "eager" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    try:
        x = torch.as_tensor(np.concatenate([[bos_token_id], ids]), dtype=torch.long, device=device)[None]
        with torch.inference_mode():
            att = model(input_ids=x, output_attentions=True).attentions
    finally:
        if prev not in (None, "eager") and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(prev)
    if not 1 <= layer <= len(att):
        raise ValueError(f"layer {layer} out of range; this model has blocks 1..{len(att)}")
    return att[layer - 1][0, head].float().cpu().numpy()


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


def position_losses(model, windows: np.ndarray, bos_token_id: int, device: str = "cpu", batch_size: int = 16) -> np.ndarray:
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
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n = len(ids) // length
    if n == 0:
        raise ValueError(f"{len(ids)} tokens of text cannot fill one window of {length}; give more text")
    return np.asarray(ids[: n * length], dtype=np.int64).reshape(n, length)


# ----------------------------------------------------------------------------- over training


def head_scores_over_steps(suite, models=None, steps=None, n_seq: int = 100, seq_len: int = 50, seed: int = 0,
                           device: str = "cpu", out=None, progress: bool = True):
    """Previous-token, induction and duplicate-token scores for every checkpoint, via the sweep.

    Parameters
    ----------
    suite
        Suite id or object.
    n_seq, seq_len
        Probe size: ``n_seq`` sequences of ``seq_len`` tokens repeated twice; BOS + 2 x seq_len
        must fit the context the suite was trained with (:func:`lhp_core.suites.context_length`).
    out
        Zarr store path (default ``config.results_dir()/heads/<suite>_<n_seq>x<seq_len>.zarr``);
        a re-run resumes it.

    Returns
    -------
    ``(scores, probe_ids)``: ``scores`` maps model id to an ``xarray.Dataset`` with variables
    :data:`SCORES`, dims ``(step, layer, head)`` (layer 1..L, averaged over probe sequences);
    ``probe_ids`` ``[n_seq, 2 * seq_len]``.
    """
    from lhp_core import checkpoints, config, schema
    from lhp_core.store import open_results
    from lhp_core.suites import context_length, get_suite
    from lhp_core.sweep import sweep

    s = get_suite(suite)
    models = list(models or s.models)
    model, tok = checkpoints.load(s, models[0], s.steps(models[0])[-1])
    ctx = context_length(s, model)
    if 2 * seq_len + 1 > ctx:
        # Positions past the training context were never trained: scores there say nothing about the model.
        raise ValueError(f"the probe (BOS + 2 x {seq_len} tokens) is longer than the {ctx}-token context suite "
                         f"{s.id!r} was trained with; use seq_len <= {(ctx - 1) // 2}")
    del model
    stim, ids = induction_probe(tok, n_seq=n_seq, seq_len=seq_len, seed=seed)
    if out is None:
        out = config.results_dir() / "heads" / f"{str(s.id).replace('/', '_')}_{n_seq}x{seq_len}_seed{seed}.zarr"
    sweep(s, stim, out, sites=["heads"], reducers=[], head_scores=list(SCORES), models=models,
          steps="all" if steps is None else list(steps), device=device, max_length=2 * seq_len + 1,
          progress=progress)
    result = {}
    for m in models:
        ds = open_results(out, m, site="heads")
        ds = ds[list(SCORES)].mean(schema.STIMULUS).sel({schema.LAYER: slice(1, None)}).load()
        result[m] = ds
    return result, ids


def icl_over_steps(suite, texts: list[str], models=None, steps=None, n_windows: int | None = None,
                   device: str = "cpu", progress: bool = True):
    """ICL score (nats; late minus early position loss) for every checkpoint on ``texts``.

    Windows fill the model's context minus BOS (:func:`text_windows`); positions from
    :func:`icl_positions`.

    Returns
    -------
    xarray.Dataset: ``icl``, ``loss_early``, ``loss_late`` with dims ``(model, step)``; attrs
    ``early``, ``late`` (0-based positions) and ``n_ctx``.
    """
    import xarray as xr
    from tqdm.auto import tqdm

    from lhp_core import checkpoints, schema
    from lhp_core.suites import context_length, get_suite

    s = get_suite(suite)
    models = list(models or s.models)
    all_steps = sorted({int(t) for m in models for t in (steps if steps is not None else s.steps(m))})
    shape = (len(models), len(all_steps))
    icl, e_, l_, tokens = (np.full(shape, np.nan) for _ in range(4))
    early = late = n_ctx = None
    wins = None
    jobs = [(i, m, j, st) for i, m in enumerate(models) for j, st in enumerate(all_steps) if st in s.steps(m)]
    for i, m, j, st in tqdm(jobs, desc="ICL score per checkpoint", disable=not progress):
        model, tok = checkpoints.load(s, m, st, device=device)
        if wins is None:
            n_ctx = context_length(s, model)
            early, late = icl_positions(n_ctx - 1)
            wins = text_windows(tok, texts, n_ctx - 1)[:n_windows]
        loss = position_losses(model, wins, tok.bos_token_id, device=device)
        e_[i, j], l_[i, j] = loss[:, early].mean(), loss[:, late].mean()
        icl[i, j] = l_[i, j] - e_[i, j]
        tokens[i, j] = s.tokens_seen(m, st)
    dims = (schema.MODEL, schema.STEP)
    ds = xr.Dataset({"icl": (dims, icl), "loss_early": (dims, e_), "loss_late": (dims, l_)},
                    coords={schema.MODEL: models, schema.STEP: all_steps, schema.TOKENS_SEEN: (dims, tokens)})
    ds.attrs.update(early=int(early), late=int(late), n_ctx=int(n_ctx), n_windows=int(len(wins)), units="nats")
    return ds
