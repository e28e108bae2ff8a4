"""The sweep's results store: zarr via xarray, one region per (model, step).

Layout
------
``/``                    attrs: provenance of the whole sweep (suite, code version, git commit,
                         device, dtype, sites, reducers, stimuli sha256, ``config_sha256``)
``/<model>``             one group per model, because models of a suite differ in width:
                         ``complete(step)`` (bool, written last), ``weights_sha256(step)``,
                         ``n_tokens(step)``, coordinate ``tokens_seen(step)``
``/<model>/<site>``      one variable per reducer (or head score), e.g. ``word_mean`` with dims
                         ``(step, layer, word, hidden)``; ``logprobs``/``logprobs_bow`` variables are
                         ``(step, word|stimulus|token)``, ``heads`` ``(step, layer, head, stimulus)``

Every variable and coordinate says what it is: attrs ``long_name``, ``units`` and a one-line
``description`` (:func:`variable_attrs`, :data:`STORE_ATTRS`, :data:`lhp_core.schema.COORD_ATTRS`),
``tokens_seen`` also ``source``; the model group's attrs hold ``tokens_seen_source`` and
``checkpoints`` (JSON: step -> folder or ``repo@revision``).

Every group is allocated for all requested steps (NaN) before anything runs, chunked one
step (and one layer) per chunk, so each (model, step) is written as one independent
``to_zarr(region=...)`` — safe from several workers at once. A re-run skips steps whose
``complete`` flag is set and overwrites the rest. A finished sweep consolidates the metadata
(:func:`consolidate`), which :func:`open_results` reads; a sweep that writes again drops it first.

What is an lhp store, and what may be changed
---------------------------------------------
A store is created, resumed or replaced only when it provably is one (:func:`is_store`): its
folder holds the marker file ``.lhp-store`` written at creation, or (stores made before the
marker) its root group has the attrs ``store_version`` and ``config_sha256`` that only this
module writes. Anything else (a folder of the user's files) is refused with nothing touched;
an empty folder or a missing path is a new store. ``overwrite`` deletes only the store's own
entries (root metadata, model groups, marker), never other files in the folder.

One writer at a time: :func:`lock` holds an exclusive ``fcntl`` lock on ``.lhp-lock`` in the
store for the whole sweep and writes its holder (pid, host, start time) there; a second sweep
waits for it or stops with an error naming the holder. The operating system releases the lock
when its process ends, killed or not, so there is no stale lock to clear.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from lhp_core import schema as D
from lhp_core.reducers import HEAD_SCORE_INFO, HEAD_SCORES, get_reducer
from lhp_core.sites import SITE_INFO, TOKEN_SITES

STORE_VERSION = 1
MARKER = ".lhp-store"
LOCK = ".lhp-lock"
#: Root entries of a store besides its model groups (zarr 3 and zarr 2 metadata files).
_ROOT_FILES = ("zarr.json", ".zgroup", ".zattrs", ".zmetadata", MARKER)


class StoreError(ValueError):
    """A path that is not an lhp results store, or a store of another configuration."""


class StoreLocked(RuntimeError):
    """Another process is writing the store."""


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # zarr v3 warns that fixed-width strings are not yet in its spec; they round-trip fine.
        warnings.filterwarnings("ignore", message=".*(not part of the Zarr|Zarr V3 specification|Consolidated).*")
        # The store's marker and lock files sit beside its groups, and so may a user's own files: lhp never
        # reads or deletes those (see `initialise`), so zarr's note that they are not arrays is noise.
        warnings.filterwarnings("ignore", message=r".* is not recognized as a component of a Zarr hierarchy.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")
        yield


# ---- what each variable is ------------------------------------------------------------------
#: Attrs of the model group's own variables and of the coordinates a store adds to the schema's.
STORE_ATTRS: dict[str, dict[str, str]] = {
    "complete": {"long_name": "checkpoint complete", "units": D.DIMENSIONLESS,
                 "description": "True once every site of this step is written (a re-run skips it)"},
    "weights_sha256": {"long_name": "weights hash", "units": D.TEXT,
                       "description": "sha256 of the checkpoint's tensors (lhp_core.weights.weights_sha256, the hash "
                                      "training_record.nc lists): of its files where on disk, else of the loaded "
                                      "tensors"},
    "n_tokens": {"long_name": "tokens run", "units": "tokens",
                 "description": "tokens run through the model at this step (BOS and window overlaps included)"},
    "word_stimulus": {"long_name": "stimulus of the word", "units": D.TEXT, "description": "id of the word's stimulus"},
    "word_text": {"long_name": "word", "units": D.TEXT, "description": "the word as segmented from its stimulus"},
    "token_stimulus": {"long_name": "stimulus of the token", "units": D.TEXT,
                       "description": "id of the token's stimulus"},
    "token_id": {"long_name": "token id", "units": D.DIMENSIONLESS, "description": "the tokenizer's id of the token"},
    "token_word": {"long_name": "word of the token", "units": D.DIMENSIONLESS,
                   "description": "word index of the token (-1: whitespace after the last word of a text)"},
    "neuron_module": {"long_name": "module of the neuron", "units": D.TEXT,
                      "description": "the block's linear layers a linear-site neuron belongs to: qkv, attn_dense, "
                                     "mlp_in or mlp_out"},
}


def variable_attrs(site: str, name: str) -> dict[str, str]:
    """``long_name``, ``units`` and ``description`` of the variable ``name`` of ``site``'s group.

    ``name`` is a reducer id (a head score for ``heads``). Word sums of the log-probability sites
    are word log-probabilities, ``log p(word | context)``; other values keep their site's units.
    """
    if site == "heads":
        HEAD_SCORES.get(name)  # an unknown score raises, listing the valid ones
        units, what = HEAD_SCORE_INFO[name]
        return {"long_name": f"{name} head score", "units": units, "description": what}
    info, red = SITE_INFO[site], get_reducer(name)
    if site in TOKEN_SITES and red.op == "sum" and red.group != "token":
        g = red.group
        if site == "logprobs_bow":
            long_name = f"{g} log-probability, word-boundary corrected (Pimentel & Meister 2024)"
            what = (f"log p({g} | context): the log-probabilities of the {g}'s tokens summed, with the word-boundary "
                    "terms of Pimentel & Meister (2024) folded into its first and last token")
        else:
            long_name = f"{g} log-probability (subword sum)"
            what = (f"sum of the log-probabilities of the {g}'s tokens, each given the text before it; for "
                    f"leading-space tokenizers not log p({g} | context) (that is logprobs_bow)")
    else:
        long_name = red.describe(info.noun)
        what = f"{long_name}; {info.description}"
    return {"long_name": long_name, "units": info.units, "description": what}


def _coord_attrs(name: str) -> dict[str, str]:
    return dict(D.COORD_ATTRS.get(name) or STORE_ATTRS[name])


def describe_all(ds: xr.Dataset, site: str = "", tokens_source: str = "") -> xr.Dataset:
    """Set the attrs of every variable and coordinate of a store group (``site=""``: the model group)."""
    for name in ds.variables:
        if site and name in ds.data_vars:
            attrs = variable_attrs(site, str(name))
        elif name in D.COORD_ATTRS or name in STORE_ATTRS:
            attrs = _coord_attrs(str(name))
        else:
            raise KeyError(f"no description for store variable {name!r}; add it to lhp_core.store.STORE_ATTRS")
        if name == D.TOKENS_SEEN and tokens_source:
            attrs["source"] = tokens_source
        ds[name].attrs.update(attrs)
    return ds


# ---- templates --------------------------------------------------------------------------
def site_dims(site: str, group: str) -> tuple[str, ...]:
    """Dims of one variable of ``site`` pooled along ``group`` (``word``/``stimulus``/``token``)."""
    if site in TOKEN_SITES:
        return (D.STEP, group)
    if site == "heads":
        return (D.STEP, D.LAYER, D.HEAD, D.STIMULUS)
    feature = D.NEURON if site in ("mlp", "linear") else D.HIDDEN
    return (D.STEP, D.LAYER, group, feature)


def template(
    steps: Sequence[int],
    tokens_seen: Sequence[int],
    n_layers: int,
    features: Mapping[str, tuple[int, ...]],
    axes: Mapping[str, Mapping[str, np.ndarray]],
    variables: Mapping[str, Mapping[str, str]],
    linear_modules: Sequence[str] | None = None,
    tokens_source: str = "",
) -> dict[str, xr.Dataset]:
    """NaN-filled lazy Datasets for one model: ``{"": model group, site: site group}``, every
    variable and coordinate with ``long_name``, ``units`` and ``description`` (:func:`describe_all`).

    Parameters
    ----------
    axes
        Coordinates per group axis: ``axes["word"] = {"word_stimulus": [n_words], ...}``.
    variables
        ``variables[site][name] = group``: one variable per reducer (heads: per score).
    tokens_source
        Where ``tokens_seen`` comes from (:meth:`lhp_core.suites.Suite.tokens_source`): its attr ``source``.
    """
    steps = np.asarray(steps, dtype=np.int64)
    step_coords = {D.STEP: steps, D.TOKENS_SEEN: (D.STEP, np.asarray(tokens_seen, dtype=np.int64))}
    n = len(steps)
    out = {
        "": xr.Dataset(
            {
                "complete": (D.STEP, da.zeros(n, dtype=bool, chunks=1)),
                "weights_sha256": (D.STEP, da.full(n, "", dtype="<U64", chunks=1)),
                "n_tokens": (D.STEP, da.zeros(n, dtype=np.int64, chunks=1)),
            },
            coords=step_coords,
        )
    }
    describe_all(out[""], tokens_source=tokens_source)
    for site, by_name in variables.items():
        data_vars, coords = {}, dict(step_coords)
        coords[D.LAYER] = np.arange(n_layers + 1)
        for name, group in by_name.items():
            dims = site_dims(site, group)
            sizes = {D.STEP: n, D.LAYER: n_layers + 1}
            if site == "heads":
                sizes[D.HEAD] = features["heads"][0]
                sizes[D.STIMULUS] = len(axes[D.STIMULUS][D.STIMULUS])
            else:
                sizes[group] = len(next(iter(axes[group].values())))
                if features[site]:
                    sizes[dims[-1]] = features[site][0]
            shape = tuple(sizes[d] for d in dims)
            chunks = tuple(1 if d in (D.STEP, D.LAYER) else -1 for d in dims)
            data_vars[name] = (dims, da.full(shape, np.nan, dtype=np.float32, chunks=chunks))
            for d in dims:
                if d in axes:
                    for cname, values in axes[d].items():
                        coords[cname] = (d, values) if cname != d else values
                elif d in (D.HIDDEN, D.NEURON, D.HEAD):
                    coords[d] = np.arange(sizes[d])
        if site == "linear" and linear_modules is not None:
            coords["neuron_module"] = (D.NEURON, np.asarray(linear_modules, dtype=str))
        ds = xr.Dataset(data_vars, coords=coords)
        for v in ds.data_vars:
            D.check_dims(ds[v].dims, f"{site}/{v}")
        out[site] = describe_all(ds, site, tokens_source)
    return out


# ---- writing ----------------------------------------------------------------------------
def group_path(model: str, site: str = "") -> str:
    return f"{model}/{site}" if site else model


def is_store(path: str | Path) -> bool:
    """True when ``path`` is provably an lhp results store (module docstring: the marker file, or
    the root attrs ``store_version`` and ``config_sha256`` of stores made before the marker)."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    if not (path / "zarr.json").is_file() and not (path / ".zgroup").is_file():
        return False
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs
    except Exception:  # noqa: BLE001 - any unreadable root is "not provably a store"
        return False
    return "store_version" in attrs and "config_sha256" in attrs


