"""Charts of the skills chapter: competence against θ, the union bound, competence against scale."""
from __future__ import annotations

import altair as alt
import pandas as pd

from lhp_core.viz import style


def competence_figure(study) -> alt.LayerChart:
    """Competence on skills and k'-tuples against θ (menus: k, failure mode); dashed: binomial closed form."""
    ks = study.params["ks"]
    k_param = alt.param(name="k_sel", value=study.k_mid,
                        bind=alt.binding_select(options=ks, name="skills per piece k "))
    mode = alt.param(name="mode_sel", value="skills",
                     bind=alt.binding_radio(options=["random", "skills"], name="failures "))
    long = study.grid.melt(id_vars=["mode", "k", "kprime", "theta"], value_vars=["competence", "expected"],
                           var_name="source", value_name="fraction_competent")
    base = alt.Chart(long).transform_filter("datum.k == k_sel && datum.mode == mode_sel").encode(
        x=alt.X("theta:Q", title="fraction of failed pieces θ"),
        y=alt.Y("fraction_competent:Q", title="fraction competent", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("kprime:O", title="k′"))
    sim = base.transform_filter("datum.source == 'competence'").mark_line(point=True)
    closed = base.transform_filter("datum.source == 'expected' && mode_sel == 'random'").mark_line(strokeDash=[4, 3])
    rule = alt.Chart(pd.DataFrame({"beta": [study.params["beta"]]})).mark_rule(color="gray").encode(x="beta:Q")
    return (sim + closed + rule).add_params(k_param, mode).properties(width=style.WIDE, height=style.HEIGHT)


def bound_figure(study) -> alt.Chart:
    return alt.Chart(study.bound).mark_line(point=True).encode(
        x=alt.X("theta:Q", title="θ"), y=alt.Y("incompetent:Q", title="fraction of skills incompetent"),
        color=alt.Color("who:N", title=None)).properties(
        width=style.WIDE, height=style.HEIGHT, title=f"k = {study.k_mid}, β = {study.params['beta']}")


def scale_figure(study) -> alt.VConcatChart:
    """Competence and the slingshot factor against parameters N (D = 20N), for the chosen c (menu)."""
    opts = study.params["nats_per_failure"]
    c_param = alt.param(name="c_sel", value=study.params["c_mid"],
                        bind=alt.binding_select(options=opts, name="nats per failed piece c "))
    x = alt.X("N:Q", **style.log_axis(study.scale["N"], "parameters N (D = 20N)"))
    comp = alt.Chart(study.scale).mark_line().encode(
        x=x, y=alt.Y("competence:Q", title="fraction competent"), color=alt.Color("kprime:O", title="k′"),
    ).transform_filter("datum.c == c_sel").properties(width=style.WIDE, height=170, title="competence vs scale")
    pos = study.scale[study.scale["slingshot"] > 0]
    sling = alt.Chart(pos).mark_line().encode(
        x=x, y=alt.Y("slingshot:Q", **style.log_axis(pos["slingshot"], "competent tuples / tuples seen")),
        color=alt.Color("kprime:O", title="k′"),
    ).transform_filter("datum.c == c_sel").properties(width=style.WIDE, height=170, title="slingshot factor")
    return alt.vconcat(comp, sling).add_params(c_param)
