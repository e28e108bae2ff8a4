"""The studies' decision rules and the Timeline's ordering, on hand-built inputs with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lhp_core import findings
from lhp_core.metrics import changepoint, emergence, heads, reading
from lhp_core.metrics.events import event_table
from lhp_core.studies import brain, experts, timeline
from lhp_core.studies import emergence as em_study
from lhp_core.studies import reading as rd


def _ppp(values, lo=None, hi=None, steps=(0, 10, 100, 1000)):
    v = np.asarray(values, float)
    lo = v - 0.001 if lo is None else np.asarray(lo, float)
    hi = v + 0.001 if hi is None else np.asarray(hi, float)
    return xr.Dataset({"ppp": ("step", v), "ppp_lo": ("step", lo), "ppp_hi": ("step", hi)},
                      coords={"step": list(steps)})


def test_rise_fall_verdict() -> None:
    assert rd.rise_fall_verdict(_ppp([0.0, 0.02, 0.03, 0.01]), 100) == "holds"
    assert rd.rise_fall_verdict(_ppp([0.0, 0.02, 0.03, 0.0295]), 100) == "does not hold at this scale"
    assert rd.rise_fall_verdict(_ppp([0.0, 0.0005, 0.0, -0.001]), 10) == "not measurable here"
    # step 0 missing for this model (NaN): the first step it has is the reference
    assert rd.rise_fall_verdict(_ppp([np.nan, 0.0, 0.03, 0.01]), 100) == "holds"


def test_coincidence_and_copyreg_verdicts() -> None:
    tr = pd.Series({"found": True, "lo": 100.0, "hi": 300.0})
    assert rd.coincide(tr, pd.Series({"lo": 250.0, "hi": 400.0}))
    assert not rd.coincide(tr, pd.Series({"lo": 301.0, "hi": 400.0}))
    assert not rd.coincide(pd.Series({"found": False, "lo": 100.0, "hi": 300.0}), pd.Series({"lo": 100.0, "hi": 300.0}))
    assert rd.coincidence_verdict(False, False) == "not measurable here"
    assert rd.coincidence_verdict(True, True) == "holds" and rd.coincidence_verdict(True, False) == "contradicted"
    assert rd.copyreg_verdict(0.5, 0.48, 0.01, 0.02) == "not measurable here"  # the penalty did not suppress
    assert rd.copyreg_verdict(0.5, 0.1, 0.01, 0.02) == "holds"
    assert rd.copyreg_verdict(0.5, 0.1, 0.02, 0.01) == "does not hold at this scale"


def test_other_verdict_rules() -> None:
    assert brain.three_phase_verdict(2, 3, True) == "holds"
    assert brain.three_phase_verdict(1, 3, True) == "does not hold at this scale"
    assert brain.three_phase_verdict(3, 3, False) == "not measurable here"
    table = pd.DataFrame({"r2_shared": [0.99, 0.93, 0.55], "r2_per_size": [0.995, 0.96, 0.81]})
    assert em_study.collapse_verdict(table) == "contradicted"  # 2 of 3 within 0.05: below the 75 % share
    assert em_study.collapse_verdict(table.iloc[:2]) == "holds"
    assert em_study.collapse_verdict(table.iloc[:0]) == "not measurable here"
    assert em_study.persist_verdict(3, 3, 0) == "not measurable here"
    assert em_study.persist_verdict(2, 3, 1) == "holds"
    assert em_study.persist_verdict(1, 3, 1) == "does not hold at this scale"
    assert experts.alignment_verdict(0.2, 0.1, 0.3, 0.1) == "holds"
    assert experts.alignment_verdict(0.2, 0.1, 0.3, 0.4) == "contradicted"
    assert experts.alignment_verdict(0.05, 0.1, 0.3, 0.1) == "does not hold at this scale"


def test_transition_finds_a_planted_level_shift() -> None:
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256])
    jump = np.where(steps >= 32, 0.6, 0.05)
    flat = np.full(steps.size, 0.05) + np.linspace(0, 0.01, steps.size)
    vals = np.stack([jump, flat])[:, :, None, None] * np.ones((1, 1, 2, 3))
    ds = xr.Dataset({"induction": (("model", "step", "layer", "head"), vals)},
                    coords={"model": ["a", "b"], "step": steps, "layer": [1, 2], "head": [0, 1, 2]})
    t = heads.transition(ds, n_boot=50).set_index("model")
    assert t.loc["a", "step"] == 32 and t.loc["a", "lo"] == 16 and t.loc["a", "hi"] == 32 and t.loc["a", "found"]
    assert t.loc["a", "jump"] == pytest.approx(0.55)
    assert not t.loc["b", "found"]  # a 0.01 drift is no transition (jump < MIN_JUMP)
    assert changepoint.overlap(1, 2, 2, 3) and not changepoint.overlap(1, 2, 2.5, 3)


def test_ppp_peaks_agree_with_changepoint_peak() -> None:
    rng = np.random.default_rng(0)
    steps = [0, 10, 100, 1000]
    per_word = rng.normal(size=(4, 200)) * 0.05 + np.array([0.0, 0.02, 0.05, 0.01])[:, None]
    ds = xr.Dataset({"ppp": (("model", "step"), per_word.mean(1)[None]),
                     "ppp_lo": (("model", "step"), per_word.mean(1)[None] - 0.005),
                     "ppp_hi": (("model", "step"), per_word.mean(1)[None] + 0.005),
                     "delta_ll": (("model", "step", "word"), per_word[None])},
                    coords={"model": ["m"], "step": steps})
    got = reading.ppp_peaks(ds, n_boot=200, seed=3).iloc[0]
    ref = changepoint.peak(steps, per_word, n_boot=200, seed=3)
    assert (got.step, got.lo, got.hi) == (ref.step, ref.lo, ref.hi) and got.step == 100
    assert got.falls  # 0.01 at the end is below the peak's lower bound


def test_loss_to_step_interpolates_on_log_step() -> None:
    steps = [0, 10, 100, 1000]
    loss = [10.0, 6.0, 4.0, 3.0]
    assert emergence.loss_to_step(steps, loss, 5.0) == pytest.approx(10 ** 1.5)  # halfway 6 -> 4 in log10 step
    assert emergence.loss_to_step(steps, loss, 7.0) == 10  # already below at the first positive step
    assert np.isnan(emergence.loss_to_step(steps, loss, 2.0))  # never reached
    assert emergence.item_band(0.0, 40) == pytest.approx(1 / 40)
    assert emergence.item_band(0.5, 100) == pytest.approx(2 * np.sqrt(0.25 / 100))


def _events(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi",
                                        "found"])
    return event_table(frame, 10.0)


def test_timeline_orders_events_and_checks_consistency() -> None:
    ev = _events([
        ("x", "A", "s", 0, "peak", 10, 5, 20, True), ("x", "B", "s", 0, "transition", 100, 50, 150, True),
        ("x", "C", "s", 0, "onset", 15, 12, 30, True),
        ("x", "A", "m", 0, "peak", 10, 8, 12, True), ("x", "B", "m", 0, "transition", 60, 40, 80, True),
        ("x", "C", "m", 0, "onset", 200, 150, 250, True),
        ("x", "D", "m", 0, "peak", np.nan, np.nan, np.nan, False),
    ])
    order = timeline.ordered_events(ev)
    s = order[order.model == "s"]
    assert list(s.event) == ["A: peak", "C: onset", "B: transition"] and list(s.order) == [1, 2, 3]
    assert s.set_index("event").loc["A: peak", "overlaps"] == "C: onset"  # [5, 20] and [12, 30] share steps
    assert "D: peak" not in set(order.event)  # not found: not on the timeline
    pairs = timeline.pair_orders(ev).set_index(["first", "second"])
    assert pairs.loc[("A: peak", "B: transition"), "relations"] == "s: before, m: before"
    assert pairs.loc[("A: peak", "B: transition"), "order"] == "same"
    ac = pairs.loc[("A: peak", "C: onset")]
    assert ac.relations == "s: overlap, m: before" and ac.order == "unresolved"  # only m tells the order
    bc = pairs.loc[("B: transition", "C: onset")]
    assert bc.relations == "s: after, m: before" and bc.order == "reversed"
    assert ([timeline.relation(*iv) for iv in ((1, 2, 3, 4), (3, 4, 1, 2), (1, 3, 2, 4))]
            == ["before", "after", "overlap"])
    text, verdict = timeline.order_verdict(pairs.reset_index(), "models", "x")
    assert verdict == "contradicted"
    assert text == ("3 pairs of events found in at least two models of x: 1 in one order in every model that "
                    "resolves it (at least two do), 1 reversed between models (B: transition vs C: onset "
                    "(s: after, m: before)), 1 overlapping in all but at most one model.")


@pytest.mark.parametrize(("relations", "order"), [
    (["before", "before"], "same"), (["after", "after", "after"], "same"),
    (["before", "overlap", "before"], "same"),  # an overlap leaves one model's order open
    (["before", "after"], "reversed"), (["before", "overlap", "after"], "reversed"),
    (["before", "overlap"], "unresolved"), (["overlap", "overlap"], "unresolved"), (["after"], "unresolved"),
])
def test_pair_order_across_models(relations: list[str], order: str) -> None:
    assert timeline.pair_order(relations) == order


def test_order_verdict_holds_only_with_a_resolved_pair_and_no_reversal() -> None:
    def pairs(orders):
        return pd.DataFrame({"first": list("abc")[:len(orders)], "second": list("xyz")[:len(orders)],
                             "n_models": 2, "relations": "s: ?, m: ?", "order": orders})

    assert timeline.order_verdict(pairs(["same", "unresolved"]), "sizes", "P")[1] == "holds"
    assert timeline.order_verdict(pairs(["unresolved", "unresolved"]), "sizes", "P")[1] == "not measurable here"
    assert timeline.order_verdict(pairs(["same", "reversed", "same"]), "sizes", "P")[1] == "contradicted"


def test_findings_round_trip_through_a_record() -> None:
    fs = [findings.Finding("b_claim", "claim b", "S", "m", "suite", "holds"),
          findings.Finding("a_claim", "claim a", "S", "m", "suite", "contradicted")]
    rec = findings.to_record(fs)
    back = findings.from_record(rec)
    assert [f.id for f in back] == ["b_claim", "a_claim"]  # the chapter's order, not the id's
    table = findings.from_records({"ch": rec})
    assert list(table.claim) == ["claim b", "claim a"] and set(table.chapter) == {"ch"}
    assert findings.admonition_text(fs).startswith(":::{admonition}")
    with pytest.raises(KeyError, match="without"):
        findings.from_record({"finding_x_verdict": "holds"})