def _foreign(path: Path) -> list[str]:
    """Entries of a folder that no lhp store made (all of them, unless it is a store)."""
    if not path.is_dir():
        return []
    names = sorted(p.name for p in path.iterdir() if p.name != LOCK)
    if not is_store(path):
        return [n for n in names if n != MARKER]
    return [n for n in names if n not in _ROOT_FILES and not _is_zarr_node(path / n)]


def _is_zarr_node(p: Path) -> bool:
    return p.is_dir() and any((p / f).is_file() for f in ("zarr.json", ".zgroup", ".zarray"))


def check_usable(path: str | Path) -> None:
    """Raise :class:`StoreError` unless ``path`` is a missing path, an empty folder or an lhp store."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a results store; choose another --out (nothing was changed)")
    foreign = [] if is_store(path) else _foreign(path)
    if foreign:
        raise StoreError(
            f"{path} is not an lhp results store (no {MARKER} marker) and holds other files "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); nothing was changed or deleted: "
            "choose a new --out (a missing path or an empty folder)"
        )


@contextmanager
def lock(path: str | Path, wait: bool = False) -> Iterator[None]:
    """Hold the store's writer lock: only one sweep writes a store at a time.

    The path is checked first (:func:`check_usable`), so nothing is written into a folder that
    is not a store. ``wait=False``: another holder is an error (:class:`StoreLocked`) naming it;
    ``wait=True``: say so on stderr and block until it is released.
    """
    path = Path(path)
    check_usable(path)
    path.mkdir(parents=True, exist_ok=True)
    fh = open(path / LOCK, "a+")  # noqa: SIM115 - held open for the whole context
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process (it has not written its name yet)"
            if not wait:
                raise StoreLocked(
                    f"{path} is being written by {holder}; wait until that sweep ends, or pass --wait "
                    "(wait=True) to start when it does (the lock is released as soon as its process exits)"
                ) from None
            print(f"lhp: {path} is being written by {holder}; waiting for it to finish", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on host {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the lock


def initialise(path: str | Path, attrs: Mapping[str, Any], config: Mapping[str, Any] | None = None,
               overwrite: bool = False, also_accept: Sequence[str] = ()) -> None:
    """Create the root group with provenance ``attrs``, or check an existing store matches.

    Call it holding :func:`lock`. ``config`` (JSON-able) is stored as the attr ``config_json``
    next to its hash ``attrs["config_sha256"]``, so a mismatch names each differing field.

    Parameters
    ----------
    overwrite
        Replace an existing store: only its own entries are deleted (module docstring).
    also_accept
        Other ``config_sha256`` values that count as the same configuration (the hash an older
        lhp computed for it).

    Raises
    ------
    StoreError
        ``path`` is not a store (nothing is touched), or it holds another configuration.
    """
    D.check_attrs(attrs, "store")
    path = Path(path)
    check_usable(path)
    has_root = (path / "zarr.json").is_file() or (path / ".zgroup").is_file()
    if has_root and not overwrite:
        root = zarr.open_group(str(path), mode="r")
        old = root.attrs.get("config_sha256")
        if old not in (attrs["config_sha256"], *also_accept):
            raise StoreError(
                f"{path} holds a sweep of another configuration ({_differences(dict(root.attrs), attrs, config)}); "
                "write to a new --out, or pass --overwrite (overwrite=True) to replace that store"
            )
        _write_marker(path)  # a store made before the marker gets one
        return
    if has_root:
        drop(path)
    path.mkdir(parents=True, exist_ok=True)
    root_attrs = dict(attrs)
    if config is not None:
        root_attrs["config_json"] = json.dumps(config, sort_keys=True, default=str)
    with _quiet():
        zarr.open_group(str(path), mode="a", attributes=root_attrs)
    _write_marker(path)


def _write_marker(path: Path) -> None:
    marker = path / MARKER
    if not marker.is_file():
        tmp = path / f"{MARKER}.{os.getpid()}"
        tmp.write_text(json.dumps({"lhp_store": STORE_VERSION, "note": "lhp results store; see lhp_core.store"}) + "\n")
        os.replace(tmp, marker)


def drop(path: str | Path) -> None:
    """Delete an lhp store's own entries (root metadata, model groups, marker); other files stay."""
    path = Path(path)
    if not is_store(path):
        raise StoreError(f"{path} is not an lhp results store; nothing was deleted")
    # Model groups first, then the root metadata, the marker last: a deletion killed half-way leaves
    # a folder that is still recognisably a store (or holds nothing of one), never orphaned groups.
    for p in sorted(path.iterdir()):
        if _is_zarr_node(p):
            shutil.rmtree(p)
    for name in _ROOT_FILES:
        if name != MARKER:
            (path / name).unlink(missing_ok=True)
    (path / MARKER).unlink(missing_ok=True)


