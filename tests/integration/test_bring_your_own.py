"""`lhp sweep` on the checkpoints researchers have: a Trainer output folder, a folder of step<N>/
checkpoints, one model folder and a hub repo at named revisions (from an offline HF cache).

Each is built from the tiny trained suite (no downloads); the store's steps, tokens_seen and its
source are checked, and its values equal ``extract`` on the same checkpoint loaded with plain
``from_pretrained``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lhp_core import open_results
from lhp_core.cli import main
from lhp_core.extract import extract
from lhp_core.stimuli import read_stimuli
from lhp_core.suites import get_suite
from lhp_core.weights import weights_sha256
from tests.checkpoint_folders import trainer_folder
from tests.hub_cache import fake_hub_snapshot

ROOT = Path(__file__).resolve().parents[2]
SITES = ["resid", "logprobs_bow"]
REDUCERS = ["word_mean", "word_sum"]
TOKENS_PER_STEP = 512  # lhp-tiny: batch 8 x context 64


@pytest.fixture(scope="module")
def stim_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stim") / "s.txt"
    path.write_text("the cat sat on the mat .\nthe people of the united states ran far away .\n")
    return path


def sweep_cli(suite: str | Path, stim: Path, out: Path, *options: str) -> list[str]:
    return ["sweep", str(suite), "--stimuli", str(stim), "--out", str(out), "--sites", *SITES,
            "--reducers", *REDUCERS, "--max-length", "16", "--device", "cpu", *options]


def assert_equals_direct(out: Path, model: str, step: int, checkpoint: Path, stim: Path) -> None:
    """The stored step equals extract() on ``checkpoint`` loaded with plain from_pretrained."""
    lm = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(checkpoint)
    direct = extract(lm, tok, read_stimuli(stim), SITES, REDUCERS, batch_size=8, max_length=16)
    ds = open_results(out, model)
    for site in SITES:
        for red in REDUCERS:
            np.testing.assert_array_equal(ds[f"{site}_{red}"].sel(step=step).values, direct.values[site][red])
    assert str(ds["weights_sha256"].sel(step=step).values) == weights_sha256(checkpoint)


def test_trainer_folder(tiny_suite, stim_file, tmp_path, capsys):
    """checkpoint-<N>/ folders, tokenizer only in the output folder, tokens per step from
    train_batch_size 4 x gradient accumulation 2 (training_args.bin) x --seq-len 64."""
    torch.set_num_threads(1)
    run = trainer_folder(tmp_path / "run", {8: tiny_suite / "s" / "step8", 16: tiny_suite / "s" / "step16"},
                         train_batch_size=4, gradient_accumulation_steps=2, tokenizer_at_root=True)
    out = tmp_path / "r.zarr"
    assert main(sweep_cli(run, stim_file, out, "--seq-len", "64")) == 0
    shown = capsys.readouterr().out  # what was recognised, before anything loads
    assert shown.startswith(f"suite {run} (Hugging Face Trainer output (checkpoint-<N>/ folders))\n"
                            "  run: 2 steps 8..16")
    ds = open_results(out, "run")
    assert ds["step"].values.tolist() == [8, 16] and ds["complete"].values.all()
    assert ds["tokens_seen"].values.tolist() == [8 * TOKENS_PER_STEP, 16 * TOKENS_PER_STEP]
    source = ds["tokens_seen"].attrs["source"]
    assert source.startswith("step x 512 tokens = train_batch_size 4 (trainer_state.json) x "
                             "gradient_accumulation_steps 2 (training_args.bin) x world size 1")
    assert ds.attrs["tokens_seen_source"] == source
    assert json.loads(ds.attrs["checkpoints"]) == {"8": str(run / "checkpoint-8"), "16": str(run / "checkpoint-16")}
    # the tokens the suite's own training record lists for those steps
    assert ds["tokens_seen"].values.tolist() == [get_suite(tiny_suite).tokens_seen("s", s) for s in (8, 16)]
    assert open_results(out).attrs["suite"] == str(run.resolve())
    checkpoint = tmp_path / "plain"  # the checkpoint with its tokenizer, for a plain from_pretrained
    checkpoint.mkdir()
    for f in (run / "checkpoint-16").iterdir():
        (checkpoint / f.name).symlink_to(f)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (checkpoint / name).symlink_to(run / name)
    assert_equals_direct(out, "run", 16, checkpoint, stim_file)
    # without a sequence length the sweep stops before writing anything, naming the options
    assert main(sweep_cli(run, stim_file, tmp_path / "none.zarr")) == 1
    assert "--seq-len N (tokens per training sequence) or --tokens-per-step N" in capsys.readouterr().err
    assert not (tmp_path / "none.zarr").exists()


def test_step_folder(tiny_suite, stim_file, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "r.zarr"
    assert main(sweep_cli(tiny_suite / "s", stim_file, out, "--steps", "0,24", "--tokens-per-step", "512")) == 0
    assert "s: 7 steps 0..24; tokens_seen: step x 512 tokens (--tokens-per-step)" in capsys.readouterr().out
    ds = open_results(out, "s")
    assert ds["step"].values.tolist() == [0, 24]
    assert ds["tokens_seen"].values.tolist() == [get_suite(tiny_suite).tokens_seen("s", s) for s in (0, 24)]
    assert ds["tokens_seen"].attrs["source"] == "step x 512 tokens (--tokens-per-step)"
    assert_equals_direct(out, "s", 24, tiny_suite / "s" / "step24", stim_file)
    # the same store resumed with another tokens per step is refused, not silently relabelled
    assert main(sweep_cli(tiny_suite / "s", stim_file, out, "--steps", "0,24", "--tokens-per-step", "500")) == 1
    assert "tokens_seen of model 's' in the store" in capsys.readouterr().err


def test_single_model_folder(tiny_suite, stim_file, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "r.zarr"
    assert main(sweep_cli(tiny_suite / "s" / "step24", stim_file, out, "--tokens-per-step", "512")) == 0
    ds = open_results(out, "step24")
    assert ds["step"].values.tolist() == [24] and ds["tokens_seen"].values.tolist() == [24 * TOKENS_PER_STEP]
    assert_equals_direct(out, "step24", 24, tiny_suite / "s" / "step24", stim_file)
    # a folder whose name says no step: step 0 and 0 tokens, and the store says why
    final = tmp_path / "final"
    final.symlink_to(tiny_suite / "s" / "step24", target_is_directory=True)
    out = tmp_path / "f.zarr"
    assert main(sweep_cli(final, stim_file, out)) == 0
    ds = open_results(out, "final")
    assert ds["step"].values.tolist() == [0] and ds["tokens_seen"].values.tolist() == [0]
    assert ds["tokens_seen"].attrs["source"].startswith("0 by convention: the step is unknown")
    assert_equals_direct(out, "final", 0, tiny_suite / "s" / "step24", stim_file)


def test_hub_repo_with_revisions(tiny_suite, stim_file, tmp_path):
    """`--revisions 'step*' main=24` over a repo's branches in an offline HF cache."""
    hub = tmp_path / "hf"
    for i, (rev, step) in enumerate([("step8", 8), ("step16", 16), ("main", 24)]):
        fake_hub_snapshot(hub, "someone/tiny-s", rev, tiny_suite / "s" / f"step{step}", f"{i:040d}")
    out = tmp_path / "r.zarr"
    args = sweep_cli("someone/tiny-s", stim_file, out, "--revisions", "step*", "main=24", "--tokens-per-step", "512")
    code = textwrap.dedent(f"""
        import sys
        from lhp_core.cli import main
        assert main(["suite", "show", "someone/tiny-s", "--revisions", "step*", "main=24"]) == 0
        sys.exit(main({args!r}))
        """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "home"),
           "LHP_CACHE": str(tmp_path / "lhp"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    shown = r.stdout.splitlines()
    assert shown[0] == "suite someone/tiny-s (hub repo at named revisions)"
    assert shown[1] == "  tiny-s: 3 steps 8..24; tokens_seen: unknown: pass --tokens-per-step N"
    assert shown[2] == "  steps from the revision names and NAME=STEP: 8=step8, 16=step16, 24=main"
    assert shown[3].startswith("  tiny-s: 37,344 params")
    ds = open_results(out, "tiny-s")
    assert ds["step"].values.tolist() == [8, 16, 24]
    assert ds["tokens_seen"].values.tolist() == [s * TOKENS_PER_STEP for s in (8, 16, 24)]
    assert json.loads(ds.attrs["checkpoints"]) == {"8": "someone/tiny-s@step8", "16": "someone/tiny-s@step16",
                                                   "24": "someone/tiny-s@main"}
    assert open_results(out).attrs["suite"] == "someone/tiny-s"
    for step in (16, 24):
        assert_equals_direct(out, "tiny-s", step, tiny_suite / "s" / f"step{step}", stim_file)
