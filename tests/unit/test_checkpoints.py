"""Suites and checkpoint loading: round trips, hashing, duplicate detection, the hub path, bad input."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lhp_core import suites, weights
from lhp_core.checkpoints import TokenizerMismatch, load
from lhp_core.presets import PRESETS, Size, make_config
from lhp_core.suites import SuiteError, get_suite
from lhp_core.weights import CorruptCheckpoint, weights_sha256
from tests.hub_cache import fake_hub_snapshot

TINY = PRESETS["tiny"]


@pytest.fixture()
def suite_copy(tiny_suite: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(tiny_suite, dst)
    return dst


def _random_model(seed: int = 0):
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(make_config(Size("x", 2, 32, 2), TINY, eager=False)).eval()


def test_save_load_round_trip_gives_identical_logits(tiny_suite: Path, tmp_path: Path) -> None:
    from lhp_core.train import _save_checkpoint

    model = _random_model()
    _, tok = load(tiny_suite, "s", 0)
    _save_checkpoint(model, tok, tmp_path / "x" / "step5")
    loaded, tok2 = load(tmp_path, "x", 5)
    assert not loaded.training
    ids = torch.randint(0, TINY.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert tok2.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_tiny_suite_metadata(tiny_suite: Path) -> None:
    s = get_suite(tiny_suite)
    assert s.models == ["s", "m"]
    assert s.steps("m") == TINY.steps() == [0, 1, 2, 4, 8, 16, 24]
    assert s.tokens_seen("m", 16) == 16 * TINY.batch_size * TINY.context
    lm, _ = load(s, "m", 24)
    assert s.n_params("m") == sum(p.numel() for p in lm.parameters())
    d, V = 48, TINY.vocab_size
    assert s.n_params("m") - s.n_params("m", nonembedding=True) == 2 * V * d
    rec = s.training_record()
    assert set(rec.dims) == {"model", "step"} and rec.attrs["preset"] == "tiny"


def test_folder_without_record_and_flat_folder(suite_copy: Path) -> None:
    (suite_copy / "training_record.nc").unlink()
    s = get_suite(suite_copy)
    assert s.models == ["m", "s"]  # no record: sorted folder names
    assert s.n_params("s") == sum(p.numel() for p in load(s, "s", 0)[0].parameters())
    with pytest.raises(ValueError, match="tokens_per_step"):
        s.tokens_seen("s", 4)
    flat = get_suite(suite_copy / "m", tokens_per_step=512)
    assert flat.models == ["m"] and flat.steps("m")[-1] == 24 and flat.tokens_seen("m", 2) == 1024


def test_folder_of_branches_downloaded_under_their_olmo_names(suite_copy: Path) -> None:
    """``step<N>-tokens<M>B/`` folders (OLMo branch names) are steps too; tokens_seen is the name's."""
    (suite_copy / "training_record.nc").unlink()
    m = suite_copy / "m"
    for i, step in enumerate((0, 8, 24)):
        (m / f"step{step}").rename(m / f"step{step}-tokens{i}B")
    s = get_suite(m)
    assert s.steps("m") == [0, 1, 2, 4, 8, 16, 24] and s.tokens_seen("m", 24) == 2 * 10**9
    assert s.checkpoint_path("m", 8).name == "step8-tokens1B" and load(s, "m", 8)[0].config.model_type == "gpt_neox"
    with pytest.raises(ValueError, match="tokens_per_step"):
        s.tokens_seen("m", 4)  # a plain step<N>/ folder still needs tokens_per_step
    (m / "step24").mkdir()
    with pytest.raises(SuiteError, match="two folders for step 24"):
        get_suite(m).steps("m")


def test_model_listed_in_the_record_without_its_folder(suite_copy: Path) -> None:
    shutil.rmtree(suite_copy / "s")
    with pytest.raises(SuiteError, match=r"no step<N>/ folders in .*/s$"):
        get_suite(suite_copy).steps("s")


