"""Natural Stories (Futrell et al., 2021): words, self-paced reading times, GPT-3 log-probs, n-gram counts.

Every table is keyed by ``story`` (1–10) and ``position`` (1-based word position in the
story, the corpus' ``zone``); the 10,256 words are those shown to self-paced-reading
participants (``naturalstories_RTS/all_stories.tok``).

Alignment caveat (see the dataset's SOURCE.md): upstream announced in 2025 that the SPR
data were misaligned by one position and regenerated the per-subject file, but
``processed_wordinfo.tsv`` (the per-word means used here) is the 2021 file and was not
regenerated. An independent check (length/surprisal of the word at position k vs RT)
peaks at k = 0 in every story, i.e. the shipped per-word means line up with their own
words; treat them as the pre-2025 release.
"""
from __future__ import annotations

import csv
from functools import lru_cache

import numpy as np
import pandas as pd

from lhp_core.data.fetch import fetch
from lhp_core.data.tables import read_csv

DATASET_ID = "naturalstories"
_TSV = dict(sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False)


@lru_cache(maxsize=1)
def _words() -> pd.DataFrame:
    codes = read_csv(fetch(DATASET_ID, "words.tsv"), header=None, names=["code", "text"], **_TSV)
    parts = codes["code"].str.split(".", expand=True)
    codes = codes.assign(story=parts[0].astype(int), position=parts[1].astype(int), field=parts[2])
    whole = codes[codes.field == "whole"].set_index(["story", "position"])["text"]
    stripped = codes[codes.field == "word"].set_index(["story", "position"])["text"]
    sub = codes[~codes.field.isin(["whole", "word"])]
    sub = sub.assign(order=sub.field.astype(int)).sort_values(["story", "position", "order"])
    grouped = sub.groupby(["story", "position"])["text"]
    tok = read_csv(fetch(DATASET_ID, "naturalstories_RTS/all_stories.tok"), **_TSV)
    df = tok.rename(columns={"item": "story", "zone": "position"})[["story", "position", "word"]]
    df = df.sort_values(["story", "position"], kind="stable").reset_index(drop=True)
    key = pd.MultiIndex.from_frame(df[["story", "position"]])
    df["code"] = df.story.astype(str) + "." + df.position.astype(str)
    # words.tsv writes multi-piece tokens with spaces between NLTK pieces ("long - bearded")
    df["whole"] = whole.reindex(key).str.replace(" ", "", regex=False).to_numpy()
    df["word_stripped"] = stripped.reindex(key).str.replace(" ", "", regex=False).to_numpy()
    df["subtokens"] = grouped.agg(" ".join).reindex(key).to_numpy()
    df["n_subtokens"] = grouped.size().reindex(key).to_numpy()
    return df[["story", "position", "code", "word", "whole", "word_stripped", "subtokens", "n_subtokens"]]


def words() -> pd.DataFrame:
    """The 10,256 words of the ten stories, in reading order.

    Returns
    -------
    pandas.DataFrame
        ``story`` (1–10), ``position`` (1-based within story), ``code`` (``"story.position"``,
        the prefix of every words.tsv code), ``word`` (as shown to SPR participants,
        punctuation attached, from all_stories.tok), ``whole`` (words.tsv ``.whole`` form;
        differs from ``word`` only at story 2 position 749: words.tsv and GPT-3 have
        ``peeked``, the experiment showed ``peaked``),
        ``word_stripped`` (punctuation stripped, words.tsv ``.word``; both these forms have
        words.tsv's spaces between NLTK pieces removed), ``subtokens``
        (space-joined NLTK Treebank pieces, words.tsv ``.1``…``.n``), ``n_subtokens``.
    """
    return _words().copy()


def story_texts() -> dict[int, str]:
    """Each story's text as shown to participants (words joined by single spaces), by story id."""
    df = _words()
    return {int(s): " ".join(g["word"]) for s, g in df.groupby("story", sort=True)}


def reading_times() -> pd.DataFrame:
    """Per-word self-paced reading times averaged over participants (processed_wordinfo.tsv).

    RTs were kept if 100 < RT < 3000 ms and the participant answered > 4 of 6 comprehension
    questions correctly (upstream ``process_RTs.R``). See the module docstring on alignment.

    Returns
    -------
    pandas.DataFrame
        10,256 rows sorted by (``story``, ``position``): ``story``, ``position``, ``word``,
        ``n_obs`` (``nItem``: RTs kept), ``mean_rt`` / ``sd_rt`` (``meanItemRT`` /
        ``sdItemRT``, arithmetic, ms), ``gmean_rt`` / ``gsd_rt`` (``gmeanItemRT`` /
        ``gsdItemRT``, geometric mean in ms and multiplicative SD).
    """
    raw = read_csv(fetch(DATASET_ID, "naturalstories_RTS/processed_wordinfo.tsv"), **_TSV)
    df = raw.rename(
        columns={
            "item": "story",
            "zone": "position",
            "nItem": "n_obs",
            "meanItemRT": "mean_rt",
            "sdItemRT": "sd_rt",
            "gmeanItemRT": "gmean_rt",
            "gsdItemRT": "gsd_rt",
        }
    )
    cols = ["story", "position", "word", "n_obs", "mean_rt", "sd_rt", "gmean_rt", "gsd_rt"]
    return df[cols].sort_values(["story", "position"]).reset_index(drop=True)


