"""Instruction following, measured offline: does the greedy next word obey the prompt's format?

Prompts come from fixed templates filled with corpus vocabulary (deterministic for a
seed), each with the set of answers it allows: ``"Answer yes or no: is the dog ...?
Answer:"`` allows {yes, no}; ``"Pick A or B: (A) house (B) water. Answer:"`` allows
{a, b}. The measure is the share of prompts whose greedy continuation's first word is in
the allowed set -- whether the model follows the requested format, not whether the answer
is right (the suites are too small to know facts; format compliance is what rises or not).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from lhp_core.measures import Checkpoint, Measure, over_steps
from lhp_core.provenance import config_sha256

TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "yes_no": ("Answer yes or no: is the {w1} like the {w2}?\nAnswer:", ("yes", "no")),
    "yes_no_q": ("Question: can a {w1} be {w2}? Answer yes or no.\nAnswer:", ("yes", "no")),
    "pick_ab": ("Pick A or B: (A) {w1} (B) {w2}.\nAnswer:", ("a", "b")),
    "true_false": ("True or false: the {w1} is a {w2}.\nAnswer:", ("true", "false")),
}

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def corpus_vocabulary(texts: Iterable[str], n_words: int = 200, min_len: int = 3) -> list[str]:
    """The ``n_words`` most frequent lower-case alphabetic words of at least ``min_len`` letters.

    Ties are broken alphabetically so the list is deterministic.
    """
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(w for w in (m.group(0) for m in _WORD.finditer(t)) if w.islower() and len(w) >= min_len)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) < 2:
        raise ValueError("the texts have fewer than 2 usable words; pass real corpus text")
    return [w for w, _ in ranked[:n_words]]


def build_prompts(vocabulary: Sequence[str], n_per_template: int = 25, seed: int = 0,
                  templates: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> pd.DataFrame:
    """Fill each template with random word pairs from ``vocabulary``.

    Returns
    -------
    DataFrame with ``template``, ``prompt``, ``allowed`` ('|'-joined answers, lower case).
    """
    templates = TEMPLATES if templates is None else templates
    vocab = sorted(set(vocabulary))
    if len(vocab) < 2:
        raise ValueError(f"need at least 2 distinct vocabulary words; got {len(vocab)}")
    rng = np.random.default_rng(seed)
    rows = []
    for name, (text, allowed) in templates.items():
        for _ in range(n_per_template):
            w1, w2 = rng.choice(vocab, size=2, replace=False)
            rows.append((name, text.format(w1=w1, w2=w2), "|".join(a.lower() for a in allowed)))
    return pd.DataFrame(rows, columns=["template", "prompt", "allowed"])


def first_word(text: str) -> str:
    """First alphabetic word of a continuation, lower-cased ('' if there is none)."""
    m = _WORD.search(text)
    return m.group(0).lower() if m else ""


@torch.inference_mode()
def greedy_continuations(model: torch.nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int = 3,
                         batch_size: int = 32) -> list[str]:
    """Greedy (argmax) continuation of each prompt, decoded to text.

    Prompts are batched only with prompts of the same token length, so there is no
    padding and the result equals one-at-a-time decoding.

    Parameters
    ----------
    model : causal LM returning ``.logits`` of shape (batch, seq, vocab)
    prompts : (n,) texts; a BOS token is prepended when the tokenizer has one
    """
    device = next(model.parameters()).device
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    ids = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    out: list[str] = [""] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        by_len.setdefault(len(x), []).append(i)
    for idx_all in by_len.values():
        for b0 in range(0, len(idx_all), batch_size):
            idx = idx_all[b0:b0 + batch_size]
            x = torch.tensor([ids[i] for i in idx], device=device)
            new = []
            for _ in range(max_new_tokens):
                nxt = model(input_ids=x).logits[:, -1].argmax(-1)
                new.append(nxt)
                x = torch.cat([x, nxt[:, None]], dim=1)
            gen = torch.stack(new, dim=1).cpu().tolist()
            for i, g in zip(idx, gen):
                out[i] = tokenizer.decode(g)
    return out


def score_answers(continuations: Sequence[str], allowed: Sequence[str]) -> np.ndarray:
    """(n,) bool: the first word of each continuation is one of its '|'-joined allowed answers."""
    if len(continuations) != len(allowed):
        raise ValueError(f"{len(continuations)} continuations for {len(allowed)} prompts")
    return np.array([first_word(c) in set(a.split("|")) for c, a in zip(continuations, allowed)])


def instruction_following(model: torch.nn.Module, tokenizer, prompts: pd.DataFrame,
                          max_new_tokens: int = 3) -> pd.DataFrame:
    """Run :func:`greedy_continuations` and :func:`score_answers` on a :func:`build_prompts` table.

    Returns
    -------
    the table with ``continuation``, ``answer`` (first word) and ``follows`` (bool) added;
    ``follows.mean()`` is the instruction-following share.
    """
    missing = {"prompt", "allowed"} - set(prompts.columns)
    if missing:
        raise KeyError(f"prompt table lacks columns {sorted(missing)}; build it with build_prompts()")
    cont = greedy_continuations(model, tokenizer, prompts["prompt"].tolist(), max_new_tokens)
    res = prompts.copy()
    res["continuation"] = cont
    res["answer"] = [first_word(c) for c in cont]
    res["follows"] = score_answers(cont, prompts["allowed"].tolist())
    return res


def instruction_following_over_steps(suite, prompts: pd.DataFrame, models: Sequence[str] | None = None,
                                     steps: Sequence[int] | None = None, device: str = "cpu", max_new_tokens: int = 3,
                                     progress: bool = True) -> xr.Dataset:
    """Instruction-following share for every checkpoint (through :func:`lhp_core.measures.over_steps`).

    Parameters
    ----------
    prompts
        A :func:`build_prompts` table (the same prompts at every checkpoint).

    Returns
    -------
    xarray.Dataset
        ``instruction_following`` (share of prompts whose greedy answer is an allowed word) and
        ``n_prompts``, dims ``(model, step)``.
    """
    missing = {"prompt", "allowed"} - set(prompts.columns)
    if missing:
        raise KeyError(f"prompt table lacks columns {sorted(missing)}; build it with build_prompts()")

    def compute(ck: Checkpoint) -> xr.Dataset:
        res = instruction_following(ck.lm, ck.tokenizer, prompts, max_new_tokens)
        return xr.Dataset({
            "instruction_following": ((), float(res["follows"].mean()),
                                      {"units": "share of prompts",
                                       "description": "share of prompts whose greedy answer is one the prompt allows"}),
            "n_prompts": ((), len(res), {"units": "prompts", "description": "prompts asked"}),
        })

    key = {"prompts": config_sha256({"p": prompts[["prompt", "allowed"]].values.tolist()}),
           "max_new_tokens": max_new_tokens}
    measure = Measure("instruction_following", compute, key,
                      description="greedy answers in the format the prompt asks for (lhp_core.metrics.instruct)")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)
