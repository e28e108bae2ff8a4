"""Charts of the emergence chapter: task metrics against loss, thresholds, Pythia's published curves."""
from __future__ import annotations

import altair as alt
import pandas as pd

from lhp_core import schema
from lhp_core.metrics import tasks as T
from lhp_core.suites import size_order
from lhp_core.viz import charts, inspectors, style


def metrics_figure(study) -> alt.FacetChart:
    """Every battery task's metric (menu) against held-out loss, one colour per model; dashed: chance."""
    metric = alt.param(name="metric_sel", value="accuracy", bind=alt.binding_select(options=list(T.METRICS),
                                                                                    name="metric "))
    chance = study.chance
    data = study.long.assign(chance=study.long["task"].map(chance).where(study.long["metric"] == "accuracy"))
    pts = alt.Chart().mark_line(point=True).encode(
        x=alt.X("loss:Q", scale=alt.Scale(reverse=True, zero=False), title="held-out loss (nats/token) →"),
        y=alt.Y("value:Q", title=None), color=style.model_color(study.models), order="step:Q",
        tooltip=["model", "step", alt.Tooltip("loss:Q", format=".3f"), alt.Tooltip("value:Q", format=".3f")])
    rules = alt.Chart().mark_rule(strokeDash=[4, 3], color="gray").encode(y="mean(chance):Q")
    return alt.layer(pts, rules, data=data).transform_filter("datum.metric == metric_sel").properties(
        width=style.SMALL, height=120).facet(facet=alt.Facet("task:N", title=None), columns=3).add_params(
        metric).resolve_scale(y="independent")


def accuracy_at_step(study) -> alt.Chart:
    """Accuracy of every model on every task at one checkpoint (slider): sizes differ at equal steps."""
    acc = study.tidy
    return charts.step_scrubber(
        alt.Chart(acc).mark_bar().encode(
            x=alt.X("model:N", sort=size_order(study.models), title=None),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])), color=style.model_color(study.models, legend=False),
            column=alt.Column("task:N", title=None)).properties(width=70, height=140, title="accuracy"),
        sorted(int(s) for s in acc["step"].unique()), name="emergence_step")


def threshold_table(table: pd.DataFrame):
    """Thresholds for the page: task, chance, threshold loss with interval, emergent."""
    return style.table(pd.DataFrame({"task": table.task, "chance": table.chance.round(2),
                         "threshold loss": [f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                                            zip(table.tau, table.tau_lo, table.tau_hi)],
                         "best": table.best.round(3), "emergent": table.emergent}))


def pythia_figure(study) -> alt.FacetChart:
    """Pythia's accuracy against LAMBADA loss per task: chance band (grey), threshold and interval (orange)."""
    thr = study.pythia_thresholds.assign(lo=lambda d: d.chance - d.band, hi=lambda d: d.chance + d.band)
    data = study.pythia[study.pythia["loss"] <= 8].merge(thr[["task", "lo", "hi", "tau", "tau_lo", "tau_hi"]],
                                                          on="task")
    scale = alt.Scale(reverse=True, domain=[1.2, 8])
    x = alt.X("loss:Q", scale=scale, title="ln LAMBADA perplexity →")
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=x, y=alt.Y("value:Q", title="accuracy"), order="step:Q", color=style.model_color(study.pythia_sizes),
        tooltip=["model", "step", alt.Tooltip("loss:Q", format=".3f"), alt.Tooltip("value:Q", format=".3f")])
    band = alt.Chart().mark_rect(opacity=0.15, color="gray", clip=True).encode(y="mean(lo):Q", y2="mean(hi):Q")
    tau = alt.Chart().mark_rect(opacity=0.15, color="orange", clip=True).encode(
        x=alt.X("mean(tau_lo):Q", scale=scale), x2="mean(tau_hi):Q")
    rule = alt.Chart().mark_rule(color="orange", clip=True).encode(x=alt.X("mean(tau):Q", scale=scale))
    return alt.layer(band, tau, rule, lines, data=data).properties(width=style.SMALL, height=120).facet(
        facet=alt.Facet("task:N", title=None), columns=3).resolve_scale(y="independent")


def collapse_figure(study) -> alt.Chart:
    """R² of one shared curve of loss, one per size, and the shared curve on a left-out size (Pythia)."""
    fits = ["r2_shared", "r2_per_size", "r2_leave_one_size_out"]
    data = study.pythia_collapse.melt(id_vars="task", value_vars=fits, var_name="fit", value_name="R2")
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("task:N", title=None), xOffset=alt.XOffset("fit:N", sort=fits),
        y=alt.Y("R2:Q", scale=alt.Scale(domain=[0, 1])), color=alt.Color("fit:N", sort=fits, title="fit"),
        tooltip=["task", "fit", alt.Tooltip("R2:Q", format=".3f")],
    ).properties(width=style.WIDE, height=160)


def pythia_at_step(study) -> alt.Chart:
    """Pythia's accuracy of every size on every task at one checkpoint (slider)."""
    pt = study.pythia
    return charts.step_scrubber(
        alt.Chart(pt).mark_bar().encode(
            x=alt.X("model:N", sort=study.pythia_sizes, title=None, axis=alt.Axis(labels=False)),
            y=alt.Y("value:Q", title="accuracy"), color=style.model_color(study.pythia_sizes),
            column=alt.Column("task:N", title=None)).properties(width=44, height=140, title="Pythia"),
        sorted(int(s) for s in pt[schema.STEP].unique()), name="pythia_step")


def item_table(study, task: str = "agreement", index: int = 0, device: str = "cpu"):
    """One battery item at the largest model's last checkpoint: every option's log-probability."""
    return style.table(T.inspect_item(study.suite, study.models[-1], study.steps[-1], task, index,
                                      n_items=study.n_items, seed=study.params.get("seed", 0), device=device))


def item_inspector(study, device: str = "cpu"):
    """Live picker (Jupyter): any checkpoint, task and item of the battery."""
    return inspectors.live(
        lambda **kw: T.inspect_item(study.suite, **kw, n_items=study.n_items, seed=study.params.get("seed", 0),
                                    device=device),
        model=inspectors.dropdown(study.models, value=study.models[-1]), step=inspectors.slider(study.steps),
        task=inspectors.dropdown(list(study.chance.index), value="agreement"),
        index=inspectors.int_slider(0, min(study.n_items, 20) - 1))
