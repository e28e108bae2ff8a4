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


#: Pythia's tokens per step (1,024 sequences of 2,048 tokens).
PYTHIA_TOKENS_PER_STEP = 2_097_152


def pythia_revisions(n: int) -> list[int]:
    """``n >= 2`` of Pythia's revision steps in order: its log-spaced ones (0, 1, 2, ..., 512) as far as
    they go, then evenly over 1000..143000, ending at 143000."""
    from lhp_core.schedule import pythia_steps, spread

    steps = pythia_steps()
    log = [s for s in steps if s < 1000][: max(n - 2, 0)]  # at least two evenly spaced ones: 1000 and 143000
    return [*log, *spread([s for s in steps if s >= 1000], n - len(log))]


def fake_pythia(cache: Path, suite: Path, sizes: dict[str, str]) -> dict[int, int]:
    """Serve the models of a suite ``lhp train`` wrote as Pythia from the HF cache folder ``cache``.

    ``sizes`` maps a Pythia size to a model of ``suite`` (``{"70m": "s", "160m": "m"}``): each of the
    model's checkpoints, in order, becomes ``EleutherAI/pythia-<size>`` at one of Pythia's revision names
    (:func:`pythia_revisions`; ``step0`` ... ``step143000``). Returns ``training step -> Pythia step``.
    """
    from lhp_core.suites import get_suite

    s = get_suite(str(suite))
    own = s.steps(next(iter(sizes.values())))
    named = dict(zip(own, pythia_revisions(len(own))))
    for i, (size, model) in enumerate(sizes.items()):
        for j, (step, pythia) in enumerate(named.items()):
            fake_hub_snapshot(cache, f"EleutherAI/pythia-{size}", f"step{pythia}", s.checkpoint_path(model, step),
                              f"{i:02x}{j:038x}")
    return named


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
