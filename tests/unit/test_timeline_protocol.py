"""The Timeline reads contributors through their curves() and events() only (lhp_core.studies.contributions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lhp_core import schema
from lhp_core.metrics.events import COLUMNS, Curve, event_table
from lhp_core.studies import contributions, timeline

STEPS = [0, 10, 20, 40]


def _values(models: list[str]) -> xr.DataArray:
    vals = np.array([[0.0, 1.0, 3.0, 3.5], [0.0, 2.0, 2.5, 2.6]])[: len(models)]
    tokens = np.outer(np.ones(len(models)), STEPS) * 100.0
    return xr.DataArray(vals, dims=(schema.MODEL, schema.STEP), coords={
        schema.MODEL: models, schema.STEP: STEPS, schema.TOKENS_SEEN: ((schema.MODEL, schema.STEP), tokens)})


@dataclass
class Toy:
    """A contributor's result: one curve and one event per model on it (or on ``event_measure``)."""

    models: list[str]
    name: str = "toy score"
    event_measure: str | None = None

    def curves(self) -> list[Curve]:
        return [Curve(self.name, "nats", _values(self.models), null=0.5, description="a toy measure")]

    def events(self) -> pd.DataFrame:
        rows = pd.DataFrame({"study": "toy", "measure": self.event_measure or self.name, "model": self.models,
                             "seed": 0, "kind": "transition", "step": 10.0, "step_lo": 10.0, "step_hi": 20.0,
                             "found": True})
        return event_table(rows, 100.0)


@pytest.fixture()
def toy():
    calls = []

    def run(suite: str, models=None, steps=None, n: int = 1, progress: bool = True) -> Toy:
        calls.append({"suite": suite, "models": models, "n": n, "progress": progress})
        return Toy(list(models or ["s", "m"]))

    timeline.register("toy", run, chapter="suite")
    yield calls
    timeline.unregister("toy")


def test_contributors_curves_and_events_reach_the_timeline(toy: list) -> None:
    tl = timeline.run("ci", studies=["toy"], with_published=False, suite="my-suite", params={"toy": {"n": 3}})
    # the profile's common parameters, then the overrides; quiet; nothing of the profile it does not take
    assert toy == [{"suite": "my-suite", "models": None, "n": 3, "progress": False}]
    panels = tl.panels()
    assert set(panels.panel) == {"toy score (nats)"} and set(panels.measure) == {"toy score"}
    assert len(panels) == 8 and (panels["null"] == 0.5).all()
    got = panels.set_index(["model", "step"])
    assert got.loc[("m", 20), "value"] == 2.5 and got.loc[("m", 20), "tokens_seen"] == 2000.0
    ev = tl.events()
    assert list(ev.columns) == COLUMNS and set(ev.measure) == {"toy score"} and len(ev) == 2
    numbers = tl.numbers()
    assert numbers["suite"] == "my-suite" and numbers["n_events"] == 2 and numbers["events_inside_step_range"]
    assert [c.name for c in tl.curves()] == ["toy score"]


def test_registry_refuses_what_would_be_silently_wrong(toy: list) -> None:
    assert timeline.contributors()["toy"].chapter == "suite"
    assert timeline.register is contributions.register
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        timeline.register("toy", lambda **kw: None)
    with pytest.raises(KeyError, match="no Timeline contributor named 'nope'"):
        timeline.unregister("nope")
    with pytest.raises(KeyError, match=r"no Timeline contributor named \['nope'\]"):
        timeline.run("ci", studies=["nope"], with_published=False)
    with pytest.raises(TypeError, match="must be callable"):
        timeline.register("x", 3)


def test_an_event_needs_its_curve_and_a_curve_name_is_written_once() -> None:
    with pytest.raises(ValueError, match=r"events on \['other'\] but no curve of that name"):
        timeline.Timeline("x", {"a": Toy(["s"], event_measure="other")}, None)
    with pytest.raises(ValueError, match=r"curves \['toy score'\] are given by more than one contributor"):
        timeline.Timeline("x", {"a": Toy(["s"]), "b": Toy(["m"])}, None)
    with pytest.raises(TypeError, match="has no curves"):
        timeline.Timeline("x", {"a": object()}, None)


def test_built_in_studies_register_without_importing_the_timeline() -> None:
    """Each study registers at the bottom of its own module, through the registry that imports no study."""
    import subprocess
    import sys

    code = ("import sys; from lhp_core.studies import contributions, experts; "
            "print(list(contributions.contributors()), 'lhp_core.studies.timeline' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['experts'] False"
    assert set(timeline.contributors()) >= {m.rsplit(".", 1)[1] for m in timeline.BUILT_IN}
