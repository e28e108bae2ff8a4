"""Revisions that serve identical weights: found by `lhp suite check` (hub metadata, HF cache, local folders)
and dropped from every study's steps with one warning.

The fake hub serves lhp-tiny's model ``s`` as ``someone/tiny-s``: ``step8`` serves step 24's weights
(as pythia-2.8b's early revisions serve late weights), ``step4`` a plain copy of step 16's files (not
linked to blobs, so they are hashed), ``step16`` and ``main`` (step 24) their own.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

from lhp_core import identical
from lhp_core.cli import main
from lhp_core.identical import IdenticalWeightsWarning, Weights
from lhp_core.measures import step_grid
from lhp_core.metrics import heads
from lhp_core.suites import get_suite
from tests.hub_cache import fake_hub_snapshot, linked_hub_snapshot

REPO = "someone/tiny-s"
REVISIONS = ["step4", "step8", "step16", "main=24"]
SERVED = {"step4": 16, "step8": 24, "step16": 16, "main": 24}  # revision -> the lhp-tiny step whose files it serves
IDENTICAL = [("tiny-s", [4, 16]), ("tiny-s", [8, 24])]


@pytest.fixture()
def hub(tiny_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """The fake hub in an offline HF cache; returns ``{revision: {file: sha256}}`` as the hub lists them."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "lhp"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read at import by snapshot_download
    listed = {}
    for i, (rev, step) in enumerate(SERVED.items()):
        folder = tiny_suite / "s" / f"step{step}"
        if rev == "step4":
            fake_hub_snapshot(cache, REPO, rev, folder, f"{i:040d}")
            listed[rev] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}
        else:
            listed[rev] = linked_hub_snapshot(cache, REPO, rev, folder, f"{i:040d}")
    return listed


def _suite():
    return get_suite(REPO, revisions=REVISIONS, tokens_per_step=512)


def test_offline_check_finds_the_revisions_that_share_weights(hub, capsys):
    found = identical.hub_weights(_suite(), offline=True)
    assert [(w.step, w.where, w.unknown) for w in found] == [
        (4, f"{REPO}@step4", ""), (8, f"{REPO}@step8", ""), (16, f"{REPO}@step16", ""), (24, f"{REPO}@main", "")]
    # Linked files are named by their sha256 (nothing read); the copied one is hashed: both give the hub's hash.
    assert found[0].files == {"model.safetensors": hub["step4"]["model.safetensors"]}
    assert found[1].files == {"model.safetensors": hub["main"]["model.safetensors"]}
    assert identical.groups(found) == IDENTICAL
    args = ["suite", "check", REPO, "--revisions", *REVISIONS]
    assert main(args) == 0  # HF_HUB_OFFLINE=1 reads the cache, as --offline does
    out = capsys.readouterr().out.splitlines()
    assert out == [f"4 of 4 revisions of {REPO} checked from the Hugging Face cache",
                   "  tiny-s: identical weights at steps 4, 16: the earlier steps serve the weights of step 16; "
                   "studies drop them",
                   "  tiny-s: identical weights at steps 8, 24: the earlier steps serve the weights of step 24; "
                   "studies drop them"]
    assert main([*args, "--offline", "--strict"]) == 1


def test_offline_check_reports_revisions_not_in_the_cache(hub, capsys):
    args = ["suite", "check", REPO, "--revisions", *REVISIONS[:3], "step32", "main=24", "--offline"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"4 of 5 revisions of {REPO} checked from the Hugging Face cache"
    assert out[-2:] == ["  tiny-s: 1 revisions not checked, not in the Hugging Face cache: steps 32",
                        "  to check them: run online (without --offline, HF_HUB_OFFLINE unset)"]
    assert main([*args, "--strict"]) == 1
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["step"], r["copy_of_step"], bool(r["unknown"])) for r in rows] == [
        (4, 16, False), (8, 24, False), (16, -1, False), (24, -1, False), (32, -1, True)]
    assert rows[1]["files"] == {"model.safetensors": hub["main"]["model.safetensors"]}


