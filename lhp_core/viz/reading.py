"""Charts of the reading-times chapter: PPP over training, head scores, a clickable head explorer."""
from __future__ import annotations

from collections.abc import Callable

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import checkpoints, schema
from lhp_core.metrics.heads import attention_patterns
from lhp_core.viz import charts, inspectors, style


def heads_long(scores: xr.Dataset, variant: str = "") -> pd.DataFrame:
    """Tidy head scores ``model, step, tokens_seen, layer, head, score, value, variant`` of a stacked
    :func:`lhp_core.metrics.heads.head_scores_over_steps` result (NaN rows dropped)."""
    names = [v for v in scores.data_vars if {schema.LAYER, schema.HEAD} <= set(scores[v].dims)]
    df = scores[names].to_dataframe().reset_index()
    keep = [c for c in (schema.MODEL, schema.STEP, schema.TOKENS_SEEN, schema.LAYER, schema.HEAD) if c in df.columns]
    out = df.melt(id_vars=keep, value_vars=names, var_name="score", value_name="value").dropna(subset=["value"])
    out["variant"] = variant
    return out


def ppp_chart(ppp: pd.DataFrame, transitions: pd.DataFrame | None = None, reference: float | None = None,
              y: str = "ppp", title: str = "PPP over training") -> alt.LayerChart:
    """PPP against tokens seen (log x), one colour per model, dashed for the regularised variant.

    Parameters
    ----------
    ppp
        Columns ``model, tokens_seen, variant, <y>, <y>_lo, <y>_hi``.
    transitions
        Optional ``model, variant, tokens_seen``: a vertical rule per model at the transition.
    reference
        Optional horizontal line (PPP of GPT-3 surprisal).
    """
    data = ppp[ppp[schema.TOKENS_SEEN] > 0].dropna(subset=[y])
    x = style.tokens_x(data[schema.TOKENS_SEEN])
    color = style.model_color(data[schema.MODEL])
    series = alt.Chart(data).encode(x=x, y=alt.Y(f"{y}:Q", title="PPP: Delta LL (nats/word)"), color=color,
                                    tooltip=[schema.MODEL, "variant", schema.STEP, alt.Tooltip(f"{y}:Q", format=".4f")])
    # Points apart from the dashed lines, so that the legend draws the dash patterns (charts.dash_encoding).
    line = series.mark_line().encode(strokeDash=style.variant_dash())
    points = series.mark_point(filled=True, opacity=1)
    band = alt.Chart(data).mark_area(opacity=0.15).encode(x=x, y=f"{y}_lo:Q", y2=f"{y}_hi:Q", color=color,
                                                         detail="variant:N")
    layers = [band, alt.layer(line, points)]
    if transitions is not None and len(transitions):
        layers.append(alt.Chart(transitions).mark_rule(strokeDash=[2, 2]).encode(
            x=f"{schema.TOKENS_SEEN}:Q", color=color, tooltip=[schema.MODEL, "variant", schema.TOKENS_SEEN]))
    if reference is not None and np.isfinite(reference):
        layers.append(alt.Chart(pd.DataFrame({"ppp": [reference], "label": ["GPT-3 (davinci)"]}))
                      .mark_rule(color="black").encode(y="ppp:Q", tooltip=["label", "ppp"]))
    return alt.layer(*layers).properties(width=style.WIDE, height=style.HEIGHT, title=title)


def ppp_figure(study, measure: str = "ns_spr") -> alt.LayerChart:
    """PPP of one measure for the suite and its twin, with each plain model's transition and (Natural
    Stories) the GPT-3 reference."""
    frames = []
    for v in study.variants:
        df = study.ppp[v, measure][["ppp", "ppp_lo", "ppp_hi"]].to_dataframe().reset_index()
        frames.append(df.assign(variant=v))
    tr = study.transitions[(study.transitions.variant == "plain") & study.transitions.found]
    suite = study.variants["plain"]
    rules = pd.DataFrame([{"model": r.model, "variant": "plain",
                           schema.TOKENS_SEEN: suite.tokens_seen(r.model, min(suite.steps(r.model),
                                                                              key=lambda s: abs(s - r.step)))}
                          for r in tr.itertuples()], columns=["model", "variant", schema.TOKENS_SEEN])
    ref = study.gpt3.mean if measure == "ns_spr" else None
    return ppp_chart(pd.concat(frames, ignore_index=True), rules, ref, title=study.measure_label(measure))


