"""BLiMP loader: 10 seeds x 24 steps x 67 paradigms, values re-read with the csv module."""
from __future__ import annotations

import csv

import pytest

from lhp_core.data import pythia_blimp as pb
from lhp_core.data.fetch import fetch

# SOURCE.md lists 140000 too, but the file has no step 140000: 24 steps end 130000, 143000
STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 1000, *range(10000, 130001, 10000), 143000]


@pytest.fixture(scope="module")
def raw() -> list[dict[str, str]]:
    with open(fetch(pb.DATASET_ID, "pythia/blimp_160m_acc.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def test_shape_models_seeds_steps(raw) -> None:
    df = pb.load()
    assert list(df.columns) == pb.COLUMNS
    assert len(df) == len(raw) == 10 * 24 * 67
    assert set(df["model"]) == {"pythia-160m"}
    assert sorted(set(df["seed"])) == list(range(10))
    assert sorted(set(df["step"])) == STEPS == sorted({int(r["step"]) for r in raw})
    assert (df.groupby(["seed", "step"]).size() == 67).all()
    assert not df.duplicated(["seed", "step", "paradigm"]).any()
    assert (df["tokens_seen"] == df["step"] * 2_097_152).all()


def test_paradigms_and_phenomena(raw) -> None:
    par = pb.paradigms()
    assert len(par) == 67 == len({r["paradigm"] for r in raw})
    assert set(par["paradigm"]) == {r["paradigm"].removeprefix("blimp_") for r in raw}
    assert par.groupby("field").size().to_dict() == {"morphology": 18, "semantics": 9, "syntax": 26,
                                                     "syntaxsemantics": 14}
    # one phenomenon name sits under two fields: (field, phenomenon) is the key
    npi = par[par["phenomenon"] == "NPI licensing"].groupby("field").size().to_dict()
    assert npi == {"semantics": 5, "syntaxsemantics": 2}


@pytest.mark.parametrize("index", [0, 5, 4321, 16079])
def test_values_match_the_file(raw, index) -> None:
    r = raw[index]
    df = pb.load()
    hit = df[(df["seed"] == int(r["seed"])) & (df["step"] == int(r["step"]))
             & (df["paradigm"] == r["paradigm"].removeprefix("blimp_"))]
    assert len(hit) == 1
    row = hit.iloc[0]
    assert (row["accuracy"], row["field"], row["phenomenon"]) == (float(r["score"]), r["field"], r["phenomenon"])
    assert r["model"] == f"{row['model']}-seed{row['seed']}"
