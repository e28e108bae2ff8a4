"""Reading times: word surprisal from a causal LM and its psychometric predictive power (PPP).

Word surprisal
--------------
Our tokenizers (and Pythia's) put the space *before* a word into the word's first token
(``" cat"``). Summing the subword log-probabilities of ``" cat"`` then gives the probability
of the *prefix* " cat", which also counts continuations such as " cats" -- word probabilities
computed that way do not sum to one. Pimentel & Meister (2024, "How to compute the
probability of a word") and Oh & Schuler (2024) give the fix for such "beginning-of-word"
(bow) tokenizers::

    p(w_t | w_<t) = p(s(w_t) | s(w_<t)) * P_bow(s(w_<=t)) / P_bow(s(w_<t))

where ``s(.)`` are the word's tokens and ``P_bow(c)`` is the total probability that the token
after context ``c`` begins a new word: a token starting with whitespace, or end of text
(``<|endoftext|>``). The denominator applies only when the word's first token itself carries
the leading space (the first word of a text does not). :func:`word_surprisal` implements
this (``method="bow"``) and the naive subword sum (``method="naive"``) for comparison.
Surprisal is in **bits**.

PPP
---
:func:`delta_loglik`: the mean per-word held-out log-likelihood gain (Delta LL, nats/word)
of an OLS regression of reading time on baseline predictors plus surprisal over the
baseline alone, k-fold cross-validated (Goodkind & Bicknell 2018; Wilcox et al. 2020;
Oh & Schuler 2023). Held-out log-likelihood is the Gaussian density with the training
fold's fitted mean and residual variance (``statsmodels`` ``OLS.fit().scale``, i.e.
SSR / (n - p)). :func:`ppp` builds the design (length, log frequency, surprisal, each with
spillover) from any word-level table; :func:`exclusions` applies the standard exclusions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from lhp_core.tokenizer import bow_mask

LOG2 = float(np.log(2.0))
#: Characters allowed inside a word that counts as "not attached to punctuation".
_CLEAN_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9'’-]*$")


# ------------------------------------------------------------------------ word surprisal


@dataclass
class TokenScores:
    """Per-token quantities from one forward pass over the encoded stimuli (natural log).

    Attributes
    ----------
    logprob
        ``log p(t | t_<t)``, shape ``[n_tokens]``.
    bow_prev
        ``log P_bow`` of the distribution that predicted token t, shape ``[n_tokens]``.
    bow_next
        ``log P_bow`` of the distribution after token t, shape ``[n_tokens]``.
    is_bow
        Whether token t itself begins a word, shape ``[n_tokens]``.
    token_word
        Global word index of each token (-1: whitespace-only token), shape ``[n_tokens]``.
    n_words
        Length of the global word axis.
    """

    logprob: np.ndarray
    bow_prev: np.ndarray
    bow_next: np.ndarray
    is_bow: np.ndarray
    token_word: np.ndarray
    n_words: int


def word_surprisal(scores: TokenScores, method: str = "bow") -> np.ndarray:
    """Word surprisal in bits, shape ``[n_words]``.

    Parameters
    ----------
    scores
        Per-token log-probabilities and bow masses (:func:`token_scores` or hand-built).
    method
        ``"bow"`` (Pimentel & Meister 2024 correction) or ``"naive"`` (sum of subword
        surprisals).
    """
    if method not in ("bow", "naive"):
        raise ValueError(f"unknown method {method!r}; use 'bow' or 'naive'")
    tw = np.asarray(scores.token_word)
    sel = tw >= 0
    lp = np.zeros(scores.n_words)
    np.add.at(lp, tw[sel], np.asarray(scores.logprob)[sel])
    missing = np.setdiff1d(np.arange(scores.n_words), tw[sel])
    if len(missing):
        raise ValueError(f"words {missing[:5].tolist()} have no tokens; check the word spans of the stimuli")
    if method == "bow":
        idx = np.flatnonzero(sel)
        words = tw[idx]
        first = idx[np.r_[True, words[1:] != words[:-1]]]
        last = idx[np.r_[words[1:] != words[:-1], True]]
        if len(first) != scores.n_words:
            raise ValueError("a word's tokens are not contiguous; word surprisal needs contiguous subwords")
        lp = lp + np.asarray(scores.bow_next)[last]
        lp = lp - np.where(np.asarray(scores.is_bow)[first], np.asarray(scores.bow_prev)[first], 0.0)
    return -lp / LOG2


def token_scores(model, tokenizer, stimuli, max_length: int | None = None, device: str = "cpu",
                 batch_size: int = 8, progress: bool = False) -> TokenScores:
    """Run a causal LM over whole texts in BOS-prefixed sliding windows and score every token.

    Windows come from :func:`lhp_core.stimuli.encode` (50 % overlap; each token is scored
    in the window that gives it the most left context).

    Parameters
    ----------
    model
        A causal LM returning ``.logits`` of shape ``[batch, seq, vocab]``.
    tokenizer
        Its tokenizer (``bos_token_id`` set).
    stimuli
        A :class:`lhp_core.stimuli.Stimuli` table.
    max_length
        Context length including BOS; default the model's ``max_position_embeddings``.
    """
    import torch
    from tqdm.auto import tqdm

    from lhp_core.stimuli import encode

    if max_length is None:
        max_length = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if max_length <= 0:
            raise ValueError("the model config has no max_position_embeddings; pass max_length=")
    enc = encode(stimuli, tokenizer, max_length)
    n = enc.n_tokens
    logprob = np.full(n, np.nan)
    bow_prev = np.full(n, np.nan)
    bow_next = np.full(n, np.nan)
    mask_t = None
    order = np.argsort([len(w) for w in enc.windows])[::-1]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for b in tqdm(batches, desc="surprisal", disable=not progress, leave=False):
            width = max(len(enc.windows[i]) for i in b)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else enc.bos_token_id
            ids = torch.full((len(b), width), pad, dtype=torch.long)
            att = torch.zeros((len(b), width), dtype=torch.long)
            for r, i in enumerate(b):
                ids[r, : len(enc.windows[i])] = torch.as_tensor(enc.windows[i])
                att[r, : len(enc.windows[i])] = 1
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits
            logits = logits if logits.dtype == torch.float64 else logits.float()
            logp = torch.log_softmax(logits, dim=-1)  # [batch, seq, vocab]
            if mask_t is None:
                mask_t = torch.as_tensor(bow_mask(tokenizer, logp.shape[-1]), device=logp.device)
            bow = torch.logsumexp(logp[..., mask_t], dim=-1).cpu().numpy()  # [batch, seq]
            tok_lp = torch.gather(logp[:, :-1], 2, ids[:, 1:, None].to(logp.device))[..., 0].cpu().numpy()
            for r, i in enumerate(b):
                keep = enc.keep[i]
                pos = np.flatnonzero(keep)
                g = enc.token_of[i][pos]
                logprob[g] = tok_lp[r, pos - 1]
                bow_prev[g] = bow[r, pos - 1]
                bow_next[g] = bow[r, pos]
    ismask = bow_mask(tokenizer)
    is_bow = ismask[np.clip(enc.token_id, 0, len(ismask) - 1)]
    return TokenScores(logprob, bow_prev, bow_next, is_bow, enc.token_word, enc.n_words)


# ------------------------------------------------------------------------ predictors


def strip_punct(word: str) -> str:
    """The word without leading/trailing punctuation, lower-cased (for frequency look-up)."""
    return re.sub(r"^[^\w]+|[^\w]+$", "", str(word)).lower()


def word_length(words: Sequence[str]) -> np.ndarray:
    """Number of letters/digits in each word (punctuation not counted), shape ``[n]``."""
    return np.array([sum(c.isalnum() for c in str(w)) for w in words], dtype=float)


def log_frequency(words: Sequence[str], lang: str = "en") -> np.ndarray:
    """Zipf frequency (log10 per billion words + 3; ``wordfreq``), shape ``[n]``; 0 if unseen."""
    from wordfreq import zipf_frequency

    cache: dict[str, float] = {}
    out = np.empty(len(words))
    for i, w in enumerate(words):
        k = strip_punct(w)
        if k not in cache:
            cache[k] = zipf_frequency(k, lang) if k else 0.0
        out[i] = cache[k]
    return out


def add_spillover(table: pd.DataFrame, columns: Sequence[str], n: int, group: str | Sequence[str]) -> list[str]:
    """Add ``<col>_prev1 .. <col>_prev<n>``: the value of the k-th preceding word in the same group.

    Rows must be in reading order within each group. Returns the names of all predictor
    columns (current + lagged). Lagged values at the start of a group are NaN.
    """
    names = list(columns)
    g = table.groupby(group, sort=False)
    for c in columns:
        for k in range(1, n + 1):
            table[f"{c}_prev{k}"] = g[c].shift(k)
            names.append(f"{c}_prev{k}")
    return names


def exclusions(table: pd.DataFrame, rt: str, word: str, group: str | Sequence[str],
               rt_range: tuple[float, float] | None = (100.0, 3000.0), drop_zero: bool = False,
               punctuation: bool = True, edges: bool = True) -> pd.DataFrame:
    """Boolean columns, one per exclusion reason (True = excluded), and ``keep``.

    Reasons: ``edge`` first or last word of its group (passage); ``punct`` the word has
    punctuation attached (anything besides letters, digits, inner apostrophes/hyphens);
    ``rt_nan`` missing reading time; ``rt_zero`` zero duration (not fixated, eye tracking,
    when ``drop_zero``); ``rt_range`` outside ``rt_range`` ms (self-paced reading).
    """
    for c in (rt, word):
        if c not in table.columns:
            raise KeyError(f"column {c!r} not in the table; columns are {list(table.columns)}")
    out = pd.DataFrame(index=table.index)
    pos = table.groupby(group, sort=False).cumcount()
    size = table.groupby(group, sort=False)[word].transform("size")
    out["edge"] = ((pos == 0) | (pos == size - 1)) if edges else False
    out["punct"] = ~table[word].astype(str).map(lambda w: bool(_CLEAN_WORD.match(w))) if punctuation else False
    y = pd.to_numeric(table[rt], errors="coerce")
    out["rt_nan"] = y.isna()
    out["rt_zero"] = (y == 0) if drop_zero else False
    if rt_range is not None:
        out["rt_range"] = (y < rt_range[0]) | (y > rt_range[1])
    else:
        out["rt_range"] = False
    out["keep"] = ~out.any(axis=1)
    return out


# ------------------------------------------------------------------------ Delta LL


def kfold_ids(n: int, n_folds: int = 10, seed: int = 0) -> np.ndarray:
    """Fold index of each of ``n`` rows (a seeded random permutation cut into near-equal parts)."""
    if n < n_folds:
        raise ValueError(f"{n} rows cannot be split into {n_folds} folds; use fewer folds or more data")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.empty(n, dtype=int)
    for f, part in enumerate(np.array_split(perm, n_folds)):
        folds[part] = f
    return folds


def _heldout_ll(X: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    import statsmodels.api as sm

    # QR is several times faster than statsmodels' default pinv and equal to ~1e-12 here.
    fit = sm.OLS(y[train], X[train]).fit(method="qr")
    test = ~train
    mu = X[test] @ fit.params
    var = fit.scale
    return -0.5 * (np.log(2 * np.pi * var) + (y[test] - mu) ** 2 / var)


@dataclass
class DeltaLL:
    """Cross-validated log-likelihood gain of the target model over the baseline.

    Attributes
    ----------
    per_word
        Held-out Delta LL of each row (nats), shape ``[n]``.
    folds
        Fold index of each row, shape ``[n]``.
    per_fold
        Mean Delta LL within each test fold, shape ``[n_folds]``.
    mean, lo, hi
        Mean per-word Delta LL and its 95 % interval (t interval across folds).
    """

    per_word: np.ndarray
    folds: np.ndarray
    per_fold: np.ndarray
    mean: float
    lo: float
    hi: float

    def bootstrap(self, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
        """95 % percentile interval of the mean over words resampled with replacement."""
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self.per_word), size=(n_boot, len(self.per_word)))
        means = self.per_word[idx].mean(axis=1)
        return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def cv_loglik(y: np.ndarray, X: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Held-out Gaussian log-likelihood of each row (nats), OLS ``y ~ 1 + X`` fitted on the other folds, ``[n]``."""
    y = np.asarray(y, dtype=float)
    Xc = np.column_stack([np.ones(len(y)), np.asarray(X, dtype=float).reshape(len(y), -1)])
    out = np.empty(len(y))
    for f in np.unique(folds):
        train = folds != f
        out[~train] = _heldout_ll(Xc, y, train)
    return out


