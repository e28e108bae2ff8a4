"""Provo MoTR loader: 51 readers, word alignment with the passages, per-word means recomputed by hand."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from lhp_core.data import provo
from lhp_core.data.fetch import fetch


def test_passages() -> None:
    p = provo.passages()
    assert len(p) == 55 and list(p.item_id) == list(range(1, 56))
    assert p.condition.value_counts().to_dict() == {"real": 54, "practice": 1}
    assert p.loc[p.condition == "practice", "item_id"].item() == 37
    assert p.text.iloc[0].startswith("There are now rumblings that Apple")
    words = provo.passage_words()
    assert len(words) == p.n_words.sum()


def test_reading_measures_all_readers() -> None:
    assert len(provo.readers()) == 51
    df = provo.reading_measures()
    assert df.reader.nunique() == 51
    for col in ("first_duration", "gaze_duration", "total_duration", "para_nr", "word_nr", "word"):
        assert col in df.columns
    assert len(df) == 43_120 and (df.cond_id == 1).all()
    assert len(provo.reading_measures(include_practice=True)) == 44_719
    assert not df.duplicated(["reader", "para_nr", "word_nr"]).any()
    # every word is the passage's whitespace token at word_nr
    merged = df.merge(provo.passage_words(), on=["para_nr", "word_nr"], suffixes=("", "_text"), validate="m:1")
    assert len(merged) == len(df) and (merged.word == merged.word_text).all()
    # gaze <= total always; first fixation <= gaze when the word was read in first pass
    # (a word skipped in first pass and fixated later has gaze 0 but a first fixation)
    assert (df.gaze_duration <= df.total_duration + 1e-9).all()
    fp = df[df.gaze_duration > 0]
    assert (fp.first_duration <= fp.gaze_duration + 1e-9).all()
    assert ((df.first_duration > 0) == (df.total_duration > 0)).all()


def _raw_values(para: int, word_nr: int, column: str) -> list[float]:
    values = []
    for reader in provo.readers():
        with open(fetch("provo_motr", f"provo_f160/reader_{reader}_reading_measures.csv")) as fh:
            for row in csv.DictReader(fh):
                if row["cond_id"] == "1" and int(row["para_nr"]) == para and int(row["word_nr"]) == word_nr:
                    values.append(float(row[column]))
    return values


def test_word_means_match_hand_computation() -> None:
    zero = provo.word_means(skipped="zero")
    excl = provo.word_means()
    assert len(zero) == len(excl)
    p = provo.passages()
    assert len(excl) == p.loc[p.condition_id == 1, "n_words"].sum()  # every word of every real passage
    for para, word_nr in [(1, 0), (1, 1), (12, 30)]:
        raw = np.array(_raw_values(para, word_nr, "gaze_duration"))
        row_z = zero.set_index(["para_nr", "word_nr"]).loc[(para, word_nr)]
        row_e = excl.set_index(["para_nr", "word_nr"]).loc[(para, word_nr)]
        assert row_z.n_readers == len(raw)
        assert row_z.gaze_duration == pytest.approx(raw.mean(), rel=1e-12)
        fixated = raw[raw > 0]
        if len(fixated):
            assert row_e.gaze_duration == pytest.approx(fixated.mean(), rel=1e-12)
        else:
            assert np.isnan(row_e.gaze_duration)
        total = np.array(_raw_values(para, word_nr, "total_duration"))
        assert row_e.skip_rate == pytest.approx((total == 0).mean(), abs=1e-12)
    assert (excl.FPFix == zero.FPFix).all()
    with pytest.raises(ValueError, match="skipped must be"):
        provo.word_means(skipped="drop")


def test_word_stats() -> None:
    s = provo.word_stats()
    with open(fetch("provo_motr", "provo_stats.csv")) as fh:
        n_rows = sum(1 for _ in csv.reader(fh)) - 1  # 2,606 (SOURCE.md says 2,605: no final newline)
    assert len(s) == n_rows == 2606 and {"text_id", "sent_id", "trigger_idx", "word", "surp", "freq"} <= set(s.columns)
