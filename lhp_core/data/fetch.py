"""Resolve a dataset file to a verified local path: mirror first, then cache, then download.

``fetch(dataset_id, relpath)`` looks in this order:

1. ``$LHP_DATA_MIRROR/<dataset_id>/<relpath>`` (a folder laid out like ``shared/data``);
2. ``$LHP_CACHE/data/<dataset_id>/<relpath>`` (earlier downloads);
3. the file's upstream ``url`` from its manifest, downloaded with pooch into the cache.

Every file is checked against the sha256 in its manifest. Hashes are remembered per
``(path, size, mtime)`` so that loaders calling ``fetch`` repeatedly pay for hashing once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from lhp_core import config, progress
from lhp_core.data.manifests import FileEntry, Manifest, get_manifest, list_datasets

__all__ = ["DataHashMismatch", "DataUnavailable", "fetch", "sha256_of", "verify"]

_HASHES: dict[tuple[str, int, int], str] = {}


class DataHashMismatch(RuntimeError):
    """A local or downloaded file does not have the sha256 its manifest lists."""


class DataUnavailable(RuntimeError):
    """The file is in no mirror or cache and could not be downloaded."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of ``path``, cached by (resolved path, size, mtime_ns)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _mismatch(manifest: Manifest, entry: FileEntry, path: Path, actual: str, where: str) -> DataHashMismatch:
    return DataHashMismatch(
        f"{where} file {path} ({manifest.id}/{entry.path}) has the wrong sha256:\n"
        f"  expected {entry.sha256}\n  actual   {actual}\n"
        f"Fix: replace it with the upstream file ({entry.url or 'see the dataset SOURCE.md'}), or delete it so that "
        f"lhp downloads it again; `lhp data verify {manifest.id}` checks every file."
    )


def _cache_path(dataset_id: str, relpath: str) -> Path:
    return config.cache_dir() / "data" / dataset_id / relpath


def _download(manifest: Manifest, entry: FileEntry, target: Path) -> Path:
    import pooch  # imported lazily: only needed when there is no mirror

    mirror = config.data_mirror()
    if mirror is None:
        current = "unset"
    elif not mirror.is_dir():
        current = f"{mirror}, which is not a folder as seen from {Path.cwd()}"
    else:
        current = str(mirror)
    layout = (
        f"Set LHP_DATA_MIRROR to a folder laid out as <LHP_DATA_MIRROR>/{manifest.id}/{entry.path} "
        f"(currently LHP_DATA_MIRROR={current})"
    )
    if not entry.url:
        raise DataUnavailable(
            f"{manifest.id}/{entry.path} is not in the data mirror and has no download URL"
            f"{' (' + entry.note + ')' if entry.note else ''}. {layout}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(entry.url, known_hash=None, fname=target.name, path=target.parent,
                      progressbar=progress.mode(disable=None) == "tty")  # a download bar on a terminal only
    except Exception as exc:  # network errors come in many types (requests, ftp, OS)
        raise DataUnavailable(
            f"{manifest.id}/{entry.path} is not in the data mirror and downloading {entry.url} failed "
            f"({type(exc).__name__}: {exc}). {layout}, or copy the file to {target}."
        ) from exc
    actual = sha256_of(target)
    if actual != entry.sha256:
        target.unlink()
        raise _mismatch(manifest, entry, target, actual, "downloaded")
    return target


def fetch(dataset_id: str, relpath: str) -> Path:
    """Local, sha256-verified path of one file of a dataset.

    Parameters
    ----------
    dataset_id
        A manifest id (see :func:`lhp_core.data.manifests.list_datasets`).
    relpath
        Path of the file inside the dataset folder, as listed in the manifest.

    Raises
    ------
    UnknownDataset, UnknownFile
        The id or path is not in the manifests (the message lists valid ones).
    DataHashMismatch
        A mirror or downloaded file has a different sha256 than the manifest.
    DataUnavailable
        No mirror or cache copy, and the download failed.
    """
    manifest = get_manifest(dataset_id)
    entry = manifest.file(relpath)
    mirror = config.data_mirror()
    if mirror is not None:
        path = mirror / dataset_id / relpath
        if path.is_file():
            actual = sha256_of(path)
            if actual != entry.sha256:
                raise _mismatch(manifest, entry, path, actual, "mirror (LHP_DATA_MIRROR)")
            return path
    cached = _cache_path(dataset_id, relpath)
    if cached.is_file():
        if sha256_of(cached) == entry.sha256:
            return cached
        cached.unlink()  # a partial or corrupted earlier download: fetch it again
    return _download(manifest, entry, cached)


def verify(dataset_id: str | None = None) -> pd.DataFrame:
    """Check every local file of one dataset (or all) against its manifest, without downloading.

    Returns
    -------
    pandas.DataFrame
        One row per manifest file, columns ``dataset``, ``path``, ``status``
        (``ok`` / ``missing`` / ``hash mismatch``), ``expected``, ``actual``
        (sha256, empty when missing) and ``location`` (the file checked, or empty).
    """
    ids = [dataset_id] if dataset_id is not None else list_datasets()
    manifests = [get_manifest(i) for i in ids]
    rows = []
    mirror = config.data_mirror()
    total = sum(len(m.files) for m in manifests)
    with progress.bar(total=total, desc="verifying data files", unit="file", disable=total < 50) as bar:
        for m in manifests:
            for entry in m.files:
                candidates = [mirror / m.id / entry.path] if mirror is not None else []
                candidates.append(_cache_path(m.id, entry.path))
                path = next((p for p in candidates if p.is_file()), None)
                actual = sha256_of(path) if path is not None else ""
                status = "missing" if path is None else ("ok" if actual == entry.sha256 else "hash mismatch")
                rows.append(
                    {
                        "dataset": m.id,
                        "path": entry.path,
                        "status": status,
                        "expected": entry.sha256,
                        "actual": actual,
                        "location": str(path) if path is not None else "",
                    }
                )
                bar.update()
    return pd.DataFrame(rows, columns=["dataset", "path", "status", "expected", "actual", "location"])
