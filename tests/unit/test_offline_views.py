"""What a reader of the built book sees: dash legends that show dashes, static views instead of widgets.

Legends are checked in vl-convert's own vega renderer (independent of our HTML wrapper).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
import xarray as xr

import lhp_core
from lhp_core import progress
from lhp_core.viz import charts, inspectors
from lhp_core.viz import reading as vr

STEPS = [0, 1, 2, 4]


def _legend_symbols(svg: str) -> list[str]:
    return re.findall(r'class="mark-symbol role-legend-symbol"[^>]*><path([^>]*)/>', svg)


def _dash_symbols(svg: str) -> list[str]:
    """Legend symbols drawn as a line sample: their dash patterns."""
    out = []
    for attrs in _legend_symbols(svg):
        if 'd="M-10,0L10,0"' in attrs:
            assert 'stroke="black"' in attrs, attrs  # visible: a stroke colour, not a transparent one
            out.append(re.search(r'stroke-dasharray="([^"]+)"', attrs).group(1))
    return out


def test_line_over_training_dash_legend_shows_each_pattern() -> None:
    """The suite chapter's train vs held-out loss: two dash patterns in the legend, not two black dots."""
    table = pd.DataFrame([{'model': m, 'step': s, 'tokens_seen': s * 64, 'split': sp,
                           'loss': 5.0 - s / 10 - (sp == "train")}
                          for m in ("s", "m") for s in STEPS for sp in ("train", "held-out")])
    chart = charts.line_over_training(table, "loss", dash="split")
    svg = vlc.vegalite_to_svg(chart.to_dict())
    dashes = _dash_symbols(svg)
    assert len(dashes) == 2 and len(set(dashes)) == 2, dashes
    # One point per checkpoint with tokens seen > 0, drawn in its own layer.
    points = re.findall(r'<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)</g>', svg, flags=re.DOTALL)
    assert sum(g.count("<path") for g in points) == len(table[table.tokens_seen > 0])
    # Five measures (the experts chapter's RSA chart): five distinct patterns.
    five = table.assign(split=[f"measure{i % 5}" for i in range(len(table))])
    five_chart = charts.line_over_training(five, "loss", dash="split")
    assert len(set(_dash_symbols(vlc.vegalite_to_svg(five_chart.to_dict())))) == 5
    # The chart still takes a step scrubber.
    scrubbed = charts.step_scrubber(chart, STEPS[1:])
    assert "step 4" in vlc.vegalite_to_svg(scrubbed.to_dict())


def test_ppp_chart_dash_legend_shows_each_variant() -> None:
    ppp = pd.DataFrame([{'model': "s", 'step': s, 'tokens_seen': s * 64, 'variant': v, 'ppp': 0.1 * s,
                         'ppp_lo': 0.0, 'ppp_hi': 0.5}
                        for s in STEPS for v in ("plain", "copyreg")])
    dashes = _dash_symbols(vlc.vegalite_to_svg(vr.ppp_chart(ppp).to_dict()))
    assert len(dashes) == 2 and len(set(dashes)) == 2, dashes


@pytest.fixture
def results() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(0)
    return {m: xr.Dataset({"induction": (("step", "layer", "head"), rng.random((len(STEPS), n, n)))},
                          coords={"step": STEPS, "layer": np.arange(n), "head": np.arange(n)})
            for m, n in (("s", 2), ("m", 3))}


def _widget_count() -> int:
    from ipywidgets.widgets import widget

    return len(widget._instances)


def test_book_run_draws_the_first_view_without_widgets(results: dict[str, xr.Dataset],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.BOOK_RUN_VAR, "1")
    before = _widget_count()
    calls: list[dict] = []

    def draw(**kw):
        calls.append(kw)
        return kw

    assert inspectors.live(draw, model=inspectors.dropdown(["s", "m"], value="m"), step=inspectors.slider(STEPS),
                           layer=inspectors.int_slider(1, 3)) == {"model": "m", "step": 4, "layer": 1}
    chart = inspectors.inspector(results, inspectors.inspect_head, layer=True, head=True)
    assert "s · layer 0 · head 0 (selected step 4)" in chart.to_dict()["title"]
    assert _widget_count() == before and len(calls) == 1


def test_jupyter_gets_live_widgets_from_the_same_specs(results: dict[str, xr.Dataset],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.BOOK_RUN_VAR, raising=False)
    calls: list[dict] = []
    box = inspectors.live(lambda **kw: calls.append(kw), model=inspectors.dropdown(["s", "m"], value="m"),
                          step=inspectors.slider(STEPS, value=2), layer=inspectors.int_slider(1, 3))
    controls = {c.description: c for c in box.children[0].children}
    assert calls == [{"model": "m", "step": 2, "layer": 1}]  # the first view, drawn at once
    assert list(controls["step"].options) == STEPS and (controls["layer"].min, controls["layer"].max) == (1, 3)
    controls["layer"].value = 3
    assert calls[-1] == {"model": "m", "step": 2, "layer": 3}


def test_control_specs_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one option"):
        inspectors.dropdown([])
    with pytest.raises(ValueError, match=r"initial value 3 is not one of the options \[0, 1, 2, 4\]"):
        inspectors.slider(STEPS, value=3)
    with pytest.raises(ValueError, match="high 1 < low 2"):
        inspectors.int_slider(2, 1)
    with pytest.raises(ValueError, match="needs at least one control"):
        inspectors.live(lambda: None)


def test_lazy_exports_are_listed_for_tab_completion() -> None:
    names = dir(lhp_core)
    assert {"open_results", "load", "get_suite", "fetch", "__version__"} <= set(names)
    assert not {"Any", "annotations", "importlib"} & set(names)
    from lhp_core import get_suite
    from lhp_core.suites import get_suite as direct

    assert get_suite is direct
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        lhp_core.nope  # noqa: B018
    assert set(lhp_core.__all__) == {"__version__", *lhp_core._LAZY}
