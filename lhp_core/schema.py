"""The one place where xarray dimension and coordinate names are fixed.

Every Dataset that lhp writes uses these names, so results from different
modules line up (``xr.merge`` just works) and notebooks never guess.

Dimensions
----------
model      model id within a suite, e.g. ``"pythia-70m"`` or ``"s"``
step       training step of the checkpoint (int)
layer      0 = embedding output, 1..L = after each transformer block
head       attention head index within a layer
neuron     unit index: an MLP hidden unit within a layer, or (expert study) any linear-layer unit of the model
hidden     residual-stream feature index (d_model)
stimulus   stimulus id (a text, sentence or probe sequence)
word       word position within the stimulus table (global word index)
token      token position
task       evaluation task id (``lhp_core.metrics.tasks.TASKS``, or a published benchmark's own
           id: an Inverse Scaling Prize task, a BLiMP paradigm)
seed       training run's random seed (int), e.g. 1-9 for PolyPythia re-runs, 1234 the standard Pythia run
ngram      n of an n-gram statistic (int, 1 = unigram)
concept    a concept of the expert-neuron study (a THINGS concept word, or a category word)

Coordinates
-----------
tokens_seen  along ``step``: number of training tokens consumed at that step

Attributes
----------
Dataset attrs hold only flat ``str``, ``int``, ``float`` or ``bool`` values so that
datasets round-trip through zarr and netCDF; :func:`check_attrs` enforces it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MODEL = "model"
STEP = "step"
TOKENS_SEEN = "tokens_seen"
LAYER = "layer"
HEAD = "head"
NEURON = "neuron"
HIDDEN = "hidden"
STIMULUS = "stimulus"
WORD = "word"
TOKEN = "token"
TASK = "task"
SEED = "seed"
NGRAM = "ngram"
CONCEPT = "concept"

DIMS = (MODEL, STEP, LAYER, HEAD, NEURON, HIDDEN, STIMULUS, WORD, TOKEN, TASK, SEED, NGRAM, CONCEPT)

_FLAT = (str, int, float, bool, np.integer, np.floating, np.bool_)


def check_attrs(attrs: Mapping[str, Any], where: str = "dataset") -> None:
    """Raise ``TypeError`` if any attr is not a flat string or number."""
    for key, value in attrs.items():
        if not isinstance(value, _FLAT):
            raise TypeError(
                f"{where} attr {key!r} has type {type(value).__name__}; attrs must be flat str/int/float/bool "
                "so the dataset round-trips through zarr and netCDF (json.dumps nested values first)"
            )


def check_dims(dims: tuple[str, ...] | list[str], where: str = "variable") -> None:
    """Raise ``ValueError`` for a dimension name that is not in :data:`DIMS`.

    Dimensions ending in ``_`` plus a schema name (``hidden_2``) are not allowed either:
    extra axes should get their own entry here first.
    """
    unknown = [d for d in dims if d not in DIMS]
    if unknown:
        raise ValueError(f"{where} uses dims {unknown} not in lhp_core.schema.DIMS {DIMS}")
