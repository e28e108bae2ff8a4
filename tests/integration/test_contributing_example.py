"""The "Adding a measure" example of CONTRIBUTING.md runs as written on a trained suite."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_contributing_example_runs(tiny_suite, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    text = (ROOT / "CONTRIBUTING.md").read_text()
    code = re.search(r"## Adding a measure.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)
    ds = namespace["entropy_over_steps"](str(tiny_suite), ["The old man walked to the market."], steps=[0, 24],
                                         progress=False)
    assert ds["entropy"].dims == ("model", "step") and ds.attrs["measure"] == "entropy"
    # an untrained model is close to uniform over its vocabulary; training lowers the entropy
    import numpy as np

    vocab = 384  # the tiny preset's BPE vocabulary
    assert np.all(np.abs(ds["entropy"].sel(step=0) - np.log(vocab)) < 0.2)
    assert np.all(ds["entropy"].sel(step=24) < ds["entropy"].sel(step=0))
