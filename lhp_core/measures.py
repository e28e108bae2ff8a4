"""A measure over training: one function of a checkpoint, run over a suite's (model, step) grid.

Every study asks the same question of many checkpoints, so every study's numbers come through one
runner, :func:`over_steps`. A :class:`Measure` says what it computes for one checkpoint
(``compute(ck) -> xarray.Dataset`` without ``model``/``step`` dims) and on what configuration the
result depends; the runner

* walks the grid (:func:`step_grid`: each model at the requested steps it has; NaN elsewhere),
* caches each checkpoint's result under ``config.results_dir()/measures/<measure>/<suite>/<config>/``
  in a file named by the checkpoint's weights (:func:`lhp_core.checkpoints.checkpoint_id`), so a
  re-run only computes what is missing and a retrained suite never reads a stale result,
* for activation-based measures (``features=``), first extracts the pooled sites of the checkpoints
  still missing with the resumable sweep engine (:func:`lhp_core.sweep.sweep`) into stores under
  ``config.results_dir()/features/``, and hands each checkpoint its slice (``ck.features(...)``),
* stacks everything into ``Dataset(model, step, ...)`` with coordinates ``tokens_seen(model, step)``
  and ``checkpoint_id(model, step)``, and attrs naming the measure and its provenance.

What is computed from the whole stacked grid (a fit over steps, a bootstrap over the grid) is cached
by :func:`over_grid` under ``config.results_dir()/grid/``, keyed by the stacked result's configuration
and checkpoint ids, so a second reader (the Timeline re-running a study) does not fit again.

Adding a measure is a function of a :class:`Checkpoint` plus a :class:`Measure`; see
``CONTRIBUTING.md``. Every variable the function returns must carry ``units`` and ``description``.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import checkpoints, config, schema
from lhp_core.checkpoints import DTYPES
from lhp_core.identical import drop_identical
from lhp_core.progress import bar
from lhp_core.provenance import config_sha256, git_commit, versions
from lhp_core.schedule import spread
from lhp_core.stimuli import Stimuli
from lhp_core.store import models_in, open_results, steps_of
from lhp_core.suites import Suite, get_suite
from lhp_core.sweep import select_steps, sweep


@dataclass(frozen=True)
class Features:
    """Pooled activations an activation-based measure reads, extracted by the sweep engine.

    ``sites``, ``reducers`` and ``head_scores`` are as for :func:`lhp_core.sweep.sweep`;
    ``max_length`` None is the suite's context (:func:`lhp_core.suites.context_length`).
    """

    stimuli: Stimuli
    sites: tuple[str, ...]
    reducers: tuple[str, ...] = ()
    head_scores: tuple[str, ...] = ()
    batch_size: int = 8
    max_length: int | None = None

    def key(self) -> dict[str, Any]:
        return {"stimuli": self.stimuli.fingerprint(), "sites": list(self.sites), "reducers": list(self.reducers),
                "head_scores": list(self.head_scores), "max_length": self.max_length}


@dataclass(frozen=True)
class Measure:
    """What one checkpoint's result is, and what it depends on besides the weights.

    Attributes
    ----------
    name
        Id of the measure; names its cache folder (``"task_battery"``, ``"icl"``).
    compute
        ``compute(ck) -> xarray.Dataset`` for one :class:`Checkpoint`: no ``model``/``step`` dims,
        every variable with attrs ``units`` and ``description``.
    config
        Everything the result depends on besides the weights (items, seeds, stimuli
        fingerprints, thresholds); hashed into the cache key, so changing any of it recomputes.
    features
        For activation-based measures: what to sweep first (``ck.features(site, reducer)``).
    per_checkpoint
        Optional ``f(ck) -> mapping`` of settings that vary by checkpoint (e.g. whether this step
        also gets a permutation null); added to that checkpoint's cache key.
    description
        One line for the stacked Dataset's attrs.
    version
        Bump when ``compute`` changes meaning, so results cached by older code are not reused.
    """

    name: str
    compute: Callable[[Checkpoint], xr.Dataset]
    config: Mapping[str, Any] = field(default_factory=dict)
    features: Features | None = None
    per_checkpoint: Callable[[Checkpoint], Mapping[str, Any]] | None = None
    description: str = ""
    version: int = 1

    def key(self, dtype: str) -> dict[str, Any]:
        key = {"measure": self.name, "version": self.version, "config": dict(self.config), "dtype": dtype}
        if self.features is not None:
            key["features"] = self.features.key()
        return key


class Checkpoint:
    """One (model, step) of a suite as a measure sees it: loaded on first use, features from the sweep."""

    def __init__(self, suite: Suite, model: str, step: int, device: str, dtype: str, checkpoint_id: str,
                 stores: Mapping[tuple[str, int], str] | None = None) -> None:
        self.suite, self.model, self.step = suite, model, int(step)
        self.device, self.dtype, self.checkpoint_id = device, dtype, checkpoint_id
        self._stores = stores or {}

    @property
    def tokens_seen(self) -> int:
        return int(self.suite.tokens_seen(self.model, self.step))

    @cached_property
    def _loaded(self):
        return checkpoints.load(self.suite, self.model, self.step, device=self.device, dtype=DTYPES[self.dtype])

    @property
    def lm(self):
        """The causal LM in eval mode (loaded on first use)."""
        return self._loaded[0]

    @property
    def tokenizer(self):
        return self._loaded[1]

    def features(self, site: str, variable: str) -> xr.DataArray:
        """This checkpoint's pooled ``site``/``variable`` (a reducer or head score), loaded in memory."""
        path = self._stores.get((self.model, self.step))
        if path is None:
            raise KeyError(f"no features for {self.model!r} step {self.step}: the measure declares no `features`")
        return open_results(path, self.model, site=site)[variable].sel({schema.STEP: self.step}).load()

    def release(self) -> None:
        self.__dict__.pop("_loaded", None)

    def __repr__(self) -> str:
        return f"<Checkpoint {self.suite.id}:{self.model}@{self.step}>"


