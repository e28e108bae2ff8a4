"""``lhp train --preset tiny`` end to end: record contents, determinism, resume after SIGKILL, copy-reg."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from lhp_core.checkpoints import load
from lhp_core.presets import PRESETS
from lhp_core.suites import get_suite
from lhp_core.train import train
from lhp_core.weights import weights_sha256

TINY = PRESETS["tiny"]


def _safetensors_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/step*/model.safetensors"))}


def test_training_record_contents(tiny_suite: Path) -> None:
    rec = xr.open_dataset(tiny_suite / "training_record.nc")
    assert rec["train_loss"].dims == ("model", "step")
    for v in ("train_loss", "val_loss", "probe_first_loss", "probe_second_loss", "wall_time", "weights_sha256"):
        assert v in rec and rec[v].notnull().all()
    np.testing.assert_array_equal(rec["tokens_seen"].sel(model="m").values, rec["step"].values * TINY.tokens_per_step)
    for k in ("preset", "recipe", "git_commit", "device", "torch_version", "seed", "copy_reg", "repeat_frac",
              "span_min"):
        assert k in rec.attrs
    assert rec.attrs["copy_reg"] == 0.0 and rec.attrs["device"] == "cpu"
    # Losses start near log(vocab) (uniform prediction) and fall.
    v = rec["val_loss"].sel(model="m").values
    assert abs(v[0] - np.log(TINY.vocab_size)) < 0.1 and v[-1] < v[0] - 0.5
    # Stored hashes are the hashes of the files on disk.
    assert str(rec["weights_sha256"].sel(model="s", step=8).item()) == weights_sha256(tiny_suite / "s" / "step8")


def test_val_loss_matches_independent_recomputation(tiny_suite: Path) -> None:
    """Rebuild the held-out batch from the corpus and score it with a hand-written log-softmax."""
    from lhp_core import corpus

    rec = get_suite(tiny_suite).training_record()
    lm, tok = load(tiny_suite, "m", 24)
    c = corpus.load(TINY.corpora, max_train_chars=TINY.max_train_chars, max_val_chars=TINY.max_val_chars)
    val = corpus.token_stream(tok, c.val)
    starts = np.linspace(0, len(val) - TINY.context - 1, TINY.val_seqs).astype(np.int64)
    x = torch.as_tensor(np.stack([val[s : s + TINY.context] for s in starts]), dtype=torch.long)
    with torch.no_grad():
        logp = torch.log_softmax(lm(x).logits.double(), -1)
    nll = -logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
    assert nll.mean().item() == pytest.approx(float(rec["val_loss"].sel(model="m", step=24)), abs=1e-5)


def test_training_is_deterministic(tiny_suite: Path, tmp_path: Path) -> None:
    again = train("tiny", tmp_path / "again", threads=1, progress=False)
    a, b = xr.open_dataset(tiny_suite / "training_record.nc"), xr.open_dataset(again / "training_record.nc")
    for v in ("train_loss", "val_loss", "probe_first_loss", "probe_second_loss"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    np.testing.assert_array_equal(a["weights_sha256"].values, b["weights_sha256"].values)
    assert a.attrs["tokenizer_fingerprint"] == b.attrs["tokenizer_fingerprint"]


def test_resume_after_kill_gives_identical_checkpoints(tiny_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lhp_core.cli", "train", "--preset", "tiny", "--out", str(out), "--threads", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    marker = out / "s" / "step8"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), proc.stderr.read().decode()[-2000:]
    assert not (out / "training_record.nc").exists() and not (out / "m" / "step0").exists(), "killed too late"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _safetensors_bytes(out) == _safetensors_bytes(tiny_suite)
    a, b = xr.open_dataset(tiny_suite / "training_record.nc"), xr.open_dataset(out / "training_record.nc")
    np.testing.assert_array_equal(a["train_loss"].values, b["train_loss"].values)
    assert not list(out.glob("*/.tmp-*")) and not list(out.glob("*/train_state.pt"))


def test_copy_regulariser_lowers_induction_attention(tiny_suite: Path, tmp_path: Path) -> None:
    """At tiny scale attention barely moves in 24 steps, so a strong lambda is used; the mass is
    measured on an unseen batch from the training distribution (step 10000 of the data order)."""
    from lhp_core.train import _prepare_data, batch_at, copy_penalty

    reg = train("tiny", tmp_path / "copyreg", copy_reg=200.0, threads=1, progress=False)
    assert xr.open_dataset(reg / "training_record.nc").attrs["copy_reg"] == 200.0
    data = _prepare_data(TINY, tiny_suite, 0)
    ids = torch.as_tensor(batch_at(10_000, data.train, TINY, 0, 1.0))

    def mass(root: Path, step: int) -> float:
        lm, _ = load(root, "m", step)
        lm.config._attn_implementation = "eager"
        with torch.no_grad():
            return copy_penalty(lm(ids, output_attentions=True).attentions, ids).item()

    init = mass(tiny_suite, 0)
    assert mass(reg, 0) == init  # same initialisation
    assert abs(mass(tiny_suite, 24) - init) < 0.02 * init  # unregularised: attention still near uniform
    assert mass(reg, 24) < 0.9 * init  # regularised: measurably pushed off induction keys (measured: -20%)


def test_out_folder_of_another_recipe_is_refused(tiny_suite: Path) -> None:
    with pytest.raises(ValueError, match="choose another --out or delete it"):
        train("tiny", tiny_suite, seed=1, threads=1, progress=False)


def test_ensure_all_trains_missing_suites_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two missing suites on a 2-core CPU train in two 1-thread processes, each equal to a serial 1-thread run."""
    from lhp_core import suites
    from lhp_core import train as train_mod

    monkeypatch.setenv("LHP_SUITES", str(tmp_path / "suites"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # the spawned workers read the thread count from the parent
    plain, twin = train_mod.ensure_all(["lhp-tiny", "lhp-tiny-copyreg", "lhp-tiny"], progress=False)
    assert (plain.id, twin.id) == ("lhp-tiny", "lhp-tiny-copyreg")
    rec, rec_twin = plain.training_record(), twin.training_record()
    assert rec.attrs["threads"] == 1 and rec_twin.attrs["threads"] == 1
    assert rec.attrs["copy_reg"] == 0.0 and rec_twin.attrs["copy_reg"] == suites.COPY_REG_DEFAULT
    serial = train("tiny", tmp_path / "serial", threads=1, progress=False)
    assert _safetensors_bytes(serial) == _safetensors_bytes(plain.root)
    # Present suites are not retrained.
    before = (plain.root / "training_record.nc").stat().st_mtime_ns
    train_mod.ensure_all(["lhp-tiny"], progress=False)
    assert (plain.root / "training_record.nc").stat().st_mtime_ns == before


def test_training_a_subset_of_sizes_equals_the_full_suite(tiny_suite: Path, tmp_path: Path) -> None:
    """`--sizes m` trains only m, byte-identical to m of the full suite (each size's run is independent)."""
    sub = train("tiny", tmp_path / "sub", threads=1, progress=False, sizes=["m"])
    assert [p.name for p in sub.iterdir() if p.is_dir() and p.name != "tokenizer"] == ["m"]
    full = {k: v for k, v in _safetensors_bytes(tiny_suite).items() if k.startswith("m/")}
    assert _safetensors_bytes(sub) == full
    rec = xr.open_dataset(sub / "training_record.nc")
    assert list(rec["model"].values) == ["m"]
    assert rec.attrs["recipe_sha"] == TINY.fingerprint()
    with pytest.raises(KeyError, match="unknown sizes.*valid sizes: s, m"):
        train("tiny", tmp_path / "bad", sizes=["xl"], progress=False)
    # Sizes trained by separate calls into one folder, then one call writing the record: the full suite.
    train("tiny", sub, threads=1, progress=False, sizes=["s"], record=False)
    assert list(xr.open_dataset(sub / "training_record.nc")["model"].values) == ["m"]  # not rewritten
    train("tiny", sub, threads=1, progress=False)
    assert _safetensors_bytes(sub) == _safetensors_bytes(tiny_suite)
    a, b = xr.open_dataset(tiny_suite / "training_record.nc"), xr.open_dataset(sub / "training_record.nc")
    for var in ("train_loss", "val_loss", "weights_sha256"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
