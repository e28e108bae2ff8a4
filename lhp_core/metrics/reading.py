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
SSR / (n - p), R's ``sigma(lm)``). :func:`ppp` and :func:`ppp_over_steps` build the design
(length, log frequency, surprisal, each with spillover) from any word-level table and apply
one set of exclusions (:func:`exclusion_table`), reporting how many rows each reason removed.
Defaults follow Aoyama & Wilcox (2025, "Language models grow less humanlike beyond phase
transition", and their public analysis script): spillover 4 words for self-paced reading and
2 for eye tracking (:data:`SPILLOVER`), their exclusions, and the per-word standard error
beside the fold interval.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy import stats
from scipy.linalg import solve_triangular
from threadpoolctl import threadpool_limits
from wordfreq import zipf_frequency

from lhp_core import schema
from lhp_core.data import naturalstories as ns
from lhp_core.data import provo
from lhp_core.deprecation import DEFAULT, Default, RenamedWarning, changed_default, is_default
from lhp_core.measures import Checkpoint, Features, Measure, over_steps
from lhp_core.metrics import changepoint
from lhp_core.progress import bar
from lhp_core.provenance import config_sha256
from lhp_core.scoring import token_logprobs
from lhp_core.stimuli import Stimuli, encode
from lhp_core.suites import context_length
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
        Context length including BOS; default :func:`lhp_core.suites.context_length` of the model.
    """
    max_length = max_length or context_length(None, model)
    enc = encode(stimuli, tokenizer, max_length)
    n = enc.n_tokens
    logprob = np.full(n, np.nan)
    bow_prev = np.full(n, np.nan)
    bow_next = np.full(n, np.nan)
    mask_t = None
    order = np.argsort([len(w) for w in enc.windows])[::-1]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for b in bar(batches, desc="surprisal", disable=not progress, leave=False):
            width = max(len(enc.windows[i]) for i in b)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else enc.bos_token_id
            ids = torch.full((len(b), width), pad, dtype=torch.long)
            att = torch.zeros((len(b), width), dtype=torch.long)
            for r, i in enumerate(b):
                ids[r, : len(enc.windows[i])] = torch.as_tensor(enc.windows[i])
                att[r, : len(enc.windows[i])] = 1
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits  # [batch, seq, vocab]
            if mask_t is None:
                mask_t = torch.as_tensor(np.flatnonzero(bow_mask(tokenizer, logits.shape[-1])), device=logits.device)
            # position p predicts token p + 1; the last position's target is unused (it only gives bow_next)
            nxt = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1).to(logits.device)
            tok_lp, bow = token_logprobs(logits, nxt, mask_t)
            tok_lp, bow = tok_lp[:, :-1].cpu().numpy(), bow.cpu().numpy()  # [batch, seq - 1], [batch, seq]
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


#: Preceding words whose predictors enter the regression, by paradigm (``"spr"`` self-paced reading,
#: ``"eye"`` eye tracking, MoTR included): the current word plus 4 preceding words for self-paced
#: reading, 2 for eye tracking, as in Aoyama & Wilcox (2025; their by_head_analysis.R, following
#: Wilcox et al. 2023): self-paced reading spills over further.
SPILLOVER = {"spr": 4, "eye": 2}
#: Exclusion rule sets (keys) and the reasons each applies, in the order :func:`exclusion_table`
#: attributes a row to one.
REASONS = {
    "aoyama_wilcox": ("rt_nan", "history", "predictor_nan", "surprisal_nan", "spillover_nan", "surprisal_zero",
                      "rt_zero", "rt_range"),
    "lhp": ("edge", "punct", "rt_nan", "rt_zero", "rt_range", "history", "predictor_nan", "surprisal_nan",
            "spillover_nan"),
}
#: Self-paced reading range of the ``"lhp"`` rules (ms), the trimming of Natural Stories' own processing.
LHP_RT_RANGE = (100.0, 3000.0)
#: ``rt_range`` default: the rule set and paradigm decide (see :func:`exclusion_table`).
AUTO = "auto"
#: The column that gives reading order by default, where a table has it (:func:`exclusion_table`).
POSITION = "position"


def strip_punct(word: str) -> str:
    """The word without leading/trailing punctuation, lower-cased (for frequency look-up)."""
    return re.sub(r"^[^\w]+|[^\w]+$", "", str(word)).lower()


def word_length(words: Sequence[str]) -> np.ndarray:
    """Number of letters/digits in each word (punctuation not counted), shape ``[n]``."""
    return np.array([sum(c.isalnum() for c in str(w)) for w in words], dtype=float)


def log_frequency(words: Sequence[str], lang: str = "en") -> np.ndarray:
    """Zipf frequency (log10 per billion words + 3; ``wordfreq``), shape ``[n]``; 0 if unseen."""
    cache: dict[str, float] = {}
    out = np.empty(len(words))
    for i, w in enumerate(words):
        k = strip_punct(w)
        if k not in cache:
            cache[k] = zipf_frequency(k, lang) if k else 0.0
        out[i] = cache[k]
    return out


def _column(table: pd.DataFrame, column: str, role: str) -> None:
    if column not in table.columns:
        raise KeyError(f"{role} column {column!r} not in the table; columns are {list(table.columns)}")


def numeric_column(table: pd.DataFrame, column: str, role: str) -> np.ndarray:
    """``table[column]`` as floats (missing -> NaN), shape ``[n]``; text that is no number is an error.

    Raises
    ------
    ValueError
        Naming the column, how many values are not numbers, examples, and the conversion to apply
        when they mean "missing" (``pd.to_numeric(..., errors="coerce")``).
    """
    _column(table, column, role)
    col = table[column]
    if pd.api.types.is_bool_dtype(col) or not (pd.api.types.is_numeric_dtype(col) or col.dtype == object
                                                or pd.api.types.is_string_dtype(col)):
        raise ValueError(f"{role} column {column!r} has dtype {col.dtype}; it must hold numbers")
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() & col.notna()
    if bad.any():
        examples = sorted({str(v) for v in col[bad]})[:3]
        raise ValueError(f"{role} column {column!r} has {int(bad.sum())} values that are not numbers "
                         f"(e.g. {examples}); if they mean missing, convert first: table[{column!r}] = "
                         f"pd.to_numeric(table[{column!r}], errors='coerce')")
    return num.to_numpy(dtype=float)


def _words(table: pd.DataFrame, word: str) -> list[str]:
    _column(table, word, "word")
    missing = table[word].isna().to_numpy()
    if missing.any():
        rows = table.index[missing][:5].tolist()
        raise ValueError(f"word column {word!r} has {int(missing.sum())} missing values (rows {rows}); fill in the "
                         "words, or pass length= and frequency= columns (and exclusions='aoyama_wilcox', which "
                         "does not read the words)")
    return table[word].astype(str).tolist()


def exclusions(table: pd.DataFrame, rt: str, word: str, group: str | Sequence[str],
               rt_range: tuple[float, float] | None = LHP_RT_RANGE, drop_zero: bool = False,
               punctuation: bool = True, edges: bool = True) -> pd.DataFrame:
    """Boolean columns, one per word-level reason of the ``"lhp"`` rules (True = excluded), and ``keep``.

    Reasons: ``edge`` first or last word of its group (passage); ``punct`` the word has
    punctuation attached (anything besides letters, digits, inner apostrophes/hyphens);
    ``rt_nan`` missing reading time; ``rt_zero`` zero duration (not fixated, eye tracking,
    when ``drop_zero``); ``rt_range`` outside ``rt_range`` ms (self-paced reading). The
    spillover and surprisal reasons need the predictors: see :func:`exclusion_table`.
    """
    for g in _as_list(group):
        _column(table, g, "group")
    y = numeric_column(table, rt, "reading-time")
    words = pd.Series(_words(table, word) if punctuation else [""] * len(table), index=table.index)
    out = pd.DataFrame(index=table.index)
    pos = table.groupby(group, sort=False, dropna=False).cumcount()
    size = table.groupby(group, sort=False, dropna=False)[word].transform("size")
    out["edge"] = ((pos == 0) | (pos == size - 1)) if edges else False
    out["punct"] = ~words.map(lambda w: bool(_CLEAN_WORD.match(w))) if punctuation else False
    out["rt_nan"] = np.isnan(y)
    out["rt_zero"] = (y == 0) if drop_zero else False
    out["rt_range"] = ((y < rt_range[0]) | (y > rt_range[1])) if rt_range is not None else False
    out["keep"] = ~out.any(axis=1)
    return out


def _positions(table: pd.DataFrame, codes: np.ndarray, group: str | Sequence[str], position: str | None) -> np.ndarray:
    """Reading position of each row: ``table[position]``, checked increasing within each group, or the row order."""
    if position is None:
        return table.groupby(group, sort=False, dropna=False).cumcount().to_numpy(dtype=float)
    pos = numeric_column(table, position, "position")
    if np.isnan(pos).any():
        raise ValueError(f"position column {position!r} has {int(np.isnan(pos).sum())} missing values; every row "
                         "needs its reading position")
    order = np.argsort(codes, kind="stable")
    same = codes[order][1:] == codes[order][:-1]
    bad = same & (np.diff(pos[order]) <= 0)
    if bad.any():
        i = order[1:][bad][0]
        key = list(table[_as_list(group)].iloc[[i]].to_dict("records")[0].values())
        key = key[0] if len(key) == 1 else tuple(key)
        row = table.index[i]
        row = row.item() if isinstance(row, np.generic) else row  # numpy 2 would print np.int64(267)
        raise ValueError(f"rows of group {key!r} are out of reading order ({position!r} {pos[i]:g} at row "
                         f"{row!r} comes after {pos[order[:-1][bad][0]]:g}); sort first: "
                         f"table.sort_values({_as_list(group) + [position]!r}) (position=None reads the rows "
                         "in the order given instead)")
    return pos


def _as_list(group: str | Sequence[str]) -> list[str]:
    return [group] if isinstance(group, str) else list(group)


def _lag_rows(codes: np.ndarray, present: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` row number of the j-th preceding present row of the same group (column j-1; -1: none)."""
    out = np.full((len(codes), k), -1, dtype=np.int64)
    rows = np.flatnonzero(present)
    rows = rows[np.argsort(codes[rows], kind="stable")]  # grouped, reading order kept within each group
    g = codes[rows]
    for j in range(1, k + 1):
        prev = np.full(len(rows), -1, dtype=np.int64)
        prev[j:] = np.where(g[j:] == g[:-j], rows[:-j], -1)
        out[rows, j - 1] = prev
    return out


def _lagged(x: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """``x[..., row]`` with its lags: ``[..., n, 1 + k]``, NaN where a lag does not exist."""
    idx = np.concatenate([np.arange(x.shape[-1])[:, None], prev], axis=1)
    out = np.take(x, np.clip(idx, 0, None), axis=-1)
    return np.where(idx >= 0, out, np.nan)


@dataclass
class PPPDesign:
    """Regression inputs of :func:`ppp` / :func:`ppp_over_steps` after the exclusions.

    Attributes
    ----------
    y
        Reading times of the kept rows (ms, or log ms), shape ``[n_kept]``.
    base
        Baseline predictors (length then log frequency, each current + ``spillover`` lags),
        shape ``[n_kept, 2 * (1 + spillover)]``.
    surprisal
        Surprisal with its lags, shape ``[..., n_kept, 1 + spillover]``.
    table
        One row per table row: the reason columns (True = that reason applies), ``reason``
        (the first reason in :data:`REASONS` order that removed the row, "" if kept) and ``keep``.
    excluded
        Rows each reason removed, in :data:`REASONS` order (a row counts once, under its first reason).
    spillover, rules, measure, rt_range
        The settings used (``rt_range`` None: no range applied).
    """

    y: np.ndarray
    base: np.ndarray
    surprisal: np.ndarray
    table: pd.DataFrame
    excluded: dict[str, int]
    spillover: int
    rules: str
    measure: str
    rt_range: tuple[float, float] | None

    @property
    def keep(self) -> np.ndarray:
        """Boolean mask of the kept table rows, shape ``[n_rows]``."""
        return self.table["keep"].to_numpy()


SINCE = "0.2.0"  # the release whose PPP defaults follow Aoyama & Wilcox (CHANGELOG.md)


def _changed_defaults(function: str, name: str, rules: str | Default, spillover: int | None | Default,
                      measure: str, table: pd.DataFrame, group: str | Sequence[str],
                      position: str | None | Default) -> tuple[str, int | None, str | None]:
    """Resolve the exclusions, spillover and position column a call relied on, warning where they changed."""
    if measure not in SPILLOVER:
        raise ValueError(f"unknown measure {measure!r}; use 'spr' (self-paced reading) or 'eye' (eye tracking)")
    # stacklevel 4: warn -> changed_default -> this helper -> the public function -> its caller.
    rules = changed_default(function, name, rules, new="aoyama_wilcox", old="lhp", since=SINCE,
                            keep=f"{name}='lhp'", stacklevel=4)
    spillover = changed_default(function, "spillover", spillover, new=SPILLOVER[measure], old=3, since=SINCE,
                                keep="spillover=3", stacklevel=4)
    if not is_default(position):
        return rules, spillover, position  # type: ignore[return-value]
    if POSITION not in table.columns:
        return rules, spillover, None
    if any(g not in table.columns for g in _as_list(group)):
        return rules, spillover, POSITION  # exclusion_table names the missing group column
    # The column is read by default since 0.2.0: rows out of its order raise (they gave a wrong PPP in
    # silence). Only gaps in it change numbers (they break the spillover history), so only they warn.
    step = pd.to_numeric(table[POSITION], errors="coerce").groupby(
        [table[g] for g in _as_list(group)], sort=False, dropna=False).diff()
    if (step.notna() & (step != 1)).any():
        changed_default(function, "position", DEFAULT, new=POSITION, old=None, since=SINCE,
                        keep="position=None (row order; the column's gaps then do not break the spillover history)",
                        stacklevel=4)
    return rules, spillover, POSITION


def exclusion_table(table: pd.DataFrame, rt: str, surprisal: np.ndarray, word: str = "word",
                    group: str | Sequence[str] = "item", spillover: int | None | Default = DEFAULT,
                    measure: str = "spr", rules: str | Default = DEFAULT,
                    rt_range: tuple[float, float] | None | str = AUTO, drop_zero: bool | None = None,
                    frequency: str | None = None, length: str | None = None,
                    position: str | None | Default = DEFAULT, log_rt: bool = False) -> PPPDesign:
    """Build the PPP regression's predictors and apply one rule set of exclusions, counting each reason.

    Parameters
    ----------
    table
        One row per word (or reader x word), in reading order within ``group``.
    rt
        Reading-time column (ms); numbers or missing values (NaN), nothing else.
    surprisal
        Surprisal (bits) per table row, shape ``[..., n_rows]`` (several checkpoints allowed: a row
        is then excluded for surprisal if any checkpoint that has surprisal at all excludes it, so
        the rows stay paired across checkpoints; a checkpoint that is NaN everywhere is ignored).
    spillover
        Preceding words whose length, frequency and surprisal enter; default
        ``SPILLOVER[measure]`` (4 for ``"spr"``, 2 for ``"eye"``, as Aoyama & Wilcox 2025; it was 3
        before 0.2.0, and a call that relies on it gets a
        :class:`~lhp_core.deprecation.ChangedDefaultWarning`; ``None`` means the same, silently).
    measure
        ``"spr"`` (self-paced reading) or ``"eye"`` (eye tracking, MoTR).
    rules
        ``"aoyama_wilcox"`` (default since 0.2.0, was ``"lhp"``: relying on it warns, as for
        ``spillover``; their by_head_analysis.R): rows without a reading time
        leave the table first (their pipeline keeps only words with one), then a row is dropped
        if the ``spillover`` rows before it in its group are not its ``spillover`` immediate
        predecessors (``history``: the start of a group, a gap in ``position``, or a preceding
        word without a reading time), if any predictor or lag is NaN, if its surprisal is 0
        (``surprisal_zero``) or its reading time is 0 (``rt_zero``). No range, edge or
        punctuation filter. ``"lhp"`` (this project's earlier rules): first/last word of a group
        (``edge``), punctuation attached (``punct``), NaN reading time, reading times outside
        ``rt_range``, zeros if ``drop_zero``, then rows whose lags are undefined (start of a group,
        or a ``position`` gap) or NaN. A word without a reading time keeps its place in the
        history under ``"lhp"`` (its predictors are known).
    rt_range
        ``(lo, hi)`` ms kept inclusive, or None. Default ``"auto"``: :data:`LHP_RT_RANGE`
        (100-3000 ms) for ``rules="lhp"`` with ``measure="spr"``, else None. Eye-tracking
        means whose never-fixated words are coded 0 ms therefore keep those zeros as 0 ms under
        ``"lhp"`` (a skip is a zero-duration reading there) and drop them, counted as ``rt_zero``,
        under ``"aoyama_wilcox"``; a range given by hand that excludes 0 drops them counted as
        ``rt_range``. :func:`provo_table` codes never-fixated words NaN (counted as ``rt_nan``).
    drop_zero
        Drop reading times of exactly 0 ms (``rt_zero``); default True for ``"aoyama_wilcox"``,
        False for ``"lhp"``.
    frequency
        Column of log word frequency (any base and offset: OLS with an intercept is invariant to
        both), e.g. the SUBTLEX or Google Books counts a corpus ships (``natural_stories_table``'s
        ``ngram_log10_freq``); default: ``wordfreq``'s Zipf frequency of ``word`` (log10 per
        billion words + 3), as :func:`log_frequency`.
    length
        Column of word length; default letters and digits of ``word`` (:func:`word_length`).
    position
        Column of reading position (increasing within a group): rows out of its order raise, and a
        gap in it breaks the spillover history. Default: the table's ``"position"`` column where it
        has one (since 0.2.0; a column with gaps then warns that they now count), else row order;
        ``None``: row order.
    log_rt
        Regress log reading time (rows must then be positive).
    """
    rules, spillover, position = _changed_defaults("reading.exclusion_table", "rules", rules, spillover, measure,
                                                   table, group, position)
    if rules not in REASONS:
        raise ValueError(f"unknown exclusions {rules!r}; use one of {list(REASONS)}")
    k = SPILLOVER[measure] if spillover is None else int(spillover)
    if k < 0:
        raise ValueError(f"spillover must be >= 0, got {spillover}")
    if isinstance(rt_range, str):
        if rt_range != AUTO:
            raise ValueError(f"rt_range must be (lo, hi) in ms, None or {AUTO!r}, not {rt_range!r}")
        rt_range = LHP_RT_RANGE if (rules == "lhp" and measure == "spr") else None
    drop_zero = (rules == "aoyama_wilcox") if drop_zero is None else bool(drop_zero)
    n = len(table)
    surprisal = np.asarray(surprisal, dtype=float)
    if surprisal.shape[-1:] != (n,):
        raise ValueError(f"surprisal has shape {surprisal.shape}; expected (..., {n}), one value per table row")
    for g in _as_list(group):
        _column(table, g, "group")
    y = numeric_column(table, rt, "reading-time")
    lengths = numeric_column(table, length, "length") if length else word_length(_words(table, word))
    freqs = numeric_column(table, frequency, "frequency") if frequency else log_frequency(_words(table, word))
    codes = table.groupby(group, sort=False, dropna=False).ngroup().to_numpy()
    pos = _positions(table, codes, group, position)

    rt_nan = np.isnan(y)
    present = ~rt_nan if rules == "aoyama_wilcox" else np.ones(n, dtype=bool)
    prev = _lag_rows(codes, present, k)
    if k:
        back = prev[:, -1]
        history = ~((back >= 0) & (pos[np.clip(back, 0, None)] == pos - k))
    else:
        history = np.zeros(n, dtype=bool)
    flat = surprisal.reshape(-1, n)
    flat = flat[np.isfinite(flat).any(axis=1)] if np.isfinite(flat).any() else flat
    s_bad = ~np.isfinite(flat).all(axis=0)
    p_bad = ~(np.isfinite(lengths) & np.isfinite(freqs))
    spill_bad = ((prev >= 0) & (s_bad | p_bad)[np.clip(prev, 0, None)]).any(axis=1)
    flags = {
        "rt_nan": rt_nan,
        "history": history,
        "predictor_nan": p_bad,
        "surprisal_nan": s_bad,
        "spillover_nan": spill_bad,
        "surprisal_zero": (flat == 0).any(axis=0),
        "rt_zero": (y == 0) if drop_zero else np.zeros(n, dtype=bool),
        "rt_range": ((y < rt_range[0]) | (y > rt_range[1])) if rt_range is not None else np.zeros(n, dtype=bool),
    }
    if rules == "lhp":
        ex = exclusions(table, rt, word, group, rt_range=None)
        flags.update(edge=ex["edge"].to_numpy(), punct=ex["punct"].to_numpy())
    out = pd.DataFrame({r: flags[r] for r in REASONS[rules]}, index=table.index)
    left = np.ones(n, dtype=bool)
    reason = np.full(n, "", dtype=object)
    excluded = {}
    for r in REASONS[rules]:
        hit = flags[r] & left
        reason[hit] = r
        excluded[r] = int(hit.sum())
        left &= ~flags[r]
    out["reason"] = reason
    out["keep"] = left
    yk = y[left]
    if log_rt:
        if (yk <= 0).any():
            raise ValueError(f"log_rt needs positive reading times; {int((yk <= 0).sum())} kept rows are <= 0: "
                             "drop them with drop_zero=True or rt_range")
        yk = np.log(yk)
    p_lag = _lagged(np.stack([lengths, freqs]), prev)  # [2, n, 1 + k]
    base = np.concatenate([p_lag[0][left], p_lag[1][left]], axis=1)
    s_kept = _lagged(surprisal, prev)[..., left, :]
    return PPPDesign(yk, base, s_kept, out, excluded, k, rules, measure, rt_range)


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


def _one_blas_thread():
    # A QR of a few thousand rows by a dozen columns is too small to share: BLAS threads only wait on
    # each other (four times slower on a busy 2-core machine).
    return threadpool_limits(limits=1, user_api="blas")


def _heldout_ll(X: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    # The OLS of statsmodels' method="qr" (Householder QR, then R b = Q'y; scale = SSR / (n - p)) without
    # its rank and covariance work, which cost four times the fit; a PPP curve runs thousands of these.
    Xt, yt = X[train], y[train]
    q, r = np.linalg.qr(Xt)
    beta = solve_triangular(r, q.T @ yt, check_finite=False)
    resid = yt - Xt @ beta
    var = float(resid @ resid) / (len(yt) - X.shape[1])
    test = ~train
    return -0.5 * (np.log(2 * np.pi * var) + (y[test] - X[test] @ beta) ** 2 / var)


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

    @property
    def se(self) -> float:
        """Standard error of the mean over words, ``std(per_word, ddof=1) / sqrt(n)``
        (nats; Aoyama & Wilcox's ``sem``)."""
        return float(np.std(self.per_word, ddof=1) / np.sqrt(len(self.per_word)))

    def bootstrap(self, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
        """95 % percentile interval of the mean over words resampled with replacement."""
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(self.per_word), size=(n_boot, len(self.per_word)))
        means = self.per_word[idx].mean(axis=1)
        return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


@dataclass
class PPPResult(DeltaLL):
    """:class:`DeltaLL` of :func:`ppp` with what the exclusions did.

    Attributes
    ----------
    rows
        Index labels of the table rows regressed, shape ``[n]`` (order of ``per_word``).
    excluded
        Rows each reason removed (:data:`REASONS` order; each row under its first reason).
    n_rows
        Rows of the table before exclusions.
    spillover, measure, rules
        Settings used.
    """

    rows: np.ndarray
    excluded: dict[str, int]
    n_rows: int
    spillover: int
    measure: str
    rules: str


def _matrix(X, n: int, name: str) -> np.ndarray:
    """``X`` as an ``[n, p]`` float matrix; a 1-D ``[n]`` array is one column. Anything else is an error."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1 and len(X) == n:
        return X[:, None]
    if X.ndim != 2 or X.shape[0] != n:
        hint = f"; pass {name}.T, it looks transposed" if X.ndim == 2 and X.shape[1] == n else ""
        raise ValueError(f"{name} has shape {X.shape}; expected (n, p) = ({n}, p), one row per reading time "
                         f"(1-D ({n},) for one column){hint}")
    return X


def _response(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y has shape {y.shape}; expected 1-D (n,), one reading time per row")
    return y


def cv_loglik(y: np.ndarray, X: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Held-out Gaussian log-likelihood of each row (nats), OLS ``y ~ 1 + X`` fitted on the other folds, ``[n]``.

    ``X`` is ``[n, p]`` (or ``[n]`` for one predictor); ``folds`` ``[n]``.
    """
    y = _response(y)
    Xc = np.column_stack([np.ones(len(y)), _matrix(X, len(y), "X")])
    folds = np.asarray(folds)
    if folds.shape != y.shape:
        raise ValueError(f"folds has shape {folds.shape}; expected ({len(y)},), one fold per row")
    out = np.empty(len(y))
    with _one_blas_thread():
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
        Design matrices *without* intercept, shapes ``[n, p0]`` and ``[n, p1]`` (a 1-D ``[n]``
        array is one column; any other shape is an error); an intercept column is added to both.
    folds
        Optional fold index per row (else :func:`kfold_ids` with ``seed``).
    base_ll
        Optional :func:`cv_loglik` of the baseline on the same folds (reused across checkpoints).
    """
    y = _response(y)
    Xb = np.column_stack([np.ones(len(y)), _matrix(X_base, len(y), "X_base")])
    Xf = np.column_stack([np.ones(len(y)), _matrix(X_full, len(y), "X_full")])
    bad = ~(np.isfinite(y) & np.isfinite(Xb).all(1) & np.isfinite(Xf).all(1))
    if bad.any():
        raise ValueError(f"{bad.sum()} rows have NaN/inf in y or predictors; apply exclusions / dropna first")
    folds = kfold_ids(len(y), n_folds, seed) if folds is None else np.asarray(folds)
    per_word = np.empty(len(y))
    with _one_blas_thread():
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


def _enough(d: PPPDesign, n_folds: int) -> None:
    n = len(d.y)
    if n < 2 * n_folds:
        counts = ", ".join(f"{r} {c}" for r, c in d.excluded.items() if c)
        raise ValueError(f"only {n} rows survive the exclusions ({counts}); need at least {2 * n_folds}: "
                         "give more words, fewer folds, or other exclusions=")


def ppp(table: pd.DataFrame, rt: str, surprisal: str, word: str = "word", group: str | Sequence[str] = "item",
        spillover: int | None | Default = DEFAULT, n_folds: int = 10, seed: int = 0,
        rt_range: tuple[float, float] | None | str = AUTO, drop_zero: bool | None = None, log_rt: bool = False, *,
        measure: str = "spr", exclusions: str | Default = DEFAULT, frequency: str | None = None,
        length: str | None = None, position: str | None | Default = DEFAULT) -> PPPResult:
    """PPP of a surprisal column for a reading-time column of any word-level table.

    Delta LL of OLS ``rt ~ length + log frequency + surprisal`` (each for the current word and
    ``spillover`` preceding words) over the same without surprisal, 10-fold cross-validated, as
    Aoyama & Wilcox (2025) after Wilcox et al. (2023). Defaults follow them: spillover 4 for
    self-paced reading and 2 for eye tracking (:data:`SPILLOVER`), their exclusions
    (``"aoyama_wilcox"``), no reading-time range. ``exclusions="lhp"``, ``spillover=3`` reproduce
    this project's earlier numbers. Both defaults changed in 0.2.0, so a call that relies on either
    gets a :class:`~lhp_core.deprecation.ChangedDefaultWarning` naming the old value; pass them to
    silence it. Every option is documented in :func:`exclusion_table`.

    Parameters
    ----------
    table
        One row per word (or per reader x word), in reading order within ``group``.
    rt
        Reading-time column (ms).
    surprisal
        Surprisal column (bits; any monotone scale works for OLS).

    Returns
    -------
    :class:`PPPResult`: the :class:`DeltaLL` (``mean``, fold interval ``lo``/``hi``, ``se``), the
    rows used and the rows each exclusion removed (``excluded``).
    """
    exclusions, spillover, position = _changed_defaults("reading.ppp", "exclusions", exclusions, spillover, measure,
                                                        table, group, position)
    s = numeric_column(table, surprisal, "surprisal")
    d = exclusion_table(table, rt, s, word=word, group=group, spillover=spillover, measure=measure, rules=exclusions,
                        rt_range=rt_range, drop_zero=drop_zero, frequency=frequency, length=length,
                        position=position, log_rt=log_rt)
    _enough(d, n_folds)
    r = delta_loglik(d.y, d.base, np.column_stack([d.base, d.surprisal]), n_folds=n_folds, seed=seed)
    return PPPResult(r.per_word, r.folds, r.per_fold, r.mean, r.lo, r.hi, rows=table.index[d.keep].to_numpy(),
                     excluded=d.excluded, n_rows=len(table), spillover=d.spillover, measure=d.measure, rules=d.rules)


# ------------------------------------------------------------------------ corpora and sweeps


def natural_stories_table(stories: Sequence[int] | None = None) -> pd.DataFrame:
    """Natural Stories words with per-word mean SPR times and GPT-3 surprisal, reading order.

    Returns
    -------
    DataFrame: ``item`` (story), ``position``, ``word`` (as shown in the experiment), ``rt``
    (mean RT, ms), ``n_obs``, ``gpt3_surprisal`` (bits, naive subword sum: the shipped
    file has token log-probs only, not full distributions, so no bow correction is possible),
    ``ngram_log10_freq`` (log10 of the word's Google Books unigram count as the corpus ships it,
    punctuation stripped; words the corpus has only with punctuation, "Mr.", use that form;
    NaN where the count is 0), for ``ppp(..., frequency="ngram_log10_freq")``.
    """
    w = ns.words()[["story", "position", "word"]]
    rt = ns.reading_times()[["story", "position", "mean_rt", "n_obs"]]
    g3 = ns.gpt3_word_logprobs()[["story", "position", "surprisal_bits"]]
    uni = ns.ngram_frequencies(1)
    key = ["story", "position"]
    counts = uni[uni.field == "word"].set_index(key)["count"]
    counts = counts.combine_first(uni[uni.field == "whole"].set_index(key)["count"]).astype(float)
    freq = np.log10(counts.where(counts > 0)).rename("ngram_log10_freq").reset_index()
    t = w.merge(rt, on=key, how="left").merge(g3, on=key, how="left").merge(freq, on=key, how="left")
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
    return Stimuli.from_frame(table.assign(**{group: table[group].astype(str)}), word=word, id=group)


def surprisal_over_steps(suite, table: pd.DataFrame, word: str = "word", group: str = "item",
                         models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                         device: str = "cpu", dtype: str | None = None, batch_size: int = 8,
                         cache: bool = True, progress: bool = True) -> xr.Dataset:
    """Word surprisal (bits) of every word of ``table`` for each (model, step) of a suite.

    Each group (story / passage) is one text, read whole in BOS-prefixed sliding windows at the
    suite's training context. The sweep engine computes the word log-probabilities (sites
    ``logprobs_bow`` and ``logprobs``, reducer ``word_sum``) through the measure runner
    (:func:`lhp_core.measures.over_steps`), so an interrupted run resumes where it stopped and a
    finished one loads no checkpoint again; ``cache=False`` keeps nothing on disk.

    Returns
    -------
    xarray.Dataset
        ``surprisal`` (bow-corrected, Pimentel & Meister 2024) and ``surprisal_naive`` (subword
        sum), bits, dims ``(model, step, word)``, coordinate ``tokens_seen(model, step)``; NaN
        where a model lacks a step.
    """
    stim = _stimuli(table, word, group)
    if stim.n_words != len(table):
        raise ValueError(f"{len(table)} rows but {stim.n_words} words; rows of a group must be consecutive")

    def compute(ck: Checkpoint) -> xr.Dataset:
        out = {}
        for name, site, text in (("surprisal", "logprobs_bow", "word surprisal, word-boundary corrected "
                                  "(Pimentel & Meister 2024)"),
                                 ("surprisal_naive", "logprobs",
                                  "word surprisal as the plain sum of its subword tokens")):
            lp = ck.features(site, "word_sum").values.astype(np.float64)
            out[name] = (schema.WORD, -lp / LOG2, {"units": "bits", "description": text})
        return xr.Dataset(out, coords={schema.WORD: np.arange(stim.n_words)})

    measure = Measure("surprisal", compute, {"stimuli": stim.fingerprint()},
                      features=Features(stim, ("logprobs", "logprobs_bow"), ("word_sum",), batch_size=batch_size),
                      description="word surprisal of a reading-time corpus, texts read whole in sliding windows")
    ds = over_steps(suite, measure, models, steps, device=device, dtype=dtype, cache=cache, progress=progress)
    ds.attrs.update(units="bits", method="bow (Pimentel & Meister 2024); naive = subword sum")
    return ds


def ppp_grid(table: pd.DataFrame, surprisal, rt: str, word: str = "word", group: str | Sequence[str] = "item",
             spillover: int | None | Default = DEFAULT, n_folds: int = 10, seed: int = 0,
             rt_range: tuple[float, float] | None | str = AUTO, drop_zero: bool | None = None,
             log_rt: bool = False, *, measure: str = "spr", exclusions: str | Default = DEFAULT,
             frequency: str | None = None, length: str | None = None,
             position: str | None | Default = DEFAULT):
    """PPP (mean held-out Delta LL, nats/word) of a surprisal grid ``(model, step, word)`` in memory for ``table[rt]``.

    :func:`ppp_over_steps` computes the same from a suite through the measure runner (cached by
    weights, with provenance); this is the regression on a given ``surprisal`` (simulated, or saved).

    The regression, defaults and options are those of :func:`ppp` (see :func:`exclusion_table`).
    The same rows and folds are used at every (model, step), so per-word Delta LL is paired
    across steps (for :func:`lhp_core.metrics.changepoint.peak`): a word whose surprisal (or a
    preceding word's) is NaN, or 0 under ``"aoyama_wilcox"``, at any checkpoint is left out at
    all of them and counted; a (model, step) with no surprisal at all (a step the model lacks)
    gives NaN.

    Returns
    -------
    xarray.Dataset: ``ppp``, ``ppp_lo``, ``ppp_hi`` (95 % t interval across folds), ``ppp_se``
    (standard error over words) with dims ``(model, step)``, and ``delta_ll`` ``(model, step,
    word)`` over the kept words (``word`` = row number in ``table``). Attrs: settings, ``n_rows``,
    ``n_words`` (kept), ``n_excluded`` and ``excluded_<reason>`` (rows each reason removed,
    :data:`REASONS`).
    """
    exclusions, spillover, position = _changed_defaults("reading.ppp_grid", "exclusions", exclusions,
                                                        spillover, measure, table, group, position)
    dims = (schema.MODEL, schema.STEP, schema.WORD)
    if set(surprisal.dims) != set(dims):
        raise ValueError(f"surprisal has dims {surprisal.dims}; expected {dims} (reading.surprisal_over_steps)")
    if surprisal.sizes[schema.WORD] != len(table):
        raise ValueError(f"surprisal has {surprisal.sizes[schema.WORD]} words, the table {len(table)} rows")
    sp = np.asarray(surprisal.transpose(*dims).values, dtype=float)  # [model, step, word]
    d = exclusion_table(table, rt, sp, word=word, group=group, spillover=spillover, measure=measure, rules=exclusions,
                        rt_range=rt_range, drop_zero=drop_zero, frequency=frequency, length=length,
                        position=position, log_rt=log_rt)
    _enough(d, n_folds)
    n_kept = len(d.y)
    folds = kfold_ids(n_kept, n_folds, seed)
    base_ll = cv_loglik(d.y, d.base, folds)
    M, S = sp.shape[:2]
    ppp_ = np.full((M, S), np.nan)
    lo, hi, se = ppp_.copy(), ppp_.copy(), ppp_.copy()
    per = np.full((M, S, n_kept), np.nan)
    for i in range(M):
        for j in range(S):
            xs = d.surprisal[i, j]
            if not np.isfinite(xs).all():  # a step this model lacks: NaN everywhere (exclusion_table)
                continue
            ppp_[i, j], lo[i, j], hi[i, j], se[i, j], per[i, j] = _ppp_fit(d, xs, folds, base_ll)
    coords = {c: surprisal.coords[c] for c in (schema.MODEL, schema.STEP, schema.TOKENS_SEEN) if c in surprisal.coords}
    ms = (schema.MODEL, schema.STEP)
    ds = xr.Dataset({k: (ms if v.ndim == 2 else dims, v, _PPP_TEXT[k])
                     for k, v in (("ppp", ppp_), ("ppp_lo", lo), ("ppp_hi", hi), ("ppp_se", se), ("delta_ll", per))},
                    coords={**coords, schema.WORD: np.flatnonzero(d.keep)})
    ds.attrs.update(_ppp_attrs(d, table, rt, frequency, log_rt, n_folds))
    return ds


#: Units and descriptions of the variables of :func:`ppp_grid` and :func:`ppp_over_steps`.
_PPP_TEXT = {
    "ppp": {"units": "nats/word", "description": "mean held-out Delta LL per word (PPP)"},
    "ppp_lo": {"units": "nats/word", "description": "lower end of the 95 % t interval across folds"},
    "ppp_hi": {"units": "nats/word", "description": "upper end of the 95 % t interval across folds"},
    "ppp_se": {"units": "nats/word", "description": "standard error over words: std(delta_ll, ddof=1) / sqrt(n)"},
    "delta_ll": {"units": "nats", "description": "held-out Delta LL of each kept word"},
}


def _ppp_fit(d: PPPDesign, xs: np.ndarray, folds: np.ndarray, base_ll: np.ndarray):
    """``(ppp, lo, hi, se, per_word [n_kept])`` of one checkpoint's kept-word surprisal ``xs``."""
    r = delta_loglik(d.y, d.base, np.column_stack([d.base, xs]), folds=folds, base_ll=base_ll)
    return r.mean, r.lo, r.hi, r.se, r.per_word


def _ppp_attrs(d: PPPDesign, table: pd.DataFrame, rt: str, frequency: str | None, log_rt: bool,
               n_folds: int) -> dict:
    n_kept = len(d.y)
    rng = "none" if d.rt_range is None else f"{d.rt_range[0]:g}-{d.rt_range[1]:g} ms"
    return dict(rt=rt, spillover=int(d.spillover), paradigm=d.measure, exclusions=d.rules, rt_range=rng,
                frequency=frequency or "wordfreq zipf", log_rt=bool(log_rt), n_folds=int(n_folds),
                n_rows=len(table), n_words=int(n_kept), n_excluded=int(len(table) - n_kept), units="nats/word",
                **{f"excluded_{r}": int(c) for r, c in d.excluded.items()})


def ppp_over_steps(suite, table, rt: str,
                   models: Sequence[str] | None = None, steps: Sequence[int] | None = None, device: str = "cpu",
                   *, surprisal: str = "surprisal", word: str = "word", group: str | Sequence[str] = "item",
                   spillover: int | None | Default = DEFAULT, n_folds: int = 10, seed: int = 0,
                   rt_range: tuple[float, float] | None | str = AUTO, drop_zero: bool | None = None,
                   log_rt: bool = False, measure: str = "spr", exclusions: str | Default = DEFAULT,
                   frequency: str | None = None, length: str | None = None,
                   position: str | None | Default = DEFAULT,
                   batch_size: int = 8, progress: bool = True) -> xr.Dataset:
    """PPP (mean held-out Delta LL, nats/word) of a suite's word surprisal for ``table[rt]``, at every (model, step).

    The word surprisal comes from :func:`surprisal_over_steps` (``surprisal``: ``"surprisal"``, the
    word-boundary-corrected one, or ``"surprisal_naive"``), and each checkpoint's regression goes
    through the measure runner (:func:`lhp_core.measures.over_steps`): cached by the checkpoint's
    weights, with provenance. The rows left out are decided on the whole grid first, as :func:`ppp_grid`
    does (a word whose surprisal is NaN, or 0 under ``"aoyama_wilcox"``, at any checkpoint is left out at
    all of them), and are part of each checkpoint's cache key; so per-word Delta LL is paired across
    steps and the numbers equal :func:`ppp_grid` on the same surprisal.

    Parameters
    ----------
    suite
        Suite id, folder or :class:`lhp_core.suites.Suite`.
    table, rt
        Reading-time table (:func:`natural_stories_table`, :func:`provo_table`) and its reading-time column.
    models, steps, device
        The grid and device, as for every ``*_over_steps`` driver.
    surprisal
        Which variable of :func:`surprisal_over_steps` is the predictor.
    word, group, spillover, n_folds, seed, rt_range, drop_zero, log_rt, measure, exclusions, frequency, length, position
        As for :func:`ppp`.

    Returns
    -------
    xarray.Dataset: ``ppp``, ``ppp_lo``, ``ppp_hi`` (95 % t interval across folds), ``ppp_se``
    (standard error over words) with dims ``(model, step)``, and ``delta_ll`` ``(model, step,
    word)`` over the kept words (``word`` = row number in ``table``); coordinates ``tokens_seen``
    and ``checkpoint_id``. Attrs: the runner's provenance (``measure`` is ``"ppp"``), settings (the
    reading paradigm in ``paradigm``), ``n_rows``, ``n_words`` (kept),
    ``n_excluded`` and ``excluded_<reason>`` (rows each reason removed, :data:`REASONS`).
    """
    settings = dict(word=word, group=group, spillover=spillover, n_folds=n_folds, seed=seed, rt_range=rt_range,
                    drop_zero=drop_zero, log_rt=log_rt, measure=measure, exclusions=exclusions, frequency=frequency,
                    length=length, position=position)
    if isinstance(suite, pd.DataFrame):  # the signature of the previous release: (table, surprisal, rt, ...)
        warnings.warn("reading.ppp_over_steps(table, surprisal, rt, ...) is deprecated and goes in the next "
                      "release: use reading.ppp_over_steps(suite, table, rt, models, steps, ...) (through the measure "
                      "runner) or reading.ppp_grid(table, surprisal, rt, ...) for a surprisal grid in memory",
                      RenamedWarning, stacklevel=2)
        if models is not None or steps is not None:
            raise TypeError("ppp_over_steps(table, surprisal, rt, ...) takes its other settings by keyword; "
                            "call reading.ppp_grid with them instead")
        return ppp_grid(suite, table, rt, **settings)
    if surprisal not in ("surprisal", "surprisal_naive"):
        raise ValueError(f"surprisal={surprisal!r}; use 'surprisal' (word-boundary corrected) or 'surprisal_naive'")
    exclusions, spillover, position = _changed_defaults("reading.ppp_over_steps", "exclusions", exclusions,
                                                        spillover, measure, table, group, position)
    groups = [group] if isinstance(group, str) else list(group)
    sp_ds = surprisal_over_steps(suite, table, word, groups[0], models, steps, device=device, batch_size=batch_size,
                                 progress=progress)
    sp = np.asarray(sp_ds[surprisal].transpose(schema.MODEL, schema.STEP, schema.WORD).values, dtype=float)
    d = exclusion_table(table, rt, sp, word=word, group=group, spillover=spillover, measure=measure, rules=exclusions,
                        rt_range=rt_range, drop_zero=drop_zero, frequency=frequency, length=length,
                        position=position, log_rt=log_rt)
    _enough(d, n_folds)
    folds = kfold_ids(len(d.y), n_folds, seed)
    base_ll = cv_loglik(d.y, d.base, folds)
    at = {(str(m), int(t)): (i, j) for i, m in enumerate(sp_ds[schema.MODEL].values)
          for j, t in enumerate(sp_ds[schema.STEP].values)}
    kept = np.flatnonzero(d.keep)

    def compute(ck: Checkpoint) -> xr.Dataset:
        out = _ppp_fit(d, d.surprisal[at[ck.model, ck.step]], folds, base_ll)
        return xr.Dataset({k: ((schema.WORD,) if k == "delta_ll" else (), v, _PPP_TEXT[k])
                           for k, v in zip(("ppp", "ppp_lo", "ppp_hi", "ppp_se", "delta_ll"), out)},
                          coords={schema.WORD: kept})

    attrs = _ppp_attrs(d, table, rt, frequency, log_rt, n_folds)
    key = {"stimuli": _stimuli(table, word, groups[0]).fingerprint(), "surprisal": surprisal, "seed": int(seed),
           "rows": config_sha256({"y": np.round(d.y, 12).tolist(), "base": np.round(d.base, 12).tolist(),
                                  "kept": kept.tolist()}), **attrs}
    ds = over_steps(suite, Measure("ppp", compute, key, description="predictive power of surprisal for reading "
                                   "times (held-out Delta LL per word)"), models, steps, device=device,
                    progress=progress)
    ds.attrs.update(attrs)
    return ds


def ppp_peaks(ppp_ds: xr.Dataset, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Where each model's PPP peaks over training, with a bootstrap interval over words.

    The peak is the step of the largest mean per-word Delta LL; words are resampled with
    replacement, paired across steps (:func:`lhp_core.metrics.changepoint.peak`), as Aoyama &
    Wilcox (2025) locate the PPP peak.

    Parameters
    ----------
    ppp_ds
        :func:`ppp_over_steps` result.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``step``, ``lo``, ``hi``, ``value`` (PPP at the peak),
        ``first`` and ``last`` (PPP at the model's first and last step), ``falls`` (the last PPP
        is below the peak's lower fold bound: it fell after the peak).
    """
    rows = []
    for m in ppp_ds[schema.MODEL].values:
        d = ppp_ds.sel({schema.MODEL: m})
        have = np.isfinite(d["ppp"].values)
        steps = d[schema.STEP].values[have]
        pk = changepoint.peak(steps, d["delta_ll"].values[have], n_boot=n_boot, seed=seed)
        at = d.sel({schema.STEP: int(pk.step)})
        last = float(d["ppp"].values[have][-1])
        rows.append({"model": m, "step": pk.step, "lo": pk.lo, "hi": pk.hi, "value": pk.value,
                     "first": float(d["ppp"].values[have][0]), "last": last,
                     "falls": bool(last < float(at["ppp_lo"]))})
    return pd.DataFrame(rows, columns=["model", "step", "lo", "hi", "value", "first", "last", "falls"])