def step_axis(grid: Mapping[str, Sequence[int]], steps: str | Sequence[int] | None = None) -> list[int]:
    """The ``step`` coordinate of a stacked result: the requested steps when a list was given (steps
    no model has stay as NaN columns, so results of several calls line up), else the grid's union."""
    if steps is not None and not isinstance(steps, str):
        return sorted({int(t) for t in steps})
    return sorted({int(t) for ss in grid.values() for t in ss})


def step_grid(suite: Suite, models: Sequence[str] | None = None,
              steps: str | Sequence[int] | None = None) -> dict[str, list[int]]:
    """``model -> steps`` a study runs: each model at the requested steps it has.

    ``steps`` None is every step of each model; a spec string (``"log:12"``, ``"0,512,1000"``) is
    resolved per model (:func:`lhp_core.sweep.select_steps`); a list keeps the steps a model has,
    so suites whose models saved different schedules line up on the union, NaN elsewhere.

    Steps whose weights equal a later step's of the grid are dropped, keeping the last, with one
    :class:`lhp_core.identical.IdenticalWeightsWarning` naming them
    (:func:`lhp_core.identical.drop_identical`): a study never runs on a checkpoint whose name
    does not match its weights.
    """
    models = [suite.resolve_model(m) for m in (models or suite.models)]
    if not models:
        raise ValueError(f"suite {suite.id!r} has no models to run")
    grid = {}
    for m in models:
        have = suite.steps(m)
        if steps is None:
            grid[m] = list(have)
        elif isinstance(steps, str):
            grid[m] = select_steps(have, steps)
        else:
            present = set(have)
            grid[m] = sorted({int(s) for s in steps if int(s) in present})
    if not any(grid.values()):
        raise ValueError(f"none of steps {list(steps)[:8]} is a checkpoint of models {models} in suite {suite.id!r}")
    return drop_identical(suite, grid, checkpoints.checkpoint_id)


def shared_steps(suite: Suite, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                 n: int | None = None) -> list[int]:
    """Steps every model has (of ``steps``, default all), at most ``n`` of them evenly spread by index.

    Studies that subsample checkpoints use this one rule (:func:`lhp_core.schedule.spread`), so they
    pick the same steps and share the runner's per-checkpoint cache (e.g. the task battery of the
    emergence and brain chapters).
    """
    grid = step_grid(suite, models, steps)
    common = sorted(set.intersection(*(set(v) for v in grid.values())))
    if not common:
        raise ValueError(f"models {list(grid)} of {suite.id!r} share no checkpoint among the requested steps")
    return spread(common, n) if n else common


