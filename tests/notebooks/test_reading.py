"""book/reading.ipynb at `ci` size (lhp-micro and lhp-micro-copyreg; Natural Stories story 1,
Provo passages 1-5, 16 probe sequences of 24 tokens): check its recorded numbers."""
from __future__ import annotations

import math

import pytest

from lhp_core import book, findings


@pytest.fixture(scope="module")
def rec(ci_book: book.BookRun) -> dict:
    return book.read_record(ci_book.executed["reading"])


def test_sizes_are_the_ci_profile(rec: dict) -> None:
    assert rec["suite"] == "lhp-micro"
    assert rec["n_models"] >= 2
    # Story 1 has 1,073 words; exclusions (edges, punctuation, spillover start) keep most of them.
    assert 500 < rec["n_ns_words"] < 1073
    assert 100 < rec["n_provo_words"] < 400  # passages 1-5: ~290 words before exclusions


def test_gpt3_reference_predicts_reading_times(rec: dict) -> None:
    # GPT-3 surprisal is a strong predictor of SPR times; on story 1 Delta LL is ~0.06 nats/word.
    assert 0.02 < rec["gpt3_ppp"] < 0.2
    assert rec["gpt3_ppp_lo"] > 0


def test_ppp_curve_is_sane(rec: dict) -> None:
    for k in ("ppp_ns_first_big", "ppp_ns_peak_big", "ppp_ns_last_big"):
        assert math.isfinite(rec[k]) and abs(rec[k]) < 0.3, (k, rec[k])
    # A trained model's surprisal predicts reading times better than the random initialisation's.
    assert rec["ppp_ns_peak_big"] > rec["ppp_ns_first_big"] + 1e-3
    assert rec["ppp_ns_peak_big"] >= rec["ppp_ns_last_big"]
    assert 0 <= rec["ppp_ns_peak_step_big"] <= rec["last_step"]


def test_head_scores_and_transition(rec: dict) -> None:
    for k in ("induction_first_big", "induction_last_big", "prev_token_last_big", "copyreg_induction_last_big"):
        assert 0.0 <= rec[k] <= 1.0, (k, rec[k])
    # Random-init attention over ~25-50 keys gives induction scores ~0.03; training on
    # repeated spans (lhp-micro) builds heads well above that.
    assert rec["induction_last_big"] > rec["induction_first_big"]
    assert rec["transition_lo_big"] <= rec["transition_step_big"] <= rec["transition_hi_big"]
    assert 0 <= rec["n_coincide"] <= rec["n_models"]
    assert math.isfinite(rec["icl_last_big"])


def test_word_boundary_correction_is_applied(rec: dict) -> None:
    # The same regression on naive subword sums: a different but sane PPP, and surprisal that moved.
    assert math.isfinite(rec["ppp_ns_last_big_naive"]) and abs(rec["ppp_ns_last_big_naive"]) < 0.3
    assert rec["ppp_ns_last_big_naive"] != rec["ppp_ns_last_big"]
    assert rec["bow_abs_diff_bits"] > 0.01


def test_ablation_arm(rec: dict) -> None:
    # ci profile: the largest model at 3 checkpoints, 1 selected head against 2 random draws
    assert rec["ablation_model"] == "l" and rec["ablation_n_steps"] == 3 and rec["ablation_n_draws"] == 2
    assert rec["ablation_n_heads_last"] >= 1
    assert math.isfinite(rec["ablation_icl_cost_last"]) and abs(rec["ablation_icl_cost_last"]) < 2
    for fid in ("ablation_restores_ppp", "ablation_costs_icl"):
        assert rec[f"finding_{fid}_verdict"] in findings.VERDICTS