def _short(v: Any, n: int = 60) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        text = v[:12] + "..."  # a sha256
    return text if len(text) <= n else text[: n - 3] + "..."


def _differences(stored: Mapping[str, Any], attrs: Mapping[str, Any], config: Mapping[str, Any] | None) -> str:
    """``field: <stored> in the store, <new> now`` for each differing configuration field."""
    if config is not None and "config_json" in stored:
        old, new = json.loads(stored["config_json"]), json.loads(json.dumps(config, default=str))
    else:  # a store made before config_json: compare the provenance attrs that make up the configuration
        keys = ("suite", "sites", "reducers", "head_scores", "stimuli_sha256", "dtype", "max_length")
        old = {k: stored.get(k) for k in keys}
        new = {k: attrs.get(k) for k in keys}
    diffs = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{k}[{m!r}]: {_short(a.get(m))} in the store, {_short(b.get(m))} now"
                      for m in sorted(set(a) | set(b)) if a.get(m) != b.get(m)]
        elif a != b:
            diffs.append(f"{k}: {_short(a)} in the store, {_short(b)} now")
    return "; ".join(diffs) or "steps or settings that this store does not record"


def consolidate(path: str | Path) -> None:
    """Write the consolidated metadata of a finished store (one atomic write of the root metadata)."""
    with _quiet():
        zarr.consolidate_metadata(str(path))