def _folder_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "suite"


def cache_dir(measure: Measure, suite: Suite, dtype: str = "float32") -> Path:
    """The folder holding ``measure``'s per-checkpoint results for ``suite`` (one per configuration)."""
    return (config.results_dir() / "measures" / measure.name / _folder_name(suite.id)
            / config_sha256(measure.key(dtype))[:16])


def _cache_file(folder: Path, ck: Checkpoint, extra: Mapping[str, Any]) -> Path:
    tag = f"-{config_sha256(dict(extra))[:8]}" if extra else ""
    return folder / _folder_name(ck.model) / f"step{ck.step}-{ck.checkpoint_id[:16]}{tag}.nc"


def _check_result(ds: xr.Dataset, measure: Measure, ck: Checkpoint) -> xr.Dataset:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"measure {measure.name!r} returned {type(ds).__name__} for {ck}; return an xarray.Dataset")
    for dim in (schema.MODEL, schema.STEP):
        if dim in ds.dims:
            raise ValueError(f"measure {measure.name!r} returned a {dim!r} dim for {ck}; the runner adds it")
    schema.check_dims(list(ds.dims), f"measure {measure.name!r}")
    for name, var in ds.data_vars.items():
        missing = [a for a in ("units", "description") if not var.attrs.get(a)]
        if missing:
            raise ValueError(f"measure {measure.name!r}: variable {name!r} has no {', '.join(missing)} attr; "
                             "every stored variable states its units and a one-line description")
    schema.check_attrs(ds.attrs, f"measure {measure.name!r}")
    return ds


def _write(ds: xr.Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, path)  # a reader never sees half a file; two writers of one checkpoint write equal files


