"""Stimulus tables, subword-to-word alignment from offsets, sliding windows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lhp_core.stimuli import Stimuli, encode, read_stimuli, tokenize_words, window_starts
from lhp_core.tokenizer import train_bpe

WORDS = "reading times follow surprisal , and the brain tracks words in context .".split()


@pytest.fixture(scope="module")
def tok():
    rng = np.random.default_rng(0)
    return train_bpe([" ".join(rng.choice(WORDS, 10)) for _ in range(200)], vocab_size=290)


def test_from_words_spans_and_word_table():
    s = Stimuli.from_words([["The", "cat."], ["Hi"]], ids=["a", "b"])
    assert s.texts == ("The cat.", "Hi")
    assert s.word_spans == (((0, 3), (4, 8)), ((0, 2),))
    stim, text = s.word_table()
    assert stim.tolist() == ["a", "a", "b"] and text.tolist() == ["The", "cat.", "Hi"]
    assert s.n_words == 3


def test_from_frame_row_per_word_keeps_order():
    df = pd.DataFrame({"stimulus": ["q", "q", "p", "q"], "word": ["a", "b", "c", "d"]})
    s = Stimuli.from_frame(df, word="word")
    assert s.ids == ("q", "p") and s.texts == ("a b d", "c")


def test_read_stimuli_txt(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("one sentence here\n\nanother one\n")
    s = read_stimuli(str(f))
    assert s.kind == "sentences" and s.texts == ("one sentence here", "another one")
    assert s.ids == ("1", "3")  # line numbers: the blank line 2 keeps the ids aligned with the file


def test_alignment_matches_word_by_word_tokenization(tok):
    """Tokenizing word by word with a leading space gives the same ids: the independent reference."""
    rng = np.random.default_rng(1)
    words = list(rng.choice(WORDS, 25))
    s = Stimuli.from_words([words])
    (ids, word), = tokenize_words(s, tok)
    ref_ids, ref_word = [], []
    for i, w in enumerate(words):
        t = tok(("" if i == 0 else " ") + w, add_special_tokens=False)["input_ids"]
        ref_ids += t
        ref_word += [i] * len(t)
    assert ids.tolist() == ref_ids and word.tolist() == ref_word


def test_windows_cover_each_token_once_with_half_context(tok):
    rng = np.random.default_rng(2)
    s = Stimuli.from_words([list(rng.choice(WORDS, 40)), ["short"]])
    enc = encode(s, tok, max_length=12)
    width = 11
    kept = np.concatenate([t[k] for t, k in zip(enc.token_of, enc.keep)])
    assert sorted(kept.tolist()) == list(range(enc.n_tokens))  # every token exactly once
    assert len(enc.windows) > 3
    for win, keep, tof in zip(enc.windows, enc.keep, enc.token_of):
        assert win[0] == tok.bos_token_id and len(win) <= 12 and not keep[0]
        pos = np.nonzero(keep)[0]
        stim_start = np.searchsorted(enc.token_stimulus, enc.token_stimulus[tof[1]])
        if tof[1] != stim_start:
            # a later window: kept tokens have at least half a window of left context
            assert pos.min() - 1 >= width // 2
        assert (enc.token_id[tof[pos]] == win[pos]).all()


def test_window_starts():
    assert window_starts(5, 10) == [0]
    assert window_starts(10, 10) == [0]
    assert window_starts(11, 10) == [0, 5]
    assert window_starts(21, 10) == [0, 5, 10, 15]


def test_bad_stimuli():
    with pytest.raises(ValueError, match="unique"):
        Stimuli.from_texts(["a", "b"], ids=["x", "x"])
    with pytest.raises(ValueError, match="empty text"):
        Stimuli.from_texts(["a", "  "])
    with pytest.raises(ValueError, match="whitespace"):
        Stimuli.from_words([["two words"]])
    with pytest.raises(KeyError, match="columns are"):
        Stimuli.from_frame(pd.DataFrame({"x": [1]}), text="text")
