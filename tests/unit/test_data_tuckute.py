"""Tuckute et al. (2024) loader and the user-table validator."""
from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from lhp_core.data import tuckute
from lhp_core.data.fetch import fetch


def test_load_counts_and_values() -> None:
    df = tuckute.load()
    assert list(df.columns) == ["item_id", "sentence", "response", "condition"]
    assert len(df) == 2000 and df.sentence.is_unique
    assert df.condition.value_counts().to_dict() == {"baseline": 1000, "drive": 500, "suppress": 500}
    with open(fetch("brain_tuckute2024", "tuckute_averaged.csv"), newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert df.sentence.tolist() == [r["Sentence"] for r in raw]
    np.testing.assert_allclose(df.response, [float(r["EffectSize"]) for r in raw], rtol=0, atol=0)
    means = df.groupby("condition").response.mean()
    # the study's design: drive sentences raise, suppress sentences lower the response
    assert means["drive"] > means["baseline"] > means["suppress"]
    assert df.response.min() == pytest.approx(-1.44, abs=0.01) and df.response.max() == pytest.approx(1.68, abs=0.01)


def test_sentence_table_accepts_any_column_names() -> None:
    user = pd.DataFrame({"text": ["A cat sat.", "Dogs bark."], "bold": ["0.5", 1], "cond": ["x", "y"], "sid": [7, 9]})
    out = tuckute.sentence_table(user, sentence="text", response="bold", condition="cond", item_id="sid")
    assert out.to_dict("list") == {
        "item_id": [7, 9], "sentence": ["A cat sat.", "Dogs bark."], "response": [0.5, 1.0], "condition": ["x", "y"],
    }
    assert (tuckute.sentence_table(user, sentence="text", response="bold", condition=None).condition == "all").all()


def test_sentence_table_errors_name_the_problem() -> None:
    user = pd.DataFrame({"text": ["A cat sat.", ""], "bold": [0.5, 1.0]})
    with pytest.raises(KeyError) as err:
        tuckute.sentence_table(user, sentence="text", response="response", condition=None)
    assert "'response'" in str(err.value) and "available columns: text, bold" in str(err.value)
    with pytest.raises(KeyError, match="condition=None"):
        tuckute.sentence_table(user, sentence="text", response="bold")
    with pytest.raises(ValueError, match="non-empty strings"):
        tuckute.sentence_table(user, sentence="text", response="bold", condition=None)
    bad = pd.DataFrame({"s": ["a", "b"], "r": [1.0, np.nan]})
    with pytest.raises(ValueError, match="finite numbers"):
        tuckute.sentence_table(bad, sentence="s", response="r", condition=None)
    with pytest.raises(ValueError, match="empty"):
        tuckute.sentence_table(bad.iloc[:0], sentence="s", response="r", condition=None)