def is_consolidated(path: str | Path) -> bool:
    path = Path(path)
    if (path / ".zmetadata").is_file():
        return True
    root = path / "zarr.json"
    return root.is_file() and json.loads(root.read_text()).get("consolidated_metadata") is not None


def unconsolidate(path: str | Path) -> None:
    """Drop the consolidated metadata before a store is written again (it would go stale)."""
    path = Path(path)
    (path / ".zmetadata").unlink(missing_ok=True)
    root = path / "zarr.json"
    if root.is_file():
        meta = json.loads(root.read_text())
        if meta.pop("consolidated_metadata", None) is not None:
            tmp = path / f"zarr.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(meta, indent=2))
            os.replace(tmp, root)


def is_allocated(path: str | Path, model: str) -> bool:
    try:
        return zarr.open_group(str(path), mode="r", path=model).attrs.get("allocated") == 1
    except (KeyError, FileNotFoundError, ValueError):  # zarr >= 3.1's GroupNotFoundError is both of the last two
        return False


def allocate(path: str | Path, model: str, groups: Mapping[str, xr.Dataset], attrs: Mapping[str, Any]) -> None:
    """Write metadata and coordinates of one model's groups; data stays unwritten (NaN)."""
    D.check_attrs(attrs, f"model {model}")
    with _quiet():
        # The model group first (mode "w" clears a half-allocated model), its site groups next,
        # and the `allocated` attr last: an interrupted allocation is redone.
        for site, ds in sorted(groups.items(), key=lambda kv: kv[0] != ""):
            ds = ds.copy()
            ds.attrs = dict(attrs) if site == "" else {}
            # Unwritten regions read as NaN on every zarr/xarray: before xarray 2025.12 a zarr-3 float array
            # got fill value 0.0 unless told, so a step never written would read as zeros.
            # Pooled activations are stored uncompressed: float32 activations are mostly mantissa noise to a
            # compressor (zstd saves ~6 % and makes each step's write 2.5 times slower).
            nan_fill = {v: {"fill_value": np.nan, **({"compressors": None} if site else {})}
                        for v in ds.data_vars if ds[v].dtype.kind == "f"}
            ds.to_zarr(str(path), group=group_path(model, site), mode="w", compute=False, consolidated=False,
                       encoding=nan_fill)
    zarr.open_group(str(path), mode="r+", path=model).attrs["allocated"] = 1