def head_heatmap(long: pd.DataFrame, score: str, model: str, name: str = "heads") -> alt.Chart:
    """Layer x head heatmap of one score for one model, with a step scrubber (static HTML)."""
    data = long[(long["score"] == score) & (long[schema.MODEL] == model)]
    if data.empty:
        raise ValueError(f"no rows for score {score!r} and model {model!r}")
    steps = sorted(int(s) for s in data[schema.STEP].unique())
    base = charts.step_scrubber(alt.Chart(data).properties(title=f"{score} score, model {model}"), steps, name=name)
    return base.mark_rect().encode(
        x=alt.X(f"{schema.HEAD}:O"), y=alt.Y(f"{schema.LAYER}:O"),
        color=alt.Color("value:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis"), title=score),
        tooltip=[schema.LAYER, schema.HEAD, "value"],
    ).properties(width=min(40 * data[schema.HEAD].nunique(), style.WIDE), height=40 * data[schema.LAYER].nunique())


def attention_chart(pattern: np.ndarray, title: str = "attention on the induction probe") -> alt.Chart:
    """Heatmap of one head's attention ``[query, key]``."""
    q, k = np.tril_indices(pattern.shape[0])
    df = pd.DataFrame({"query": q, "key": k, "attention": pattern[q, k]})
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("key:O", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("query:O", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("attention:Q", scale=alt.Scale(domain=[0, 1], scheme="greys")),
        tooltip=["query", "key", "attention"],
    ).properties(width=style.HALF, height=style.HALF, title=title)


def inspect_head_attention(scores: xr.Dataset, model: str, step: int, layer: int, head: int,
                           loader: Callable[[str, int], tuple], probe_ids: np.ndarray, bos: bool = False,
                           device: str = "cpu") -> alt.HConcatChart:
    """One head in Jupyter: its score trajectories over training, and its attention on probe sequence 0.

    ``loader(model, step) -> (model, tokenizer)`` loads the checkpoint; ``layer`` is 1-based;
    ``bos`` prepends BOS (the ``lhp`` convention's probe).
    """
    traj = inspectors.inspect_head(scores, model, step, layer, head)
    net, tok = loader(model, int(step))
    pattern = attention_patterns(net, np.asarray(probe_ids)[0], tok.bos_token_id if bos else None,
                                 device)[layer - 1, head]
    return alt.hconcat(traj, attention_chart(pattern, f"layer {layer} head {head}, step {step}"))


def head_explorer(study) -> alt.VConcatChart:
    """Click a head of the largest model's map: its attention on a repeated sequence and its scores over
    training appear beside it. Precomputed data, so it works in the static page."""
    scores = study.heads["plain"].sel(model=study.big)
    last = scores["induction"].dropna(schema.STEP, how="all")[schema.STEP].values[-1]
    final = scores["induction"].sel(step=last).to_dataframe().reset_index().dropna(subset=["induction"])
    final = final[[schema.LAYER, schema.HEAD, "induction"]]
    best = final.loc[final["induction"].idxmax()]
    pick = alt.selection_point(fields=[schema.LAYER, schema.HEAD], name="head_pick",
                               value=[{schema.LAYER: int(best[schema.LAYER]), schema.HEAD: int(best[schema.HEAD])}])
    n_layer, n_head = final[schema.LAYER].nunique(), final[schema.HEAD].nunique()
    cell = max(18, min(40, style.HALF // max(n_head, 1)))
    heat = alt.Chart(final).mark_rect(stroke="black").encode(
        x=alt.X(f"{schema.HEAD}:O"), y=alt.Y(f"{schema.LAYER}:O", sort="descending"),
        color=alt.Color("induction:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis"), title="induction"),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
        tooltip=[schema.LAYER, schema.HEAD, alt.Tooltip("induction:Q", format=".3f")],
    ).add_params(pick).properties(width=cell * n_head, height=cell * n_layer,
                                  title=f"{study.big}, step {int(last)}: click a head")
    att = study.attention  # [layer, head, query, key] on a repeated sequence
    q, k = np.tril_indices(att.shape[-1])
    rows = [pd.DataFrame({schema.LAYER: li + 1, schema.HEAD: h, "query": q, "key": k, "attention": att[li, h][q, k]})
            for li in range(att.shape[0]) for h in range(att.shape[1])]
    pattern = pd.concat(rows, ignore_index=True)
    pattern = pattern[pattern["attention"] >= 0.005]  # the blank rest keeps the page small
    side = style.HALF - 20
    attn = alt.Chart(pattern).mark_rect().encode(
        x=alt.X("key:O", axis=alt.Axis(labels=False, ticks=False),
                scale=alt.Scale(domain=list(range(att.shape[-1])))),
        y=alt.Y("query:O", axis=alt.Axis(labels=False, ticks=False),
                scale=alt.Scale(domain=list(range(att.shape[-1])))),
        color=alt.Color("attention:Q", scale=alt.Scale(domain=[0, 1], scheme="greys"), legend=None),
        tooltip=["query", "key", alt.Tooltip("attention:Q", format=".3f")],
    ).transform_filter(pick).properties(width=side, height=side, title="its attention on a repeated sequence")
    traj = heads_long(study.heads["plain"].sel(model=[study.big]))
    traj = traj[traj[schema.TOKENS_SEEN] > 0]
    curve = alt.Chart(traj).mark_line(point=True).encode(
        x=style.tokens_x(traj[schema.TOKENS_SEEN]), y=alt.Y("value:Q", title="score", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("score:N", title="score"), tooltip=["score", schema.STEP, alt.Tooltip("value:Q", format=".3f")],
    ).transform_filter(pick).properties(width=style.WIDE, height=160, title="its scores over training")
    return alt.vconcat(alt.hconcat(heat, attn), curve).resolve_scale(color="independent")


def transitions_figure(study) -> alt.FacetChart:
    """Largest induction and previous-token score and the ICL score per model over tokens, with the
    transition interval of each plain model shaded."""
    rows = []
    for v, ds in study.heads.items():
        for score in ("induction", "prev_token"):
            best = ds[score].max([schema.LAYER, schema.HEAD]).to_dataframe(name="value").reset_index()
            rows.append(best.assign(variant=v, measure=f"largest {score.replace('_', '-')} score"))
        icl = study.icl[v]["icl"].to_dataframe(name="value").reset_index()
        rows.append(icl.assign(variant=v, measure="ICL score (nats)"))
    data = pd.concat(rows, ignore_index=True).dropna(subset=["value"])
    data = data[data[schema.TOKENS_SEEN] > 0]
    color = style.model_color(data[schema.MODEL])
    x = style.tokens_x(data[schema.TOKENS_SEEN])
    series = alt.Chart().encode(x=x, y=alt.Y("value:Q", title=None), color=color,
                                tooltip=[schema.MODEL, "variant", schema.STEP, alt.Tooltip("value:Q", format=".3f")])
    return alt.layer(series.mark_line().encode(strokeDash=style.variant_dash()),
                     series.mark_point(filled=True, size=14), data=data).properties(width=style.WIDE, height=110).facet(
        row=alt.Row("measure:N", title=None, header=alt.Header(labelOrient="top", labelAnchor="start",
                                                                labelFontWeight="bold"))
    ).resolve_scale(y="independent")


def summary_table(study):
    """The chapter's table: per model, transition and PPP peak with their intervals, rounded."""
    s = study.summary()
    out = pd.DataFrame({
        "variant": s.variant, "model": s.model,
        "transition step": [f"{a:.0f} [{b:.0f}, {c:.0f}]" if f else "none"
                            for a, b, c, f in zip(s.transition, s.transition_lo, s.transition_hi, s.transition_found)],
        "induction (last)": s.induction_last.round(2),
        "PPP peak step": [f"{a:.0f} [{b:.0f}, {c:.0f}]" for a, b, c in zip(s.ppp_peak, s.ppp_peak_lo, s.ppp_peak_hi)],
        "PPP peak / last": [f"{a:.4f} / {b:.4f}" for a, b in zip(s.ppp_peak_value, s.ppp_last)],
        "coincide": s.coincide,
    })
    return style.table(out)


def head_inspector(study, device: str = "cpu"):
    """Live picker (Jupyter): any model, step, layer and head of the suite, its scores and its attention.

    In a ``lhp book`` run it draws the initial view only (the page has :func:`head_explorer`).
    """
    scores = study.heads["plain"]
    ds = scores.sel(model=study.big).dropna(schema.STEP, how="all")
    bos = study.params["head_convention"] != "aoyama_wilcox"
    probe = scores["probe_ids"].sel(model=study.big).values

    def draw(model, step, layer, head):
        return inspect_head_attention(scores, model, step, layer, head,
                                      lambda m, s: checkpoints.load(study.variants["plain"], m, s, device=device),
                                      probe, bos=bos, device=device)

    return inspectors.live(draw, model=inspectors.dropdown(study.models["plain"], value=study.big),
                           step=inspectors.slider([int(x) for x in ds[schema.STEP].values]),
                           layer=inspectors.int_slider(int(ds[schema.LAYER].min()), int(ds[schema.LAYER].max())),
                           head=inspectors.int_slider(0, int(ds[schema.HEAD].max())))
