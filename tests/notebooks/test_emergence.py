"""book/emergence.ipynb at `ci` size (suite lhp-micro) and check the numbers it records."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def rec(ci_records: dict[str, dict]) -> dict:
    return ci_records["emergence"]


def test_pythia_panel_is_real_data(rec: dict) -> None:
    assert rec["pythia_n_sizes"] == 8
    # Shared curve of LAMBADA log-perplexity: near-perfect for LAMBADA accuracy, SciQ, ARC-Easy, PIQA.
    for task in ("lambada_openai", "sciq", "arc_easy", "piqa"):
        assert rec[f"pythia_r2_shared_{task}"] > 0.95, task
    # Per-size curves nest the shared one, so they never explain less.
    assert rec["pythia_r2_per_size"] >= rec["pythia_r2_shared"]
    assert 0.5 < rec["pythia_r2_loo"] <= rec["pythia_r2_shared"] + 1e-9


def test_pythia_thresholds(rec: dict) -> None:
    # Winogrande leaves chance only late in training (ln perplexity ~2.5, perplexity ~12).
    assert 2.0 < rec["pythia_tau_winogrande"] < 3.2
    assert "winogrande" in rec["pythia_emergent"]
    assert rec["pythia_tau_mmlu"] < 3.2
    # ARC-Easy and SciQ rise much earlier (higher loss) than Winogrande.
    assert rec["pythia_tau_arc_easy"] > rec["pythia_tau_winogrande"] + 2
    assert rec["pythia_tau_sciq"] > rec["pythia_tau_winogrande"] + 2


def test_our_suite_battery(rec: dict) -> None:
    assert rec["n_models"] == 3 and rec["n_steps"] >= 4 and rec["n_items"] == 40
    assert 0.0 <= rec["ours_r2_shared"] <= rec["ours_r2_per_size"] <= 1.0
    assert 0.0 <= rec["ours_final_agreement"] <= 1.0 and 0.0 <= rec["ours_final_copy"] <= 1.0
