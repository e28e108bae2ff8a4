"""book/published.ipynb: the recorded Pythia events agree with the published files read independently."""
from __future__ import annotations

import csv

import pytest

from lhp_core.data.fetch import fetch


@pytest.fixture(scope="module")
def rec(ci_records: dict[str, dict]) -> dict:
    return ci_records["published"]


def _pile_curves() -> dict:
    """(size, seed, order) -> {step: Pearson r}, read with the csv module (no lhp code)."""
    out: dict = {}
    with open(fetch("pythia_behavioral_phases", "analyses/all_cors.tsv"), newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            var = r["CorrelatingVariable"]
            if r["ModelFamily"] == "pythia" and var.startswith("Pile_") and var.endswith("gram"):
                key = (r["ModelSize"], r["ModelSeed"], int(var[len("Pile_"):-len("gram")]))
                out.setdefault(key, {})[int(r["ModelStep"])] = float(r["PearsonR"])
    return out


def test_one_gram_peaks_before_five_gram_where_the_data_say_so(rec: dict) -> None:
    curves = _pile_curves()
    runs = {(s, seed) for s, seed, _ in curves}
    before = sum(max(curves[s, seed, 1], key=curves[s, seed, 1].get)
                 <= max(curves[s, seed, 5], key=curves[s, seed, 5].get)
                 for s, seed in runs)
    assert rec["n_runs"] == len(runs) == 55
    assert rec["n_runs_1gram_before_5gram"] == before
    # every Pythia size's pooled 1-gram peak comes no later than its 5-gram peak, where both peaked
    for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"):
        one, five = rec[f"ngram1_peak_pythia-{size}"], rec[f"ngram5_peak_pythia-{size}"]
        if five > 0:
            assert 0 < one <= five, size


def test_blimp_and_inverse_scaling_numbers(rec: dict) -> None:
    assert rec["blimp_n_paradigms"] == 67 and rec["blimp_n_seeds"] == 10
    assert rec["blimp_order_p"] < 0.01 and rec["blimp_order_rho"] > 0.8
    assert 0 < rec["blimp_never_acquired"] < rec["blimp_acquired_all_seeds"] <= 67
    assert 0 < rec["isp_n_declines_holm"] <= rec["isp_n_declines"] <= 96
