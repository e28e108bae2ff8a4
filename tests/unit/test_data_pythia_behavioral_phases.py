"""Behavioural-phases loader: every row of the upstream TSVs, re-read with the csv module."""
from __future__ import annotations

import csv
from collections import Counter

import pytest

from lhp_core.data import pythia_behavioral_phases as bp
from lhp_core.data.fetch import fetch

PYTHIA_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 143000]
SIZES_WITH_SEEDS = ["14m", "31m", "70m", "160m", "410m"]


def _rows(relpath: str) -> list[dict[str, str]]:
    with open(fetch(bp.DATASET_ID, relpath), newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def raw_cors() -> list[dict[str, str]]:
    return _rows("analyses/all_cors.tsv")


def test_counts_families_and_default_filter(raw_cors) -> None:
    everything = bp.correlations(None)
    assert list(everything.columns) == bp.CORRELATION_COLUMNS
    assert len(everything) == len(raw_cors) == 20034
    by_family = Counter(r["ModelFamily"] for r in raw_cors)
    assert everything["family"].value_counts().to_dict() == dict(by_family)
    pythia = bp.correlations()
    assert len(pythia) == by_family["pythia"] == 15400
    assert set(pythia["family"]) == {"pythia"}
    with pytest.raises(KeyError, match="valid families: pythia, gpt2"):
        bp.correlations("pythia2")


def test_pythia_models_seeds_steps(raw_cors) -> None:
    df = bp.correlations()
    sizes = ["14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]
    assert set(df["model"]) == {f"pythia-{s}" for s in sizes}
    seeds = df.groupby("model")["seed"].apply(lambda s: sorted(set(s)))
    for size in sizes:
        expected = [*range(1, 10), 1234] if size in SIZES_WITH_SEEDS else [1234]
        assert seeds[f"pythia-{size}"] == expected, size
    # every (model, seed) has the 20 Pythia steps for each of the 14 predictors
    per_run = df.groupby(["model", "seed"]).agg(n=("step", "size"), steps=("step", lambda s: sorted(set(s))))
    assert (per_run["n"] == 20 * 14).all()
    assert all(steps == PYTHIA_STEPS for steps in per_run["steps"])
    assert (df["tokens_seen"] == df["step"] * 2_097_152).all()
    upstream_1_4b = {r["ModelSize"] for r in raw_cors if r["ModelFamily"] == "pythia"}
    assert "1_4b" in upstream_1_4b and "1.4b" not in upstream_1_4b  # the loader writes the dot


def test_predictor_columns() -> None:
    df = bp.correlations()
    ngram = df[df["kind"] == "ngram"]
    assert set(ngram["corpus"]) == {"Pile", "OpenWebText"}
    assert sorted(ngram["order"].unique()) == [1, 2, 3, 4, 5]
    assert (ngram["predictor"] == ngram["corpus"] + "_" + ngram["order"].astype(str) + "gram").all()
    assert ngram["weighting"].isna().all()
    sem = df[df["kind"] == "semantic"]
    assert set(sem["predictor"]) == {"ucd_cc", "wcd_cc", "ucd_wiki", "wcd_wiki"}
    assert sem["order"].isna().all()
    row = sem[sem["predictor"] == "wcd_wiki"].iloc[0]
    assert (row["corpus"], row["weighting"]) == ("Wikipedia", "weighted")


@pytest.mark.parametrize("index", [0, 1, 777, 9999, 15000, 20033])
def test_values_match_the_file(raw_cors, index) -> None:
    r = raw_cors[index]
    df = bp.correlations(None)
    size = r["ModelSize"].replace("_", ".")
    hit = df[
        (df["model"] == f"{r['ModelFamily']}-{size}") & (df["run"] == r["ModelSeed"])
        & (df["step"] == int(r["ModelStep"])) & (df["predictor"] == r["CorrelatingVariable"])
    ]
    assert len(hit) == 1
    assert hit["pearson_r"].iloc[0] == float(r["PearsonR"])
    assert hit["spearman_rho"].iloc[0] == float(r["SpearmanRho"])


def test_other_families_keep_their_seeds_without_tokens() -> None:
    df = bp.correlations("gpt2")
    assert set(df["model"]) == {"gpt2-small", "gpt2-medium"}
    assert sorted(set(df["seed"])) == [49, 81, 343, 777]
    assert set(df.loc[df["seed"] == 343, "run"]) == {"x343 (durin)", "x343 (darkmatter)"}
    assert df["tokens_seen"].isna().all()


def test_regressions_match_the_file() -> None:
    raw = _rows("analyses/regression_performance.tsv")
    everything = bp.regressions(None)
    assert list(everything.columns) == bp.REGRESSION_COLUMNS
    assert len(everything) == len(raw) == 11448
    pythia = bp.regressions()
    assert len(pythia) == sum(r["ModelFamily"] == "pythia" for r in raw)
    assert set(pythia["semantic"]) == {"ucd_cc", "wcd_cc", "ucd_wiki", "wcd_wiki"}
    assert set(pythia["ngrams"]) == {"matched", "unmatched"}
    r = next(r for r in raw if r["ModelFamily"] == "pythia" and r["ModelSize"] == "2_8b" and r["ModelStep"] == "4000"
             and r["RegressionType"] == "MatchedNgram_WCDCC")
    hit = pythia[(pythia["model"] == "pythia-2.8b") & (pythia["step"] == 4000)
                 & (pythia["regression"] == "MatchedNgram_WCDCC")]
    assert len(hit) == 1
    assert (hit["r2"].iloc[0], hit["r2_val"].iloc[0]) == (float(r["Rsquared"]), float(r["Rsquared_val"]))
    assert (hit["ngrams"].iloc[0], hit["semantic"].iloc[0], hit["seed"].iloc[0]) == ("matched", "wcd_cc", 1234)
