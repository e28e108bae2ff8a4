"""A local Hugging Face hub cache, as ``snapshot_download`` leaves it, for offline hub-suite tests."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def fake_hub_snapshot(cache: Path, repo: str, revision: str, checkpoint: Path, sha: str) -> Path:
    """Serve ``checkpoint`` (a folder) as ``repo`` at ``revision`` from the HF cache folder ``cache``.

    Layout: ``models--<org>--<name>/refs/<revision>`` holds the commit ``sha``, and
    ``snapshots/<sha>/`` the files. Returns the snapshot folder.
    """
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(sha)
    return Path(shutil.copytree(checkpoint, root / "snapshots" / sha))


def linked_hub_snapshot(cache: Path, repo: str, revision: str, checkpoint: Path, commit: str) -> dict[str, str]:
    """Serve ``checkpoint`` as ``repo`` at ``revision`` laid out as ``huggingface_hub`` downloads it.

    Each file is a link ``snapshots/<commit>/<name> -> ../../blobs/<hash>``: the hash is the
    file's sha256 for weight files (the hub's LFS hash) and its git blob sha1 otherwise, so two
    revisions that serve the same weights share their weight blobs. Returns ``{name: sha256}`` of
    every file, as the hub's file metadata lists it.
    """
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    snap = root / "snapshots" / commit
    out = {}
    for f in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        data = f.read_bytes()
        out[f.relative_to(checkpoint).as_posix()] = hashlib.sha256(data).hexdigest()
        lfs = f.suffix in (".safetensors", ".bin")
        blob = out[f.relative_to(checkpoint).as_posix()] if lfs else hashlib.sha1(
            b"blob %d\0" % len(data) + data).hexdigest()
        if not (root / "blobs" / blob).exists():
            (root / "blobs" / blob).write_bytes(data)
        link = snap / f.relative_to(checkpoint)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(os.path.relpath(root / "blobs" / blob, link.parent)))
    return out
