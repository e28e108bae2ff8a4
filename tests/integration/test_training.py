"""studies.training: what a study reads of any suite's training, and ``lhp book --suite``'s parameters.

References: HF's own ``labels`` loss for the repeated-span probe (tolerance 1e-5 nats, float32);
``loss_over_steps`` and ``repeat_probe_over_steps`` called directly for the measured record (equal to
the bit); the training record and ``training_args.bin`` for the seed; closed forms for tokens per step.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lhp_core import book, checkpoints
from lhp_core.data import pythia_evals
from lhp_core.metrics import loss
from lhp_core.metrics.events import event_table
from lhp_core.studies import training
from lhp_core.suites import get_suite
from tests.checkpoint_folders import trainer_folder


def test_require_names_the_train_command_and_passes_other_suites(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_SUITES", str(tmp_path / "suites"))
    with pytest.raises(training.NotTrained) as err:
        training.require("lhp-micro-copyreg")
    msg = str(err.value)
    assert "\n" not in msg and "is not trained yet" in msg
    assert f"`lhp train --preset micro --out {tmp_path / 'suites' / 'lhp-micro-copyreg'} --copy-reg" in msg
    assert training.require(str(tiny_suite)).id == str(tiny_suite)  # a trained folder: no training
    from lhp_core import train
    from lhp_core.studies import suite as suite_study

    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("a study started training"))
    with pytest.raises(training.NotTrained, match="lhp train --preset micro"):
        suite_study.run("lhp-micro")
    assert training.require("pythia").id == "pythia"


def test_repeat_losses_equal_hf_labels_loss(tiny_suite):
    model, tok = checkpoints.load(str(tiny_suite), "m", 24)
    texts = training.held_out_texts(1)
    probes = loss.repeat_spans(tok, texts, n_seq=6, seq_len=12, seed=3)
    L = 12
    assert probes.shape == (6, 1 + 2 * L) and (probes[:, 0] == tok.eos_token_id).all()
    np.testing.assert_array_equal(probes[:, 1:L + 1], probes[:, L + 1:])
    stream = tok(texts[0], add_special_tokens=False)["input_ids"]
    for row in probes[:, 1:L + 1].tolist():  # each span is a contiguous piece of the held-out text
        assert any(stream[i:i + L] == row for i in range(len(stream) - L + 1))
    first, second = loss.repeat_losses(model, probes)
    x = torch.as_tensor(probes)
    want = []
    for lo, hi in ((2, L + 1), (L + 2, 2 * L + 1)):  # tokens 2..L of the first copy; L+2..2L of the second
        labels = torch.full_like(x, -100)
        labels[:, lo:hi] = x[:, lo:hi]
        with torch.no_grad():
            want.append(model(input_ids=x, labels=labels).loss.item())
    np.testing.assert_allclose([first, second], want, rtol=0, atol=1e-5)


def test_record_of_a_trainer_folder_is_measured(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    run = trainer_folder(tmp_path / "run", {st: tiny_suite / "m" / f"step{st}" for st in (8, 16, 24)},
                         logged_tokens_per_step=512)
    suite = get_suite(str(run))
    rec = training.record(suite, held_out_articles=1, n_probe=8, probe_len=10, progress=False)
    texts = training.held_out_texts(1)
    val = loss.loss_over_steps(suite, texts, progress=False)
    probe = loss.repeat_probe_over_steps(suite, texts, n_seq=8, seq_len=10, progress=False)
    np.testing.assert_array_equal(rec["val_loss"].values, val["loss"].values)
    np.testing.assert_array_equal(rec["probe_first_loss"].values, probe["first_loss"].values)
    np.testing.assert_array_equal(rec["probe_second_loss"].values, probe["second_loss"].values)
    assert rec["train_loss"].isnull().all() and rec.attrs["source"] == "measured"
    assert "first 1 of WikiText-2's test articles" in rec.attrs["held_out"] and "not across tokenizers" in \
        rec.attrs["held_out"]
    assert rec["tokens_seen"].values.tolist() == [[8 * 512, 16 * 512, 24 * 512]]
    assert int(rec["n_params"].item()) == suite.n_params("run")
    assert training.seed(suite) == 42  # TrainingArguments' default seed, read from training_args.bin
    assert training.tokens_per_step(suite, "run") == 512
    for v in rec.data_vars.values():
        assert v.attrs["units"] == "nats/token" and v.attrs["description"]


def test_seed_where_the_suite_knows_it(tiny_suite, tmp_path):
    lhp = get_suite(str(tiny_suite))
    assert training.seed(lhp) == int(lhp.training_record().attrs["seed"])
    assert training.tokens_per_step(lhp, "s") == 8 * 64  # tiny: batch 8 x context 64
    plain = tmp_path / "plain"
    shutil.copytree(tiny_suite / "s", plain / "s")  # step<N>/ folders without training_record.nc
    folder = get_suite(str(plain), tokens_per_step=1000)
    assert training.seed(folder) is None and not training.has_record(folder)
    assert training.seed(get_suite("pythia")) == pythia_evals.STANDARD_SEED
    rows = pd.DataFrame([{"study": "x", "measure": "m", "model": "s", "seed": None, "kind": "onset", "step": 4.0,
                          "step_lo": 2.0, "step_hi": 8.0, "found": True}])
    ev = event_table(rows, 1000.0)
    assert ev["seed"].dtype == "Int64" and ev["seed"].isna().all() and ev["tokens_seen"].tolist() == [4000.0]


def test_book_parameters_move_onto_another_suite():
    params = book.chapter_parameters("ci", "reading")
    assert params["suite"] == "lhp-micro" and params["copyreg_suite"] == "lhp-micro-copyreg"
    assert book.chapter_parameters("ci", "reading", suite={"suite": "lhp-micro"}) == params
    on_mini = book.chapter_parameters("ci", "reading", suite={"suite": "lhp-mini", "models": ["l"]})
    assert on_mini["copyreg_suite"] == "lhp-mini-copyreg" and on_mini["models"] == ["l"]
    on_pythia = book.chapter_parameters("ci", "reading", suite={"suite": "pythia", "steps": [0, 143000]})
    assert on_pythia["copyreg_suite"] is None and on_pythia["models"] is None and on_pythia["steps"] == [0, 143000]
    assert on_pythia["n_boot"] == params["n_boot"]  # the profile's sizes stay
    assert book.suites_needed("ci", ["reading"], book.load_profiles(), {"suite": "pythia"}) == ["pythia"]
    with pytest.raises(book.BookError, match="^--models only applies with --suite; pass --suite ID_OR_PATH too"):
        book._suite_override(None, ["70m"], None)
    with pytest.raises(book.BookError, match="^--models, --steps only apply with --suite"):
        book._suite_override(None, ["70m"], [1])
    with pytest.raises(book.BookError, match="--suite pythia: .*no checkpoint at step 7"):
        book._suite_override("pythia", ["70m"], [7])
