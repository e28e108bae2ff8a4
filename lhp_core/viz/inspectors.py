"""Live inspectors for Jupyter: pick a model, step, layer, head or neuron and see it.

The pattern
-----------
An inspector is two pieces:

1. a **plain function** ``inspect_<thing>(results, model, step, ...) -> alt.Chart`` that
   draws one selection. It knows nothing about widgets, so unit tests call it directly
   and a static page can show one call's chart;
2. :func:`inspector`, which adds controls (a dropdown for the model, a slider over the
   actual checkpoint steps, integer sliders for layer / head / neuron) and calls the
   function whenever a control moves.

::

    from lhp_core.viz import inspectors
    inspectors.inspector(results, inspectors.inspect_head, layer=True, head=True)

Any plain function gets controls with :func:`live` and control specs
(:func:`dropdown`, :func:`slider`, :func:`int_slider`)::

    inspectors.live(lambda model, step: draw(model, step),
                    model=inspectors.dropdown(models), step=inspectors.slider(steps))

In Jupyter both return a live ipywidgets panel that starts on the controls' initial values.
In a ``lhp book`` run (:func:`lhp_core.progress.in_book_run`) they return that first view
as a plain chart and create no widget at all: widget state saved in an executed chapter
would make its page load require.js and the widget manager from a CDN, and a widget does
nothing without a kernel. So a chapter shows ``inspectors.live(...)`` (or
``inspectors.inspector(...)``) as a cell's last expression, builds no ipywidgets itself, and
needs no separate static call for the HTML book.

Chapters add their own ``inspect_*`` functions (here, or in their metrics module) with
the same signature convention: ``results`` first, then ``model, step`` and the unit
indices as keyword arguments.

``results`` is what :func:`lhp_core.open_results` returns (models are groups because
hidden sizes differ): a mapping ``model -> xarray.Dataset``, or an ``xarray.DataTree``
whose children are models. Variables use the dims of :mod:`lhp_core.schema`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import ipywidgets as w
import pandas as pd
import xarray as xr
from IPython.display import display

from lhp_core import schema
from lhp_core.progress import in_book_run
from lhp_core.viz import charts

#: A stacked Dataset with a ``model`` dim (the measure runner's), a mapping ``model -> Dataset`` or a
#: DataTree of models (a sweep store, :func:`lhp_core.open_results`).
Results = Mapping[str, xr.Dataset] | Any


def models(results: Results) -> list[str]:
    """Model ids in ``results``."""
    if isinstance(results, xr.Dataset):
        if schema.MODEL not in results.dims:
            raise TypeError("results must be a stacked Dataset with a 'model' dim (lhp_core.measures.over_steps) or "
                            "map model -> Dataset (lhp_core.open_results); wrap a single model's: {'model': ds}")
        return [str(m) for m in results[schema.MODEL].values]
    if hasattr(results, "children"):  # xarray.DataTree
        return list(results.children)
    return list(results)


def model_dataset(results: Results, model: str) -> xr.Dataset:
    """The Dataset of one model, with a clear error for an unknown id."""
    ids = models(results)
    if model not in ids:
        raise KeyError(f"model {model!r} not in results; models: {', '.join(ids)}")
    if isinstance(results, xr.Dataset):  # stacked: one model's part, without the steps it lacks
        return results.sel({schema.MODEL: model}).dropna(schema.STEP, how="all")
    node = results[model]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def _unit_vars(ds: xr.Dataset, unit: str) -> list[str]:
    return [v for v, da in ds.data_vars.items()
            if schema.STEP in da.dims and schema.LAYER in da.dims and unit in da.dims]


def _check_index(ds: xr.Dataset, dim: str, value: int) -> None:
    if dim not in ds.sizes:
        raise KeyError(f"results have no {dim!r} dimension; dims: {dict(ds.sizes)}")
    if value not in ds[dim].values:
        raise IndexError(f"{dim} {value} out of range; valid {dim}s: {ds[dim].values.min()}..{ds[dim].values.max()}")


def _trajectory(results: Results, model: str, step: int, layer: int, unit_dim: str, unit: int,
                variables: list[str] | None) -> alt.Chart:
    ds = model_dataset(results, model)
    for dim, value in ((schema.STEP, step), (schema.LAYER, layer), (unit_dim, unit)):
        _check_index(ds, dim, value)
    names = variables or _unit_vars(ds, unit_dim)
    if not names:
        raise ValueError(
            f"model {model!r} has no variable with dims (step, layer, {unit_dim}); variables: {list(ds.data_vars)}"
        )
    sel = ds[names].sel({schema.LAYER: layer, unit_dim: unit})
    extra = [d for d in sel.dims if d != schema.STEP]
    if extra:
        raise ValueError(f"variables {names} have extra dims {extra} beyond (step, layer, {unit_dim}); "
                         "pass variables=[...] to pick scalar ones")
    table = sel.to_dataframe().reset_index().melt(id_vars=[schema.STEP], value_vars=names, var_name="measure",
                                                  value_name="value")
    lines = (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{schema.STEP}:Q", scale=alt.Scale(type="symlog")),
            y=alt.Y("value:Q"),
            color="measure:N",
            tooltip=[schema.STEP, "measure", "value"],
        )
    )
    rule = alt.Chart(pd.DataFrame({schema.STEP: [step]})).mark_rule(strokeDash=[4, 3], color="gray").encode(
        x=f"{schema.STEP}:Q")
    return alt.layer(lines, rule).properties(
        width=charts.WIDTH, height=charts.HEIGHT,
        title=f"{model} · layer {layer} · {unit_dim} {unit} (selected step {step})",
    )


def inspect_head(results: Results, model: str, step: int, layer: int, head: int,
                 variables: list[str] | None = None) -> alt.Chart:
    """Every per-head measure of one attention head across training, the selected step marked.

    Parameters
    ----------
    results
        ``model -> Dataset`` with variables of dims ``(step, layer, head)``.
    variables
        Which variables to draw (default: all with those dims).
    """
    return _trajectory(results, model, step, layer, schema.HEAD, head, variables)


def inspect_neuron(results: Results, model: str, step: int, layer: int, neuron: int,
                   variables: list[str] | None = None) -> alt.Chart:
    """Every per-neuron measure of one MLP neuron across training (dims ``(step, layer, neuron)``)."""
    return _trajectory(results, model, step, layer, schema.NEURON, neuron, variables)


def inspect_heads_at_step(results: Results, model: str, step: int, variable: str) -> alt.Chart:
    """Heat map of ``variable`` over layer × head at one checkpoint."""
    ds = model_dataset(results, model)
    _check_index(ds, schema.STEP, step)
    if variable not in ds:
        raise KeyError(f"variable {variable!r} not in results of {model!r}; variables: {list(ds.data_vars)}")
    da = ds[variable].sel({schema.STEP: step})
    if set(da.dims) != {schema.LAYER, schema.HEAD}:
        raise ValueError(f"{variable} at one step has dims {da.dims}; inspect_heads_at_step needs (layer, head)")
    table = da.to_dataframe(name="value").reset_index()
    return (
        alt.Chart(table)
        .mark_rect()
        .encode(x=f"{schema.HEAD}:O", y=f"{schema.LAYER}:O",
                color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis")),
                tooltip=[schema.LAYER, schema.HEAD, "value"])
        .properties(title=f"{model} · {variable} at step {step}")
    )


@dataclass(frozen=True)
class Control:
    """A control :func:`live` shows: an ipywidgets widget in Jupyter, its initial value in the book.

    Make one with :func:`dropdown`, :func:`slider` or :func:`int_slider`.
    """

    kind: str  # "dropdown", "slider" (over given values) or "int_slider"
    options: tuple[Any, ...]
    value: Any


def dropdown(options: Sequence[Any], value: Any = None) -> Control:
    """A dropdown over ``options``, starting at ``value`` (default: the first)."""
    return _control("dropdown", options, value, default=0)


def slider(options: Sequence[Any], value: Any = None) -> Control:
    """A slider over the given values, e.g. the checkpoint steps, starting at ``value`` (default: the last)."""
    return _control("slider", options, value, default=-1)


def int_slider(low: int, high: int, value: int | None = None) -> Control:
    """An integer slider over ``low..high`` (inclusive), starting at ``value`` (default ``low``)."""
    if high < low:
        raise ValueError(f"int_slider: high {high} < low {low}")
    return _control("int_slider", range(int(low), int(high) + 1), value, default=0)


def _control(kind: str, options: Sequence[Any], value: Any, default: int) -> Control:
    options = tuple(options)
    if not options:
        raise ValueError(f"{kind} needs at least one option")
    if value is None:
        value = options[default]
    elif value not in options:
        raise ValueError(f"{kind}: initial value {value!r} is not one of the options {list(options)[:10]}")
    return Control(kind, options, value)


def _widget(name: str, control: Any) -> Any:
    """The ipywidgets widget of a :class:`Control` (an ipywidgets widget is used as it is)."""
    if not isinstance(control, Control):
        return control
    if control.kind == "dropdown":
        return w.Dropdown(options=list(control.options), value=control.value, description=name)
    if control.kind == "slider":
        return w.SelectionSlider(options=list(control.options), value=control.value, description=name,
                                 continuous_update=False)
    return w.IntSlider(min=control.options[0], max=control.options[-1], value=control.value, description=name,
                       continuous_update=False)


def inspector(results: Results, draw: Callable[..., alt.Chart], layer: bool = False, head: bool = False,
              neuron: bool = False, **fixed: Any):
    """Controls around ``draw(results, model=, step=, [layer=, head=, neuron=], **fixed)``.

    The step control slides over the checkpoints actually present for the chosen model; the
    first view is the first model at its last step (lowest layer / head / neuron).

    Returns
    -------
    ipywidgets.VBox, or in a ``lhp book`` run the first view (module docstring)
    """
    ids = models(results)
    ds0 = model_dataset(results, ids[0])
    controls: dict[str, Any] = {"model": dropdown(ids), "step": slider([int(s) for s in ds0[schema.STEP].values])}
    for dim, wanted in ((schema.LAYER, layer), (schema.HEAD, head), (schema.NEURON, neuron)):
        if wanted:
            values = ds0[dim].values
            controls[dim] = int_slider(int(values.min()), int(values.max()))

    def view(**kw: Any) -> alt.Chart:
        return draw(results, **kw, **fixed)

    if in_book_run():
        return view(**{name: c.value for name, c in controls.items()})
    widgets = {name: _widget(name, c) for name, c in controls.items()}

    def _on_model(change: dict) -> None:
        # Suites may save different steps or sizes per model; keep the controls valid.
        ds = model_dataset(results, change["new"])
        widgets["step"].options = [int(s) for s in ds[schema.STEP].values]
        for dim in (schema.LAYER, schema.HEAD, schema.NEURON):
            if dim in widgets and dim in ds.sizes:
                widgets[dim].max = int(ds[dim].values.max())

    widgets["model"].observe(_on_model, names="value")
    return _panel(view, widgets)


def live(draw: Callable[..., Any], **controls: Any):
    """Show ``draw(**{name: value})`` under controls, redrawn when one moves.

    Explicit ``observe`` + ``Output`` rather than ``ipywidgets.interact``, which draws at
    execution time through a frontend round trip and has stalled papermill runs.

    Parameters
    ----------
    draw
        Plain function of the controls' values returning something displayable.
    controls
        :class:`Control` specs (:func:`dropdown`, :func:`slider`, :func:`int_slider`), keyed by
        ``draw``'s argument names; ipywidgets value widgets also work in Jupyter, but a
        chapter must not create them (module docstring).

    Returns
    -------
    ipywidgets.VBox, or in a ``lhp book`` run ``draw`` of the initial values
    """
    if not controls:
        raise ValueError("live() needs at least one control, e.g. model=inspectors.dropdown(models)")
    if in_book_run():
        return draw(**{name: c.value for name, c in controls.items()})
    return _panel(draw, {name: _widget(name, c) for name, c in controls.items()})


def _panel(draw: Callable[..., Any], widgets: dict[str, Any]):
    """Widgets above an ``Output`` showing ``draw`` of their values, drawn now and on every change."""
    out = w.Output()

    def _redraw(_: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            display(draw(**{name: c.value for name, c in widgets.items()}))

    for widget in widgets.values():
        widget.observe(_redraw, names="value")
    _redraw()
    return w.VBox([w.HBox(list(widgets.values())), out])
