"""book/brain.ipynb at `ci` size (lhp-micro, 400 stratified Tuckute sentences): check its recorded numbers."""
from __future__ import annotations

import math

import pytest

from lhp_core import book


@pytest.fixture(scope="module")
def rec(ci_book: book.BookRun) -> dict:
    return book.read_record(ci_book.executed["brain"])


def _models(rec: dict) -> list[str]:
    # null95_<model> exists once per model (r_final_ also prefixes r_final_lo_/r_final_hi_).
    return [k[len("null95_"):] for k in rec if k.startswith("null95_")]


def test_sizes_are_the_ci_profile(rec: dict) -> None:
    assert rec["n_sentences"] == 400
    assert rec["n_models"] == len(_models(rec)) >= 2
    assert rec["n_steps"] >= 9  # the segmentation needs 3 points per segment


def test_brain_scores_are_bounded_and_the_null_is_chance(rec: dict) -> None:
    for m in _models(rec):
        r, null = rec[f"r_final_{m}"], rec[f"null95_{m}"]
        assert -1 < r < 1, (m, r)
        # The bootstrap interval brackets the score it is computed for.
        assert rec[f"r_final_lo_{m}"] <= r <= rec[f"r_final_hi_{m}"]
        # Permutation null of the within-fold r (10 folds of 40 sentences): centred on zero,
        # so its 95th percentile is small and positive; a leak or a pooled-r bug moves it.
        assert 0.0 < null < 0.25, (m, null)
        assert rec[f"r_peak_{m}"] >= r - 1e-12
        assert math.isfinite(rec[f"r_transfer_{m}"]) and -1 <= rec[f"r_transfer_{m}"] <= 1


def test_segmentation_outputs_are_consistent(rec: dict) -> None:
    for m in _models(rec):
        assert rec[f"k_bic_{m}"] in (0, 1, 2) and rec[f"k_loo_{m}"] in (0, 1, 2)
        assert set(rec[f"phases_{m}"].split("/")) <= {"rise", "fall"} and rec[f"phases_{m}"].count("/") == 2
    three = sum(rec[f"k_bic_{m}"] == 2 and rec[f"k_loo_{m}"] == 2 and rec[f"phases_{m}"] == "rise/fall/rise"
                for m in _models(rec))
    assert rec["n_three_phase"] == three


def test_companions(rec: dict) -> None:
    # The POS probe must learn something over training: beat the majority tag at the end.
    assert rec["probe_acc_final"] > rec["probe_majority"] + 0.1
    assert rec["probe_acc_final"] >= rec["probe_acc_first"] - 0.02
    assert 0.0 <= rec["follow_final_max"] <= 1.0
    assert 0.0 <= rec["task_acc_final"] <= 1.0