def gpt3_token_logprobs() -> pd.DataFrame:
    """GPT-3 (``davinci``, 2021) BPE-token log-probabilities as shipped (probs/all_stories_gpt3.csv).

    Returns
    -------
    pandas.DataFrame
        12,373 rows: ``story`` (1–10; the file's 0-based id + 1), ``token`` (with its leading
        space), ``logprob`` (natural log; NaN for each story's first token), ``offset``
        (character offset in the story text), ``model``.
    """
    raw = read_csv(fetch(DATASET_ID, "probs/all_stories_gpt3.csv"), keep_default_na=False, dtype={"token": str})
    logprob = pd.to_numeric(raw["logprob"].replace("", np.nan))
    return pd.DataFrame(
        {
            "story": raw["story"].astype(int) + 1,
            "token": raw["token"],
            "logprob": logprob.astype(float),
            "offset": raw["offset"].astype(int),
            "model": raw["model"],
        }
    )


def gpt3_word_logprobs() -> pd.DataFrame:
    """GPT-3 log-probabilities summed over each word's BPE pieces, aligned to :func:`words`.

    A word starts at every token that begins with a space (and at each story's first
    token), which reproduces the 10,256 SPR words one-to-one.

    Returns
    -------
    pandas.DataFrame
        10,256 rows: ``story``, ``position``, ``word`` (GPT-3 text), ``logprob`` (nats, sum
        over pieces; NaN for each story's first word, whose first piece has no
        probability), ``surprisal_bits`` (``-logprob / ln 2``), ``n_tokens``.
    """
    tok = gpt3_token_logprobs()
    starts = tok["token"].str.startswith(" ") | (tok["story"] != tok["story"].shift())
    tok = tok.assign(word_id=starts.cumsum())
    tok["position"] = tok.groupby("story")["word_id"].rank(method="dense").astype(int)
    g = tok.groupby(["story", "position"], sort=True)
    df = pd.DataFrame(
        {
            "word": g["token"].agg("".join).str.strip(),
            "logprob": g["logprob"].sum(min_count=1).where(g["logprob"].count() == g.size()),
            "n_tokens": g.size(),
        }
    ).reset_index()
    df["surprisal_bits"] = -df["logprob"] / np.log(2)
    expected = _words()
    if len(df) != len(expected) or not (df["story"].to_numpy() == expected["story"].to_numpy()).all():
        raise RuntimeError(
            f"GPT-3 tokens grouped into {len(df)} words, expected {len(expected)}: "
            "probs/all_stories_gpt3.csv does not match all_stories.tok"
        )
    return df[["story", "position", "word", "logprob", "surprisal_bits", "n_tokens"]]


def ngram_frequencies(order: int | None = None) -> pd.DataFrame:
    """Google Books (1990–) n-gram counts for every token (freqs/freqs-N.tsv).

    Parameters
    ----------
    order
        1–4, or None for all four orders stacked.

    Returns
    -------
    pandas.DataFrame
        ``story``, ``position``, ``field`` (``whole`` / ``word`` / ``1``… as in words.tsv),
        ``order`` (N), ``token``, ``count`` (N-gram ending in the token, in the context of
        the previous N-1 ``word`` tokens up to the sentence boundary), ``context_count``
        (that (N-1)-gram; NaN for unigrams, whose total is not given), ``logprob``
        (``log(count / context_count)``, natural log; -inf where count is 0, NaN for unigrams).
    """
    orders = [1, 2, 3, 4] if order is None else [order]
    if any(o not in (1, 2, 3, 4) for o in orders):
        raise ValueError(f"order must be 1, 2, 3 or 4 (or None for all), not {order!r}")
    frames = []
    for n in orders:
        raw = read_csv(
            fetch(DATASET_ID, f"freqs/freqs-{n}.tsv"),
            header=None,
            names=["code", "order", "token", "count", "context_count"],
            sep="\t",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values={"context_count": ["NA"]},
            dtype={"token": str},
        )
        frames.append(raw)
    df = pd.concat(frames, ignore_index=True)
    parts = df["code"].str.split(".", expand=True)
    df.insert(0, "story", parts[0].astype(int))
    df.insert(1, "position", parts[1].astype(int))
    df.insert(2, "field", parts[2])
    df["context_count"] = df["context_count"].astype(float)
    with np.errstate(divide="ignore"):
        df["logprob"] = np.log(df["count"].astype(float)) - np.log(df["context_count"])
    return df.drop(columns="code")