def delta_loglik(y: np.ndarray, X_base: np.ndarray, X_full: np.ndarray, n_folds: int = 10,
                 seed: int = 0, folds: np.ndarray | None = None, base_ll: np.ndarray | None = None) -> DeltaLL:
    """k-fold held-out Delta LL (nats/word) of OLS ``y ~ X_full`` over ``y ~ X_base``.

    Parameters
    ----------
    y
        Reading times, shape ``[n]``.
    X_base, X_full
        Design matrices *without* intercept, shapes ``[n, p0]`` and ``[n, p1]``; an
        intercept column is added to both.
    folds
        Optional fold index per row (else :func:`kfold_ids` with ``seed``).
    base_ll
        Optional :func:`cv_loglik` of the baseline on the same folds (reused across checkpoints).
    """
    from scipy import stats

    y = np.asarray(y, dtype=float)
    Xb = np.column_stack([np.ones(len(y)), np.asarray(X_base, dtype=float).reshape(len(y), -1)])
    Xf = np.column_stack([np.ones(len(y)), np.asarray(X_full, dtype=float).reshape(len(y), -1)])
    bad = ~(np.isfinite(y) & np.isfinite(Xb).all(1) & np.isfinite(Xf).all(1))
    if bad.any():
        raise ValueError(f"{bad.sum()} rows have NaN/inf in y or predictors; apply exclusions / dropna first")
    folds = kfold_ids(len(y), n_folds, seed) if folds is None else np.asarray(folds)
    per_word = np.empty(len(y))
    for f in np.unique(folds):
        train = folds != f
        per_word[~train] = _heldout_ll(Xf, y, train) - (0.0 if base_ll is not None else _heldout_ll(Xb, y, train))
    if base_ll is not None:
        per_word -= base_ll
    uf = np.unique(folds)
    per_fold = np.array([per_word[folds == f].mean() for f in uf])
    mean = float(per_word.mean())
    half = float(stats.t.ppf(0.975, len(uf) - 1) * per_fold.std(ddof=1) / np.sqrt(len(uf))) if len(uf) > 1 else np.nan
    return DeltaLL(per_word, folds, per_fold, mean, mean - half, mean + half)


