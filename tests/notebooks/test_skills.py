"""book/skills.ipynb at `ci` size and check the numbers it records."""
from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def rec(ci_records: dict[str, dict]) -> dict:
    return ci_records["skills"]


def test_simulation_agrees_with_closed_form(rec: dict) -> None:
    # mean |simulated - binomial closed form| over the whole (k, k', theta) grid: sampling error only
    assert rec["mean_gap_random"] < 0.03
    assert rec["max_gap_random"] < 0.3


def test_union_bound_never_beaten(rec: dict) -> None:
    assert rec["bound_violation"] <= 0.0


def test_tuples_need_lower_failure_rates(rec: dict) -> None:
    assert rec["theta_lv_k1"] > rec["theta_lv_k2"] > rec["theta_lv_k4"] > 0
    # paper's corollary: k'=2 needs about half the failure rate of k'=1 (here skill-caused failures)
    assert 1.15 < rec["theta_ratio_1_2"] < 3.0
    assert rec["n_lv_k2"] > rec["n_lv_k1"] > 1e7
    assert 1.2 < rec["n_lv_ratio_2_1"] < 50


def test_slingshot_factor_exceeds_one(rec: dict) -> None:
    assert math.isfinite(rec["slingshot_at_n_lv"]) and rec["slingshot_at_n_lv"] > 1
