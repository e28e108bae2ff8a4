"""Charts of the reading chapter's ablation arm: what ablating heads costs ICL and PPP, over training."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from lhp_core import schema
from lhp_core.metrics import ablation as abl
from lhp_core.viz import charts, style

#: Measure key of :meth:`lhp_core.studies.ablation.Ablation.effects` -> axis title.
TITLES = {"icl": "ICL cost (nats/token)", "ppp": "PPP change (nats/word)"}
SERIES = {"selected": "selected heads", "layer": "whole layers", "random_mean": "random heads (mean)"}
#: The slider's name: one step for every panel of the figure.
SLIDER = "ablation_step"


def effects_long(study) -> pd.DataFrame:
    """Tidy ``model, step, tokens_seen, measure, series, value, lo, hi`` of ``study.effects()``
    (``lo``/``hi``: the random draws' range on the random series, the value elsewhere)."""
    e = study.effects()
    rows = []
    for key, label in SERIES.items():
        part = e[["model", "step", "tokens_seen", "measure"]].assign(series=label, value=e[key])
        part["lo"] = e["random_lo"] if key == "random_mean" else e[key]
        part["hi"] = e["random_hi"] if key == "random_mean" else e[key]
        rows.append(part)
    out = pd.concat(rows, ignore_index=True)
    out["measure"] = out["measure"].map(TITLES)
    return out


def conditions_at_steps(study) -> pd.DataFrame:
    """Every condition's change from clean at every step: ``model, step, measure, condition, kind, value``."""
    rows = []
    for key, var in (("icl", study.data["icl"]), ("ppp", study.ppp["ppp"])):
        diff = (var - var.sel({schema.CONDITION: abl.CLEAN})).drop_sel({schema.CONDITION: abl.CLEAN})
        df = diff.to_dataframe(name="value").reset_index().dropna(subset=["value"])
        df["measure"] = TITLES[key]
        rows.append(df[[schema.MODEL, schema.STEP, schema.CONDITION, "measure", "value"]])
    out = pd.concat(rows, ignore_index=True)
    out["kind"] = np.where(out[schema.CONDITION].str.startswith("random"), "random heads",
                           out[schema.CONDITION].map({abl.SELECTED: "selected heads", abl.LAYER: "whole layers"}))
    return out


def effect_figure(study) -> alt.HConcatChart:
    """Left: ICL cost and PPP change of ablating the selected heads, the whole layers and matched random
    heads (band: range over draws) against tokens seen, the induction transition marked (dotted: the
    step, grey: its interval). Right: every condition at the step the shared slider picks, marked
    on the left by a vertical rule."""
    long = effects_long(study)
    steps = sorted(int(s) for s in long[schema.STEP].unique())
    lookup = json.dumps(steps)
    data = long[long[schema.TOKENS_SEEN] > 0]
    x = style.tokens_x(data[schema.TOKENS_SEEN])
    color = alt.Color("series:N", title="ablated", scale=alt.Scale(domain=list(SERIES.values())))
    trans = []
    for r in study.transitions[study.transitions.found].itertuples():
        tok = {k: study.suite.tokens_seen(r.model, min(study.suite.steps(r.model), key=lambda s, v=v: abs(s - v)))
               for k, v in (("at", r.step), ("lo", r.lo), ("hi", r.hi))}
        trans.append({"model": r.model, "at": tok["at"], "lo": max(tok["lo"], 1.0), "hi": tok["hi"]})
    trans = pd.DataFrame(trans, columns=["model", "at", "lo", "hi"])
    panels = []
    for measure in TITLES.values():
        d = data[data.measure == measure]
        base = alt.Chart(d).encode(x=x)
        band = base.transform_filter(alt.datum.series == SERIES["random_mean"]).mark_area(opacity=0.2).encode(
            y="lo:Q", y2="hi:Q", color=color)
        lines = base.mark_line(point=True).encode(
            y=alt.Y("value:Q", title=measure), color=color,
            tooltip=[schema.MODEL, "series", schema.STEP, alt.Tooltip("value:Q", format="+.4f"),
                     alt.Tooltip("lo:Q", format="+.4f"), alt.Tooltip("hi:Q", format="+.4f")])
        zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="black", strokeWidth=0.5).encode(y="y:Q")
        now = base.transform_filter(f"datum.step == {lookup}[{SLIDER}]").mark_rule(color="black").encode()
        layers = [band, zero, lines, now]
        if len(trans):
            layers += [alt.Chart(trans).mark_rect(opacity=0.12, color="grey").encode(x="lo:Q", x2="hi:Q"),
                       alt.Chart(trans).mark_rule(strokeDash=[2, 2]).encode(
                           x="at:Q", tooltip=[schema.MODEL, alt.Tooltip("at:Q", title="transition (tokens)")])]
        panels.append(alt.layer(*layers).properties(width=style.WIDE, height=150))
    bars = conditions_at_steps(study)
    kind = alt.Color("kind:N", title="ablated",
                     scale=alt.Scale(domain=["selected heads", "random heads", "whole layers"],
                                     range=["#4c78a8", "#bab0ac", "#f58518"]))
    right = []
    for i, m in enumerate(TITLES.values()):
        chart = alt.Chart(bars[bars.measure == m])
        # the first panel owns the slider; the others read its signal
        chart = (charts.step_scrubber(chart, steps, name=SLIDER) if i == 0 else
                 chart.transform_filter(f"datum.step == {lookup}[{SLIDER}]"))
        right.append(chart.mark_bar().encode(
            x=alt.X("value:Q", title=m), y=alt.Y(f"{schema.CONDITION}:N", title=None, sort=None), color=kind,
            tooltip=[schema.CONDITION, alt.Tooltip("value:Q", format="+.4f")]).properties(width=style.HALF, height=150))
    return alt.hconcat(alt.vconcat(*panels), alt.vconcat(*right)).resolve_scale(color="independent")


def effect_table(study) -> pd.DataFrame:
    """Per step of the ablated model: heads selected, and ICL cost and PPP change (random: range over draws)."""
    e = study.effects()
    m = study.models[-1]
    heads = study.data["heads"].sel({schema.MODEL: m, schema.CONDITION: abl.SELECTED}).to_series()
    rows = []
    for t, g in e[e.model == m].groupby(schema.STEP):
        row = {"step": int(t), "selected heads": str(heads.get(t, ""))}
        for r in g.itertuples():
            unit = "ICL cost" if r.measure == "icl" else "PPP change"
            row[f"{unit}: selected"] = f"{r.selected:+.4f}"
            row[f"{unit}: random [range]"] = f"{r.random_mean:+.4f} [{r.random_lo:+.4f}, {r.random_hi:+.4f}]"
            row[f"{unit}: layers"] = f"{r.layer:+.4f}"
        rows.append(row)
    return style.table(pd.DataFrame(rows))
