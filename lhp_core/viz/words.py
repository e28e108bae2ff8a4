"""Charts of the words chapter: model AoA against children's, learning curves of example words, predictors."""
from __future__ import annotations

import altair as alt
import pandas as pd

from lhp_core import schema
from lhp_core.viz import charts, style

_CLASSES = ["nouns", "verbs", "adjectives", "function_words", "other"]


def aoa_scatter(study) -> alt.FacetChart:
    """Model AoA (steps, log) against children's AoA (months), one panel per model; hover a point for its word."""
    t = study.table.dropna(subset=["model_aoa"])
    axis = style.log_axis(t["model_aoa"], "model AoA (step)")
    points = alt.Chart().mark_circle(size=30, opacity=0.7).encode(
        x=alt.X("child_aoa:Q", scale=alt.Scale(zero=False), title="children's AoA (months)"),
        y=alt.Y("model_aoa:Q", **axis),
        color=alt.Color("lexical_class:N", title="lexical class", sort=_CLASSES),
        tooltip=["word", "category", alt.Tooltip("child_aoa:Q", format=".1f", title="child AoA (months)"),
                 alt.Tooltip("model_aoa:Q", format=".0f", title="model AoA (step)"),
                 alt.Tooltip("model_lo:Q", format=".0f", title="model AoA low"),
                 alt.Tooltip("model_hi:Q", format=".0f", title="model AoA high"), "n_contexts"])
    return alt.layer(points, data=t).properties(width=style.SMALL + 20, height=style.SMALL + 20).facet(
        column=alt.Column(f"{schema.MODEL}:N", sort=list(study.models), title="model"))


def learning_curves(study, model: str | None = None) -> alt.LayerChart:
    """Mean surprisal of example words (:meth:`Words.example_words`) over training; the slider marks a checkpoint."""
    model = model or study.big
    chosen = study.example_words()
    da = study.model_aoa["mean_surprisal"].sel({schema.MODEL: model, schema.WORD: chosen})
    df = da.to_dataframe(name="surprisal").reset_index().dropna(subset=["surprisal"])
    df = df[[schema.STEP, schema.WORD, "surprisal"]].assign(step_axis=lambda d: d[schema.STEP].clip(lower=0.5))
    x = alt.X("step_axis:Q", scale=alt.Scale(type="log"), title="step (step 0 drawn at 0.5)")
    enc = dict(x=x, y=alt.Y("surprisal:Q", title="mean surprisal (bits)", scale=alt.Scale(zero=False)),
               color=alt.Color(f"{schema.WORD}:N", sort=chosen, title="word"),
               tooltip=[schema.WORD, schema.STEP, alt.Tooltip("surprisal:Q", format=".2f")])
    lines = alt.Chart(df).mark_line().encode(**enc)
    marked = charts.step_scrubber(alt.Chart(df).mark_point(size=90, filled=True).encode(**enc),
                                  sorted(int(s) for s in df[schema.STEP].unique()), name="words_step")
    return alt.layer(lines, marked).properties(width=style.WIDE, height=style.HEIGHT,
                                               title=f"model {model}: example words")


def category_figure(study) -> alt.Chart:
    """Per CDI category: how much earlier (left) or later (right) the models learn its words than children,
    in percentile rank, with bootstrap intervals."""
    c = study.categories
    base = alt.Chart(c).encode(y=alt.Y("category:N", sort=alt.SortField("shift"), title=None),
                               color=style.model_color(study.models))
    rules = base.mark_rule().encode(x=alt.X("lo:Q", title="model rank - child rank (share of words)"), x2="hi:Q")
    points = base.mark_point(filled=True).encode(
        x="shift:Q", tooltip=["model", "category", "n", alt.Tooltip("shift:Q", format=".2f"), "learns"])
    zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(strokeDash=[4, 3], color="gray").encode(x="x:Q")
    return alt.layer(rules, points, zero).properties(width=style.WIDE - 80,
                                                     height=14 * max(c["category"].nunique(), 1))


def predictor_table(study):
    """Each learner's regression of AoA on z-scored predictors: coefficient [interval], p, R^2, words."""
    t = study.predictor_table()
    return style.table(pd.DataFrame({
        "learner": t["learner"], "term": t["term"],
        "coefficient [95% interval]": [f"{c:+.3f} [{lo:+.3f}, {hi:+.3f}]" for c, lo, hi in zip(t.coef, t.lo, t.hi)],
        "p": t["p"], "R²": t["r2"], "words": t["n"]}))


def correlation_table(study):
    """Spearman rho of each model's word order with children's, interval, permutation p and null."""
    c = study.correlation.reset_index(names="model")
    return style.table(pd.DataFrame({
        "model": c["model"], "words": c["n"].astype(int),
        "Spearman rho [95% interval]": [f"{r:.3f} [{lo:.3f}, {hi:.3f}]" for r, lo, hi in zip(c.rho, c.lo, c.hi)],
        "permutation p": c["p"], "null 95th pct |rho|": c["null_q95"]}))


def forms_table(study):
    """The CDI items whose scored text differs from the printed form, and the rule applied."""
    f = study.forms
    return style.table(f[f["rule"] != "as printed"][["item_definition", "form", "rule", "excluded"]])