def test_online_check_reads_the_hubs_file_metadata_and_downloads_nothing(hub, tmp_path, monkeypatch, capsys):
    asked = []

    def model_info(self, repo_id, *, revision=None, files_metadata=False, **kw):
        asked.append((repo_id, revision, files_metadata))
        lfs = {n: BlobLfsInfo(size=1, sha256=sha, pointer_size=134) for n, sha in hub[revision].items()
               if n.endswith(".safetensors")}
        return SimpleNamespace(siblings=[RepoSibling(n, size=1, blob_id="0" * 40, lfs=lfs.get(n))
                                         for n in hub[revision]])

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    empty = tmp_path / "empty-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))
    assert main(["suite", "check", REPO, "--revisions", *REVISIONS, "--strict"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"4 of 4 revisions of {REPO} checked from the hub's file metadata (nothing downloaded)"
    assert out[1].startswith("  tiny-s: identical weights at steps 4, 16:") and out[2].startswith(
        "  tiny-s: identical weights at steps 8, 24:")
    assert asked == [(REPO, rev, True) for rev in SERVED]
    assert not empty.exists()


def test_online_check_without_an_answer_names_the_fix(hub, monkeypatch, capsys):
    def model_info(self, repo_id, **kw):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert main(["suite", "check", REPO, "--revisions", *REVISIONS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1:] == [f"lhp suite: error: {REPO}@step4: the hub gave no file metadata (ConnectionError: no route to "
                   "host); check the connection and the repo, or pass --offline to check the cached revisions"]


def test_a_measure_over_steps_drops_the_copies_with_one_warning(hub):
    """What a user sees under Python's default filter: one warning, though the driver and the runner both choose."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        ds = heads.head_scores_over_steps(_suite(), n_seq=2, seq_len=8, convention="aoyama_wilcox", progress=False)
    shown = [str(w.message) for w in rec if w.category is IdenticalWeightsWarning]
    assert shown == [f"suite {REPO!r} serves identical weights at several steps, so only the last of each set is "
                     "studied: tiny-s: steps [4] are copies of step 16 (kept); tiny-s: steps [8] are copies of step "
                     f"24 (kept). The earlier names do not hold the weights they say (`lhp suite check {REPO}` lists "
                     "every such set)"]
    assert ds["step"].values.tolist() == [16, 24]
    assert ds["tokens_seen"].values.tolist() == [[16 * 512, 24 * 512]]


def test_step_grid_of_a_folder_drops_a_copied_step_and_check_reports_it(tiny_suite, tmp_path, capsys):
    root = tmp_path / "run"
    for name, step in (("step8", 24), ("step16", 16), ("step24", 24)):
        shutil.copytree(tiny_suite / "s" / f"step{step}", root / name)
    suite = get_suite(str(root))
    with pytest.warns(IdenticalWeightsWarning, match=r"run: steps \[8\] are copies of step 24 \(kept\)"):
        assert step_grid(suite) == {"run": [16, 24]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdenticalWeightsWarning)
        assert step_grid(suite, steps=[8, 16]) == {"run": [8, 16]}  # step 24 is not studied: 8 is compared to 16 only
    assert main(["suite", "check", str(root)]) == 0
    assert "  run: identical weights at steps [8, 24]" in capsys.readouterr().out.splitlines()
    assert main(["suite", "check", str(root), "--strict"]) == 1


def test_groups_link_revisions_through_either_weight_format():
    both = Weights("m", 1, "a", (("safetensors", "S1"), ("bin", "B1")))
    only_bin = Weights("m", 2, "b", (("bin", "B1"),))
    only_st = Weights("m", 3, "c", (("safetensors", "S1"),))
    other = Weights("m", 4, "d", (("safetensors", "S2"),))
    unknown = Weights("m", 5, "e", unknown="not in the Hugging Face cache")
    elsewhere = Weights("n", 1, "f", (("safetensors", "S1"),))
    assert identical.groups([other, only_st, both, only_bin, unknown, elsewhere]) == [("m", [1, 2, 3])]
    # Names count: the same bytes under other file names are another sharding, not the same files.
    assert identical._digests({"a.safetensors": "x"}) != identical._digests({"b.safetensors": "x"})
    assert identical._digests({"config.json": "x", "training_args.bin": "y"}) == ()
