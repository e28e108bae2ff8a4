"""book/experts.ipynb at `ci` size (lhp-micro, 20 THINGS concepts from 4 categories): check its recorded numbers."""
from __future__ import annotations

import pytest

from lhp_core import book


@pytest.fixture(scope="module")
def rec(ci_book: book.BookRun) -> dict:
    return book.read_record(ci_book.executed["experts"])


def test_sizes_are_the_ci_profile(rec: dict) -> None:
    assert rec["n_concepts"] == 20 and rec["n_categories"] == 4 and rec["top_k"] == 30
    # 24 concepts (members + category words) x (8 corpus + 6 templated positives) + a 100-sentence negative pool,
    # minus sentences shared between concepts
    assert 250 <= rec["n_sentences"] <= 24 * 14 + 100


def test_stimuli_prefer_held_out_text(rec: dict) -> None:
    assert rec["held_out_share"] > 0.5


def test_correlations_are_correlations(rec: dict) -> None:
    for key in ("rsa_jaccard", "rsa_profile", "rsa_embedding", "null_q95", "ci_low", "ci_high"):
        assert -1.0 <= rec[key] <= 1.0, key
    assert rec["ci_low"] <= rec["ci_high"]


def test_null_is_centred_on_zero(rec: dict) -> None:
    # permuting concept labels of 20 concepts: null mean within sampling error of 0
    assert abs(rec["null_mean"]) < 0.05
    assert 0.0 < rec["null_q95"] < 0.3


def test_experts_are_real_classifiers(rec: dict) -> None:
    # with balanced sets, chance AP is 0.5; a trained model has units far above it
    assert 0.75 < rec["max_ap"] <= 1.0


def test_hierarchy_numbers_in_range(rec: dict) -> None:
    assert 0.0 <= rec["containment_null"] <= 1.0 and 0.0 <= rec["containment"] <= 1.0
    assert -0.5 <= rec["ari"] <= 1.0 and rec["ari_null_q95"] < 0.4
    assert 0.0 <= rec["onset_found_share"] <= 1.0
    # No onset at these checkpoints is recorded as onset_found=False, onset_step=-1.
    if rec["onset_found"]:
        assert 0 <= rec["onset_step"] <= rec["final_step"]
    else:
        assert rec["onset_step"] == -1


def test_every_model_of_the_suite_is_scored(rec: dict) -> None:
    finals = {k: v for k, v in rec.items() if k.startswith("rsa_final_")}
    assert len(finals) >= 2  # lhp-micro has two sizes
    assert all(-1.0 <= v <= 1.0 for v in finals.values())
    assert rec[f"rsa_final_{rec['model']}"] == pytest.approx(rec["rsa_jaccard"])


def test_feature_norms_are_a_second_human_reference(rec: dict) -> None:
    # 13 of the 20 ci concepts are in each norm: 78 pairs
    for n in ("mcrae", "cslb"):
        assert rec[f"n_pairs_{n}"] == 78
        assert -1.0 <= rec[f"rsa_{n}"] <= 1.0
    # Two human measures of the same concepts agree far above a shuffled null (measured: 0.67 McRae, 0.77 CSLB)
    assert rec["spose_vs_mcrae"] > 0.5 and rec["spose_vs_cslb"] > 0.6
