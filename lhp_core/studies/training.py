"""What a study needs of a suite's training, on every kind of suite.

Only suites that ``lhp train`` wrote have a training record (``training_record.nc``: losses, the
induction probe, the seed). Hub suites (Pythia, OLMo, any repo at revisions) and folders of
checkpoints (``step<N>/``, a Trainer's ``checkpoint-<N>/``) have none, so what a study reads from
the record is measured or declared here instead:

* :func:`tokens_per_step`: from the suite (``Suite.tokens_seen``), whatever its kind;
* :func:`seed`: the record's seed, Pythia's standard seed, a Trainer run's ``training_args.bin``
  seed, else None (the suite does not say);
* :func:`record`: the training record where there is one; otherwise the held-out loss measured by
  :func:`lhp_core.metrics.loss.loss_over_steps` on :data:`HELD_OUT` and the repeated-span probe
  measured by :func:`lhp_core.metrics.loss.repeat_probe_over_steps` on the same text;
* :func:`require`: the suite, or one sentence naming the ``lhp train`` command when it is an lhp
  suite not trained yet. Studies never train: ``lhp book`` and ``lhp train`` do.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from lhp_core import schema
from lhp_core.data import corpora, pythia_evals
from lhp_core.measures import step_grid
from lhp_core.metrics import loss
from lhp_core.presets import PRESETS
from lhp_core.suites import LocalSuite, PythiaSuite, Suite, TrainerSuite, get_suite, trainer_arguments

#: The held-out text of suites without a training record: WikiText-2's test articles (Merity et al.
#: 2016), which no suite lhp knows trained on. Losses on it are per token of each suite's own
#: tokenizer, so they compare checkpoints of one suite, never suites with different tokenizers.
HELD_OUT = "wikitext2_test"
HELD_OUT_NOTE = ("nats per token of the suite's own tokenizer: comparable across the checkpoints of one "
                 "tokenizer, not across tokenizers")
HELD_OUT_DESCRIPTION = f"WikiText-2's test articles (Merity et al. 2016), {HELD_OUT_NOTE}"


class NotTrained(FileNotFoundError):
    """An lhp suite that is not trained yet (or was trained with an older recipe); names the command."""


def train_command(suite: LocalSuite) -> str:
    """The ``lhp train`` command line that builds the registered lhp suite ``suite``."""
    cmd = f"lhp train --preset {suite.preset} --out {suite.root}"
    if suite.copy_reg:
        cmd += f" --copy-reg {suite.copy_reg}"
    if suite.sizes:
        cmd += " --sizes " + " ".join(suite.sizes)
    return cmd


def require(suite: str | Suite) -> Suite:
    """The suite, ready to be read; a study calls this instead of training.

    Raises
    ------
    NotTrained
        An lhp suite (``lhp-*``) that is missing or was trained with an older recipe: one sentence
        naming the ``lhp train`` command (``lhp book`` also trains it).
    """
    s = get_suite(suite)
    if not (isinstance(s, LocalSuite) and s.preset):
        return s
    args = s.root / "train_args.json"
    if not (s.root / "training_record.nc").exists():
        raise NotTrained(f"suite {s.id!r} is not trained yet ({s.root} has no training_record.nc); "
                         f"train it with `{train_command(s)}` (lhp book does this for its suites)")
    if args.exists() and json.loads(args.read_text()).get("recipe_sha") != PRESETS[s.preset].fingerprint():
        raise NotTrained(f"suite {s.id!r} at {s.root} was trained with an older {s.preset!r} recipe; re-train it "
                         f"with `{train_command(s)}` (it moves the old folder aside)")
    return s


def has_record(suite: Suite) -> bool:
    """True for suites ``lhp train`` wrote (they carry ``training_record.nc``)."""
    return isinstance(suite, LocalSuite) and suite.record is not None


def tokens_per_step(suite: Suite, model: str) -> float:
    """Training tokens per optimiser step of ``model``, from the suite's last checkpoint (NaN at step 0 only)."""
    last = suite.steps(model)[-1]
    return suite.tokens_seen(model, last) / last if last else float("nan")


