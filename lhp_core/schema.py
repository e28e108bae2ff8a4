"""The one place where xarray dimension and coordinate names are fixed.

Every Dataset that lhp writes uses these names, so results from different
modules line up (``xr.merge`` just works) and notebooks never guess.

Dimensions
----------
model      model id within a suite, e.g. ``"pythia-70m"`` or ``"s"``
step       training step of the checkpoint (int)
layer      0 = embedding output, 1..L = after each transformer block: block i is layer i wherever a
           layer is labelled (sweep sites, where block sites are NaN at 0; head scores, in the sweep
           and from lhp_core.metrics.heads); a positional array over blocks holds layer i at row i - 1
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
condition  an experimental condition of a measure (e.g. which heads are ablated: ``"clean"``, ``"selected"``)
resample   index of a bootstrap resample (items drawn with replacement; the same seed draws the same
           resamples at every checkpoint, so they line up across steps)

Coordinates
-----------
tokens_seen  along ``step``: number of training tokens consumed at that step

Attributes
----------
Dataset attrs hold only flat ``str``, ``int``, ``float`` or ``bool`` values so that
datasets round-trip through zarr and netCDF; :func:`check_attrs` enforces it. Every variable
written to disk has ``units`` and a one-line ``description`` (and ``long_name`` where it helps):
CF names, free-text values (``"nats"``, ``"activation"``, ``"tokens"``), :data:`DIMENSIONLESS`
for flags, indices and fractions, :data:`TEXT` for strings. :data:`COORD_ATTRS` has the dims'.
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
CONDITION = "condition"
RESAMPLE = "resample"

DIMS = (MODEL, STEP, LAYER, HEAD, NEURON, HIDDEN, STIMULUS, WORD, TOKEN, TASK, SEED, NGRAM, CONCEPT, CONDITION,
        RESAMPLE)

_FLAT = (str, int, float, bool, np.integer, np.floating, np.bool_)

#: Units of a dimensionless number (a flag, an index, a fraction): CF's "1".
DIMENSIONLESS = "1"
#: Units of a text-valued variable (CF: units do not apply to strings; lhp still says so explicitly).
TEXT = "n/a"

#: CF-style attrs (``long_name``, ``units``, ``description``) of the dims and of ``tokens_seen``,
#: for every Dataset lhp writes to disk.
COORD_ATTRS: dict[str, dict[str, str]] = {
    STEP: {"long_name": "training step", "units": "steps",
           "description": "optimizer step at which the checkpoint was saved"},
    TOKENS_SEEN: {"long_name": "training tokens seen", "units": "tokens",
                  "description": "training tokens consumed up to this checkpoint (where from: attr source)"},
    LAYER: {"long_name": "layer", "units": DIMENSIONLESS,
            "description": "0 = embedding output, i = block i (block sites are NaN at layer 0)"},
    HEAD: {"long_name": "attention head", "units": DIMENSIONLESS, "description": "head index within a layer"},
    NEURON: {"long_name": "neuron", "units": DIMENSIONLESS,
             "description": "unit index: an MLP hidden unit, or a position among a block's linear-layer outputs"},
    HIDDEN: {"long_name": "residual-stream feature", "units": DIMENSIONLESS,
             "description": "feature index of the residual stream (0 .. d_model - 1)"},
    STIMULUS: {"long_name": "stimulus id", "units": TEXT, "description": "id of the stimulus (a text or sentence)"},
    WORD: {"long_name": "word index", "units": DIMENSIONLESS,
           "description": "position of the word in the stimulus table (all stimuli, in order)"},
    TOKEN: {"long_name": "token index", "units": DIMENSIONLESS,
            "description": "position of the token in the tokenized stimulus table (all stimuli, in order; no BOS)"},
    CONDITION: {"long_name": "condition", "units": TEXT,
                "description": "experimental condition of the measure (e.g. which heads are ablated)"},
}


def describe(da, units: str, description: str):
    """Set ``units`` and the one-line ``description`` of a variable (in place) and return it."""
    da.attrs.update(units=units, description=description)
    return da


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
