"""The ablation arm of the reading chapter on a real trained suite: curves, events and findings in the
shapes the Timeline reads, and numbers a chapter can record."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lhp_core import findings
from lhp_core.metrics.events import COLUMNS
from lhp_core.studies import ablation


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    return tmp_path


def test_study_on_a_trained_suite(tiny_suite, isolated):
    study = ablation.run(str(tiny_suite), ns_stories=[1], n_probe_seqs=3, probe_len=8, n_icl_windows=4, n_boot=50,
                         ablation_steps=3, ablation_k=1, ablation_draws=2, progress=False)
    assert study.models == ["m"]
    assert list(study.data["condition"].values) == ["clean", "selected", "random 1", "random 2", "layer"]
    assert dict(study.ppp["ppp"].sizes) == {"model": 1, "step": 3, "condition": 5}
    # the clean condition ablates nothing, the layer condition every head of the selected heads' layers
    n = study.data["n_ablated"].sel(model="m")
    assert (n.sel(condition="clean") == 0).all() and (n.sel(condition="layer") % 4 == 0).all()
    assert (n.sel(condition="random 1") == n.sel(condition="selected")).all()
    curves = study.curves()
    assert [c.name for c in curves] == [ablation.ICL_COST, ablation.PPP_CHANGE]
    ev = study.events()
    assert list(ev.columns) == COLUMNS and set(ev.measure) <= {c.name for c in curves}
    fs = study.findings()
    assert {f.id for f in fs} == {"ablation_restores_ppp", "ablation_costs_icl"}
    rec = {**study.numbers(), **findings.to_record(fs)}
    assert all(isinstance(v, (int, float, str)) for v in rec.values())
    assert np.isfinite(rec["ablation_icl_cost_last"])
    # the chapter's chart and table draw from the study alone
    from lhp_core.viz import ablation as view

    spec = view.effect_figure(study).to_dict()
    assert view.SLIDER in json.dumps(spec)
    long = view.effects_long(study)
    assert set(long.series) == set(view.SERIES.values()) and len(long) == 3 * 2 * 3
    assert len(view.effect_table(study).data) == 3
