"""What attention heads do at each checkpoint: reading-time fit, ICL and copying with heads ablated.

Aoyama & Wilcox (2025, their ``ablate_by_head.py``) ablate the heads that mark the induction
transition and measure surprisal-based PPP and the ICL score. :func:`ablation_over_steps` does
this at every checkpoint of a suite, through the measure runner (cached by weights), under
several conditions (the ``condition`` dim):

* ``clean``: nothing ablated;
* ``selected``: the heads a named rule (:data:`RULES`) chooses at that checkpoint;
* ``random 1`` .. ``random n``: as many heads drawn at random from the same layers, none of the
  selected ones (the control; :func:`matched_random`);
* ``layer``: every head of the layers holding the selected heads (the upper bound).

Per condition it measures word surprisal of a reading-time table (bits, word-boundary corrected,
:func:`lhp_core.metrics.reading.token_scores`), the ICL score on held-out texts
(:func:`lhp_core.metrics.heads.icl_score`) and the loss on the second copy of repeated random
sequences; :func:`ppp_by_condition` turns the surprisal into PPP with the same rows and folds for
every (step, condition), so differences between conditions are paired.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import ablation, schema
from lhp_core.measures import Checkpoint, Measure, over_steps, step_grid
from lhp_core.metrics import heads, reading
from lhp_core.provenance import config_sha256
from lhp_core.stimuli import Stimuli
from lhp_core.suites import context_length, get_suite

#: Head-selection rules: name -> what it selects at a checkpoint (``k`` and ``threshold`` are parameters).
RULES = {
    "induction": "the k heads with the largest induction score at the model's last checkpoint, plus every head "
                 "whose induction score at this checkpoint is at least the threshold",
    "top_k": "the k heads with the largest induction score at the model's last checkpoint",
    "threshold": "every head whose induction score at this checkpoint is at least the threshold",
}
CLEAN, SELECTED, LAYER = "clean", "selected", "layer"


def random_label(i: int) -> str:
    """The condition name of random draw ``i`` (1-based)."""
    return f"random {i}"


def select_heads(scores: xr.DataArray, step: int, rule: str = "induction", k: int = 2,
                 threshold: float = 0.3) -> list[ablation.Head]:
    """The heads ``rule`` selects at ``step`` from one model's induction scores.

    Parameters
    ----------
    scores
        Induction score with dims ``(step, layer, head)`` (layer 1..L), one model of
        :func:`lhp_core.metrics.heads.head_scores_over_steps`; the last step with scores is the
        model's last checkpoint.

    Returns
    -------
    Sorted ``(layer, head)`` pairs.
    """
    if rule not in RULES:
        raise ValueError(f"unknown head-selection rule {rule!r}; use one of {list(RULES)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    s = scores.transpose(schema.STEP, schema.LAYER, schema.HEAD).dropna(schema.STEP, how="all")
    chosen: set[ablation.Head] = set()
    if rule in ("induction", "top_k") and k:
        last = s.isel({schema.STEP: -1})
        flat = last.stack(pair=(schema.LAYER, schema.HEAD)).dropna("pair")
        top = flat.sortby(flat, ascending=False).isel(pair=slice(0, k))
        chosen |= {(int(a), int(b)) for a, b in top["pair"].values}
    if rule in ("induction", "threshold"):
        now = s.sel({schema.STEP: step})
        layer, head = np.nonzero(now.values >= threshold)
        chosen |= {(int(now[schema.LAYER].values[a]), int(now[schema.HEAD].values[b])) for a, b in zip(layer, head)}
    return sorted(chosen)


def matched_random(selected: Sequence[ablation.Head], n_heads: int, n_draws: int,
                   rng: np.random.Generator) -> tuple[list[list[ablation.Head]], int]:
    """``n_draws`` random head sets matched to ``selected`` layer by layer, none of them selected.

    Each draw takes, in every layer, as many heads as ``selected`` has there, uniformly among that
    layer's unselected heads; the draws are distinct sets where that many exist, else they repeat.
    A layer whose selected heads leave too few others gives what it has, and the rest come from the
    unselected heads of the other selected layers.

    Returns
    -------
    (draws, unmatched): the sorted head sets, and how many heads per draw could not be matched to
    their layer (reported, never hidden).
    """
    per_layer: dict[int, int] = {}
    for layer, _ in selected:
        per_layer[layer] = per_layer.get(layer, 0) + 1
    taken = set(selected)
    free = {layer: [h for h in range(n_heads) if (layer, h) not in taken] for layer in per_layer}
    short = sum(max(0, c - len(free[layer])) for layer, c in per_layer.items())
    draws: list[list[ablation.Head]] = []
    # Distinct sets while there are enough of them: a repeated draw adds nothing to the control's interval.
    for _ in range(50 * n_draws):
        if len(draws) == n_draws:
            break
        pick: list[ablation.Head] = []
        for layer, c in per_layer.items():
            n = min(c, len(free[layer]))
            pick += [(layer, int(h)) for h in rng.choice(free[layer], size=n, replace=False)]
        if short:
            rest = [(layer, h) for layer, hs in free.items() for h in hs if (layer, h) not in pick]
            n = min(short, len(rest))
            pick += [rest[i] for i in rng.choice(len(rest), size=n, replace=False)] if n else []
        if sorted(pick) not in draws:
            draws.append(sorted(pick))
    while len(draws) < n_draws:  # fewer distinct sets exist than draws asked for: repeat them in turn
        draws.append(draws[len(draws) % max(len(draws), 1)] if draws else [])
    return draws, short


def conditions(selected: Sequence[ablation.Head], n_heads: int, n_draws: int, seed: int, model: str,
               step: int) -> tuple[dict[str, list[ablation.Head]], int]:
    """Every condition's heads at one checkpoint (see the module docstring), and the unmatched count.

    The random draws are seeded by ``(seed, model, step)``, so a checkpoint always gets the same ones.
    """
    rng = np.random.default_rng([seed, zlib.crc32(model.encode()), int(step)])
    draws, short = matched_random(selected, n_heads, n_draws, rng)
    layers = sorted({layer for layer, _ in selected})
    out = {CLEAN: [], SELECTED: list(selected)}
    out.update({random_label(i + 1): d for i, d in enumerate(draws)})
    out[LAYER] = [(layer, h) for layer in layers for h in range(n_heads)]
    return out, short


def _heads_text(hs: Sequence[ablation.Head]) -> str:
    return " ".join(f"L{layer}H{h}" for layer, h in hs)


def ablation_over_steps(suite, table: pd.DataFrame, texts: Sequence[str], models: Sequence[str] | None = None,
                        steps: str | Sequence[int] | None = None, rule: str = "induction", k: int = 2,
                        threshold: float = 0.3, n_draws: int = 3, mode: str = "zero",
                        preserve_patterns: bool = False, reference_texts: Sequence[str] | None = None,
                        n_windows: int | None = 16, n_seq: int = 20, seq_len: int = 24, seed: int = 0,
                        head_convention: str = "aoyama_wilcox", word: str = "word", group: str = "item",
                        device: str = "cpu", batch_size: int = 8, progress: bool = True) -> xr.Dataset:
    """Reading-time surprisal, ICL score and repeated-sequence loss of every checkpoint with heads ablated.

    Parameters
    ----------
    table
        Word-level reading-time table (one text per ``group``, words in reading order), e.g.
        :func:`lhp_core.metrics.reading.natural_stories_table`.
    texts
        Held-out texts for the ICL score (windows of the model's context, :func:`heads.text_windows`).
    rule, k, threshold
        Head selection (:data:`RULES`, :func:`select_heads`) from the induction scores of
        :func:`heads.head_scores_over_steps` on the same grid (``n_seq``, ``seq_len``, ``seed``,
        ``head_convention``: its cache is shared with the reading chapter's at equal settings).
    n_draws
        Random matched head sets (the control).
    mode, preserve_patterns
        :func:`lhp_core.ablation.ablate`; ``"mean"`` replaces heads by their mean output over
        ``reference_texts`` (default ``texts``).
    n_windows
        ICL windows (None: all); the repeated-sequence loss uses ``n_seq`` random sequences of
        ``seq_len`` tokens repeated twice, the same probe as the head scores.

    Returns
    -------
    xarray.Dataset
        ``surprisal (model, step, condition, word)`` bits; ``icl``, ``repeat_loss``, ``n_ablated``
        and ``heads`` (text) with dims ``(model, step, condition)``; ``n_unmatched (model, step)``;
        ``induction_score (model, step, layer, head)``; coordinate ``condition``.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1 (the random-head control), got {n_draws}")
    if mode not in ablation.MODES:
        raise ValueError(f"unknown ablation mode {mode!r}; use one of {list(ablation.MODES)}")
    texts = list(texts)
    if not texts:
        raise ValueError("no texts given; pass held-out documents for the ICL score")
    reference = list(reference_texts) if reference_texts is not None else texts
    s = get_suite(suite)
    grid = step_grid(s, models, steps)
    scores = heads.head_scores_over_steps(s, list(grid), steps, n_seq=n_seq, seq_len=seq_len, seed=seed,
                                          convention=head_convention, device=device, progress=progress)
    stim = Stimuli.from_frame(table.assign(**{group: table[group].astype(str)}), word=word, id=group)
    if stim.n_words != len(table):
        raise ValueError(f"{len(table)} rows but {stim.n_words} words; rows of a group must be consecutive")
    plan: dict[tuple[str, int], tuple[dict[str, list[ablation.Head]], int]] = {}
    for m, ss in grid.items():
        induction = scores["induction"].sel({schema.MODEL: m}).dropna(schema.HEAD, how="all")
        n_heads = int(induction.sizes[schema.HEAD])
        for t in ss:
            chosen = select_heads(induction, t, rule, k, threshold)
            plan[m, t] = conditions(chosen, n_heads, n_draws, seed, m, t)
    labels = list(next(iter(plan.values()))[0])
    probes = {m: scores["probe_ids"].sel({schema.MODEL: m}).values for m in grid}

    def compute(ck: Checkpoint) -> xr.Dataset:
        conds, short = plan[ck.model, ck.step]
        lm, tok = ck.lm, ck.tokenizer
        n_ctx = context_length(ck.suite, lm)
        early, late = heads.icl_positions(n_ctx - 1)
        wins = heads.text_windows(tok, texts, n_ctx - 1)[:n_windows]
        probe = probes[ck.model]
        half = probe.shape[1] // 2
        means = (ablation.head_means(lm, heads.text_windows(tok, reference, n_ctx - 1), tok.bos_token_id,
                                     device=ck.device) if mode == "mean" else None)
        surprisal, icl, rep = [], [], []
        for label in labels:
            with ablation.ablate(lm, conds[label], mode, means, preserve_patterns and bool(conds[label])):
                ts = reading.token_scores(lm, tok, stim, max_length=n_ctx, device=ck.device, batch_size=batch_size)
                surprisal.append(reading.word_surprisal(ts, "bow"))
                icl.append(heads.icl_score(heads.position_losses(lm, wins, tok.bos_token_id, device=ck.device),
                                           early, late))
                # second copy, from its second token: what an induction head can predict
                rep.append(float(heads.position_losses(lm, probe, tok.bos_token_id,
                                                       device=ck.device)[:, half + 1:].mean()))
        cw, c = (schema.CONDITION, schema.WORD), schema.CONDITION
        return xr.Dataset({
            "surprisal": (cw, np.stack(surprisal), {"units": "bits", "description": "word surprisal with the "
                                                    "condition's heads ablated, word-boundary corrected"}),
            "icl": (c, np.array(icl), {"units": "nats/token", "description": f"ICL score with the condition's heads "
                                       f"ablated: loss at token {late} minus loss at token {early}"}),
            "repeat_loss": (c, np.array(rep), {"units": "nats/token", "description": "mean loss on the second copy "
                                               "of repeated random sequences (from its second token), heads ablated"}),
            "n_ablated": (c, np.array([len(conds[lb]) for lb in labels]),
                          {"units": "heads", "description": "number of heads ablated in the condition"}),
            "heads": (c, np.array([_heads_text(conds[lb]) for lb in labels], dtype=object),
                      {"units": schema.TEXT, "description": "heads ablated, L<layer>H<head> (layer 1..L)"}),
            "n_unmatched": ((), short, {"units": "heads", "description": "heads per random draw that could not be "
                                        "drawn from the selected head's own layer (too few other heads there)"}),
        }, coords={c: labels, schema.WORD: np.arange(stim.n_words)},
            attrs={"early": early, "late": late, "n_windows": int(len(wins))})

    measure = Measure("ablation", compute, {
        "stimuli": stim.fingerprint(), "texts": config_sha256({"texts": texts}), "n_windows": n_windows,
        "mode": mode, "preserve_patterns": bool(preserve_patterns), "batch_size": batch_size,
        "reference": config_sha256({"texts": reference}) if mode == "mean" else None},
        per_checkpoint=lambda ck: {"conditions": plan[ck.model, ck.step][0],
                                   "probe": config_sha256({"ids": probes[ck.model].tolist()})},
        description=f"surprisal, ICL score and repeated-sequence loss with heads ablated ({mode}"
                    f"{', pattern-preserving' if preserve_patterns else ''}), selected by rule {rule!r}")
    ds = over_steps(s, measure, list(grid), steps, device=device, progress=progress)
    ds["induction_score"] = scores["induction"].sel({schema.MODEL: ds[schema.MODEL], schema.STEP: ds[schema.STEP]})
    ds["induction_score"].attrs = {"units": "attention probability",
                                   "description": "induction score the heads were selected by"}
    ds[schema.CONDITION].attrs.update(schema.COORD_ATTRS[schema.CONDITION])
    ds.attrs.update(rule=rule, rule_description=RULES[rule], k=int(k), threshold=float(threshold),
                    n_draws=int(n_draws), mode=mode, preserve_patterns=bool(preserve_patterns),
                    head_convention=head_convention)
    return ds


def ppp_by_condition(table: pd.DataFrame, ds: xr.Dataset, rt: str, **options) -> xr.Dataset:
    """PPP of every (model, step, condition) of :func:`ablation_over_steps`, paired across conditions.

    One :func:`lhp_core.metrics.reading.ppp_grid` call on every (step, condition) at once, so the
    same words (a word left out at one is left out at all, and counted) and folds are used throughout.
    ``options`` go to it (``measure``, ``exclusions``, ``spillover``, ...).

    Returns
    -------
    xarray.Dataset
        ``ppp``, ``ppp_lo``, ``ppp_hi``, ``ppp_se`` with dims ``(model, step, condition)`` (nats/word),
        coordinate ``tokens_seen``; the attrs of ``ppp_grid`` (exclusions counted).
    """
    sp = ds["surprisal"].transpose(schema.MODEL, schema.STEP, schema.CONDITION, schema.WORD)
    M, S, C, W = sp.shape
    flat = xr.DataArray(sp.values.reshape(M, S * C, W), dims=(schema.MODEL, schema.STEP, schema.WORD),
                        coords={schema.MODEL: sp[schema.MODEL].values, schema.STEP: np.arange(S * C)})
    r = reading.ppp_grid(table, flat, rt, **options)
    dims = (schema.MODEL, schema.STEP, schema.CONDITION)
    out = xr.Dataset({v: (dims, r[v].values.reshape(M, S, C), dict(r[v].attrs))
                      for v in ("ppp", "ppp_lo", "ppp_hi", "ppp_se")},
                     coords={schema.MODEL: sp[schema.MODEL].values, schema.STEP: sp[schema.STEP].values,
                             schema.CONDITION: sp[schema.CONDITION].values})
    if schema.TOKENS_SEEN in ds.coords:
        out = out.assign_coords({schema.TOKENS_SEEN: ds[schema.TOKENS_SEEN]})
    out.attrs.update(r.attrs)
    return out


