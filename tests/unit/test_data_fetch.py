"""Manifests, the fetch layer (mirror, cache, download) and ``lhp data``."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from lhp_core import config
from lhp_core.data import fetch as fetch_mod
from lhp_core.data.cli import configure, run
from lhp_core.data.fetch import DataHashMismatch, DataUnavailable, fetch, verify
from lhp_core.data.manifests import (
    ManifestError,
    UnknownDataset,
    UnknownFile,
    get_manifest,
    list_datasets,
    manifest_dir,
    parse,
)


@pytest.fixture()
def shared() -> Path:
    """The data mirror chosen by tests/conftest.py (read at test time: the env var is set by a fixture)."""
    mirror = config.data_mirror()
    if mirror is None or not mirror.is_dir():
        pytest.fail("no data mirror: set LHP_DATA_MIRROR to the shared data folder "
                    "(../shared/data beside the checkout)")
    return mirror

SMALL = ("brain_tuckute2024", "LICENSE_drive_suppress_brains")  # 1 kB: cheap to copy and tamper with

DATASETS = {
    "naturalstories", "provo_motr", "brain_tuckute2024", "things",
    "word_similarity", "feature_norms", "corpora", "pythia_evals",
    "pythia_behavioral_phases", "pythia_blimp", "pythia_inverse_scaling", "wordbank",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_manifest_parses_with_required_fields() -> None:
    assert set(list_datasets()) == DATASETS
    for dataset_id in list_datasets():
        m = get_manifest(dataset_id)
        assert m.title and m.description and m.license and m.citation.lstrip().startswith("@")
        assert m.files, dataset_id
        for f in m.files:
            assert f.url is None or f.url.startswith("https://"), f
            assert f.url is not None or f.note, f"{dataset_id}/{f.path}: no URL needs a note"


def test_manifests_match_shared_sha256sums(shared: Path) -> None:
    """The manifests list exactly the files of SHA256SUMS (an independent list) with the same hashes."""
    expected: dict[tuple[str, str], str] = {}
    for line in (shared / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        folder, _, rel = path.partition("/")
        if rel:
            expected[(folder, rel)] = digest
    listed = {(d, f.path): f.sha256 for d in list_datasets() for f in get_manifest(d).files}
    assert listed == expected
    assert len(get_manifest("pythia_evals").files) == 880


def test_verify_reports_every_mirror_file_ok(shared: Path) -> None:
    df = verify()
    assert list(df.columns) == ["dataset", "path", "status", "expected", "actual", "location"]
    assert len(df) == sum(len(get_manifest(d).files) for d in list_datasets())
    assert (df.status == "ok").all(), df[df.status != "ok"]
    assert (df.expected == df.actual).all()


def test_fetch_returns_mirror_path_and_hash_matches(shared: Path) -> None:
    path = fetch(*SMALL)
    assert path == shared / SMALL[0] / SMALL[1]
    assert _sha(path) == get_manifest(SMALL[0]).file(SMALL[1]).sha256


def test_tampered_mirror_file_raises_with_both_hashes(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / SMALL[0] / SMALL[1]
    target.parent.mkdir(parents=True)
    shutil.copy(shared / SMALL[0] / SMALL[1], target)
    monkeypatch.setenv("LHP_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    assert fetch(*SMALL) == target  # intact copy is accepted
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01
    target.write_bytes(bytes(data))
    expected = get_manifest(SMALL[0]).file(SMALL[1]).sha256
    actual = _sha(target)
    with pytest.raises(DataHashMismatch) as err:
        fetch(*SMALL)
    msg = str(err.value)
    assert expected in msg and actual in msg and SMALL[1] in msg
    row = verify(SMALL[0]).set_index("path").loc[SMALL[1]]
    assert row.status == "hash mismatch" and row.actual == actual


def _with_url(monkeypatch: pytest.MonkeyPatch, dataset_id: str, relpath: str, url: str) -> None:
    m = get_manifest(dataset_id)
    files = tuple(dataclasses.replace(f, url=url) if f.path == relpath else f for f in m.files)
    patched = dataclasses.replace(m, files=files)
    monkeypatch.setattr(fetch_mod, "get_manifest", lambda i: patched if i == dataset_id else get_manifest(i))


def test_missing_mirror_and_failed_download_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LHP_DATA_MIRROR", str(tmp_path / "empty_mirror"))
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    _with_url(monkeypatch, *SMALL, "http://127.0.0.1:9/unreachable")  # discard port: refused locally
    with pytest.raises(DataUnavailable) as err:
        fetch(*SMALL)
    msg = str(err.value)
    assert "LHP_DATA_MIRROR" in msg and f"{SMALL[0]}/{SMALL[1]}" in msg and "127.0.0.1:9" in msg
    assert verify(SMALL[0]).set_index("path").loc[SMALL[1]].status == "missing"


def test_download_into_cache_from_local_server(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(shared / SMALL[0] / SMALL[1], served / "file")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("LHP_DATA_MIRROR", str(tmp_path / "empty_mirror"))
        monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
        _with_url(monkeypatch, *SMALL, f"http://127.0.0.1:{server.server_port}/file")
        path = fetch(*SMALL)
        assert path == tmp_path / "cache" / "data" / SMALL[0] / SMALL[1]
        assert _sha(path) == get_manifest(SMALL[0]).file(SMALL[1]).sha256
        server.shutdown()  # second call must come from the cache, not the network
        assert fetch(*SMALL) == path
        # a corrupted server copy is rejected and not left in the cache
        path.unlink()
        (served / "file").write_bytes(b"not the license")
        server2 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server2.serve_forever, daemon=True).start()
        _with_url(monkeypatch, *SMALL, f"http://127.0.0.1:{server2.server_port}/file")
        with pytest.raises(DataHashMismatch):
            fetch(*SMALL)
        assert not path.exists()
        server2.shutdown()
    finally:
        server.server_close()


def test_unknown_dataset_lists_valid_ids() -> None:
    with pytest.raises(UnknownDataset) as err:
        fetch("naturalstorys", "words.tsv")
    for dataset_id in DATASETS:
        assert dataset_id in str(err.value)


def test_unknown_file_lists_valid_paths() -> None:
    with pytest.raises(UnknownFile) as err:
        fetch("things", "unique_ids.txt")
    assert "unique_id.txt" in str(err.value) and "words.csv" in str(err.value)


def test_malformed_manifest_is_rejected(tmp_path: Path) -> None:
    good = (manifest_dir() / "things.yaml").read_text()
    bad = tmp_path / "things.yaml"
    bad.write_text(good.replace("citation:", "cite:"))
    with pytest.raises(ManifestError, match="citation"):
        parse(bad)
    renamed = tmp_path / "other.yaml"
    renamed.write_text(good)
    with pytest.raises(ManifestError, match="file name"):
        parse(renamed)


def _cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    return run(parser.parse_args(argv))


def test_cli_list_and_verify_exit_codes(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "pythia_evals" in out and "880" in out
    assert _cli(["verify", "brain_tuckute2024"]) == 0
    assert "ok: 4" in capsys.readouterr().out
    monkeypatch.setenv("LHP_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("LHP_CACHE", str(tmp_path / "cache"))
    assert _cli(["verify", "brain_tuckute2024"]) == 1
    assert "missing: 4" in capsys.readouterr().out
    assert _cli(["verify", "nope"]) == 2
    monkeypatch.setenv("LHP_DATA_MIRROR", str(shared))  # an empty mirror would mean real downloads
    assert _cli(["fetch", "brain_tuckute2024"]) == 0
    assert "4 of 4 files available" in capsys.readouterr().out


def test_hash_is_cached_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = hashlib.sha256

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fetch_mod.hashlib, "sha256", counting)
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    first = fetch_mod.sha256_of(f)
    assert first == real(b"abc").hexdigest() and len(calls) == 1
    assert fetch_mod.sha256_of(f) == first and len(calls) == 1  # (path, size, mtime) unchanged: no re-read
    f.write_bytes(b"abcd")
    assert fetch_mod.sha256_of(f) == real(b"abcd").hexdigest() and len(calls) == 2
