"""Charts of the experts chapter: alignment over training, concept similarity, a clickable expert explorer."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from IPython.display import display

from lhp_core import schema
from lhp_core.metrics import experts, similarity
from lhp_core.suites import size_order
from lhp_core.viz import charts, inspectors, style


def _per_model(study, measures: list[str], title: str) -> alt.FacetChart:
    t = study.per_step()
    long = t.melt(id_vars=[schema.MODEL, schema.STEP, schema.TOKENS_SEEN], value_vars=measures, var_name="measure",
                  value_name="value").dropna(subset=["value"])
    long = long[long[schema.TOKENS_SEEN] > 0]
    return alt.Chart(long).mark_line(point=True).encode(
        x=style.tokens_x(long[schema.TOKENS_SEEN]), y=alt.Y("value:Q", title=title),
        color=alt.Color("measure:N", sort=measures, title=None),
        tooltip=[schema.MODEL, schema.STEP, "measure", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=style.SMALL + 10, height=style.HEIGHT).facet(
        column=alt.Column(f"{schema.MODEL}:N", sort=size_order(study.models), title=None))


def alignment_figure(study) -> alt.FacetChart:
    """Spearman of expert overlap (and of the input-embedding baseline) with SPoSE, the null's 95th
    percentile, and expert overlap against the feature norms, per model over tokens seen."""
    return _per_model(study, ["rsa_jaccard", "rsa_embedding", "null_q95", "rsa_mcrae", "rsa_cslb"], "Spearman rho")


def hierarchy_figure(study) -> alt.FacetChart:
    """Containment of member experts in category experts, and clustering agreement (ARI), with nulls."""
    return _per_model(study, ["containment", "containment_null_q95", "ari", "ari_null_q95"], "share / ARI")


def similarity_matrices(study) -> alt.Chart:
    """Concept x concept similarity of the largest model (expert Jaccard) beside the human one, as
    percentiles, one checkpoint at a time (slider)."""
    ap = experts.model_ap(study.ap, study.big)
    words = study.words
    hum = study.human / np.abs(study.human).max()
    rows = []
    for s in ap[schema.STEP].values:
        jac = similarity.jaccard_similarity(experts.select_experts(ap.sel(step=s, concept=words),
                                                                   top_k=study.top_k).values)
        for src, mat in (("model (expert Jaccard)", jac), ("human (SPoSE dot)", hum)):
            i, j = np.meshgrid(range(len(words)), range(len(words)), indexing="ij")
            rows.append(pd.DataFrame({"step": int(s), "a": np.asarray(words)[i.ravel()],
                                      "b": np.asarray(words)[j.ravel()], "source": src, "sim": mat.ravel()}))
    mat = pd.concat(rows, ignore_index=True)
    mat["value"] = mat.groupby(["step", "source"])["sim"].rank(pct=True).round(3)
    steps = sorted(int(s) for s in ap[schema.STEP].values)
    side = max(140, min(260, 12 * len(words)))
    return charts.step_scrubber(mat.drop(columns="sim"), steps, name="expert_step").mark_rect().encode(
        x=alt.X("a:N", sort=words, title=None), y=alt.Y("b:N", sort=words, title=None),
        color=alt.Color("value:Q", title="percentile"), column=alt.Column("source:N", title=None),
        tooltip=["a", "b", "value"]).properties(width=side, height=side)


def expert_explorer(study, n_experts: int = 5, k: int = 3) -> alt.HConcatChart:
    """Click an expert (a concept's top unit at the last checkpoint of the largest model): its AP for that
    concept over training, the concepts it is most expert for, and the sentences that drive it most."""
    big = study.big
    ap = experts.model_ap(study.ap, big)
    last = int(ap[schema.STEP].values[-1])
    final = ap.sel(step=last)
    acts = experts.unit_activations(study.suite, study.texts, big, last, device=study.params.get("device", "cpu"))
    text = study.texts.set_index("stimulus")["text"]
    tops, traj, conc, sent = [], [], [], []
    concepts_ = [str(c) for c in final["concept"].values]
    tokens = {int(s): float(study.suite.tokens_seen(big, int(s))) for s in ap[schema.STEP].values}
    for c in concepts_:
        row = final.sel(concept=c).values
        best = np.argsort(-row, kind="stable")[:n_experts]
        for rank, u in enumerate(best):
            label = f"L{int(final['layer'].values[u])} {final['module'].values[u]} #{int(final['unit'].values[u])}"
            tops.append({"concept": c, "rank": rank + 1, "neuron": int(u), "unit": label,
                         "ap": round(float(row[u]), 3)})
            for s, v in zip(ap[schema.STEP].values, ap.sel(concept=c).values[:, u]):
                traj.append({"concept": c, "neuron": int(u), schema.STEP: int(s), schema.TOKENS_SEEN: tokens[int(s)],
                             "ap": round(float(v), 3)})
    units = sorted({t["neuron"] for t in tops})  # every unit shown in the grid
    for u in units:
        col = final.values[:, u]
        for c_i in np.argsort(-col, kind="stable")[:5]:
            conc.append({"neuron": u, "concept": concepts_[c_i], "ap": round(float(col[c_i]), 3)})
        for r in experts.top_stimuli(acts, [u], text, k=k).itertuples():
            sent.append({"neuron": u, "rank": r.rank + 1, "text": str(r.text)[:90]})
    tops = pd.DataFrame(tops)
    first = tops.iloc[0]
    # A unit can be an expert of several concepts: picking it shows all of them.
    pick = alt.selection_point(fields=["neuron"], name="expert_pick", value=[{"neuron": int(first.neuron)}])
    grid = alt.Chart(tops).mark_rect(stroke="black").encode(
        x=alt.X("rank:O", title="expert rank"), y=alt.Y("concept:N", sort=concepts_, title=None),
        color=alt.Color("ap:Q", scale=alt.Scale(domain=[0.5, 1], scheme="blues"), title="AP"),
        strokeWidth=alt.condition(pick, alt.value(2), alt.value(0)),
        tooltip=["concept", "rank", "unit", "ap"],
    ).add_params(pick).properties(width=120, height=max(160, 12 * len(concepts_)),
                                  title=f"{big}, step {last}: click an expert")
    trajectory = pd.DataFrame(traj)
    trajectory = trajectory[trajectory[schema.TOKENS_SEEN] > 0]
    curve = alt.Chart(trajectory).mark_line(point=True).encode(
        x=style.tokens_x(trajectory[schema.TOKENS_SEEN]), y=alt.Y("ap:Q", title="AP", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("concept:N", title="expert of"), tooltip=["concept", schema.STEP, "ap"],
    ).transform_filter(pick).properties(width=style.HALF, height=110, title="its AP over training")
    bars = alt.Chart(pd.DataFrame(conc)).mark_bar().encode(
        x=alt.X("ap:Q", scale=alt.Scale(domain=[0, 1]), title="AP at the last step"),
        y=alt.Y("concept:N", sort="-x", title=None), tooltip=["concept", "ap"],
    ).transform_filter(pick).properties(width=style.HALF - 40, height=90, title="the concepts it is most expert for")
    sentences = alt.Chart(pd.DataFrame(sent)).mark_text(align="left", dx=-5, limit=style.HALF + 30).encode(
        y=alt.Y("rank:O", title=None, axis=None), text="text:N",
    ).transform_filter(pick).properties(width=style.HALF + 40, height=60, title="sentences that drive it most")
    return alt.hconcat(grid, alt.vconcat(curve, bars, sentences))


def concept_inspector(study):
    """Live picker (Jupyter): any concept, model and checkpoint: its top experts, their AP over training and
    the sentences that drive them."""

    def show(concept, model, step):
        ap = experts.model_ap(study.ap, model)
        acts = experts.unit_activations(study.suite, study.texts, model, step, device=study.params.get("device", "cpu"))
        out = experts.inspect_concept(ap, acts, study.texts, concept, step)
        display(out["experts"].round(3), out["sentences"][["neuron", "rank", "activation", "text"]])

    return inspectors.live(show, concept=inspectors.dropdown([str(c) for c in study.ap["concept"].values]),
                           model=inspectors.dropdown(study.models, value=study.big),
                           step=inspectors.slider(study.steps))
