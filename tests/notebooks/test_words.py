"""book/words.ipynb at `ci` size (lhp-micro, CDI words with 10+ held-out occurrences): check its recorded numbers."""
from __future__ import annotations

import pytest

from lhp_core import book
from lhp_core.findings import VERDICTS


@pytest.fixture(scope="module")
def rec(ci_book: book.BookRun) -> dict:
    return book.read_record(ci_book.executed["words"])


def test_children_reproduce_wordbank(rec: dict) -> None:
    # ceil of the fitted AoA equals every published AoA inside 16-30 months (573 of 588 words)
    assert rec["n_published_match"] >= 573


def test_word_counts_and_exclusions(rec: dict) -> None:
    assert rec["n_items"] == 680 and rec["n_scoreable"] == 653  # 3 name slots, 24 homographs left out
    assert rec["min_occurrences"] == 10
    assert 100 <= rec["n_eligible"] <= rec["n_scoreable"]
    assert 4 <= rec["n_compared"] <= rec["n_eligible"]
    assert rec["n_model_aoa_found"] >= rec["n_compared"]


def test_correlation_is_recorded_with_interval_and_null(rec: dict) -> None:
    assert -1 <= rec["rho_lo"] <= rec["rho"] <= rec["rho_hi"] <= 1
    assert 0 < rec["rho_p"] <= 1 and 0 < rec["rho_null_q95"] < 0.3
    assert rec[f"rho_{rec['model']}"] == pytest.approx(rec["rho"])
    assert rec[f"rho_{rec['closest_model']}"] >= rec["rho"]


def test_predictors_are_recorded_with_intervals(rec: dict) -> None:
    for who in ("model", "children"):
        for term in ("log_frequency", "length"):
            assert rec[f"coef_{who}_{term}_lo"] <= rec[f"coef_{who}_{term}"] <= rec[f"coef_{who}_{term}_hi"]
        assert 0 <= rec[f"r2_{who}"] <= 1
    # children's AoA falls with CHILDES frequency (months per SD of log frequency)
    assert rec["coef_children_log_frequency_hi"] < 0


def test_findings_have_verdicts(rec: dict) -> None:
    for fid in ("words_order_follows_children", "words_frequency_drives_models"):
        assert rec[f"finding_{fid}_verdict"] in VERDICTS
