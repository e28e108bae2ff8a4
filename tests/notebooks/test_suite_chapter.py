"""book/suite.ipynb at `ci` size: the numbers it records agree with the suite on disk."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lhp_core import book, suites


@pytest.fixture(scope="module")
def rec(ci_records: dict[str, dict]) -> dict:
    return ci_records["suite"]


@pytest.fixture(scope="module")
def record_ds():
    return suites.get_suite("lhp-micro").training_record()


def test_every_chapter_recorded_finite_numbers(ci_records: dict[str, dict]) -> None:
    assert set(ci_records) == set(book.chapters())
    for chapter, numbers in ci_records.items():
        assert numbers, chapter
        for key, value in numbers.items():
            assert value not in ("nan", "inf", "-inf"), f"{chapter}: {key} is {value}"


def test_suite_shape_matches_training_record(rec: dict, record_ds) -> None:
    assert rec["suite"] == "lhp-micro"
    assert rec["n_models"] == record_ds.sizes["model"] == 3
    assert rec["n_checkpoints"] == record_ds.sizes["step"]
    assert rec["last_step"] == int(record_ds.step.max())
    assert rec["n_params_max"] == int(record_ds.n_params.max()) > rec["n_params_min"] == int(record_ds.n_params.min())
    assert rec["n_checkpoints_hashed"] == rec["n_models"] * rec["n_checkpoints"]


def test_losses(rec: dict, record_ds) -> None:
    # Recorded means must equal the training record's values (tolerance: float32 -> JSON round trip).
    last = record_ds.isel(step=-1)
    assert math.isclose(rec["val_loss_last_min"], float(last.val_loss.min()), rel_tol=1e-9)
    # Training works: from roughly ln(vocab) at step 0 to well below it.
    vocab = int(record_ds.attrs["vocab_size"])
    assert abs(rec["val_loss_first"] - np.log(vocab)) < 1.0
    assert rec["val_loss_last_max"] < rec["val_loss_first"] - 1.0
    # The largest model is not worse than the smallest at the end of training.
    assert rec["val_loss_last_largest"] <= rec["val_loss_last_smallest"] + 0.05


def test_no_duplicate_or_changed_checkpoints(rec: dict) -> None:
    assert rec["n_duplicate_groups"] == 0
    assert rec["n_record_mismatch"] == 0


def test_repeated_sequence_gap(rec: dict, record_ds) -> None:
    # At initialisation both copies are equally unpredictable (the gap is sampling noise).
    assert abs(rec["repeat_gap_first"]) < 0.1
    # The recorded gaps are the training record's first-minus-second copy losses at the last step.
    gap = (record_ds.probe_first_loss - record_ds.probe_second_loss).isel(step=-1)
    assert math.isclose(rec["repeat_gap_last_max"], float(gap.max()), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(rec["repeat_gap_last_min"], float(gap.min()), rel_tol=1e-9, abs_tol=1e-12)
    # lhp-micro is too short to form induction heads (lhp-mini does): no claim on the gap's size here.
