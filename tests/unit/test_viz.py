"""Charts render offline and the step scrubber shows exactly the selected checkpoint.

The reference is vl-convert's own vega renderer (independent of our HTML wrapper): we
render the spec to SVG and count marks against the rows pandas selects.
"""
from __future__ import annotations

import re

import altair as alt
import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
import xarray as xr

from lhp_core.viz import charts, inspectors, offline

STEPS = [0, 1, 2, 4, 8, 16]


@pytest.fixture
def table() -> pd.DataFrame:
    rows = [
        dict(model=m, step=s, tokens_seen=s * 512, layer=layer, score=(layer + 1) * np.log1p(s) + k)
        for k, m in enumerate(["s", "m"])
        for s in STEPS
        for layer in range(4)
    ]
    return pd.DataFrame(rows)


def _points(svg: str) -> int:
    # mark_line(point=True) draws one <path> per point inside the "mark-symbol" group.
    groups = re.findall(r'<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)</g>', svg, flags=re.S)
    return sum(g.count("<path") for g in groups)


@pytest.mark.parametrize("initial", [None, 0, 4])
def test_step_scrubber_filters_to_selected_step(table: pd.DataFrame, initial: int | None) -> None:
    chart = charts.step_scrubber(table, STEPS, initial=initial).mark_line(point=True).encode(
        x="layer:Q", y="score:Q", color="model:N")
    svg = vlc.vegalite_to_svg(chart.to_dict())
    index = len(STEPS) - 1 if initial is None else STEPS.index(initial)
    expected = charts.rows_at_step(table, STEPS, index)
    assert len(expected) == 8  # 2 models x 4 layers
    assert _points(svg) == len(expected)
    assert f"step {STEPS[index]}" in svg


def test_step_scrubber_slider_spec(table: pd.DataFrame) -> None:
    spec = charts.step_scrubber(charts.line_over_training(table, "score", title="loss"), STEPS).to_dict()
    param = spec["params"][0]
    assert param["bind"]["input"] == "range"
    assert (param["bind"]["min"], param["bind"]["max"], param["bind"]["step"]) == (0, len(STEPS) - 1, 1)
    assert param["value"] == len(STEPS) - 1
    assert "loss · step " in spec["title"]["text"]["expr"]


def test_step_scrubber_bad_input(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="increasing"):
        charts.step_scrubber(table, [4, 2])
    with pytest.raises(ValueError, match="not one of the steps"):
        charts.step_scrubber(table, STEPS, initial=3)
    with pytest.raises(ValueError, match="none of the table"):
        charts.step_scrubber(table, [100, 200])
    with pytest.raises(KeyError, match="missing"):
        charts.step_scrubber(table.drop(columns="step"), STEPS)


def test_line_over_training_log_axis_drops_step_zero(table: pd.DataFrame) -> None:
    chart = charts.line_over_training(table[table.layer == 0], "score")
    data = chart.data
    assert (data.tokens_seen > 0).all() and len(data) == 2 * (len(STEPS) - 1)
    svg = vlc.vegalite_to_svg(chart.to_dict())
    assert _points(svg) == len(data)
    with pytest.raises(ValueError, match="log_x=False"):
        charts.line_over_training(table[table.step == 0], "score")


def test_bars_and_schedule_render(table: pd.DataFrame) -> None:
    counts = table.groupby("model", sort=False).size().rename("n").reset_index()
    svg = vlc.vegalite_to_svg(charts.bars(counts, "model", "n").to_dict())
    assert len(re.findall(r'class="mark-rect role-mark', svg)) == 1
    sched = table[["model", "step"]].drop_duplicates()
    svg = vlc.vegalite_to_svg(charts.checkpoint_schedule(sched).to_dict())
    assert svg.count("<path") >= len(sched)


