"""Charts of the published-Pythia chapter: runs as thin lines, their spread as a band."""
from __future__ import annotations

import altair as alt
import pandas as pd

from lhp_core import schema
from lhp_core.schedule import PYTHIA_TOKENS_PER_STEP
from lhp_core.suites import size_order
from lhp_core.viz import style


def _runs_and_band(data: pd.DataFrame, y: str, color: str, title: str, y_title: str, color_title: str,
                   color_sort: list | None = None) -> alt.LayerChart:
    """Each run a thin line, the mean over runs a thick one, min-max over runs a band."""
    x = style.tokens_x(data[schema.TOKENS_SEEN])
    enc = alt.Color(f"{color}:N", title=color_title, sort=color_sort)
    runs = alt.Chart(data).mark_line(strokeWidth=0.6, opacity=0.45).encode(
        x=x, y=alt.Y(f"{y}:Q", title=y_title), color=enc, detail="seed:N")
    band = alt.Chart(data).mark_area(opacity=0.15).encode(
        x=x, y=f"min({y}):Q", y2=f"max({y}):Q", color=enc)
    mean = alt.Chart(data).mark_line(strokeWidth=2).encode(
        x=x, y=f"mean({y}):Q", color=enc, tooltip=[color, schema.STEP, alt.Tooltip(f"mean({y}):Q", format=".3f")])
    return alt.layer(band, runs, mean).properties(width=style.WIDE, height=style.HEIGHT, title=title)


def ngram_figure(study) -> alt.LayerChart:
    """Correlation with each n-gram order over training for one size (menu), runs thin, their spread shaded."""
    c = study.corr
    c = c[(c["kind"] == "ngram") & (c["corpus"] == "Pile") & (c[schema.TOKENS_SEEN] > 0)]
    data = c[["model", "seed", schema.STEP, schema.TOKENS_SEEN, "order", "pearson_r"]].rename(
        columns={"order": "n-gram"}).round({"pearson_r": 4})
    sizes = size_order(data["model"])
    pick = alt.param(name="ngram_size", value="pythia-160m" if "pythia-160m" in sizes else sizes[0],
                     bind=alt.binding_select(options=sizes, name="model "))
    chart = _runs_and_band(data, "pearson_r", "n-gram", "word log-probability against Pile n-gram log-probability",
                           "Pearson r", "n-gram order")
    return chart.transform_filter("datum.model == ngram_size").add_params(pick)


def peaks_figure(study) -> alt.Chart:
    """Pooled peak of each n-gram order against model size, with the interval over runs (no mark: no peak yet)."""
    p = study.peaks
    rows = []
    for m in p["model"].values:
        for n in p[schema.NGRAM].values:
            q = p.sel(model=m, ngram=n)
            if bool(q["pooled_interior"]):
                tps = PYTHIA_TOKENS_PER_STEP
                rows.append({"model": m, "n-gram": int(n), "tokens": float(q.pooled_step) * tps,
                             "lo": float(q.pooled_lo) * tps, "hi": float(q.pooled_hi) * tps,
                             "step": float(q.pooled_step)})
    data = pd.DataFrame(rows)
    order = size_order(p["model"].values)
    axis = style.log_axis(pd.concat([data.lo, data.hi]), "tokens seen at the peak")
    y = alt.Y("tokens:Q", **axis)
    pts = alt.Chart(data).mark_point(filled=True, size=50).encode(
        x=alt.X("model:N", sort=order, title=None), y=y, color=alt.Color("n-gram:O", title="n-gram order"),
        tooltip=["model", "n-gram", "step"])
    err = alt.Chart(data).mark_rule().encode(x=alt.X("model:N", sort=order), y=alt.Y("lo:Q", scale=axis["scale"]),
                                             y2="hi:Q", color=alt.Color("n-gram:O"))
    return alt.layer(err, pts).properties(width=style.WIDE, height=style.HEIGHT,
                                          title="where each n-gram correlation peaks, per size")


def blimp_figure(study) -> alt.LayerChart:
    """BLiMP accuracy of each phenomenon (menu) over training, ten runs thin, their spread shaded."""
    b = study.blimp.copy()
    b["phenomenon"] = b["field"] + "/" + b["phenomenon"]
    data = b.groupby(["phenomenon", "seed", schema.STEP, schema.TOKENS_SEEN], as_index=False)["accuracy"].mean()
    data = data[data[schema.TOKENS_SEEN] > 0]
    names = list(study.acquisition_table()["phenomenon"])
    pick = alt.param(name="blimp_phen", value=names[0], bind=alt.binding_select(options=names, name="phenomenon "))
    chart = _runs_and_band(data, "accuracy", "phenomenon", "Pythia-160m: BLiMP accuracy over training",
                           "accuracy (chance 0.5)", "phenomenon")
    line = alt.Chart(pd.DataFrame({"y": [0.5 + 0.1]})).mark_rule(strokeDash=[4, 3], color="gray").encode(y="y:Q")
    return alt.layer(chart.transform_filter("datum.phenomenon == blimp_phen"), line).add_params(pick)


def inverse_scaling_figure(study) -> alt.FacetChart:
    """Accuracy of each Inverse Scaling Prize task over training, one line per size."""
    d = study.isp.copy()
    d = d.merge(pd.DataFrame({"task": study.trends[schema.TASK].values,
                              "task_name": study.trends["task_name"].values}), on="task")
    x = style.tokens_x(d[schema.TOKENS_SEEN])
    return alt.Chart(d).mark_line(point=alt.OverlayMarkDef(size=10)).encode(
        x=x, y=alt.Y("accuracy:Q", title=None), color=style.model_color(d["model"]),
        tooltip=["model", schema.STEP, alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(width=style.SMALL, height=100).facet(
        facet=alt.Facet("task_name:N", title=None), columns=3
    ).resolve_scale(y="independent")


def semantic_table(study):
    """Slope of the semantic-similarity correlation after the last n-gram peak (per decade of steps)."""
    s = study.semantic
    return style.table(pd.DataFrame({"model": s["model"].values, "runs": s["n_runs"].values.astype(int),
                         "slope per decade": [f"{a:+.3f} [{b:+.3f}, {c:+.3f}]" if pd.notna(b) else
                                              (f"{a:+.3f}" if pd.notna(a) else "-")
                                              for a, b, c in zip(s["mean_slope"].values, s["mean_lo"].values,
                                                                 s["mean_hi"].values)]}))

