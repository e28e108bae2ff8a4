"""Expert units: units whose activation classifies sentences about a concept.

Following Fedzechkina et al. (2025, "Analyze the Neurons, not the Embeddings",
arXiv 2502.15090), a unit's *expertise* for a concept is the average precision (AP)
of its max-pooled activation as a score separating sentences that mention the
concept (positives) from sentences that do not (negatives). Units whose AP exceeds a
threshold ``tau`` (or the ``top_k`` units by AP) are the concept's *experts*.

AP is computed for many units at once in torch (sort-based, on any device) with
exactly scikit-learn's treatment of ties: one precision/recall point per distinct
score value, ``AP = sum_n (R_n - R_{n-1}) P_n``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from lhp_core.measures import Checkpoint, Features, Measure, features_at, over_steps
from lhp_core.progress import bar
from lhp_core.provenance import config_sha256
from lhp_core.schema import MODEL, NEURON, STEP, TOKENS_SEEN
from lhp_core.stimuli import Stimuli

__all__ = ["average_precision", "concept_ap", "select_experts", "top_stimuli"]


def _as_tensor(x: np.ndarray | torch.Tensor, device: str | torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device) if device is not None else x
    return torch.as_tensor(np.array(x), device=device)  # copy: sweep arrays may be read-only


def average_precision(
    scores: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    device: str | torch.device | None = None,
    chunk: int = 65536,
) -> torch.Tensor:
    """Average precision of every column of ``scores`` as a classifier of ``labels``.

    Parameters
    ----------
    scores
        ``(n_stimuli, n_units)`` real scores (higher = more positive), or ``(n_stimuli,)``.
    labels
        ``(n_stimuli,)`` binary labels (1 = positive). At least one positive is required.
    device
        torch device for the computation (default: where ``scores`` already lives).
    chunk
        Units per batch, to bound memory at ``n_stimuli * chunk`` elements.

    Returns
    -------
    torch.Tensor
        ``(n_units,)`` float64 AP per unit (a 0-d tensor for 1-d ``scores``), identical
        to ``sklearn.metrics.average_precision_score`` column by column.
    """
    s = _as_tensor(scores, device)
    one_d = s.ndim == 1
    if one_d:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"scores must be (n_stimuli, n_units); got shape {tuple(s.shape)}")
    y = _as_tensor(labels, s.device).reshape(-1)
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"labels has {y.shape[0]} entries but scores has {s.shape[0]} rows (stimuli); pass one label per stimulus"
        )
    uniq = torch.unique(y)
    if not bool(((uniq == 0) | (uniq == 1)).all()):
        raise ValueError(f"labels must be 0/1 (negative/positive); got values {uniq.tolist()}")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("labels has no positive stimulus, so average precision is undefined; add positive sentences")
    s = s.to(torch.float64)
    if bool(torch.isnan(s).any()):
        raise ValueError("scores contain NaN; drop or fill those units/stimuli before computing AP")
    y = y.to(torch.float64)
    n = s.shape[0]
    pos_idx = torch.arange(n, device=s.device)
    out = []
    for start in range(0, s.shape[1], chunk):
        block = s[:, start : start + chunk]
        order = torch.argsort(block, dim=0, descending=True, stable=True)
        sorted_s = torch.gather(block, 0, order)
        y_sorted = y[order]
        tp = torch.cumsum(y_sorted, dim=0)
        # A tie group ends where the next score differs; sklearn evaluates precision only there.
        is_end = torch.ones_like(sorted_s, dtype=torch.bool)
        is_end[:-1] = sorted_s[:-1] != sorted_s[1:]
        end_idx = torch.where(is_end, pos_idx[:, None].expand_as(sorted_s), torch.full_like(order, n))
        end_idx = torch.flip(torch.cummin(torch.flip(end_idx, [0]), dim=0).values, [0])
        precision_at_end = torch.gather(tp, 0, end_idx) / (end_idx + 1).to(torch.float64)
        out.append((y_sorted * precision_at_end).sum(dim=0) / n_pos)
    ap = torch.cat(out)
    return ap[0] if one_d else ap


def concept_ap(
    activations: xr.DataArray,
    stimuli: pd.DataFrame,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> xr.DataArray:
    """AP of every unit for every concept.

    Parameters
    ----------
    activations
        ``(stimulus, neuron)`` pooled unit activations; coordinate ``stimulus`` holds the
        sentence ids used in ``stimuli``. Extra coordinates on ``neuron`` (layer, module,
        unit) are carried through.
    stimuli
        Long table with columns ``concept``, ``stimulus`` (sentence id) and ``label``
        (1 = sentence mentions the concept, 0 = negative), as built by
        :func:`lhp_core.concepts.build_stimuli`.

    Returns
    -------
    xr.DataArray
        ``(concept, neuron)`` AP; ``concept`` is a plain coordinate dim ordered as the
        concepts first appear in ``stimuli``.
    """
    missing_cols = {"concept", "stimulus", "label"} - set(stimuli.columns)
    if missing_cols:
        raise ValueError(
            f"stimuli table lacks columns {sorted(missing_cols)}; build it with lhp_core.concepts.build_stimuli"
        )
    if tuple(activations.dims) != ("stimulus", NEURON):
        activations = activations.transpose("stimulus", NEURON)
    ids = pd.Index(activations["stimulus"].values)
    unknown = set(stimuli["stimulus"]) - set(ids)
    if unknown:
        raise KeyError(
            f"{len(unknown)} stimulus ids of the table have no activations (e.g. {sorted(unknown)[:3]}); "
            "run the sweep on the same stimulus table"
        )
    values = _as_tensor(activations.values, device)
    concepts = list(dict.fromkeys(stimuli["concept"]))
    rows = []
    for concept in bar(concepts, desc="AP per concept", disable=not progress):
        part = stimuli[stimuli["concept"] == concept]
        idx = torch.as_tensor(ids.get_indexer(part["stimulus"]), device=values.device)
        rows.append(average_precision(values[idx], part["label"].to_numpy()).cpu().numpy())
    coords = {k: v for k, v in activations.coords.items() if NEURON in v.dims}
    return xr.DataArray(np.stack(rows), dims=("concept", NEURON), coords={"concept": concepts, **coords}, name="ap")


def select_experts(ap: xr.DataArray, tau: float | None = None, top_k: int | None = None) -> xr.DataArray:
    """Boolean mask of expert units per concept.

    Parameters
    ----------
    ap
        ``(..., neuron)`` AP values.
    tau
        Units with ``AP >= tau`` are experts.
    top_k
        The ``top_k`` units by AP are experts (ties broken by lower unit index).

    Exactly one of ``tau`` and ``top_k`` must be given.

    Returns
    -------
    xr.DataArray
        Boolean mask, same shape as ``ap``.
    """
    if (tau is None) == (top_k is None):
        raise ValueError("give exactly one of tau (AP threshold, e.g. 0.9) or top_k (experts per concept, e.g. 50)")
    if tau is not None:
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau is an AP threshold and must lie in [0, 1]; got {tau}")
        return (ap >= tau).rename("expert")
    n = ap.sizes[NEURON]
    if not 1 <= int(top_k) <= n:  # type: ignore[arg-type]
        raise ValueError(f"top_k must be between 1 and the number of units ({n}); got {top_k}")
    arr = ap.transpose(..., NEURON).values
    order = np.argsort(-arr, axis=-1, kind="stable")[..., : int(top_k)]  # type: ignore[arg-type]
    mask = np.zeros(arr.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return ap.transpose(..., NEURON).copy(data=mask).transpose(*ap.dims).rename("expert")


def top_stimuli(
    activations: xr.DataArray,
    units: Sequence[int],
    texts: pd.Series,
    k: int = 5,
) -> pd.DataFrame:
    """Sentences that drive given units most.

    Parameters
    ----------
    activations
        ``(stimulus, neuron)`` pooled activations.
    units
        Positions along ``neuron``.
    texts
        Sentence text indexed by stimulus id.
    k
        Sentences per unit.

    Returns
    -------
    pd.DataFrame
        Columns ``neuron`` (position), ``rank`` (0 = strongest), ``stimulus``, ``activation``, ``text``.
    """
    acts = activations.transpose("stimulus", NEURON)
    ids = acts["stimulus"].values
    rows = []
    for u in units:
        col = acts.values[:, int(u)]
        for rank, i in enumerate(np.argsort(-col, kind="stable")[:k]):
            rows.append({"neuron": int(u), "rank": rank, "stimulus": ids[i], "activation": float(col[i]),
                         "text": str(texts.get(ids[i], ""))})
    return pd.DataFrame(rows, columns=["neuron", "rank", "stimulus", "activation", "text"])


def flatten_units(pooled: xr.DataArray) -> xr.DataArray:
    """Every unit of every block as one ``neuron`` axis.

    Parameters
    ----------
    pooled
        ``(layer, stimulus, neuron)`` from the sweep's ``linear`` site (coordinate
        ``neuron_module``); layer 0 (the embedding, NaN for block sites) is dropped.

    Returns
    -------
    xr.DataArray
        ``(stimulus, neuron)`` with coordinates ``layer``, ``unit`` (index within the
        layer's concatenated linear outputs) and ``module`` along ``neuron``.
    """
    if not {"layer", "stimulus", NEURON} <= set(pooled.dims):
        raise ValueError(f"expected dims (layer, stimulus, neuron) from the linear site; got {pooled.dims}")
    blocks = pooled.sel(layer=pooled["layer"] > 0).transpose("stimulus", "layer", NEURON)
    n_stim, n_layer, n_unit = blocks.shape
    module = blocks["neuron_module"].values if "neuron_module" in blocks.coords else np.full(n_unit, "")
    return xr.DataArray(
        np.asarray(blocks.values).reshape(n_stim, n_layer * n_unit),
        dims=("stimulus", NEURON),
        coords={
            "stimulus": blocks["stimulus"].values,
            "layer": (NEURON, np.repeat(blocks["layer"].values, n_unit)),
            "unit": (NEURON, np.tile(np.arange(n_unit), n_layer)),
            "module": (NEURON, np.tile(np.asarray(module, dtype=str), n_layer)),
        },
    )


def _expert_features(texts: pd.DataFrame, batch_size: int = 16) -> Features:
    return Features(Stimuli.from_sentences(texts["text"].tolist(), ids=texts["stimulus"].tolist()), ("linear",),
                    ("stimulus_max",), batch_size=batch_size)


def expert_ap_over_steps(
    suite,
    texts: pd.DataFrame,
    table: pd.DataFrame,
    models: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    progress: bool = True,
) -> xr.Dataset:
    """AP of every linear-layer unit for every concept, at every checkpoint.

    Units are max-pooled over each sentence's tokens (the sweep's ``linear`` site, reducer
    ``stimulus_max``), extracted through the measure runner (resumable, cached).

    Parameters
    ----------
    texts, table
        :func:`lhp_core.concepts.build_stimuli` output (``stimulus``/``text``; ``concept``,
        ``stimulus``, ``label``).

    Returns
    -------
    xarray.Dataset
        ``ap`` with dims ``(model, step, concept, neuron)``; ``neuron`` runs over every unit of every
        block (NaN past a smaller model's units) with coordinates ``layer``, ``unit`` and ``module``
        along ``(model, neuron)``.
    """
    feats = _expert_features(texts, batch_size)

    def compute(ck: Checkpoint) -> xr.Dataset:
        units = flatten_units(ck.features("linear", "stimulus_max"))
        ap = concept_ap(units, table, device=ck.device, progress=False)
        ap = ap.assign_coords(module=(NEURON, ap["module"].values.astype(str)))
        return xr.Dataset({"ap": ap.assign_attrs(
            units="average precision", description="AP of the unit's max-pooled activation as a score separating "
                                                   "sentences about the concept from the others")})

    key = {"stimuli": feats.stimuli.fingerprint(),
           "table": config_sha256({"t": table[["concept", "stimulus", "label"]].values.tolist()})}
    measure = Measure("expert_ap", compute, key, features=feats,
                      description="expert units: AP of every linear-layer unit per concept (Fedzechkina et al. 2025)")
    return over_steps(suite, measure, models, steps, device=device, progress=progress)


def unit_activations(suite, texts: pd.DataFrame, model: str, step: int, device: str = "cpu",
                     batch_size: int = 16) -> xr.DataArray:
    """``(stimulus, neuron)`` max-pooled units of one checkpoint, as :func:`expert_ap_over_steps` scored them."""
    pooled = features_at(suite, _expert_features(texts, batch_size), model, step, "linear", "stimulus_max",
                         device=device)
    return flatten_units(pooled)


def model_ap(ap: xr.Dataset | xr.DataArray, model: str) -> xr.DataArray:
    """One model's ``(step, concept, neuron)`` AP from :func:`expert_ap_over_steps`, without the padding
    past its units and with its own ``layer``/``unit``/``module`` coordinates."""
    a = (ap["ap"] if isinstance(ap, xr.Dataset) else ap).sel({MODEL: model})
    real = a.notnull().any([d for d in a.dims if d != NEURON]).values
    a = a.isel({NEURON: np.flatnonzero(real)})
    a = a.dropna(STEP, how="all")
    for c in ("layer", "unit"):
        if c in a.coords:
            a = a.assign_coords({c: (NEURON, a[c].values.astype(int))})
    if "module" in a.coords:
        a = a.assign_coords(module=(NEURON, a["module"].values.astype(str)))
    return a.drop_vars([MODEL, TOKENS_SEEN, "checkpoint_id"], errors="ignore")


def inspect_concept(
    ap: xr.DataArray,
    acts: xr.DataArray,
    texts: pd.DataFrame,
    concept: str,
    step: int,
    n_experts: int = 5,
    k: int = 3,
) -> dict[str, pd.DataFrame]:
    """What the chapter's inspector shows for one concept at one checkpoint.

    Parameters
    ----------
    ap
        ``(step, concept, neuron)`` AP of one model (:func:`model_ap`; coords ``layer``, ``unit``, ``module``).
    acts
        ``(stimulus, neuron)`` pooled activations of the same model at ``step`` (:func:`unit_activations`).
    texts
        ``stimulus``, ``text`` (:func:`lhp_core.concepts.build_stimuli`).

    Returns
    -------
    dict
        ``experts``: the ``n_experts`` top-AP units at ``step`` (``neuron``, ``layer``,
        ``unit``, ``module``, ``ap``); ``trajectory``: their AP at every step
        (``step``, ``neuron``, ``ap``); ``sentences``: the ``k`` sentences driving each most.
    """
    if concept not in ap["concept"].values:
        raise KeyError(
            f"concept {concept!r} not in the AP table; concepts: {', '.join(map(str, ap['concept'].values))}"
        )
    if step not in ap["step"].values:
        raise KeyError(f"step {step} not computed; steps: {ap['step'].values.tolist()}")
    row = ap.sel(concept=concept, step=step)
    top = np.argsort(-row.values, kind="stable")[:n_experts]
    experts = pd.DataFrame({
        "neuron": top,
        "layer": row["layer"].values[top] if "layer" in row.coords else -1,
        "unit": row["unit"].values[top] if "unit" in row.coords else top,
        "module": row["module"].values[top] if "module" in row.coords else "",
        "ap": row.values[top],
    })
    traj = ap.sel(concept=concept).isel({NEURON: top})
    trajectory = pd.DataFrame({
        "step": np.repeat(traj["step"].values, len(top)),
        "neuron": np.tile(top, traj.sizes["step"]),
        "ap": traj.transpose("step", NEURON).values.reshape(-1),
    })
    sentences = top_stimuli(acts, top, texts.set_index("stimulus")["text"], k=k)
    return {"experts": experts, "trajectory": trajectory, "sentences": sentences}