def test_offline_html_carries_bundle_once(table: pd.DataFrame, tmp_path) -> None:
    offline.reset()
    chart = charts.line_over_training(table, "score")
    first = alt.renderers.get()(chart.to_dict())["text/html"]
    second = alt.renderers.get()(chart.to_dict())["text/html"]
    assert "window.vegaEmbed=" in first and "window.vegaEmbed=" not in second
    for page in (first, second):
        # Nothing is loaded from elsewhere: no external scripts, styles or imports.
        assert not re.search(r"<(script|link)[^>]+(src|href)=", page)
        assert not re.search(r"\bimport\s*\(|\bimport\s+[\w{*].*\bfrom\s+['\"]http", page)
    path = offline.save_html(chart, tmp_path / "c.html")
    text = path.read_text()
    assert "window.vegaEmbed=" in text and text.count("<script") == 2
    assert alt.renderers.active == offline.RENDERER


@pytest.fixture
def results() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(0)
    out = {}
    for model, (n_layer, n_head) in {"s": (2, 2), "m": (3, 4)}.items():
        shape = (len(STEPS), n_layer, n_head)
        out[model] = xr.Dataset(
            {"induction": (("step", "layer", "head"), rng.random(shape)),
             "prev_token": (("step", "layer", "head"), rng.random(shape))},
            coords={"step": STEPS, "layer": np.arange(n_layer), "head": np.arange(n_head)},
        )
    return out


def test_inspect_head_plots_that_heads_trajectory(results: dict[str, xr.Dataset]) -> None:
    chart = inspectors.inspect_head(results, "m", step=4, layer=2, head=3)
    lines, rule = chart.layer
    got = lines.data.pivot(index="step", columns="measure", values="value")
    want = results["m"][["induction", "prev_token"]].sel(layer=2, head=3).to_dataframe()[["induction", "prev_token"]]
    np.testing.assert_allclose(got[want.columns].to_numpy(), want.to_numpy(), rtol=0, atol=0)
    assert list(rule.data.step) == [4]
    assert "layer 2 · head 3" in chart.title
    vlc.vegalite_to_svg(chart.to_dict())


def test_inspect_heads_at_step_heatmap(results: dict[str, xr.Dataset]) -> None:
    chart = inspectors.inspect_heads_at_step(results, "s", 8, "induction")
    got = chart.data.set_index(["layer", "head"])["value"].unstack().to_numpy()
    np.testing.assert_array_equal(got, results["s"].induction.sel(step=8).values)


def test_inspectors_bad_input(results: dict[str, xr.Dataset]) -> None:
    with pytest.raises(KeyError, match="models: s, m"):
        inspectors.inspect_head(results, "xl", 0, 0, 0)
    with pytest.raises(IndexError, match="valid heads"):
        inspectors.inspect_head(results, "s", 0, 0, 7)
    with pytest.raises(IndexError, match="valid steps"):
        inspectors.inspect_head(results, "s", 3, 0, 0)
    with pytest.raises(KeyError, match="no 'neuron' dimension"):
        inspectors.inspect_neuron(results, "s", 0, 0, 0)
    with pytest.raises(ValueError, match="no variable with dims"):
        no_unit_vars = results["s"].rename(head="neuron").drop_vars(["induction", "prev_token"])
        inspectors.inspect_neuron({"s": no_unit_vars.assign(x=("neuron", [0.0, 1.0]))}, "s", 0, 0, 0)


def test_inspector_widget_calls_the_plain_function(results: dict[str, xr.Dataset]) -> None:
    calls: list[dict] = []

    def draw(res, **kw):
        calls.append(kw)
        return inspectors.inspect_head(res, **kw)

    box = inspectors.inspector(results, draw, layer=True, head=True)
    controls = {c.description: c for c in box.children[0].children}
    assert list(controls["step"].options) == STEPS
    controls["model"].value = "m"
    controls["head"].value = 3
    assert calls[-1] == {"model": "m", "step": STEPS[-1], "layer": 0, "head": 3}
