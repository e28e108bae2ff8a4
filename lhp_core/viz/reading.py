"""Charts and the head inspector of the reading-times chapter (PPP, head scores, attention)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.viz import charts, inspectors


def heads_long(scores: Mapping[str, xr.Dataset], variant: str = "") -> pd.DataFrame:
    """Tidy table of head scores: ``model, step, tokens_seen, layer, head, score, value, variant``."""
    frames = []
    for m, ds in scores.items():
        df = ds.to_dataframe().reset_index()
        keep = [c for c in (schema.STEP, schema.TOKENS_SEEN, schema.LAYER, schema.HEAD) if c in df.columns]
        vars_ = [v for v in ds.data_vars]
        df = df.melt(id_vars=keep, value_vars=vars_, var_name="score", value_name="value")
        df.insert(0, schema.MODEL, m)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
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
    data = ppp[ppp[schema.TOKENS_SEEN] > 0]
    x = alt.X(f"{schema.TOKENS_SEEN}:Q", scale=alt.Scale(type="log"), title="tokens seen")
    series = alt.Chart(data).encode(x=x, y=alt.Y(f"{y}:Q", title="Delta LL (nats/word)"), color=alt.Color(f"{schema.MODEL}:N"),
                                    tooltip=[schema.MODEL, "variant", schema.STEP, y])
    # Points apart from the dashed lines, so that the legend draws the dash patterns (charts.dash_encoding).
    line = series.mark_line().encode(strokeDash=charts.dash_encoding("variant"))
    points = series.mark_point(filled=True, opacity=1)
    band = alt.Chart(data).mark_area(opacity=0.15).encode(x=x, y=f"{y}_lo:Q", y2=f"{y}_hi:Q",
                                                         color=f"{schema.MODEL}:N", detail="variant:N")
    layers = [band, alt.layer(line, points)]
    if transitions is not None and len(transitions):
        layers.append(alt.Chart(transitions).mark_rule(strokeDash=[2, 2]).encode(
            x=f"{schema.TOKENS_SEEN}:Q", color=f"{schema.MODEL}:N", tooltip=[schema.MODEL, "variant", schema.TOKENS_SEEN]))
    if reference is not None and np.isfinite(reference):
        layers.append(alt.Chart(pd.DataFrame({"ppp": [reference], "label": ["GPT-3 (davinci)"]}))
                      .mark_rule(color="black").encode(y="ppp:Q", tooltip=["label", "ppp"]))
    return alt.layer(*layers).properties(width=charts.WIDTH, height=charts.HEIGHT, title=title)


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
    ).properties(width=40 * data[schema.HEAD].nunique(), height=40 * data[schema.LAYER].nunique())


def attention_chart(pattern: np.ndarray, title: str = "attention on the induction probe") -> alt.Chart:
    """Heatmap of one head's attention ``[query, key]`` (BOS at 0)."""
    q, k = np.tril_indices(pattern.shape[0])
    df = pd.DataFrame({"query": q, "key": k, "attention": pattern[q, k]})
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("key:O", axis=alt.Axis(labels=False, ticks=False)), y=alt.Y("query:O", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("attention:Q", scale=alt.Scale(domain=[0, 1], scheme="greys")),
        tooltip=["query", "key", "attention"],
    ).properties(width=260, height=260, title=title)


def inspect_head_attention(results: Mapping[str, xr.Dataset], model: str, step: int, layer: int, head: int,
                           loader: Callable[[str, int], tuple], probe_ids: np.ndarray, device: str = "cpu") -> alt.HConcatChart:
    """One head: its score trajectories over training, and its attention on probe sequence 0 at ``step``.

    ``loader(model, step) -> (model, tokenizer)`` loads the checkpoint (e.g.
    ``lambda m, s: checkpoints.load(suite, m, s)``); ``layer`` is 1-based.
    """
    from lhp_core.metrics.heads import attention_on_probe

    traj = inspectors.inspect_head(results, model, step, layer, head)
    net, tok = loader(model, int(step))
    pattern = attention_on_probe(net, np.asarray(probe_ids)[0], tok.bos_token_id, layer, head, device=device)
    L = (pattern.shape[0] - 1) // 2
    title = f"layer {layer} head {head}, step {step}: induction diagonal at key = query - {L - 1}"
    return alt.hconcat(traj, attention_chart(pattern, title))


def interval_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows of ``{what, model, variant, step, lo, hi, tokens_seen}`` as a rounded table for display."""
    df = pd.DataFrame(list(rows))
    return df.round({"step": 0, "lo": 0, "hi": 0})
