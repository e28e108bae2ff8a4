"""A local Hugging Face hub cache, as ``snapshot_download`` leaves it, for offline hub-suite tests."""
from __future__ import annotations

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
