"""Charts of the Timeline: every measure on one tokens axis with its events, one slider for all panels."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from lhp_core import schema
from lhp_core.suites import size_order
from lhp_core.viz import style


def panels_figure(tl) -> alt.VConcatChart:
    """Aligned small multiples over tokens seen (log), one per curve of the Timeline: each model's curve in its
    book colour, the chance or null level (grey, dashed), each event's interval (shaded) and step (rule) on the
    panel of its measure; one slider moves a rule through every panel at once. Step 0 (no tokens) has no place
    on a log axis: its points and events are in the tables."""
    data = tl.panels()
    data = data[data[schema.TOKENS_SEEN] > 0]
    ev = tl.events()
    ev = ev[ev.found & (ev.tokens_seen > 0)].copy()
    ev["panel"] = ev.measure.map(dict(zip(data["measure"], data["panel"])))
    ev["event"] = ev.measure + ": " + ev.kind
    for frame in (data, ev):  # a twin ("l (copyreg)") keeps its base model's colour and is dashed
        frame["base"] = [style.base_model(m) for m in frame[schema.MODEL]]
        frame["variant"] = [style.variant(m) for m in frame[schema.MODEL]]
    ticks = sorted({float(t) for t in data[schema.TOKENS_SEEN].unique()})
    axis = style.log_axis(ticks, "tokens seen")
    color = style.model_color(data["base"], field="base")
    dash = style.variant_dash()
    slider = alt.param(name="timeline_at", value=len(ticks) - 1,
                       bind=alt.binding_range(min=0, max=max(len(ticks) - 1, 1), step=1,
                                              name="checkpoint (index over all tokens seen) "))
    lookup = json.dumps([round(t) for t in ticks])
    rows = []
    for panel in dict.fromkeys(data["panel"]):
        d = data[data.panel == panel]
        e = ev[ev.panel == panel]
        x = alt.X(f"{schema.TOKENS_SEEN}:Q", **axis)
        layers = []
        if len(e):
            layers.append(alt.Chart(e).mark_rect(opacity=0.12).encode(
                x=alt.X("tokens_lo:Q", **axis), x2="tokens_hi:Q", color=color,
                tooltip=["model", "event", alt.Tooltip("step:Q", format=".0f"), alt.Tooltip("step_lo:Q", format=".0f"),
                         alt.Tooltip("step_hi:Q", format=".0f")]))
            layers.append(alt.Chart(e).mark_rule(strokeWidth=1.5).encode(x=x, color=color, tooltip=["model", "event"]))
        series = alt.Chart(d).encode(x=x, y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)), color=color,
                                     tooltip=[schema.MODEL, schema.STEP, alt.Tooltip("value:Q", format=".3f")])
        layers += [series.mark_line().encode(strokeDash=dash), series.mark_point(filled=True, size=12)]
        if d["null"].notna().any():
            layers.append(alt.Chart(pd.DataFrame({"null": [float(d["null"].dropna().iloc[0])]})).mark_rule(
                strokeDash=[4, 3], color="gray").encode(y="null:Q"))
        layers.append(alt.Chart(pd.DataFrame({"i": [0]})).transform_calculate(
            at=f"{lookup}[timeline_at]").mark_rule(color="black", strokeWidth=1).encode(x=alt.X("at:Q", **axis)))
        rows.append(alt.layer(*layers).properties(width=style.WIDE, height=70, title=alt.TitleParams(
            panel, anchor="start", fontSize=11)))
    return alt.vconcat(*rows, spacing=6).add_params(slider)


def pythia_figure(tl) -> alt.Chart:
    """Pythia at real scale: each size's published events on tokens seen, with intervals over runs."""
    ev = tl.pythia_events()
    ev = ev[ev.found & (ev.tokens_seen > 0)].copy()
    ev["event"] = ev.measure + ": " + ev.kind
    ev["source"] = ev.study.map({"behavioral_phases": "n-gram correlation peak", "blimp_acquisition": "BLiMP acquired",
                                 "inverse_scaling": "accuracy starts to fall",
                                 "emergence (Pythia evals)": "emergence threshold"}).fillna(ev.study)
    order = size_order(ev.model)
    axis = style.log_axis(pd.concat([ev.tokens_lo, ev.tokens_hi]), "tokens seen")
    y = alt.Y("model:N", sort=order, title=None)
    yo = alt.YOffset("source:N")
    rules = alt.Chart(ev).mark_rule(opacity=0.5).encode(x=alt.X("tokens_lo:Q", **axis), x2="tokens_hi:Q", y=y,
                                                        yOffset=yo, color=alt.Color("source:N", title=None))
    pts = alt.Chart(ev).mark_point(filled=True, size=40).encode(
        x=alt.X("tokens_seen:Q", **axis), y=y, yOffset=yo, color=alt.Color("source:N", title=None),
        shape=alt.Shape("source:N", title=None),
        tooltip=["model", "event", alt.Tooltip("step:Q", format=".0f"), alt.Tooltip("step_lo:Q", format=".0f"),
                 alt.Tooltip("step_hi:Q", format=".0f")])
    return alt.layer(rules, pts).properties(width=style.WIDE - 40, height=36 * len(order),
                                            title="Pythia, published measurements: events per size")


def event_table(table: pd.DataFrame):
    """:func:`lhp_core.studies.timeline.ordered_events` for the page: rounded, interval in one column."""
    return style.table(pd.DataFrame({
        "model": table.model, "#": table.order, "event": table.event,
        "step [interval]": [f"{a:.0f} [{b:.0f}, {c:.0f}]" for a, b, c in zip(table.step, table.step_lo, table.step_hi)],
        "tokens": [f"{t:.3g}" if np.isfinite(t) else "-" for t in table.tokens_seen],
        "overlaps with": [o if len(o) <= 60 else o[:57] + "..." for o in table.overlaps]}))


def order_table(pairs: pd.DataFrame):
    """Pairs of events found in at least two models: reversed first, then those in one order, then unresolved."""
    p = pairs[pairs.n_models >= 2].copy()
    p["rank"] = p["order"].map({"reversed": 0, "same": 1, "unresolved": 2})
    p = p.sort_values(["rank", "n_models"], ascending=[True, False]).drop(columns="rank")
    return style.table(p.rename(columns={"n_models": "models"}))