def seed(suite: Suite) -> int | None:
    """The training seed where the suite knows it, else None.

    lhp suites: the record's ``seed``; ``pythia``/``pythia-deduped``: the standard runs' seed
    (:data:`lhp_core.data.pythia_evals.STANDARD_SEED`); Trainer folders: ``seed`` of the last
    checkpoint's ``training_args.bin``; anything else does not say.
    """
    if has_record(suite):
        return int(suite.training_record().attrs.get("seed", 0))
    if isinstance(suite, PythiaSuite):
        return pythia_evals.STANDARD_SEED
    if isinstance(suite, TrainerSuite):
        m = suite.models[0]
        path = suite.checkpoint_path(m, suite.steps(m)[-1]) / "training_args.bin"
        if path.is_file():
            value = trainer_arguments(path).get("seed")
            return int(value) if isinstance(value, int) else None
    return None


def held_out_texts(n_articles: int | None = None) -> list[str]:
    """The first ``n_articles`` articles of :data:`HELD_OUT` (None: all 62)."""
    docs = list(corpora.documents(HELD_OUT))
    if n_articles is not None and not 1 <= n_articles <= len(docs):
        raise ValueError(f"held_out_articles={n_articles}: {HELD_OUT} has {len(docs)} articles; pass 1..{len(docs)} "
                         "or None for all")
    return docs[:n_articles]


def record(suite: Suite, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
           device: str = "cpu", held_out_articles: int | None = None, n_probe: int = 64, probe_len: int = 32,
           progress: bool = True) -> xr.Dataset:
    """The training record of ``suite`` at ``models`` x ``steps``, measured where lhp did not record it.

    Parameters
    ----------
    suite
        Any suite.
    models, steps
        Default every model and its steps.
    held_out_articles
        Suites without a record: the first this many articles of :data:`HELD_OUT` (None: all).
    n_probe, probe_len
        Repeated-span probe of suites without a record: spans and their length in tokens.

    Returns
    -------
    xarray.Dataset
        ``(model, step)`` variables ``val_loss``, ``train_loss`` (NaN where the suite publishes none),
        ``probe_first_loss``, ``probe_second_loss`` (nats/token); coordinates ``tokens_seen``,
        ``n_params`` and ``n_params_nonembedding`` (model); attrs ``held_out`` (the held-out text) and
        ``source`` (``training record`` or ``measured``), ``seed`` where known.
    """
    if has_record(suite):
        rec = suite.training_record()
        rec = rec.sel(model=list(models or rec.model.values), step=list(steps or rec.step.values))
        return rec.assign_attrs(held_out="held-out documents of the suite's training corpus", source="training record")
    grid = step_grid(suite, models, steps)
    models = list(grid)
    steps = sorted(set().union(*grid.values()))
    texts = held_out_texts(held_out_articles)
    val = loss.loss_over_steps(suite, texts, models, steps, device=device, progress=progress)
    probe = loss.repeat_probe_over_steps(suite, texts, models, steps, n_seq=n_probe, seq_len=probe_len,
                                         device=device, progress=progress)
    ds = xr.Dataset({
        "val_loss": val["loss"].assign_attrs(units="nats/token", description=HELD_OUT_DESCRIPTION),
        "train_loss": ((schema.MODEL, schema.STEP), np.full((len(models), len(steps)), np.nan),
                       {"units": "nats/token", "description": "training loss: not published by this suite"}),
        "probe_first_loss": probe["first_loss"],
        "probe_second_loss": probe["second_loss"],
    }).assign_coords({
        schema.TOKENS_SEEN: val[schema.TOKENS_SEEN],
        "n_params": (schema.MODEL, np.array([suite.n_params(m) for m in models], dtype=np.int64)),
        "n_params_nonembedding": (schema.MODEL, np.array([suite.n_params(m, nonembedding=True) for m in models],
                                                         dtype=np.int64)),
    })
    known = seed(suite)
    held = (f"the first {len(texts)} of WikiText-2's test articles (Merity et al. 2016), {HELD_OUT_NOTE}"
            if held_out_articles else HELD_OUT_DESCRIPTION)
    ds["val_loss"].attrs["description"] = held
    ds.attrs.update(held_out=held, source="measured", **({} if known is None else {"seed": known}))
    return ds
