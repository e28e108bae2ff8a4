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

Every group is allocated for all requested steps (NaN) before anything runs, chunked one
step (and one layer) per chunk, so each (model, step) is written as one independent
``to_zarr(region=...)`` — safe from several workers at once. A re-run skips steps whose
``complete`` flag is set and overwrites the rest.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from lhp_core import schema as D
from lhp_core.reducers import get_reducer
from lhp_core.sites import TOKEN_SITES

STORE_VERSION = 1


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # zarr v3 warns that fixed-width strings are not yet in its spec; they round-trip fine.
        warnings.filterwarnings("ignore", message=".*(not part of the Zarr|Zarr V3 specification|Consolidated).*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="zarr")
        yield


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
) -> dict[str, xr.Dataset]:
    """NaN-filled lazy Datasets for one model: ``{"": model group, site: site group}``.

    Parameters
    ----------
    axes
        Coordinates per group axis: ``axes["word"] = {"word_stimulus": [n_words], ...}``.
    variables
        ``variables[site][name] = group``: one variable per reducer (heads: per score).
    """
    import dask.array as da

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
        out[site] = ds
    return out


# ---- writing ----------------------------------------------------------------------------
def group_path(model: str, site: str = "") -> str:
    return f"{model}/{site}" if site else model


def initialise(path: str | Path, attrs: Mapping[str, Any], overwrite: bool = False) -> None:
    """Create the root group with provenance ``attrs``, or check an existing store matches.

    An existing store made with a different configuration (``attrs["config_sha256"]``) is an
    error: resuming into it would mix results.
    """
    import zarr

    D.check_attrs(attrs, "store")
    path = Path(path)
    if path.exists() and not overwrite:
        root = zarr.open_group(str(path), mode="r")
        old = root.attrs.get("config_sha256")
        if old != attrs["config_sha256"]:
            raise ValueError(
                f"{path} holds a sweep with a different configuration (sites, reducers, stimuli, steps or dtype); "
                "write to a new output path, or pass overwrite=True (--overwrite) to replace it"
            )
        return
    root = zarr.open_group(str(path), mode="w" if overwrite else "a")
    root.attrs.update(dict(attrs))


def is_allocated(path: str | Path, model: str) -> bool:
    import zarr

    try:
        return zarr.open_group(str(path), mode="r", path=model).attrs.get("allocated") == 1
    except (KeyError, FileNotFoundError, ValueError, zarr.errors.GroupNotFoundError):
        return False


def allocate(path: str | Path, model: str, groups: Mapping[str, xr.Dataset], attrs: Mapping[str, Any]) -> None:
    """Write metadata and coordinates of one model's groups; data stays unwritten (NaN)."""
    D.check_attrs(attrs, f"model {model}")
    import zarr

    with _quiet():
        # The model group first (mode "w" clears a half-allocated model), its site groups next,
        # and the `allocated` attr last: an interrupted allocation is redone.
        for site, ds in sorted(groups.items(), key=lambda kv: kv[0] != ""):
            ds = ds.copy()
            ds.attrs = dict(attrs) if site == "" else {}
            ds.to_zarr(str(path), group=group_path(model, site), mode="w", compute=False, consolidated=False)
    zarr.open_group(str(path), mode="r+", path=model).attrs["allocated"] = 1


def completed(path: str | Path, model: str) -> dict[int, bool]:
    """``{step: complete}`` for one model's group."""
    with _quiet():
        ds = xr.open_zarr(str(path), group=model, consolidated=False)
        return {int(s): bool(c) for s, c in zip(ds[D.STEP].values, ds["complete"].values)}


def steps_of(path: str | Path, model: str) -> list[int]:
    with _quiet():
        return [int(s) for s in xr.open_zarr(str(path), group=model, consolidated=False)[D.STEP].values]


def write_region(path: str | Path, model: str, index: int, step: int, values: Mapping[str, Mapping[str, np.ndarray]],
                 groups: Sequence[str]) -> None:
    """Write one (model, step) into the site groups: ``values[site][name]`` without the step axis."""
    with _quiet():
        for site in groups:
            data = {}
            for name, arr in values[site].items():
                group = "stimulus" if site == "heads" else get_reducer(name).group
                data[name] = (site_dims(site, group), np.asarray(arr, dtype=np.float32)[None])
            ds = xr.Dataset(data, coords={D.STEP: [step]})
            ds.to_zarr(str(path), group=group_path(model, site), region={D.STEP: slice(index, index + 1)},
                       consolidated=False)


def mark_complete(path: str | Path, model: str, index: int, step: int, weights_sha256: str, n_tokens: int) -> None:
    """Flag (model, step) complete; called only after every site group of that step is written."""
    ds = xr.Dataset(
        {"complete": (D.STEP, [True]), "weights_sha256": (D.STEP, np.array([weights_sha256], dtype="<U64")),
         "n_tokens": (D.STEP, np.array([n_tokens], dtype=np.int64))},
        coords={D.STEP: [step]},
    )
    with _quiet():
        ds.to_zarr(str(path), group=model, region={D.STEP: slice(index, index + 1)}, consolidated=False)


# ---- reading ----------------------------------------------------------------------------
def models_in(path: str | Path) -> list[str]:
    import zarr

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
    with _quiet():
        if model is None:
            return xr.open_datatree(str(path), engine="zarr", consolidated=False)
        valid = models_in(path)
        if model not in valid:
            raise KeyError(f"model {model!r} not in {path}; models there: {', '.join(valid)}")
        base = xr.open_zarr(str(path), group=model, consolidated=False)
        import zarr

        sites = sorted(zarr.open_group(str(path), mode="r")[model].group_keys())
        if site is not None:
            if site not in sites:
                raise KeyError(f"site {site!r} not stored for model {model!r}; stored sites: {', '.join(sites)}")
            return xr.merge([base, xr.open_zarr(str(path), group=group_path(model, site), consolidated=False)],
                            combine_attrs="override", compat="no_conflicts", join="exact")
        parts = [base]
        for s in sites:
            ds = xr.open_zarr(str(path), group=group_path(model, s), consolidated=False)
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
