"""Charts of the suite chapter: losses over training, the schedule, parameters, the repeated-sequence probe."""
from __future__ import annotations

import altair as alt

from lhp_core import schema
from lhp_core.suites import size_order
from lhp_core.viz import charts, style


def _curves(data, y_title: str, dash: str, title: str) -> alt.Chart:
    data = data[data[schema.TOKENS_SEEN] > 0]
    return alt.Chart(data).mark_line(point=True).encode(
        x=style.tokens_x(data[schema.TOKENS_SEEN]), y=alt.Y("loss:Q", title=y_title, scale=alt.Scale(zero=False)),
        color=style.model_color(data[schema.MODEL]),
        strokeDash=alt.StrokeDash(f"{dash}:N", title=None, legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2)),
        tooltip=[schema.MODEL, dash, schema.STEP, alt.Tooltip("loss:Q", format=".3f")],
    ).properties(width=style.WIDE, height=style.HEIGHT, title=title)


def loss_figure(study) -> alt.Chart:
    return _curves(study.losses(), "loss (nats/token)", "split", "training and held-out loss")


def schedule_figure(study) -> alt.Chart:
    sched = study.record[["val_loss"]].to_dataframe().reset_index()[[schema.MODEL, schema.STEP]]
    return charts.checkpoint_schedule(sched, title=f"{study.record.sizes['step']} checkpoints per model").properties(
        width=style.WIDE)


def params_figure(study) -> alt.Chart:
    p = study.params_table().melt(id_vars="model", var_name="count", value_name="n")
    return alt.Chart(p).mark_bar().encode(
        x=alt.X("model:N", sort=size_order(p.model), title=None), xOffset="count:N",
        y=alt.Y("n:Q", scale=alt.Scale(type="log"), title="parameters"), color=alt.Color("count:N", title=None),
        tooltip=["model", "count", alt.Tooltip("n:Q", format=",")]).properties(width=style.HALF, height=style.HEIGHT)


def probe_figure(study) -> alt.Chart:
    return _curves(study.probe(), "loss (nats/token)", "copy", "loss on repeated sequences")


def probe_at_step(study) -> alt.Chart:
    probe = study.probe()
    return charts.step_scrubber(probe, [int(s) for s in study.record.step.values], name="probe_step").mark_bar().encode(
        x=alt.X("model:N", sort=size_order(probe.model), title=None), xOffset="copy:N", y="loss:Q",
        color=alt.Color("copy:N", title=None), tooltip=["model", "copy", "loss", "step"],
    ).properties(width=style.HALF, height=style.HEIGHT)