def design(table: pd.DataFrame, word: str, group: str | Sequence[str], surprisal: str | None,
           spillover: int, length: str | None = None, frequency: str | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Add predictors and spillover columns; return ``(table, baseline_cols, surprisal_cols)``.

    Word length and log frequency are computed from ``word`` unless columns are named.
    """
    t = table.copy()
    t["_len"] = word_length(t[word].tolist()) if length is None else t[length].astype(float)
    t["_freq"] = log_frequency(t[word].tolist()) if frequency is None else t[frequency].astype(float)
    base = add_spillover(t, ["_len", "_freq"], spillover, group)
    surp = add_spillover(t, [surprisal], spillover, group) if surprisal is not None else []
    return t, base, surp


def ppp(table: pd.DataFrame, rt: str, surprisal: str, word: str = "word", group: str | Sequence[str] = "item",
        spillover: int = 3, n_folds: int = 10, seed: int = 0, rt_range: tuple[float, float] | None = (100.0, 3000.0),
        drop_zero: bool = False, log_rt: bool = False) -> DeltaLL:
    """PPP of a surprisal column for a reading-time column of any word-level table.

    Parameters
    ----------
    table
        One row per word (or per reader x word), in reading order within ``group``.
    rt
        Reading-time column (ms).
    surprisal
        Surprisal column (bits; any monotone scale works for OLS).
    spillover
        Number of preceding words whose predictors enter (3 for self-paced reading,
        2 for eye tracking).
    rt_range, drop_zero
        Exclusions (see :func:`exclusions`); rows whose spillover predictors are undefined
        (start of a group) are dropped too.
    """
    if surprisal not in table.columns:
        raise KeyError(f"surprisal column {surprisal!r} not in the table; columns are {list(table.columns)}")
    t, base, surp = design(table, word, group, surprisal, spillover)
    ex = exclusions(t, rt, word, group, rt_range=rt_range, drop_zero=drop_zero)
    cols = base + surp
    keep = ex["keep"].to_numpy() & t[cols].notna().all(axis=1).to_numpy()
    if keep.sum() < 2 * n_folds:
        raise ValueError(f"only {keep.sum()} rows survive the exclusions; need at least {2 * n_folds}")
    y = t[rt].to_numpy(dtype=float)[keep]
    y = np.log(y) if log_rt else y
    return delta_loglik(y, t.loc[keep, base].to_numpy(), t.loc[keep, cols].to_numpy(), n_folds=n_folds, seed=seed)


# ------------------------------------------------------------------------ corpora and sweeps


def natural_stories_table(stories: Sequence[int] | None = None) -> pd.DataFrame:
    """Natural Stories words with per-word mean SPR times and GPT-3 surprisal, reading order.

    Returns
    -------
    DataFrame: ``item`` (story), ``position``, ``word`` (as shown in the experiment), ``rt``
    (mean RT, ms), ``n_obs``, ``gpt3_surprisal`` (bits, naive subword sum: the shipped
    file has token log-probs only, not full distributions, so no bow correction is possible).
    """
    from lhp_core.data import naturalstories as ns

    w = ns.words()[["story", "position", "word"]]
    rt = ns.reading_times()[["story", "position", "mean_rt", "n_obs"]]
    g3 = ns.gpt3_word_logprobs()[["story", "position", "surprisal_bits"]]
    t = w.merge(rt, on=["story", "position"], how="left").merge(g3, on=["story", "position"], how="left")
    t = t.rename(columns={"story": "item", "mean_rt": "rt", "surprisal_bits": "gpt3_surprisal"})
    if stories is not None:
        bad = sorted(set(stories) - set(t["item"]))
        if bad:
            raise KeyError(f"stories {bad} do not exist; Natural Stories has stories 1-10")
        t = t[t["item"].isin(list(stories))]
    return t.sort_values(["item", "position"]).reset_index(drop=True)


def provo_table(passages: Sequence[int] | None = None) -> pd.DataFrame:
    """Provo (MoTR) per-word means over readers, skipped words (0 ms) left out of the means.

    Returns
    -------
    DataFrame: ``item`` (passage), ``position`` (0-based word), ``word``, ``n_readers``,
    ``skip_rate``, ``first_duration``, ``gaze_duration``, ``total_duration`` (ms, NaN if no
    reader fixated the word). Words come from the passage text, so every word is present.
    """
    from lhp_core.data import provo

    words = provo.passage_words()
    real = provo.passages().query("condition_id == 1")["item_id"]
    words = words[words["para_nr"].isin(real)]
    m = provo.word_means("exclude").drop(columns="word")
    t = words.merge(m, on=["para_nr", "word_nr"], how="left")
    t = t.rename(columns={"para_nr": "item", "word_nr": "position"})
    if passages is not None:
        t = t[t["item"].isin(list(passages))]
    return t.sort_values(["item", "position"]).reset_index(drop=True)


def _stimuli(table: pd.DataFrame, word: str, group: str):
    from lhp_core.stimuli import Stimuli

    return Stimuli.from_frame(table.assign(**{group: table[group].astype(str)}), word=word, id=group)


def surprisal_over_steps(suite, table: pd.DataFrame, word: str = "word", group: str = "item",
                         models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                         device: str = "cpu", dtype: str = "float32", batch_size: int = 8,
                         cache: bool = True, progress: bool = True):
    """Word surprisal (bits) of every word of ``table`` for each (model, step) of a suite.

    Each group (story / passage) is one text, read whole in BOS-prefixed sliding windows at
    the suite's training context. The sweep engine computes it (sites ``logprobs`` and
    ``logprobs_bow``, reducer ``word_sum``) into a zarr store under
    ``config.results_dir()/reading/<suite>/``, one per (stimuli, models, steps), so an
    interrupted run resumes where it stopped; ``cache=False`` sweeps into a temporary folder.

    Returns
    -------
    xarray.Dataset with ``surprisal`` (bow-corrected) and ``surprisal_naive``, dims
    ``(model, step, word)``, coordinate ``tokens_seen(model, step)``; NaN where a model lacks a
    step. Attr ``store`` names the sweep store (empty with ``cache=False``).
    """
    import xarray as xr

    from lhp_core import schema
    from lhp_core.suites import get_suite
    from lhp_core.sweep import sweep_grid

    stim = _stimuli(table, word, group)
    if stim.n_words != len(table):
        raise ValueError(f"{len(table)} rows but {stim.n_words} words; rows of a group must be consecutive")
    values, tokens, store = sweep_grid(suite, stim, ["logprobs", "logprobs_bow"], ["word_sum"], "reading", models=models,
                                       steps=steps, device=device, dtype=dtype, batch_size=batch_size, cache=cache,
                                       progress=progress)
    dims = (schema.MODEL, schema.STEP, schema.WORD)
    data = {}
    for name, site in (("surprisal", "logprobs_bow"), ("surprisal_naive", "logprobs")):
        arr = np.full(tokens.shape + (stim.n_words,), np.nan)
        if values:
            arr = (-values[site, "word_sum"] / LOG2).transpose(*dims).values
        data[name] = (dims, arr)
    ds = xr.Dataset(data, coords={**tokens.coords, schema.TOKENS_SEEN: tokens})
    ds.attrs.update(suite=str(get_suite(suite).id), units="bits",
                    method="bow (Pimentel & Meister 2024); naive = subword sum", store=store)
    return ds


def ppp_over_steps(table: pd.DataFrame, surprisal, rt: str, word: str = "word", group: str = "item",
                   spillover: int = 3, n_folds: int = 10, seed: int = 0,
                   rt_range: tuple[float, float] | None = (100.0, 3000.0), drop_zero: bool = False):
    """PPP (mean held-out Delta LL, nats/word) of ``surprisal`` ``(model, step, word)`` for ``table[rt]``.

    The same rows and folds are used at every (model, step), so per-word Delta LL is paired
    across steps (for :func:`lhp_core.metrics.changepoint.peak`).

    Returns
    -------
    xarray.Dataset: ``ppp``, ``ppp_lo``, ``ppp_hi`` (95 % t interval across folds) with dims
    ``(model, step)``, and ``delta_ll`` ``(model, step, word)`` over the kept words.
    """
    import xarray as xr

    from lhp_core import schema

    if surprisal.sizes[schema.WORD] != len(table):
        raise ValueError(f"surprisal has {surprisal.sizes[schema.WORD]} words, the table {len(table)} rows")
    t, base, _ = design(table.reset_index(drop=True), word, group, None, spillover)
    ex = exclusions(t, rt, word, group, rt_range=rt_range, drop_zero=drop_zero)
    keep = ex["keep"].to_numpy() & t[base].notna().all(axis=1).to_numpy()
    sp = np.asarray(surprisal.values)  # [model, step, word]
    lagged = np.stack([np.roll(sp, k, axis=-1) for k in range(spillover + 1)], axis=-1)
    pos = t.groupby(group, sort=False).cumcount().to_numpy()
    keep &= pos >= spillover
    y = t[rt].to_numpy(dtype=float)[keep]
    Xb = t.loc[keep, base].to_numpy(dtype=float)
    folds = kfold_ids(int(keep.sum()), n_folds, seed)
    base_ll = cv_loglik(y, Xb, folds)
    M, S = sp.shape[:2]
    ppp_ = np.full((M, S), np.nan)
    lo, hi = ppp_.copy(), ppp_.copy()
    per = np.full((M, S, int(keep.sum())), np.nan)
    for i in range(M):
        for j in range(S):
            xs = lagged[i, j][keep]
            if not np.isfinite(xs).all():
                continue
            r = delta_loglik(y, Xb, np.column_stack([Xb, xs]), folds=folds, base_ll=base_ll)
            ppp_[i, j], lo[i, j], hi[i, j], per[i, j] = r.mean, r.lo, r.hi, r.per_word
    coords = {c: surprisal.coords[c] for c in (schema.MODEL, schema.STEP, schema.TOKENS_SEEN) if c in surprisal.coords}
    ds = xr.Dataset({"ppp": ((schema.MODEL, schema.STEP), ppp_), "ppp_lo": ((schema.MODEL, schema.STEP), lo),
                     "ppp_hi": ((schema.MODEL, schema.STEP), hi),
                     "delta_ll": ((schema.MODEL, schema.STEP, schema.WORD), per)},
                    coords={**coords, schema.WORD: np.flatnonzero(keep)})
    ds.attrs.update(rt=rt, spillover=int(spillover), n_folds=int(n_folds), n_words=int(keep.sum()),
                    n_excluded=int((~keep).sum()), units="nats/word")
    return ds
