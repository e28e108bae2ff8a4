"""Checkpoints that are not what they say: steps of a model that serve byte-identical weights.

Published suites have revisions whose files are copies of other revisions: 86 of the 154
revisions of ``EleutherAI/pythia-2.8b`` serve late-training weights under early step names
(EleutherAI/pythia issues #195, #205; #206 reports two for 12b). A study run on them is silently
wrong. This module finds such sets without loading any model:

* hub suites, online: the sha256 the hub lists for every LFS file of a revision
  (``HfApi.model_info(repo, revision=..., files_metadata=True)``), nothing downloaded;
* hub suites, offline: the revisions already in the Hugging Face cache, whose files link to blobs
  named by that same sha256 (a file that is not such a link is hashed);
* local suites: :func:`lhp_core.checkpoints.checkpoint_id` (the tensor hash the training record
  lists, else computed from the files).

A revision's weights are its ``*.safetensors`` files, and separately its ``pytorch_model*.bin``
files: two revisions are identical when either set, names and hashes, is the same in both.

:func:`drop_identical` is what every study's step selection applies
(:func:`lhp_core.measures.step_grid`): of steps with identical weights it keeps the **last**, since
weights cannot come from a later step than the one that produced them: an earlier step either
was overwritten with later weights (its label is wrong) or did not change them (it adds nothing).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lhp_core.progress import bar

__all__ = ["CheckpointId", "IdenticalWeightsWarning", "SuiteLike", "Weights", "cached_files", "check_hub",
           "drop_identical", "file_sha256", "groups", "hub_cache", "hub_offline", "hub_weights", "local_weights",
           "online_files", "weights_of"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_MEMO: dict[tuple[str, int, int], str] = {}


class SuiteLike(Protocol):
    """What this module reads of a :class:`lhp_core.suites.Suite` (it imports no suite module, so that
    ``lhp_core.suites`` can use it for ``lhp suite check``): ``kind`` is ``"hub"`` or ``"local"``; hub
    suites add ``hub_ref``."""

    id: str
    kind: str

    @property
    def models(self) -> list[str]: ...

    def resolve_model(self, model: str) -> str: ...

    def steps(self, model: str) -> list[int]: ...

    def checkpoint_path(self, model: str, step: int) -> Path: ...


#: ``(suite, model, step) -> id`` naming a local checkpoint's weights: :func:`lhp_core.checkpoints.checkpoint_id`.
CheckpointId = Callable[[SuiteLike, str, int], str]


class IdenticalWeightsWarning(UserWarning):
    """Steps of a model serve identical weights; all but the last were dropped from the study."""


@dataclass
class Weights:
    """What identifies one checkpoint's weights.

    Attributes
    ----------
    model, step
        The checkpoint.
    where
        ``repo@revision`` (hub) or the checkpoint folder (local).
    digests
        ``(kind, digest)`` pairs, one per weight format found (``"safetensors"``, ``"bin"``, or
        ``"tensors"`` for a local suite's tensor hash); empty when unknown.
    unknown
        Why the weights could not be identified (``""`` when they were): not in the cache, no
        weight file, a missing folder.
    files
        ``{file name: sha256}`` of the weight files (hub suites; empty for local suites).
    """

    model: str
    step: int
    where: str
    digests: tuple[tuple[str, str], ...] = ()
    unknown: str = ""
    files: dict[str, str] = field(default_factory=dict)


def _kind(name: str) -> str | None:
    """The weight format of a repo file, or None for a file that holds no weights."""
    base = name.rsplit("/", 1)[-1]
    if base.endswith(".safetensors"):
        return "safetensors"
    if base.startswith("pytorch_model") and base.endswith(".bin"):
        return "bin"
    return None


def _digests(files: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """One digest per weight format over ``{file name: sha256}``: equal digests, identical weight files."""
    out = []
    for kind in ("safetensors", "bin"):
        named = sorted((n, h) for n, h in files.items() if _kind(n) == kind)
        if named:
            out.append((kind, hashlib.sha256(repr(named).encode()).hexdigest()))
    return tuple(out)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, kept per process while its size and modification time stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_MEMO:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
        _FILE_MEMO[key] = h.hexdigest()
    return _FILE_MEMO[key]


def hub_cache() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE``, read now so that a changed variable counts)."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE))


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network (read now, as :func:`hub_cache`)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def cached_files(repo: str, revision: str) -> dict[str, str] | None:
    """``{file name: sha256}`` of the weight files of ``repo`` at ``revision`` in the HF cache; None if not cached.

    A cached file links to ``blobs/<sha256>`` (the hub's LFS hash); a file that does not (a copy,
    a cache on a file system without links) is hashed.
    """
    root = hub_cache() / f"models--{repo.replace('/', '--')}"
    ref = root / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snap = root / "snapshots" / commit
    if not snap.is_dir():
        return None
    out = {}
    for p in sorted(snap.rglob("*")):
        name = p.relative_to(snap).as_posix()
        if _kind(name) is None or not p.is_file():
            continue
        blob = Path(os.readlink(p)).name if p.is_symlink() else ""
        out[name] = blob if _SHA256.match(blob) else file_sha256(p)
    return out


def online_files(repo: str, revision: str) -> dict[str, str]:
    """``{file name: sha256}`` of the weight files of ``repo`` at ``revision``, from the hub's metadata.

    Raises
    ------
    OSError
        The hub did not answer, or a weight file has no LFS hash.
    """
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - connection, HTTP and repo errors all mean "no metadata"
        raise OSError(f"{repo}@{revision}: the hub gave no file metadata ({type(e).__name__}: {e}); "
                      "check the connection and the repo, or pass --offline to check the cached revisions") from e
    out = {}
    for f in info.siblings or []:
        if _kind(f.rfilename) is None:
            continue
        sha = getattr(f.lfs, "sha256", None) if f.lfs is not None else None
        if sha is None and isinstance(f.lfs, Mapping):
            sha = f.lfs.get("sha256")
        if not sha:
            raise OSError(f"{repo}@{revision}: the hub lists {f.rfilename} without an LFS sha256; "
                          "pass --offline to hash the cached files instead")
        out[f.rfilename] = sha
    return out


def hub_weights(suite: SuiteLike, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                offline: bool = False, progress: bool = False) -> list[Weights]:
    """Identify the weights of every revision of a hub suite, from the hub's metadata or the cache.

    Parameters
    ----------
    suite
        A hub suite (registered, or a repo at named revisions): one with ``hub_ref(model, step)``.
    models, steps
        Which checkpoints; default every model at every step.
    offline
        Read only the HF cache (revisions not in it are ``unknown``), never the network.
    progress
        Show a bar over the revisions (one hub request each when online).

    Returns
    -------
    One :class:`Weights` per checkpoint, in model then step order.
    """
    todo = [(m, int(st)) for m in [suite.resolve_model(x) for x in (models or suite.models)]
            for st in (suite.steps(m) if steps is None else steps)]
    out = []
    for m, st in bar(todo, desc=f"reading {suite.id}", unit="revision", disable=not progress):
        repo, rev = suite.hub_ref(m, st)  # type: ignore[attr-defined]
        w = Weights(m, st, f"{repo}@{rev}")
        files = cached_files(repo, rev) if offline else online_files(repo, rev)
        if files is None:
            w.unknown = "not in the Hugging Face cache"
        elif not files:
            w.unknown = "no *.safetensors or pytorch_model*.bin file"
        else:
            w.files, w.digests = files, _digests(files)
        out.append(w)
    return out


def local_weights(suite: SuiteLike, grid: Mapping[str, Sequence[int]], ids: CheckpointId) -> list[Weights]:
    """Identify the weights of a local suite's checkpoints by their tensor hash (``ids``: :data:`CheckpointId`)."""
    out = []
    for m, steps in grid.items():
        for st in steps:
            try:
                w = Weights(m, int(st), str(suite.checkpoint_path(m, int(st))), (("tensors", ids(suite, m, int(st))),))
            except FileNotFoundError as e:
                w = Weights(m, int(st), "", unknown=f"missing ({e})")
            out.append(w)
    return out


def _root(parent: dict[int, int], x: int) -> int:
    """The representative of ``x``'s set in a union-find forest (``x`` joins as its own set if new)."""
    while parent.setdefault(x, x) != x:
        x = parent[x]
    return x


def groups(weights: Sequence[Weights]) -> list[tuple[str, list[int]]]:
    """``(model, steps)`` for every set of two or more steps of a model whose weights are identical.

    Steps are linked when they share any digest (so a revision with both formats joins one that
    has either), and sets are closed under that link. Models keep their order; sets are sorted by
    their first step.
    """
    out = []
    for model in dict.fromkeys(w.model for w in weights):
        parent: dict[int, int] = {}
        first_of: dict[tuple[str, str], int] = {}
        for w in (w for w in weights if w.model == model):
            _root(parent, w.step)
            for d in w.digests:
                if d in first_of:
                    parent[_root(parent, w.step)] = _root(parent, first_of[d])
                else:
                    first_of[d] = w.step
        sets: dict[int, list[int]] = {}
        for st in parent:
            sets.setdefault(_root(parent, st), []).append(st)
        out += sorted(((model, sorted(v)) for v in sets.values() if len(v) > 1), key=lambda g: g[1])
    return out


def weights_of(suite: SuiteLike, grid: Mapping[str, Sequence[int]], ids: CheckpointId) -> list[Weights]:
    """Identify the weights of ``grid``'s checkpoints without loading a model or touching the network.

    Hub suites: the HF cache (a revision not downloaded yet is unknown, so not compared); local
    suites: the tensor hash, ``ids(suite, model, step)``.
    """
    if suite.kind == "hub":
        return [w for m, steps in grid.items() for w in hub_weights(suite, [m], steps, offline=True)]
    return local_weights(suite, grid, ids)


def drop_identical(suite: SuiteLike, grid: Mapping[str, Sequence[int]], ids: CheckpointId) -> dict[str, list[int]]:
    """``grid`` without the steps whose weights equal a later step's, with one warning naming them.

    Parameters
    ----------
    suite
        The suite the grid is of.
    grid
        ``model -> steps`` (:func:`lhp_core.measures.step_grid`).
    ids
        Names a local checkpoint's weights (:func:`lhp_core.checkpoints.checkpoint_id`).

    Returns
    -------
    ``model -> steps``, each set of steps with identical weights reduced to its last step.

    Warns
    -----
    IdenticalWeightsWarning
        Once for the whole grid, naming per model the steps kept and dropped and how to see all
        of them (``lhp suite check``).
    """
    found = groups(weights_of(suite, grid, ids))
    if not found:
        return {m: list(s) for m, s in grid.items()}
    drop = {(m, st) for m, steps in found for st in steps[:-1]}
    parts = [f"{m}: steps {steps[:-1]} are copies of step {steps[-1]} (kept)" for m, steps in found]
    # stacklevel 1 points at this line: one location, so the default filter shows each message once per
    # process although the runner and the drivers both choose steps.
    warnings.warn(f"suite {suite.id!r} serves identical weights at several steps, so only the last of each set is "
                  f"studied: {'; '.join(parts)}. The earlier names do not hold the weights they say "
                  f"(`lhp suite check {suite.id}` lists every such set)", IdenticalWeightsWarning, stacklevel=1)
    return {m: [st for st in steps if (m, st) not in drop] for m, steps in grid.items()}


def _steps_text(steps: Sequence[int], n: int = 12) -> str:
    """Steps for a one-line report: all of them, or the first and last ``n // 2`` with the count."""
    if len(steps) <= n:
        return ", ".join(map(str, steps))
    return f"{', '.join(map(str, steps[:n // 2]))}, ... {', '.join(map(str, steps[-n // 2:]))} ({len(steps)} steps)"


def check_hub(suite: SuiteLike, models: Sequence[str] | None = None, offline: bool = False, strict: bool = False,
              as_json: bool = False) -> int:
    """``lhp suite check`` on a hub suite: print every set of revisions with identical weights.

    Parameters
    ----------
    suite
        The hub suite.
    models
        Only these models (default all).
    offline
        Read the revisions in the HF cache instead of the hub's file metadata (also when
        ``HF_HUB_OFFLINE`` is set).
    strict
        Identical weights, or revisions that could not be checked, are a problem (exit 1).
    as_json
        Also print one JSON line per revision: ``model, step, revision, files`` (``{name: sha256}``),
        ``unknown`` (why it was not checked, or ``""``) and ``copy_of_step`` (the last step of its set,
        -1 for none).

    Returns
    -------
    The exit status: 0, or 1 when nothing could be checked, or under ``strict`` when a set was found
    or a revision was not checked.
    """
    import json

    offline = offline or hub_offline()
    found = hub_weights(suite, models, offline=offline, progress=not offline)
    sets = groups(found)
    unknown = [w for w in found if w.unknown]
    if as_json:
        kept = {(m, st): steps[-1] for m, steps in sets for st in steps[:-1]}
        for w in found:
            print(json.dumps({"model": w.model, "step": w.step, "revision": w.where, "files": w.files,
                              "unknown": w.unknown, "copy_of_step": kept.get((w.model, w.step), -1)}))
    source = "the Hugging Face cache" if offline else "the hub's file metadata (nothing downloaded)"
    print(f"{len(found) - len(unknown)} of {len(found)} revisions of {suite.id} checked from {source}")
    for m, steps in sets:
        print(f"  {m}: identical weights at steps {_steps_text(steps)}: the earlier steps serve the weights of "
              f"step {steps[-1]}; studies drop them")
    if not sets:
        print("  no two revisions of a model share weights")
    for reason in dict.fromkeys(w.unknown for w in unknown):
        which = [w for w in unknown if w.unknown == reason]
        for m in dict.fromkeys(w.model for w in which):
            steps = [w.step for w in which if w.model == m]
            print(f"  {m}: {len(steps)} revisions not checked, {reason}: steps {_steps_text(steps)}")
    if unknown:
        fix = ("run online (without --offline, HF_HUB_OFFLINE unset)" if offline else
               "check that the revisions hold weight files")
        print(f"  to check them: {fix}")
    if len(unknown) == len(found):
        return 1
    return 1 if strict and (sets or unknown) else 0
