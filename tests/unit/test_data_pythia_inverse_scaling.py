"""Inverse-scaling loader: 8 sizes x 8 steps x 12 tasks, values re-read with the csv module; the paper's
tests parsed."""
from __future__ import annotations

import csv

import pytest

from lhp_core.data import pythia_inverse_scaling as pis
from lhp_core.data.fetch import fetch

SIZES = ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]
STEPS = [2000, 4000, 8000, 16000, 32000, 64000, 128000, 143000]


def _rows(relpath: str) -> list[dict[str, str]]:
    with open(fetch(pis.DATASET_ID, relpath), newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_shape_models_steps_tasks() -> None:
    raw = _rows("results/all_results.tsv")
    df = pis.load()
    assert list(df.columns) == pis.COLUMNS
    assert len(df) == len(raw) == 8 * 8 * 12
    assert list(df["model"].unique()) == [f"pythia-{s}" for s in SIZES]  # ordered by size
    assert sorted(set(df["step"])) == STEPS
    assert set(df["task"]) == set(pis.TASK_NAMES) == {r["Task"] for r in raw}
    assert set(df["seed"]) == {1234}
    assert (df["tokens_seen"] == df["step"] * 2_097_152).all()
    assert (df.groupby(["model", "task"]).size() == 8).all()
    assert len(pis.load("isp_memo_trap")) == 64
    with pytest.raises(KeyError, match="valid tasks: isp_hindsight_neglect"):
        pis.load("memo_trap")


@pytest.mark.parametrize("index", [0, 100, 500, 767])
def test_values_match_the_file(index) -> None:
    r = _rows("results/all_results.tsv")[index]
    df = pis.load()
    hit = df[(df["model"] == r["ModelName"].removeprefix("EleutherAI/"))
             & (df["step"] == int(r["ModelRevision"].removeprefix("step"))) & (df["task"] == r["Task"])]
    assert len(hit) == 1
    assert (hit["accuracy"].iloc[0], hit["accuracy_se"].iloc[0]) == (float(r["Accuracy"]), float(r["Accuracy_SE"]))


def test_statistical_tests_parse_every_cell() -> None:
    raw = _rows("statistical_analysis/statistical_tests.tsv")
    st = pis.statistical_tests()
    assert list(st.columns) == pis.TEST_COLUMNS
    assert len(st) == 3 * len(raw) == 36
    assert set(st["task"]) == set(pis.TASK_NAMES)
    assert (st["df"] == 60).all()
    # each cell rebuilt from the parsed numbers reads as upstream wrote it
    for r in raw:
        for column in ("Parameters", "Tokens", "Interaction"):
            row = st[(st["task_name"] == r["task_name"]) & (st["term"] == column.lower())].iloc[0]
            assert float(r[column].split("=")[1].split(",")[0]) == row["t"]
            assert r[column].endswith(f"p{row['p_relation']}{r[column].split('p')[-1][1:]}")
    memo = st[(st["task"] == "isp_memo_trap") & (st["term"] == "tokens")].iloc[0]
    assert (memo["t"], memo["p"], memo["p_relation"]) == (-11.34, 0.001, "<")