def completed(path: str | Path, model: str) -> dict[int, bool]:
    """``{step: complete}`` for one model's group."""
    with _quiet():
        ds = xr.open_zarr(str(path), group=model, consolidated=False)
        return {int(s): bool(c) for s, c in zip(ds[D.STEP].values, ds["complete"].values)}


def check_tokens_seen(path: str | Path, model: str, tokens_seen: Sequence[int]) -> None:
    """Raise :class:`StoreError` when a resumed model's stored ``tokens_seen`` differ from the suite's now."""
    with _quiet():
        stored = [int(t) for t in xr.open_zarr(str(path), group=model, consolidated=False)[D.TOKENS_SEEN].values]
    if stored != [int(t) for t in tokens_seen]:
        raise StoreError(
            f"{path}: tokens_seen of model {model!r} in the store ({stored[:4]}...) differ from the suite's now "
            f"({list(tokens_seen)[:4]}...): its tokens per step changed (--tokens-per-step, --seq-len); rerun with "
            "the options the store was made with, or write a new --out"
        )


def steps_of(path: str | Path, model: str) -> list[int]:
    with _quiet():
        return [int(s) for s in xr.open_zarr(str(path), group=model, consolidated=False)[D.STEP].values]


def write_region(path: str | Path, model: str, index: int, step: int, values: Mapping[str, Mapping[str, np.ndarray]],
                 groups: Sequence[str]) -> None:
    """Write one (model, step) into the site groups: ``values[site][name]`` without the step axis."""
    with _quiet():
        for site in groups:
            group = zarr.open_group(str(path), mode="r+", path=group_path(model, site))
            for name, arr in values[site].items():
                target = group[name]
                arr = np.asarray(arr, dtype=np.float32)
                if arr.shape != target.shape[1:]:
                    raise StoreError(f"{path}: {model}/{site}/{name} of step {step} has shape {arr.shape}; the store "
                                     f"holds {target.shape[1:]} per step")
                # zarr directly: xarray's region write re-reads and re-validates the group per call, which
                # cost a small checkpoint as much as its forward pass
                target[index] = arr


