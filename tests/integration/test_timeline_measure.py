"""A measure added in one place reaches the Timeline: CONTRIBUTING.md's "Putting a measure on the Timeline"
block, run as written, registers attention entropy per head as a contributor, and its curve and its event
appear in `timeline.run(...)` (panels, events, the chart) with no other file changed."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from lhp_core import checkpoints
from lhp_core.studies import timeline
from lhp_core.viz import timeline as view

ROOT = Path(__file__).resolve().parents[2]
NAME = "smallest attention entropy of a head"


def contributing_block() -> str:
    """The code block of CONTRIBUTING.md's "Adding a measure" section that registers with the Timeline."""
    section = re.search(r"## Adding a measure\n(.*?)\n## ", (ROOT / "CONTRIBUTING.md").read_text(), re.S).group(1)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "timeline.register(" in b]
    assert len(blocks) == 1, "CONTRIBUTING's 'Adding a measure' should show one block that registers a contributor"
    return blocks[0]


@pytest.fixture()
def example(tiny_suite, tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    # A module of its own, as a contributor's file would be (dataclasses look their module up).
    module = types.ModuleType("contributing_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(contributing_block(), "CONTRIBUTING.md", "exec", dont_inherit=True), module.__dict__)
    yield module.__dict__
    timeline.unregister("attention_entropy")


def test_a_measure_registered_in_one_place_reaches_the_timeline(example: dict, tiny_suite) -> None:
    assert "attention_entropy" in timeline.contributors()
    # The tiny suite's 24 steps barely sharpen attention (its sharpest head by about 0.002 nats), under the
    # example's 0.1 nats: the test lowers the threshold through the Timeline's parameters to see events drawn.
    tl = timeline.run("ci", studies=["attention_entropy"], with_published=False, suite=str(tiny_suite),
                      params={"attention_entropy": {"min_jump": 0.0}})
    panels = tl.panels()
    assert set(panels.panel) == {f"{NAME} (nats)"}
    assert set(panels.model) == {"s", "m"} and set(panels.step) == {0, 1, 2, 4, 8, 16, 24}
    assert (panels.tokens_seen[panels.step > 0] > 0).all()
    ev = tl.events()
    assert list(ev.measure) == [NAME, NAME] and list(ev.study) == ["attention_entropy"] * 2
    found = ev[ev.found]
    assert len(found) == 2 and ((found.step_lo <= found.step) & (found.step <= found.step_hi)).all()
    for r in found.itertuples():  # a level shift starts at a saved step of its model's curve
        assert r.step in set(panels[panels.model == r.model].step)
    assert not timeline.run("ci", studies=["attention_entropy"], with_published=False,
                            suite=str(tiny_suite)).events().found.any()  # 0.1 nats: no transition here
    chart = view.panels_figure(tl).to_dict()
    assert f"{NAME} (nats)" in str(chart) and f"{NAME}: transition" in str(chart)


def test_attention_entropy_equals_scipy_on_the_models_own_attentions(example: dict, tiny_suite) -> None:
    """The measure against an independent reference: scipy's entropy of every query's attention row, taken
    from the model's eager attentions, mean over queries after BOS and over texts (1e-5 nats)."""
    ds = example["attention_entropy_over_steps"](str(tiny_suite), models=["m"], steps=[24], progress=False)
    got = ds["attention_entropy"].sel(model="m", step=24).values
    lm, tok = checkpoints.load(str(tiny_suite), "m", 24)
    lm.set_attn_implementation("eager")
    want = []
    for text in example["TEXTS"]:
        ids = torch.tensor([[tok.bos_token_id, *tok(text).input_ids]])
        with torch.inference_mode():
            att = lm(input_ids=ids, output_attentions=True).attentions  # per layer [1, head, query, key]
        n = ids.shape[1]
        want.append([np.mean([scipy.stats.entropy(a[0, h, q, : q + 1].double().numpy()) for q in range(1, n)])
                     for a in att for h in range(a.shape[1])])
    want = np.mean(want, axis=0).reshape(got.shape)
    np.testing.assert_allclose(got, want, atol=1e-5)
