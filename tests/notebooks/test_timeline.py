"""book/timeline.ipynb at `ci` size: the recorded event table is consistent with the studies' steps."""
from __future__ import annotations

import pytest

from lhp_core import findings
from lhp_core.studies import timeline
from lhp_core.suites import get_suite


@pytest.fixture(scope="module")
def rec(ci_records: dict[str, dict]) -> dict:
    return ci_records["timeline"]


@pytest.fixture(scope="module")
def tl(ci_book):
    """The same Timeline the chapter drew: every study reads the cache the ci book filled."""
    return timeline.run("ci")


def test_recorded_events_lie_in_the_schedule_and_inside_their_intervals(rec: dict, tl) -> None:
    assert rec["suite"] == "lhp-micro" and rec["events_inside_step_range"] and rec["intervals_contain_steps"]
    ev = tl.events()
    assert rec["n_events"] == len(ev) and rec["n_events_found"] == int(ev.found.sum()) > 0
    steps = get_suite("lhp-micro").steps("l")
    found = ev[ev.found]
    assert ((found.step >= steps[0]) & (found.step <= steps[-1])).all()
    assert ((found.step_lo <= found.step) & (found.step <= found.step_hi)).all()
    assert (found.tokens_lo <= found.tokens_seen).all() and (found.tokens_seen <= found.tokens_hi).all()


def test_ordering_tables_follow_the_steps(rec: dict, tl) -> None:
    order = tl.event_table()
    for _, g in order.groupby("model"):
        assert list(g["order"]) == list(range(1, len(g) + 1))
        assert g["step"].is_monotonic_increasing  # the order is the steps' order
    pairs = tl.order_table()
    per = tl.events()
    per = per[per.found].assign(event=lambda d: d.measure + ": " + d.kind).drop_duplicates(["model", "event"])
    per = per.set_index(["model", "event"])
    for row in pairs.itertuples():
        for item in row.relations.split(", "):
            model, rel = item.rsplit(": ", 1)
            a, b = per.loc[(model, row.first)], per.loc[(model, row.second)]
            assert rel == timeline.relation(a.step_lo, a.step_hi, b.step_lo, b.step_hi)
        assert row.order == timeline.pair_order([i.rsplit(": ", 1)[1] for i in row.relations.split(", ")])
    tested = pairs[pairs.n_models >= 2]
    assert rec["n_event_pairs"] == len(tested)
    assert [rec[f"n_event_pairs_{o}"] for o in timeline.ORDERS] == [int((tested.order == o).sum())
                                                                     for o in timeline.ORDERS]
    verdict = {f.id: f.verdict for f in findings.from_record(rec)}["timeline_order_across_sizes"]
    assert verdict == ("contradicted" if rec["n_event_pairs_reversed"] else
                       "holds" if rec["n_event_pairs_same"] else "not measurable here")
    assert rec["pythia_n_events_found"] > 50  # n-gram peaks, BLiMP acquisitions, thresholds, declines


def test_every_chapter_opens_on_findings_with_a_verdict(ci_records: dict[str, dict]) -> None:
    for chapter, numbers in ci_records.items():
        got = findings.from_record(numbers)
        assert got, f"{chapter} recorded no findings"
        assert all(f.verdict in findings.VERDICTS for f in got)
