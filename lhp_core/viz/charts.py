"""Altair charts shared by the book's chapters, drawn offline (see :mod:`lhp_core.viz.offline`).

Importing this module switches altair to the offline renderer, so a chapter's setup
cell ``from lhp_core.viz import charts`` is all it takes.

Every function takes a tidy :class:`pandas.DataFrame` (one row per observation, e.g.
``model, step, tokens_seen, value``) and returns an :class:`altair.Chart` that the caller
may refine further (``.properties(title=...)``, ``.encode(...)``); :func:`line_over_training`
returns a layer chart (lines, then points), which takes ``.properties(...)``. A legend for
dash patterns comes from :func:`dash_encoding`.

The step scrubber
-----------------
:func:`step_scrubber` adds a slider over the *actual* checkpoint steps to a chart: the
slider moves over the index ``0..n-1`` of ``steps`` (checkpoints are log-spaced, so a
slider over raw step values would mostly land between checkpoints) and the chart keeps
only rows whose step is ``steps[index]``. It is pure vega-lite, so it works in the static
HTML book with no kernel::

    base = charts.step_scrubber(df, steps)                      # an alt.Chart with the filter
    base.mark_line().encode(x="layer:Q", y="score:Q", color="model:N")
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lhp_core import schema
from lhp_core.viz import offline

offline.enable()

#: Default chart size; wide enough for log-x training curves, small enough for two side by side.
WIDTH, HEIGHT = 420, 260


def _require(data: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{where} needs a tidy pandas DataFrame, got {type(data).__name__} "
                        "(use ds.to_dataframe().reset_index())")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"{where}: columns {missing} missing; the table has {list(data.columns)}")


def _positive(data: pd.DataFrame, x: str, where: str) -> pd.DataFrame:
    """Drop rows a log axis cannot show (step 0 has seen 0 tokens) and say so in the data."""
    keep = data[x] > 0
    if not keep.any():
        raise ValueError(f"{where}: no positive {x!r} values to draw on a log axis; pass log_x=False")
    return data.loc[keep]


def dash_encoding(field: str, title: str | None = None) -> alt.StrokeDash:
    """``strokeDash`` by ``field`` whose legend shows each dash pattern as a short line.

    Put it on a line mark without a point overlay: with ``mark_line(point=True)`` vega-lite draws
    the legend symbols as filled dots, and every dash pattern looks the same. Draw points as a
    separate layer (as :func:`line_over_training` does).
    """
    return alt.StrokeDash(f"{field}:N", title=title or field.replace("_", " "),
                          legend=alt.Legend(symbolType="stroke", symbolStrokeColor="black", symbolSize=400,
                                            symbolStrokeWidth=2))


def line_over_training(
    data: pd.DataFrame,
    y: str,
    x: str = schema.TOKENS_SEEN,
    color: str | None = schema.MODEL,
    dash: str | None = None,
    log_x: bool = True,
    title: str | None = None,
    y_title: str | None = None,
) -> alt.LayerChart:
    """Lines of ``y`` against training progress, one per ``color`` (and ``dash``) value, a point per checkpoint.

    Parameters
    ----------
    data
        Tidy table with columns ``x``, ``y`` and the grouping columns.
    x
        ``tokens_seen`` (default) or ``step``. With ``log_x`` rows where ``x <= 0`` are dropped.
    dash
        Column whose values get different dash patterns; the legend shows the patterns.

    Returns
    -------
    alt.LayerChart
        Lines, then points (a separate layer, so that the dash legend draws dashes); the table is
        the layer chart's ``data``, so :func:`step_scrubber` accepts it.
    """
    cols = [x, y] + [c for c in (color, dash) if c]
    _require(data, cols, "line_over_training")
    # Keep the step column so the chart can be handed to step_scrubber.
    extra = [schema.STEP] if schema.STEP in data.columns and schema.STEP not in cols else []
    frame = data[cols + extra].dropna()
    if log_x:
        frame = _positive(frame, x, "line_over_training")
    enc = {
        "x": alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Undefined, title=x.replace("_", " ")),
        "y": alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), title=y_title or y.replace("_", " ")),
        "tooltip": cols,
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", sort=list(pd.unique(frame[color])))
    base = alt.Chart().encode(**enc)
    lines = base.mark_line().encode(strokeDash=dash_encoding(dash)) if dash else base.mark_line()
    points = base.mark_point(filled=True, opacity=1)
    chart = alt.layer(lines, points, data=frame).properties(width=WIDTH, height=HEIGHT)
    return chart.properties(title=title) if title else chart


def checkpoint_schedule(data: pd.DataFrame, x: str = schema.STEP, row: str = schema.MODEL,
                        title: str | None = None) -> alt.Chart:
    """One tick per saved checkpoint, per model, on a symlog axis (step 0 is shown)."""
    _require(data, [x, row], "checkpoint_schedule")
    chart = (
        alt.Chart(data[[x, row]])
        .mark_tick(thickness=2)
        .encode(
            x=alt.X(f"{x}:Q", scale=alt.Scale(type="symlog"), title=x.replace("_", " ")),
            y=alt.Y(f"{row}:N", title=row),
            tooltip=[row, x],
        )
        .properties(width=WIDTH, height=max(40, 24 * data[row].nunique()))
    )
    return chart.properties(title=title) if title else chart


def bars(data: pd.DataFrame, x: str, y: str, color: str | None = None, log_y: bool = False,
         title: str | None = None) -> alt.Chart:
    """Bar chart of ``y`` per category ``x`` (kept in table order)."""
    _require(data, [x, y] + ([color] if color else []), "bars")
    enc = {
        "x": alt.X(f"{x}:N", sort=list(pd.unique(data[x])), title=x.replace("_", " ")),
        # Unstacked bars on a log scale start at the domain minimum instead of at zero.
        "y": alt.Y(f"{y}:Q", scale=alt.Scale(type="log") if log_y else alt.Undefined,
                   stack=None if log_y else alt.Undefined, title=y.replace("_", " ")),
        "tooltip": list(data.columns),
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N")
    chart = alt.Chart(data).mark_bar().encode(**enc).properties(width=min(WIDTH, 60 * data[x].nunique() + 40),
                                                                height=HEIGHT)
    return chart.properties(title=title) if title else chart


def step_scrubber(
    chart_or_data: alt.Chart | alt.LayerChart | pd.DataFrame,
    steps: Sequence[int],
    field: str = schema.STEP,
    name: str = "checkpoint",
    initial: int | None = None,
) -> alt.Chart | alt.LayerChart:
    """Add a slider over training checkpoints that filters the chart to one step.

    Parameters
    ----------
    chart_or_data
        An ``alt.Chart`` (or a layer chart such as :func:`line_over_training`'s) whose data is a
        DataFrame, or a DataFrame (then the result is an ``alt.Chart`` without a mark: add
        ``.mark_*().encode(...)``).
    steps
        The checkpoint steps the slider visits, e.g. ``sorted(df.step.unique())``.
    field
        Column holding the step.
    name
        Parameter name (unique per chart); the slider reads ``"<name> (step index)"``.
    initial
        Step shown first (default: the last).

    Returns
    -------
    alt.Chart
        The filtered chart; its subtitle shows the selected step.
    """
    steps = [int(s) for s in steps]
    if not steps:
        raise ValueError("step_scrubber needs at least one step")
    if sorted(set(steps)) != steps:
        raise ValueError(f"step_scrubber: steps must be unique and increasing, got {steps[:10]}...")
    if not name.isidentifier():
        raise ValueError(f"step_scrubber: name {name!r} must be a valid identifier (it becomes a vega signal)")
    chart = alt.Chart(chart_or_data) if isinstance(chart_or_data, pd.DataFrame) else chart_or_data
    data = chart.data
    if isinstance(data, pd.DataFrame):
        _require(data, [field], "step_scrubber")
        unknown = sorted({int(s) for s in data[field].unique()} - set(steps))
        if len(unknown) == data[field].nunique():
            raise ValueError(f"step_scrubber: none of the table's {field!r} values are in steps {steps[:10]}...")
    start = len(steps) - 1 if initial is None else steps.index(int(initial)) if int(initial) in steps else None
    if start is None:
        raise ValueError(f"step_scrubber: initial step {initial} is not one of the steps")
    param = alt.param(
        name=name,
        value=start,
        bind=alt.binding_range(min=0, max=max(len(steps) - 1, 1), step=1, name=f"{name} (step index) "),
    )
    lookup = json.dumps(steps)
    title = chart.title if chart.title is not alt.Undefined else ""
    if isinstance(title, alt.TitleParams):
        title = title.text
    # vega-lite takes an expression for the title text (not the subtitle): "<title> · step N".
    prefix = f"{title} · " if isinstance(title, str) and title else ""
    text = alt.ExprRef(f"{json.dumps(prefix + field + ' ', ensure_ascii=False)} + {lookup}[{name}]")
    return (
        chart.add_params(param)
        .transform_filter(f"datum[{json.dumps(field)}] == {lookup}[{name}]")
        .properties(title=alt.TitleParams(text=text))
    )


def rows_at_step(data: pd.DataFrame, steps: Sequence[int], index: int, field: str = schema.STEP) -> pd.DataFrame:
    """The rows a :func:`step_scrubber` chart shows with the slider at ``index`` (for tests and captions)."""
    return data.loc[np.asarray(data[field]) == int(list(steps)[index])]
