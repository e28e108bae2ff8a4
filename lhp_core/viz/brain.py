"""Charts of the brain chapter: the best-layer curve with its phases, where in depth, the companions."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lhp_core import schema
from lhp_core.metrics import brain as brain_metrics
from lhp_core.viz import charts, inspectors, style


def phases_figure(study) -> alt.FacetChart:
    """Each model's best-layer score over tokens seen: bootstrap intervals, the 2-breakpoint fit (dashed),
    its three segments shaded, and the permutation null's 95th percentile (dotted)."""
    best = study.best.to_dataframe().reset_index().dropna(subset=["r"])
    best = best[best[schema.TOKENS_SEEN] > 0]
    fits, bands = [], []
    for m, seg in study.segmentations.items():
        c = best[best.model == m]
        xs = np.linspace(np.log10(c[schema.TOKENS_SEEN].min()), np.log10(c[schema.TOKENS_SEEN].max()), 60)
        fits += [{"model": m, schema.TOKENS_SEEN: 10 ** v, "fit": f} for v, f in zip(xs, seg.fits[2].predict(xs))]
        edges = [xs[0], *seg.fits[2].breakpoints, xs[-1]]
        for i, ph in enumerate(seg.fits[2].phases.split("/")):
            bands.append({"model": m, "start": 10 ** edges[i], "end": 10 ** edges[i + 1], "segment": f"{i + 1}: {ph}"})
    null = study.scores["null_q95"].max(schema.LAYER).to_dataframe().reset_index().dropna(subset=["null_q95"])
    x = style.tokens_x(best[schema.TOKENS_SEEN])
    band = alt.Chart(pd.DataFrame(bands)).mark_rect(opacity=0.12).encode(
        x=alt.X("start:Q", **style.log_axis(best[schema.TOKENS_SEEN], "tokens seen")), x2="end:Q",
        color=alt.Color("segment:N", title="2-breakpoint segment"))
    err = alt.Chart(best).mark_errorbar().encode(x=x, y=alt.Y("r_lo:Q", title="brain score r (best layer)"),
                                                 y2="r_hi:Q")
    pts = alt.Chart(best).mark_line(point=True, color="black").encode(
        x=x, y="r:Q", tooltip=[schema.STEP, "best_layer", alt.Tooltip("r:Q", format=".3f")])
    fit = alt.Chart(pd.DataFrame(fits)).mark_line(strokeDash=[5, 3], color="gray").encode(x=x, y="fit:Q")
    chance = alt.Chart(null).mark_rule(color="gray", strokeDash=[2, 2]).encode(y="null_q95:Q")
    per = [alt.layer(band.transform_filter(f"datum.model == '{m}'"), err.transform_filter(f"datum.model == '{m}'"),
                     pts.transform_filter(f"datum.model == '{m}'"), fit.transform_filter(f"datum.model == '{m}'"),
                     chance.transform_filter(f"datum.model == '{m}'")).properties(title=f"model {m}", width=style.WIDE,
                                                                                 height=160)
           for m in study.models]
    return alt.vconcat(*per)


def depth_figure(study) -> alt.HConcatChart:
    """Layer x step heatmap per model, and (slider) one checkpoint's layer profile for every model."""
    heat = study.scores["r"].to_dataframe().reset_index().dropna(subset=["r"])
    steps = sorted(int(s) for s in heat[schema.STEP].unique())
    hm = alt.Chart(heat).mark_rect().encode(
        x=alt.X(f"{schema.STEP}:O", title="step", axis=alt.Axis(labelOverlap=True)),
        y=alt.Y(f"{schema.LAYER}:O", sort="descending"),
        color=alt.Color("r:Q", scale=alt.Scale(scheme="viridis"), title="r"),
        tooltip=[schema.MODEL, schema.STEP, schema.LAYER, alt.Tooltip("r:Q", format=".3f")],
    ).properties(width=style.HALF, height=90).facet(
        row=alt.Row(f"{schema.MODEL}:N", title=None, header=alt.Header(labelOrient="top", labelAnchor="start")))
    profile = alt.Chart(heat).mark_line(point=True).encode(
        x=alt.X(f"{schema.LAYER}:O"), y=alt.Y("r:Q", title="brain score r"),
        color=style.model_color(heat[schema.MODEL]),
    ).properties(width=style.SMALL + 40, height=style.HEIGHT, title="layer profile")
    return alt.hconcat(hm, charts.step_scrubber(profile, steps, name="brain_step"))


def companions_figure(study) -> alt.FacetChart:
    """Every curve of the study on one tokens-seen axis, one row per measure."""
    comp = study.companions()
    comp = comp[comp[schema.TOKENS_SEEN] > 0]
    return alt.Chart(comp).mark_line(point=True).encode(
        x=style.tokens_x(comp[schema.TOKENS_SEEN]), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=style.model_color(comp[schema.MODEL]),
        tooltip=[schema.MODEL, schema.STEP, alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=style.WIDE, height=80).facet(
        row=alt.Row("measure:N", title=None, header=alt.Header(labelOrient="top", labelAnchor="start",
                                                                labelFontWeight="bold"))
    ).resolve_scale(y="independent")


def predictions_figure(study):
    """Held-out predicted against measured response per sentence: the largest model, final step, best layer."""
    m = study.big
    fin = study.final_step(m)
    layer = int(study.best["best_layer"].sel(model=m, step=fin))
    return brain_metrics.inspect_predictions(study.scores, study.table, m, fin, layer)


def condition_table(study):
    m = study.big
    fin = study.final_step(m)
    layer = int(study.best["best_layer"].sel(model=m, step=fin))
    return style.table(brain_metrics.condition_summary(brain_metrics.prediction_table(study.scores, study.table, m, fin,
                                                                                      layer)))


def prediction_inspector(study):
    """Live picker (Jupyter): predicted against measured response for any model, step and layer."""
    m = study.big
    fin = study.final_step(m)
    steps = [int(s) for s in study.scores[schema.STEP].values]
    layers = [int(v) for v in study.scores[schema.LAYER].values]
    return inspectors.live(
        lambda model, step, layer: brain_metrics.inspect_predictions(study.scores, study.table, model, step, layer),
        model=inspectors.dropdown(study.models, value=m), step=inspectors.slider(steps, value=fin),
        layer=inspectors.dropdown(layers, value=int(study.best["best_layer"].sel(model=m, step=fin))),
    )