def test_weights_sha256_streams_every_dtype_with_the_numpy_era_definition(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The file hash reads byte ranges: bfloat16 works (numpy cannot load it), reads are blockwise,
    and for numpy dtypes it equals the original definition over ``safetensors.numpy.load_file``."""
    import hashlib

    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    numpy_shard = {"a.w": torch.randn(3, 4, generator=g), "b.h": torch.randn(5, generator=g).half(),
                   "c.i": torch.arange(6).reshape(2, 3), "d.s": torch.tensor(1.5)}
    bf16_shard = {"e.bf": torch.randn(7, 3, generator=g).bfloat16()}
    save_file(numpy_shard, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(bf16_shard, str(tmp_path / "model-00002-of-00002.safetensors"))

    arrays = load_file(str(tmp_path / "model-00001-of-00002.safetensors"))
    old = hashlib.sha256()  # the definition before streaming, for every dtype numpy has
    for name in sorted(arrays):
        old.update(f"{name}|{arrays[name].dtype}|{arrays[name].shape}|".encode())
        old.update(arrays[name].tobytes())
    assert weights_sha256(tmp_path / "model-00001-of-00002.safetensors") == old.hexdigest()

    ref = hashlib.sha256()  # both shards, from torch's raw bytes
    names = {"a.w": "float32", "b.h": "float16", "c.i": "int64", "d.s": "float32", "e.bf": "bfloat16"}
    both = {**numpy_shard, **bf16_shard}
    for name in sorted(both):
        t = both[name]
        ref.update(f"{name}|{names[name]}|{tuple(t.shape)}|".encode())
        ref.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    monkeypatch.setattr(weights, "_READ", 5)  # several reads per tensor
    assert weights_sha256(tmp_path) == ref.hexdigest()


def test_weights_sha256_tracks_tensors_not_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = _random_model()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, tmp_path / "a.safetensors")
    save_file(sd, tmp_path / "b.safetensors", metadata={"note": "different metadata, same tensors"})
    assert (tmp_path / "a.safetensors").read_bytes() != (tmp_path / "b.safetensors").read_bytes()
    assert weights_sha256(tmp_path / "a.safetensors") == weights_sha256(tmp_path / "b.safetensors")
    k = next(iter(sd))
    sd[k] = sd[k].clone()
    sd[k].view(-1)[0] += 1e-6
    save_file(sd, tmp_path / "c.safetensors")
    assert weights_sha256(tmp_path / "c.safetensors") != weights_sha256(tmp_path / "a.safetensors")


def test_duplicate_weights_are_detected(suite_copy: Path, capsys: pytest.CaptureFixture) -> None:
    m = suite_copy / "m"
    shutil.copy(m / "step4" / "model.safetensors", m / "step8" / "model.safetensors")
    df = suites.check(str(suite_copy), progress=False)
    row = df[(df.model == "m") & (df.step == 8)].iloc[0]
    assert row.same_as_step == 4 and row.record_mismatch
    others = df[~((df.model == "m") & (df.step == 8))]
    assert (others.same_as_step == -1).all() and not others.record_mismatch.any()
    assert suites.duplicate_groups(df) == [("m", [4, 8])]
    from lhp_core.cli import main

    assert main(["suite", "check", str(suite_copy)]) == 1
    out = capsys.readouterr().out
    assert "m: identical weights at steps [4, 8]" in out and "m step 8: weights differ" in out


def test_truncated_checkpoint_names_the_file(suite_copy: Path) -> None:
    f = suite_copy / "s" / "step2" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 100])
    with pytest.raises(CorruptCheckpoint, match=r"s/step2/model.safetensors is truncated"):
        load(suite_copy, "s", 2)
    with pytest.raises(CorruptCheckpoint, match="model.safetensors"):
        weights_sha256(f.parent)
    f.write_bytes(b"\x00garbage")
    with pytest.raises(CorruptCheckpoint, match="unreadable safetensors header"):
        load(suite_copy, "s", 2)


def test_bit_flip_caught_by_verify(suite_copy: Path) -> None:
    f = suite_copy / "s" / "step4" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    load(suite_copy, "s", 4)  # structure intact: loads without verify
    with pytest.raises(CorruptCheckpoint, match="training_record.nc lists"):
        load(suite_copy, "s", 4, verify=True)


def test_tokenizer_mismatch_is_an_error(suite_copy: Path) -> None:
    from lhp_core.tokenizer import train_bpe

    other = train_bpe(["a completely different tiny corpus " * 20, "with other merges and words"], 300)
    other.save_pretrained(suite_copy / "m" / "step8")
    load(suite_copy, "m", 4)
    with pytest.raises(TokenizerMismatch, match=r"m/step8.*share one tokenizer"):
        load(suite_copy, "m", 8)


def test_unknown_suite_model_step_list_valid_ones(tiny_suite: Path) -> None:
    with pytest.raises(SuiteError, match="valid suites: .*lhp-mini.*pythia"):
        get_suite("pythia-13b")
    with pytest.raises(SuiteError, match="valid models: s, m"):
        load(tiny_suite, "xl", 0)
    with pytest.raises(SuiteError, match=r"no checkpoint at step 3; nearest saved steps: \[1, 2, 4, 8\]"):
        load(tiny_suite, "m", 3)
    with pytest.raises(SuiteError,
                       match=r"no checkpoint at step 5500; nearest saved steps: \[4000, 5000, 6000, 7000\]"):
        get_suite("pythia").check_step("pythia-70m", 5500)


def test_pythia_suite_metadata() -> None:
    p, d = get_suite("pythia"), get_suite("pythia-deduped")
    assert p.models[0] == "pythia-70m" and d.models[-1] == "pythia-12b-deduped" and len(p.models) == 8
    assert len(p.steps("70m")) == 154
    assert p.tokens_seen("pythia-1b", 143000) == 143000 * 2_097_152
    assert d.hub_ref("410m", 512) == ("EleutherAI/pythia-410m-deduped", "step512")
    # Non-embedding params, closed form for GPT-NeoX: per layer 12 d^2 + 13 d, plus the final LayerNorm.
    for size, (L, dm) in {"70m": (6, 512), "160m": (12, 768), "410m": (24, 1024), "1b": (16, 2048)}.items():
        assert p.n_params(size, nonembedding=True) == L * (12 * dm * dm + 13 * dm) + 2 * dm
    with pytest.raises(NotImplementedError, match="pythia_evals"):
        p.training_record()


def test_unregistered_lhp_suite_not_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LHP_SUITES", str(tmp_path / "none"))
    s = get_suite("lhp-mini")
    assert s.models == ["s", "m", "l"] and s.steps("l") == PRESETS["mini"].steps()
    # Counted from the recipe before training: GPT-NeoX closed form (2 layers, d=128, vocab 512).
    L, d, V = 2, 128, PRESETS["mini"].vocab_size
    assert s.n_params("l", nonembedding=True) == L * (12 * d * d + 13 * d) + 2 * d
    assert s.n_params("l") == s.n_params("l", nonembedding=True) + 2 * V * d
    with pytest.raises(FileNotFoundError, match=r"not trained yet.*ensure\('lhp-mini'\)"):
        load("lhp-mini", "l", 0)
    # The CPU twin trains only the largest size (time budget); the micro twin has every size.
    assert get_suite("lhp-mini-copyreg").models == ["l"] and get_suite("lhp-micro-copyreg").models == ["s", "m", "l"]


def test_hub_path_through_fake_hub_cache(tiny_suite: Path, tmp_path: Path) -> None:
    """``load("pythia", ...)`` runs ``from_pretrained(repo, revision="step1000")`` against a local HF cache."""
    cache = tmp_path / "hub"
    fake_hub_snapshot(cache, "EleutherAI/pythia-70m", "step1000", tiny_suite / "m" / "step16",
                      "0123456789abcdef0123456789abcdef01234567")
    code = textwrap.dedent(
        f"""
        import torch
        from lhp_core.checkpoints import load
        from transformers import AutoModelForCausalLM
        from lhp_core.checkpoints import checkpoint_sha256
        from lhp_core.weights import weights_sha256
        lm, tok = load("pythia", "70m", 1000)
        assert checkpoint_sha256("pythia", "70m", 1000) == weights_sha256({str(tiny_suite / "m" / "step16")!r})
        assert checkpoint_sha256("pythia", "70m", 2000) is None  # not in the cache: nothing downloaded
        ref = AutoModelForCausalLM.from_pretrained({str(tiny_suite / "m" / "step16")!r})
        ids = torch.tensor([tok("the people of the united states").input_ids])
        with torch.no_grad():
            assert torch.equal(lm(ids).logits, ref(ids).logits)
        try:
            load("pythia", "70m", 2000)
        except OSError as e:
            print("MISSING-REVISION-RAISES")
        print("HUB-OK", lm.training)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "HUB-OK False" in r.stdout and "MISSING-REVISION-RAISES" in r.stdout


def test_suite_cli_list_and_show(tiny_suite: Path, capsys: pytest.CaptureFixture) -> None:
    from lhp_core.cli import main

    assert main(["suite", "list"]) == 0
    out = capsys.readouterr().out
    assert "pythia-deduped" in out and "lhp-mini-copyreg" in out
    assert main(["suite", "show", str(tiny_suite)]) == 0
    out = capsys.readouterr().out
    assert "7 steps 0..24" in out and "preset: tiny" in out
    assert main(["suite", "check", str(tiny_suite)]) == 0
    assert "no two steps of a model share weights" in capsys.readouterr().out


def test_load_draws_no_per_checkpoint_bar(tiny_suite: Path, capfd: pytest.CaptureFixture) -> None:
    """Sweeps draw one bar over checkpoints; transformers' own "Loading weights" bar per load is
    silenced for the load only (it saved hundreds of widget states into each executed chapter)."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    load(tiny_suite, "m", 16)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is restored


def test_context_length_prefers_the_training_record(tiny_suite: Path, suite_copy: Path) -> None:
    """Suites trained before configs carried the context say 2048 positions; the record says 64."""
    import json

    from lhp_core.suites import context_length

    model, _ = load(tiny_suite, "m", 24)
    assert model.config.max_position_embeddings == TINY.context == 64  # what lhp train saves now
    cfg_path = suite_copy / "m" / "step24" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "max_position_embeddings": 2048}))  # as older lhp versions saved
    old, _ = load(suite_copy, "m", 24)
    assert old.config.max_position_embeddings == 2048
    assert context_length(str(suite_copy)) == context_length(str(suite_copy), old) == 64
    (suite_copy / "training_record.nc").unlink()  # a bare folder of checkpoints: the config decides
    assert context_length(str(suite_copy)) is None
    assert context_length(str(suite_copy), old) == 2048
    assert context_length("pythia") is None  # hub suites have no record
