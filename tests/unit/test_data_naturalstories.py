"""Natural Stories loader: counts, keys, and values re-derived from the raw files with the csv module."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lhp_core.data import naturalstories as ns
from lhp_core.data.fetch import fetch


def test_words_table() -> None:
    w = ns.words()
    assert list(w.columns) == [
        "story", "position", "code", "word", "whole", "word_stripped", "subtokens", "n_subtokens",
    ]
    assert len(w) == 10_256
    assert sorted(w.story.unique()) == list(range(1, 11))
    assert not w.duplicated(["story", "position"]).any()
    # positions are 1..n within each story
    assert (w.groupby("story").position.agg(lambda p: list(p) == list(range(1, len(p) + 1)))).all()
    diff = w[w.word != w.whole]
    assert diff[["story", "position", "word", "whole"]].values.tolist() == [[2, 749, "peaked", "peeked"]]
    row = w[(w.story == 1) & (w.position == 55)].iloc[0]
    assert (row.whole, row.word_stripped, row.subtokens, row.n_subtokens) == (
        "long-bearded", "long-bearded", "long - bearded", 3,
    )
    # sub-token count equals the number of words.tsv rows with a numeric field
    with open(fetch("naturalstories", "words.tsv")) as fh:
        n_sub = sum(1 for code, _ in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                    if code.split(".")[2].isdigit())
    assert w.n_subtokens.sum() == n_sub


def test_reading_times() -> None:
    r = ns.reading_times()
    w = ns.words()
    assert list(r.columns) == ["story", "position", "word", "n_obs", "mean_rt", "sd_rt", "gmean_rt", "gsd_rt"]
    assert len(r) == 10_256
    assert (r[["story", "position", "word"]].to_numpy() == w[["story", "position", "word"]].to_numpy()).all()
    assert (r.n_obs > 0).all() and r.mean_rt.between(100, 3000).all()
    # geometric mean <= arithmetic mean (AM-GM), equality only for constant samples
    assert (r.gmean_rt <= r.mean_rt + 1e-9).all()
    with open(fetch("naturalstories", "naturalstories_RTS/processed_wordinfo.tsv")) as fh:
        raw = {
            (int(d["item"]), int(d["zone"])): float(d["meanItemRT"])
            for d in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        }
    got = dict(zip(zip(r.story, r.position), r.mean_rt))
    assert got == raw


def test_gpt3_word_logprobs_sum_pieces() -> None:
    tok = ns.gpt3_token_logprobs()
    assert len(tok) == 12_373 and tok.logprob.isna().sum() == 10
    words = ns.gpt3_word_logprobs()
    w = ns.words()
    assert len(words) == len(w)
    mismatched = words[words.word.to_numpy() != w.word.to_numpy()]
    assert mismatched[["story", "position", "word"]].values.tolist() == [[2, 749, "peeked"]]
    assert words.logprob.isna().sum() == 10  # first word of each story
    # closed form: the word sums add up to the token total, minus the tokens of each
    # story's first word (undefined: its first piece has no probability)
    in_first_word = []
    for _, g in tok.groupby("story"):
        starts = g.token.str.startswith(" ").to_numpy()
        n_first = int(np.argmax(starts[1:])) + 1
        in_first_word.extend(g.index[:n_first])
    rest = tok.drop(index=in_first_word)
    assert words.logprob.sum() == pytest.approx(rest.logprob.sum(), rel=1e-12)
    row = words[(words.story == 1) & (words.position == 10)].iloc[0]  # " England" + ","
    pieces = tok[(tok.story == 1)].iloc[9:11]
    assert "".join(pieces.token).strip() == row.word == "England,"
    assert row.logprob == pytest.approx(pieces.logprob.sum(), abs=1e-12)
    assert row.surprisal_bits == pytest.approx(-row.logprob / math.log(2), rel=1e-12)


def test_ngram_frequencies() -> None:
    f2 = ns.ngram_frequencies(2)
    with open(fetch("naturalstories", "freqs/freqs-2.tsv")) as fh:
        raw = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(f2) == len(raw)
    for i in (0, 100, len(raw) - 1):
        code, order, token, count, ctx = raw[i]
        row = f2.iloc[i]
        assert f"{row.story}.{row.position}.{row.field}" == code and row.token == token and row.order == 2
        expected = math.log(int(count) / int(ctx)) if int(count) else -math.inf
        assert row.logprob == pytest.approx(expected, rel=1e-12)
    everything = ns.ngram_frequencies()
    assert sorted(everything.order.unique()) == [1, 2, 3, 4]
    assert everything[everything.order == 1].context_count.isna().all()
    with pytest.raises(ValueError, match="order must be"):
        ns.ngram_frequencies(5)


def test_story_texts() -> None:
    texts = ns.story_texts()
    assert sorted(texts) == list(range(1, 11))
    assert texts[1].startswith("If you were to journey to the North of England, you would come to a valley")
    assert sum(len(t.split(" ")) for t in texts.values()) == 10_256