def mark_complete(path: str | Path, model: str, index: int, step: int, weights_sha256: str, n_tokens: int) -> None:
    """Flag (model, step) complete; called only after every site group of that step is written."""
    _set_completion(path, model, index, True, weights_sha256, n_tokens)


def _set_completion(path: str | Path, model: str, index: int, complete: bool, weights_sha256: str,
                    n_tokens: int) -> None:
    with _quiet():
        group = zarr.open_group(str(path), mode="r+", path=model)
        # Set, the flag goes last and cleared, first: an interruption never leaves a step marked complete
        # with another step's hash or token count.
        if not complete:
            group["complete"][index] = False
        group["weights_sha256"][index] = weights_sha256
        group["n_tokens"][index] = n_tokens
        if complete:
            group["complete"][index] = True


def mark_incomplete(path: str | Path, model: str, index: int, step: int) -> None:
    """Clear (model, step)'s completion (its checkpoint changed since): the next sweep recomputes it."""
    _set_completion(path, model, index, False, "", 0)


def recorded_hashes(path: str | Path, model: str) -> dict[int, str]:
    """``{step: weights_sha256}`` of one model's completed steps."""
    with _quiet():
        ds = xr.open_zarr(str(path), group=model, consolidated=False)
        return {int(s): str(h) for s, c, h in zip(ds[D.STEP].values, ds["complete"].values,
                                                  ds["weights_sha256"].values) if c}


