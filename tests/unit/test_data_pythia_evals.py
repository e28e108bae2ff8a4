"""Pythia eval table: every JSON flattened, LAMBADA perplexity present, numbers as in SOURCE.md."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lhp_core.data import pythia_evals as pe
from lhp_core.data.fetch import fetch


@pytest.fixture(scope="module")
def table():
    return pe.load()


def test_columns_and_every_file(table) -> None:
    assert list(table.columns) == pe.COLUMNS
    assert len(pe.files()) == 876
    assert table.path.nunique() == 876
    # independent count: one row per non-stderr metric in every JSON, read with the json module
    n = 0
    for rel in pe.files():
        for metrics in json.loads(fetch("pythia_evals", rel).read_text())["results"].values():
            n += sum(not k.endswith("_stderr") for k in metrics)
    assert len(table) == n
    assert set(table.shots) == {0, 5}
    assert set(table.metric) == {"acc", "acc_norm", "ppl", "likelihood_difference", "pct_stereotype"}
    main = table[table.variant == "main"]
    assert main.model.nunique() == 16 and set(main.deduped) == {True, False}
    assert {"pythia-410m", "pythia-410m-deduped", "pythia-1b"} <= set(main.model)
    # the shots recorded in each file's config agree with the upstream folder names
    zs = table[table.path.str.contains("/zero-shot/")]
    fs = table[table.path.str.contains("/five-shot/")]
    assert (zs.shots == 0).all() and (fs.shots == 5).all()


def test_lambada_perplexity_matches_source_md(table) -> None:
    lam = table[(table.task == "lambada_openai") & (table.metric == "ppl")]
    assert lam.path.nunique() == 866  # SOURCE.md: every file except the ten in */baseline/
    c = pe.curve("lambada_openai", "ppl")
    ppl = c["pythia-160m"]
    # SOURCE.md rounds to the digits shown: tolerance is half a unit of the last digit
    assert ppl[0] == pytest.approx(3.56e6, abs=0.005e6)
    assert ppl[1000] == pytest.approx(2591, abs=0.5)
    assert ppl[13000] == pytest.approx(49.7, abs=0.05)
    assert ppl[63000] == pytest.approx(24.8, abs=0.05)
    assert ppl[143000] == pytest.approx(38.1, abs=0.05)
    assert len(c) == 27 and c.shape[1] == 16
    # stderr comes from the same file's ppl_stderr
    row = lam[(lam.model == "pythia-160m") & (lam.step == 143000) & (lam.shots == 0) & (lam.variant == "main")].iloc[0]
    doc = json.loads(fetch("pythia_evals", row.path).read_text())["results"]["lambada_openai"]
    assert (row.value, row.stderr) == (doc["ppl"], doc["ppl_stderr"])


def test_tokens_seen_reach_300b_in_every_variant(table) -> None:
    last = table.groupby(["variant", "model"]).tokens_seen.max()
    batch = last[last.index.get_level_values("variant").str.startswith("batch")]
    assert len(batch) == 5
    assert (batch == 143000 * pe.TOKENS_PER_STEP).all()


def test_errors(table) -> None:
    with pytest.raises(KeyError, match="valid variants"):
        pe.load("deduped")
    with pytest.raises(KeyError, match="no task"):
        pe.curve("lambada", "ppl")
    with pytest.raises(KeyError, match="metrics"):
        pe.curve("lambada_openai", "ppl", shots=5, variant="gender-baseline")
    assert np.isfinite(table.value).all()


def test_nominal_params_reads_the_size_in_the_name() -> None:
    assert pe.nominal_params("pythia-70m") == 70e6
    assert pe.nominal_params("pythia-1.4b-deduped") == 1.4e9
    assert pe.nominal_params("pythia-12b") == 12e9
    with pytest.raises(ValueError, match="no size like 70m"):
        pe.nominal_params("gpt2-small")
