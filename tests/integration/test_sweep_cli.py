"""`lhp sweep` on the real tiny trained suite, through the default loader (lhp_core.checkpoints)."""
from __future__ import annotations

import numpy as np
import torch

from lhp_core import open_results
from lhp_core.cli import main
from lhp_core.suites import get_suite


def test_cli_sweep_on_tiny_suite(tiny_suite, tmp_path):
    torch.set_num_threads(1)
    stim = tmp_path / "s.txt"
    stim.write_text("the cat sat on the mat .\nthe dog ran away from home .\n")
    out = tmp_path / "r.zarr"
    argv = ["sweep", str(tiny_suite), "--stimuli", str(stim), "--out", str(out), "--steps", "log:3",
            "--sites", "resid", "logprobs", "--reducers", "stimulus_mean", "word_sum", "--max-length", "16",
            "--device", "cpu"]
    assert main(argv) == 0
    suite = get_suite(str(tiny_suite))
    record = suite.training_record()
    for m in suite.models:
        ds = open_results(out, m)
        assert ds["complete"].values.all()
        steps = ds["step"].values.tolist()
        assert steps[0] == 0 and steps[-1] == max(suite.steps(m)) and len(steps) >= 3
        assert ds["tokens_seen"].values.tolist() == [suite.tokens_seen(m, s) for s in steps]
        # the sweep's hash of each checkpoint is the one recorded at training time
        listed = [str(record["weights_sha256"].sel(model=m, step=s).item()) for s in steps]
        assert ds["weights_sha256"].values.tolist() == listed
        lp = ds["logprobs_word_sum"].values
        assert np.isfinite(lp).all() and (lp < 0).all()
    # a trained model predicts the text better at the last step than at initialisation
    last = open_results(out, suite.models[-1])["logprobs_word_sum"]
    assert last.isel(step=-1).sum() > last.isel(step=0).sum()
    assert main(argv) == 0  # everything complete: the re-run resumes with nothing to do