# ---- reading ----------------------------------------------------------------------------
def models_in(path: str | Path) -> list[str]:
    with _quiet():
        root = zarr.open_group(str(path), mode="r")
        return sorted(k for k in root.group_keys() if root[k].attrs.get("allocated") == 1)


def open_results(path: str | Path, model: str | None = None, site: str | None = None):
    """Open a sweep store lazily.

    Parameters
    ----------
    path
        The store written by :func:`lhp_core.sweep.sweep`.
    model
        ``None``: an ``xarray.DataTree`` of the whole store (``tree["s/resid"]``). A model id: one
        ``xarray.Dataset`` with that model's variables named ``<site>_<reducer>`` plus
        ``complete`` and ``weights_sha256``.
    site
        With ``model``: only that site's group, variables named by reducer.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results store at {path}; run `lhp sweep ... --out {path}` first")
    # A finished sweep's metadata is read in one file; a store still being written, group by group.
    cons = is_consolidated(path)
    with _quiet():
        if model is None:
            return xr.open_datatree(str(path), engine="zarr", consolidated=cons)
        valid = models_in(path)
        if model not in valid:
            raise KeyError(f"model {model!r} not in {path}; models there: {', '.join(valid)}")
        base = xr.open_zarr(str(path), group=model, consolidated=cons)
        sites = sorted(zarr.open_group(str(path), mode="r", use_consolidated=cons)[model].group_keys())
        if site is not None:
            if site not in sites:
                raise KeyError(f"site {site!r} not stored for model {model!r}; stored sites: {', '.join(sites)}")
            return xr.merge([base, xr.open_zarr(str(path), group=group_path(model, site), consolidated=cons)],
                            combine_attrs="override", compat="no_conflicts", join="exact")
        parts = [base]
        for s in sites:
            ds = xr.open_zarr(str(path), group=group_path(model, s), consolidated=cons)
            parts.append(ds.rename({v: f"{s}_{v}" for v in ds.data_vars}))
        try:
            return xr.merge(parts, combine_attrs="override", compat="no_conflicts", join="exact")
        except ValueError as err:
            raise ValueError(
                f"sites {sites} of model {model!r} have different axis sizes (e.g. `mlp` and `linear` both use "
                f"`neuron`); open one at a time with open_results(path, {model!r}, site=...): {err}"
            ) from None


def concat_models(path: str | Path, site: str, variable: str, models: Sequence[str] | None = None) -> xr.DataArray:
    """One variable of ``site`` for several models, stacked along ``model``.

    Steps are outer-joined (NaN where a model lacks a step); every other axis must have the
    same size across models (e.g. ``logprobs`` always does, ``resid`` only for equal widths).
    """
    models = list(models or models_in(path))
    arrays = [open_results(path, m, site=site)[variable] for m in models]
    for m, a in zip(models[1:], arrays[1:]):
        other = {d: n for d, n in a.sizes.items() if d != D.STEP}
        first = {d: n for d, n in arrays[0].sizes.items() if d != D.STEP}
        if other != first:
            raise ValueError(
                f"{site}/{variable} has sizes {first} for model {models[0]!r} but {other} for {m!r}; "
                "models of different width cannot be stacked: pool them first (e.g. a per-layer score)"
            )
    arrays = [a.drop_vars(D.TOKENS_SEEN, errors="ignore") for a in arrays]
    return xr.concat(arrays, dim=xr.DataArray(models, dims=D.MODEL, name=D.MODEL), join="outer")
