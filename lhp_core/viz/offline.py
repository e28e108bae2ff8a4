"""Altair charts that draw without a network: the vega JavaScript travels with the page.

Altair's default HTML output loads vega, vega-lite and vega-embed from a CDN, which
fails on an air-gapped cluster, on a laptop on a plane and in our browser test. Here
the three libraries come from ``vl-convert-python`` (``vl_convert.javascript_bundle``,
about 0.9 MB) and are written into the page **once per kernel**, inside the first
chart's output; every later chart waits for ``window.vegaEmbed``. A notebook executed
by papermill therefore carries the bundle in its first chart, and the Jupyter Book page
built from it draws every chart offline. :func:`save_html` writes a standalone page
with the bundle inlined.

:func:`enable` registers and activates the ``lhp_offline`` altair renderer; importing
:mod:`lhp_core.viz.charts` calls it.
"""
from __future__ import annotations

import functools
import html
import json
import uuid
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert as vlc

RENDERER = "lhp_offline"
READY_EVENT = "lhp-vega-ready"
#: vega-embed options for every chart: SVG (crisp, and marks are countable in tests),
#: no action menu (its links point at online editors).
EMBED_OPTIONS: dict[str, Any] = {"renderer": "svg", "actions": False}

_state = {"bundle_sent": False}


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """vega + vega-lite + vega-embed as one script matching altair's vega-lite version.

    The script defines ``window.vegaEmbed`` and then fires the ``lhp-vega-ready`` event.
    """
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    available = vlc.get_vegalite_versions()
    if wanted not in available:
        raise RuntimeError(
            f"vl-convert-python {vlc.__version__} bundles vega-lite {available}, but altair {alt.__version__} "
            f"writes vega-lite {wanted} specs; upgrade vl-convert-python (pip install -U vl-convert-python)"
        )
    return vlc.javascript_bundle(vl_version=wanted) + f"\nwindow.dispatchEvent(new Event({READY_EVENT!r}));\n"


def _spec(chart: alt.TopLevelMixin | dict) -> dict:
    return chart if isinstance(chart, dict) else chart.to_dict()


def chart_html(chart: alt.TopLevelMixin | dict, include_bundle: bool, div_id: str | None = None) -> str:
    """HTML fragment that draws ``chart`` with vega-embed.

    Parameters
    ----------
    chart
        An altair chart or a vega-lite spec dict.
    include_bundle
        Put the vega JavaScript bundle in front of the chart (needed once per page).
    div_id
        Element id; random by default.
    """
    div_id = div_id or f"lhp-vis-{uuid.uuid4().hex[:12]}"
    spec = json.dumps(_spec(chart)).replace("</", "<\\/")
    opts = json.dumps(EMBED_OPTIONS)
    parts = [f'<div class="lhp-chart" id="{html.escape(div_id)}"></div>']
    if include_bundle:
        # A module script may use top-level await and runs after parsing, before the charts'
        # ready handlers fire; "</script" cannot occur inside it.
        parts.append('<script type="module">' + vega_bundle().replace("</script", "<\\/script") + "</script>")
    parts.append(
        "<script>(function(){"
        f"var spec={spec};"
        f"function draw(){{window.vegaEmbed('#{div_id}',spec,{opts}).catch(function(e){{"
        f"document.getElementById('{div_id}').innerText='chart failed: '+e;}});}}"
        f"if(window.vegaEmbed){{draw();}}else{{window.addEventListener('{READY_EVENT}',draw,{{once:true}});}}"
        "})();</script>"
    )
    return "\n".join(parts)


def _renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    include = not _state["bundle_sent"]
    _state["bundle_sent"] = True
    return {"text/html": chart_html(spec, include_bundle=include), "text/plain": "<altair chart>"}


def enable() -> None:
    """Register and activate the offline renderer (idempotent).

    Also lifts altair's 5,000-row limit: charts embed their data inline, and the book's
    tidy tables over steps × layers × heads are routinely larger.
    """
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _renderer)
    alt.renderers.enable(RENDERER)
    alt.data_transformers.disable_max_rows()


def reset() -> None:
    """Forget that the bundle was sent (the next chart carries it again), e.g. after clearing outputs."""
    _state["bundle_sent"] = False


def save_html(chart: alt.TopLevelMixin | dict, path: str | Path, title: str = "lhp chart") -> Path:
    """Write a standalone HTML page that draws ``chart`` with no network access.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>\n"
        + chart_html(chart, include_bundle=True)
        + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
