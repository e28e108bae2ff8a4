"""One look for every chart of the book: colours per model size, readable log axes, column widths.

A model keeps its colour in every chapter: :func:`model_color` maps the known model ids (lhp
suites smallest to largest, then Pythia's sizes; :func:`lhp_core.suites.size_order`) onto one
fixed palette, so ``l`` is the same colour in the reading and the brain chapter and on the
Timeline. Log axes over tokens or steps get ticks at powers of ten only, labelled ``1k``,
``10M`` (:func:`log_axis`), so labels never collide. :data:`COLUMN` is the width a chart may
take in the book's text column.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import altair as alt
import numpy as np

from lhp_core.suites import SIZE_ORDER, size_order
from lhp_core.viz import offline

offline.enable()  # every chart of the book draws with the embedded vega bundle, no CDN

#: Pixels a chart (plot plus legend) may take in the book's text column.
COLUMN = 640
#: Plot widths: one chart per row, two side by side, and a small multiple.
WIDE, HALF, SMALL = 480, 250, 160
HEIGHT = 220

#: Colour-blind-safe palette (Okabe & Ito 2008, then Tableau 10), one colour per position in
#: :data:`lhp_core.suites.SIZE_ORDER`.
PALETTE = ("#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#F0E442",
           "#4E79A7", "#59A14F", "#9C755F", "#EDC948", "#B07AA1", "#FF9DA7", "#76B7B2", "#E15759", "#F28E2B",
           "#BAB0AC")


def model_color(models: Iterable[str], field: str = "model", title: str = "model", legend: bool = True) -> alt.Color:
    """A colour encoding that gives each model its book-wide colour."""
    order = size_order(models)
    colours = []
    for m in order:
        i = SIZE_ORDER.index(m) if m in SIZE_ORDER else len(SIZE_ORDER) + order.index(m)
        colours.append(PALETTE[i % len(PALETTE)])
    return alt.Color(f"{field}:N", title=title, sort=order, scale=alt.Scale(domain=order, range=colours),
                     legend=alt.Legend() if legend else None)


def log_axis(values: Sequence[float], title: str, field: str | None = None) -> dict:
    """``scale`` and ``axis`` of a log axis over positive ``values``: ticks at powers of ten, SI labels."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return {"scale": alt.Scale(type="log"), "axis": alt.Axis(title=title)}
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    ticks = [10.0 ** e for e in range(lo, hi + 1)]
    return {"scale": alt.Scale(type="log", domain=[ticks[0], ticks[-1]], nice=False),
            "axis": alt.Axis(title=title, values=ticks, format="~s", grid=True)}


def tokens_x(values: Sequence[float], field: str = "tokens_seen", title: str = "tokens seen") -> alt.X:
    """The shared x axis of curves over training: tokens seen, log scale, powers-of-ten ticks."""
    return alt.X(f"{field}:Q", **log_axis(values, title))


def table(frame, precision: int = 3):
    """A table for the page: no index column, numbers rounded to ``precision`` digits, small type."""
    return (frame.style.hide(axis="index").format(precision=precision, na_rep="-")
            .set_table_styles([{"selector": "td, th", "props": "font-size: 0.85em; padding: 2px 6px;"}]))


def base_model(model: str) -> str:
    """``"l (copyreg)"`` -> ``"l"``: a twin variant keeps its base model's colour (and is dashed)."""
    return str(model).split(" (")[0]


def variant(model: str) -> str:
    return str(model).split(" (")[1].rstrip(")") if " (" in str(model) else "plain"


def variant_dash(field: str = "variant") -> alt.StrokeDash:
    """Plain models solid, a regularised twin (``copyreg``) dashed, with a legend that shows the dashes."""
    return alt.StrokeDash(f"{field}:N", title="variant", scale=alt.Scale(domain=["plain", "copyreg"],
                                                                         range=[[1, 0], [5, 3]]),
                          legend=alt.Legend(symbolType="stroke", symbolStrokeColor="black", symbolSize=400,
                                            symbolStrokeWidth=2))