def _read(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


# ------------------------------------------------------------------------- features


def _feature_stores(suite: Suite, feats: Features, dtype: str) -> Path:
    key = {**feats.key(), "dtype": dtype}
    return config.results_dir() / "features" / _folder_name(suite.id) / config_sha256(key)[:16]


def _complete_regions(folder: Path) -> dict[tuple[str, int], tuple[str, str]]:
    """``(model, step) -> (store, weights sha256)`` of every completed region of the stores in ``folder``."""
    found: dict[tuple[str, int], tuple[str, str]] = {}
    for store in sorted(folder.glob("*.zarr")) if folder.is_dir() else []:
        try:
            models = models_in(store)
        except (OSError, ValueError, KeyError):
            continue  # a store whose creation was interrupted holds nothing complete
        for m in models:
            ds = open_results(store, m)
            for s, done, sha in zip(steps_of(store, m), ds["complete"].values, ds["weights_sha256"].values):
                if bool(done):
                    found[(m, int(s))] = (str(store), str(sha))
    return found


def _extract(suite: Suite, feats: Features, todo: list[Checkpoint], device: str, dtype: str,
             progress: bool, folder: Path | None = None) -> dict[tuple[str, int], str]:
    """Sweep the checkpoints of ``todo`` whose features no store in the folder holds yet; return where each is."""
    folder = folder or _feature_stores(suite, feats, dtype)
    have = _complete_regions(folder)
    where = {}
    missing: dict[str, list[int]] = {}
    for ck in todo:
        hit = have.get((ck.model, ck.step))
        # A region counts when it was swept from these weights; hub ids are not tensor hashes, and
        # a hub revision's files do not change, so there the region's step is enough.
        if hit is not None and (hit[1] == ck.checkpoint_id or not _is_sha256(ck.checkpoint_id)):
            where[(ck.model, ck.step)] = hit[0]
        else:
            missing.setdefault(ck.model, []).append(ck.step)
    if missing:
        # One store per set of checkpoints swept together; a killed run resumes the same store.
        store = folder / f"{config_sha256(missing)[:16]}.zarr"
        folder.mkdir(parents=True, exist_ok=True)
        sweep(suite, feats.stimuli, store, sites=feats.sites, reducers=feats.reducers, head_scores=feats.head_scores,
              models=list(missing), steps=missing, device=device, dtype=dtype, batch_size=feats.batch_size,
              max_length=feats.max_length, progress=progress, wait=True)
        where.update({(m, s): str(store) for m, ss in missing.items() for s in ss})
    return where


def _is_sha256(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{64}", text))


def features_at(suite: str | Path | Suite, features: Features, model: str, step: int, site: str, variable: str,
                device: str = "cpu", dtype: str | None = None, progress: bool = False) -> xr.DataArray:
    """One checkpoint's pooled ``site``/``variable`` from the feature stores (extracted first if missing).

    What a measure's ``compute`` reads through ``ck.features``; inspectors use it to show the
    activations behind a result.
    """
    s = get_suite(suite)
    model = s.resolve_model(model)
    dtype = dtype or config.default_dtype()
    ck = Checkpoint(s, model, int(step), device, dtype, checkpoints.checkpoint_id(s, model, step))
    ck._stores = _extract(s, features, [ck], device, dtype, progress)
    return ck.features(site, variable)


# ------------------------------------------------------------------------- the runner


def over_steps(
    suite: str | Path | Suite,
    measure: Measure,
    models: Sequence[str] | None = None,
    steps: str | Sequence[int] | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    cache: bool = True,
    progress: bool = True,
) -> xr.Dataset:
    """Run ``measure`` on every checkpoint of the grid and stack the results.

    Parameters
    ----------
    suite
        Suite id, folder or :class:`lhp_core.suites.Suite`.
    measure
        The :class:`Measure`.
    models, steps
        The grid (:func:`step_grid`); default every model at every step it has.
    device, dtype
        Where and in which precision checkpoints run (``dtype`` is part of the cache key; default
        :func:`lhp_core.config.default_dtype`: ``LHP_DTYPE``, else float32).
    cache
        Read and write the per-checkpoint cache (False: compute everything, keep nothing).

    Returns
    -------
    xarray.Dataset
        The measure's variables with dims ``(model, step, ...)`` (outer join: NaN where a model
        lacks a step or a layer), coordinates ``tokens_seen(model, step)`` (float, NaN where
        absent) and ``checkpoint_id(model, step)``; attrs ``measure``, ``description``,
        ``suite``, ``config_sha256``, ``config_json``, ``git_commit``, library versions,
        ``device``, ``dtype``, ``n_checkpoints``, ``n_computed``.
    """
    dtype = dtype or config.default_dtype()
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    s = get_suite(suite)
    grid = step_grid(s, models, steps)
    folder = cache_dir(measure, s, dtype)
    cks = [Checkpoint(s, m, st, device, dtype, checkpoints.checkpoint_id(s, m, st))
           for m, ss in grid.items() for st in ss]
    results: dict[tuple[str, int], xr.Dataset] = {}
    todo: list[tuple[Checkpoint, Path]] = []
    for ck in cks:
        extra = dict(measure.per_checkpoint(ck)) if measure.per_checkpoint else {}
        path = _cache_file(folder, ck, extra)
        if cache and path.exists():
            results[(ck.model, ck.step)] = _read(path)
        else:
            todo.append((ck, path))
    with tempfile.TemporaryDirectory(prefix=f"lhp-{measure.name}-") as tmp:
        if todo and measure.features is not None:
            # cache=False keeps nothing: the features go to a temporary folder removed afterwards.
            where = None if cache else Path(tmp)
            stores = _extract(s, measure.features, [ck for ck, _ in todo], device, dtype, progress, where)
            for ck, _ in todo:
                ck._stores = stores
        with bar(total=len(cks), initial=len(cks) - len(todo), desc=measure.name, unit="ckpt",
                 disable=not progress) as pb:
            for ck, path in todo:
                ds = _check_result(measure.compute(ck), measure, ck)
                ck.release()
                if cache:
                    _write(ds, path)
                results[(ck.model, ck.step)] = ds
                pb.update(1)
    out = stack(results, grid, step_axis(grid, steps))
    ids = {(ck.model, ck.step): ck.checkpoint_id for ck in cks}
    out = out.assign_coords({
        schema.TOKENS_SEEN: ((schema.MODEL, schema.STEP), _grid_values(grid, out, lambda m, t: s.tokens_seen(m, t))),
        "checkpoint_id": ((schema.MODEL, schema.STEP), _grid_values(grid, out, lambda m, t: ids[(m, t)], "")),
    })
    out[schema.TOKENS_SEEN].attrs.update(units="tokens", description="training tokens consumed at this checkpoint")
    out["checkpoint_id"].attrs.update(description="sha256 identifying the checkpoint's weights "
                                                  "(lhp_core.checkpoints.checkpoint_id)")
    out.attrs = {
        "measure": measure.name, "description": measure.description, "suite": str(s.id),
        "config_sha256": config_sha256(measure.key(dtype)), "config_json": json.dumps(measure.key(dtype), default=str),
        "git_commit": git_commit(), **versions(), "device": str(device), "dtype": dtype,
        "n_checkpoints": len(cks), "n_computed": len(todo),
    }
    schema.check_attrs(out.attrs, f"measure {measure.name!r}")
    return out


def over_grid(name: str, source: xr.Dataset, params: Mapping[str, Any], compute: Callable[[], xr.Dataset],
              version: int = 1, cache: bool = True) -> xr.Dataset:
    """``compute()``, a result derived from all of ``source`` (an :func:`over_steps` result), cached on disk.

    The cache key is what the result can depend on: ``source``'s configuration (``config_sha256``, ``dtype``)
    and the weights of each of its checkpoints (``checkpoint_id(model, step)``), ``params`` and ``version``
    (bump it when ``compute`` changes meaning). A retrained checkpoint or another grid therefore computes
    again; the same grid read by a second study, or by the Timeline, does not.

    Returns
    -------
    xarray.Dataset
        What ``compute`` returns (every variable with ``units`` and ``description``).
    """
    if not cache:
        return compute()
    ids = source["checkpoint_id"].transpose(schema.MODEL, schema.STEP)
    key = {"name": name, "version": version, "params": dict(params), "source": source.attrs["config_sha256"],
           "dtype": source.attrs.get("dtype", ""), "models": ids[schema.MODEL].values.tolist(),
           "steps": ids[schema.STEP].values.tolist(), "checkpoints": ids.values.tolist()}
    path = (config.results_dir() / "grid" / _folder_name(name) / _folder_name(source.attrs.get("suite", ""))
            / f"{config_sha256(key)[:24]}.nc")
    if path.exists():
        return _read(path)
    ds = compute()
    for var_name, var in ds.data_vars.items():
        missing = [a for a in ("units", "description") if not var.attrs.get(a)]
        if missing:
            raise ValueError(f"{name!r}: variable {var_name!r} has no {', '.join(missing)} attr")
    _write(ds, path)
    return ds


def _grid_values(grid: Mapping[str, list[int]], ds: xr.Dataset, value, fill: Any = np.nan) -> np.ndarray:
    models, steps = ds[schema.MODEL].values.tolist(), ds[schema.STEP].values.tolist()
    out = np.full((len(models), len(steps)), fill, dtype=object if isinstance(fill, str) else float)
    for i, m in enumerate(models):
        for j, t in enumerate(steps):
            if t in grid.get(m, ()):
                out[i, j] = value(m, int(t))
    return out.astype(str) if isinstance(fill, str) else out


def stack(results: Mapping[tuple[str, int], xr.Dataset], grid: Mapping[str, Sequence[int]],
          steps: Sequence[int] | None = None) -> xr.Dataset:
    """Per-checkpoint Datasets into one ``(model, step, ...)`` Dataset, outer-joined over every other dim.

    ``grid`` fixes the order of models; ``steps`` the step axis (default: the grid's union, sorted);
    checkpoints missing from ``results`` are NaN.
    """
    models = list(grid)
    steps = list(steps) if steps is not None else step_axis(grid)
    if not results:
        raise ValueError("no checkpoint results to stack")
    # A dim without an index (a model's units, heads) gets positions 0..n-1, so models of
    # different sizes align position by position and the smaller one is padded with NaN.
    results = {k: ds.assign_coords({d: np.arange(n) for d, n in ds.sizes.items() if d not in ds.indexes})
               for k, ds in results.items()}
    rows = []
    for m in models:
        have = [t for t in steps if (m, t) in results]
        if not have:
            continue
        per = xr.concat([results[(m, t)] for t in have], dim=pd.Index(have, name=schema.STEP), join="outer",
                        combine_attrs="drop_conflicts", data_vars="all", coords="different", compat="equals")
        rows.append(per.expand_dims({schema.MODEL: [m]}))
    out = xr.concat(rows, dim=schema.MODEL, join="outer", combine_attrs="drop_conflicts", data_vars="all",
                    coords="different", compat="equals")
    return out.reindex({schema.MODEL: models, schema.STEP: steps})
