"""Checkpoint suites: named families of models saved at many training steps.

``get_suite(id_or_path)`` returns a :class:`Suite` for

* ``pythia`` and ``pythia-deduped``: EleutherAI's 8 sizes, 154 checkpoints each, loaded from the
  Hugging Face hub (``EleutherAI/pythia-<size>[-deduped]``, revision ``step<N>``);
* ``olmo`` and ``olmo2``: AI2's OLMo 1 and OLMo 2 models, whose checkpoints are named branches
  (``step1000-tokens4B``; see :mod:`lhp_core.revisions`);
* ``lhp-tiny``, ``lhp-micro``, ``lhp-mini``, ``lhp-gpu`` and their ``-copyreg`` variants: suites
  trained locally by ``lhp train`` into ``config.suites_dir()/<id>`` (:func:`ensure` trains them);
* any local folder of ``step<N>/`` checkpoints, or of ``<model>/step<N>/`` checkpoints (:class:`LocalSuite`);
* the output folder of a Hugging Face ``Trainer``, ``checkpoint-<N>/`` folders (:class:`TrainerSuite`);
* one model folder, a suite of one checkpoint (:class:`ModelFolderSuite`);
* a hub repo id at named revisions (``get_suite("org/name", revisions=["step*"])``;
  :class:`lhp_core.revisions.HubRevisionsSuite`).

Suites that do not record their tokens per step take ``tokens_per_step`` (``--tokens-per-step``);
:meth:`Suite.tokens_source` says where ``tokens_seen`` comes from, and :meth:`Suite.describe`
what was recognised.

Command line (:mod:`lhp_core.cli.suite`): ``lhp suite list``, ``lhp suite show SUITE [--tokens-per-step N]
[--revisions ...] [--seq-len N] [--world-size N]``, ``lhp suite check SUITE``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from lhp_core import config
from lhp_core.progress import bar
from lhp_core.revisions import OLMO2_REPOS, OLMO_REPOS, HubRevisionsSuite, RevisionSuite
from lhp_core.schedule import PYTHIA_TOKENS_PER_STEP, pythia_steps
from lhp_core.suite_base import REPO_SUITES, SUITES, HubSuite, Suite, SuiteError
from lhp_core.suite_base import count_params as count_params  # public here too: `from lhp_core.suites import ...`
from lhp_core.suite_folders import LocalSuite, ModelFolderSuite, TrainerSuite, is_trainer_output
from lhp_core.suite_folders import trainer_arguments as trainer_arguments  # as count_params
from lhp_core.weights import weights_sha256

COPY_REG_DEFAULT = 1.0  # lambda used by the registered ``lhp-*-copyreg`` suites

# a Hugging Face hub repo id, "org/name"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# (total, non-embedding) parameters, from the Pythia paper / model cards.
PYTHIA_PARAMS: dict[str, tuple[int, int]] = {
    "70m": (70_426_624, 18_915_328),
    "160m": (162_322_944, 85_056_000),
    "410m": (405_334_016, 302_311_424),
    "1b": (1_011_781_632, 805_736_448),
    "1.4b": (1_414_647_808, 1_208_602_624),
    "2.8b": (2_775_208_960, 2_517_652_480),
    "6.9b": (6_857_302_016, 6_444_163_072),
    "12b": (11_846_072_320, 11_327_027_200),
}


#: Models in size order across the suites lhp knows (lhp presets smallest first, then Pythia's sizes).
SIZE_ORDER = ("xs", "xs-seed1", "s", "m", "l", "xl", "xl-seed1",
              "pythia-14m", "pythia-31m", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b", "pythia-1.4b",
              "pythia-2.8b", "pythia-6.9b", "pythia-12b")


def size_order(models) -> list[str]:
    """``models`` (ids, duplicates dropped) in size order: known sizes smallest first, others after as given."""
    models = list(dict.fromkeys(str(m) for m in models))
    known = [m for m in SIZE_ORDER if m in models]
    return known + [m for m in models if m not in known]


class PythiaSuite(HubSuite):
    """Pythia on the Hugging Face hub: ``EleutherAI/pythia-<size>[-deduped]`` at revision ``step<N>``."""

    org = "EleutherAI"

    def __init__(self, id: str, deduped: bool) -> None:
        self.id = id
        self.deduped = deduped
        self._suffix = "-deduped" if deduped else ""

    @property
    def models(self) -> list[str]:
        return [f"pythia-{s}{self._suffix}" for s in PYTHIA_PARAMS]

    def resolve_model(self, model: str) -> str:
        # Accept the bare size ("70m") and the hub repo name ("pythia-70m-deduped").
        for cand in (model, f"pythia-{model}{self._suffix}", model.removeprefix("EleutherAI/")):
            if cand in self.models:
                return cand
        return super().resolve_model(model)

    def size(self, model: str) -> str:
        return self.resolve_model(model).removeprefix("pythia-").removesuffix(self._suffix)

    def steps(self, model: str) -> list[int]:
        self.resolve_model(model)
        return pythia_steps()

    def tokens_seen(self, model: str, step: int) -> int:
        return int(step) * PYTHIA_TOKENS_PER_STEP

    def tokens_source(self, model: str) -> str:
        return f"Pythia's schedule: step x {PYTHIA_TOKENS_PER_STEP:,} tokens (1024 sequences of 2048 tokens)"

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        total, nonemb = PYTHIA_PARAMS[self.size(model)]
        return nonemb if nonembedding else total

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        """``(repo_id, revision)`` of a checkpoint, e.g. ``("EleutherAI/pythia-70m", "step1000")``."""
        model = self.resolve_model(model)
        self.check_step(model, step)
        return f"EleutherAI/{model}", f"step{step}"

    def training_record(self):
        raise NotImplementedError(
            f"suite {self.id!r} has no training_record.nc (it was not trained by lhp); Pythia's own evaluation "
            "curves are in lhp_core.data.pythia_evals, and lhp_core.metrics.loss.loss_over_steps(suite, "
            "held_out_texts) measures its held-out loss per checkpoint"
        )


TWIN_SIZES: dict[str, tuple[str, ...]] = {"mini": ("l",)}


def _lhp_suite(preset: str, copy_reg: float = 0.0) -> LocalSuite:
    sid = f"lhp-{preset}" + ("-copyreg" if copy_reg else "")
    return LocalSuite(config.suites_dir() / sid, id=sid, preset=preset, copy_reg=copy_reg,
                      sizes=TWIN_SIZES.get(preset) if copy_reg else None)


SUITES.register("pythia", lambda: PythiaSuite("pythia", deduped=False))
SUITES.register("olmo", lambda: RevisionSuite("olmo", OLMO_REPOS))
SUITES.register("olmo2", lambda: RevisionSuite("olmo2", OLMO2_REPOS, stage=1))
REPO_SUITES.register("revisions", lambda: HubRevisionsSuite)
SUITES.register("pythia-deduped", lambda: PythiaSuite("pythia-deduped", deduped=True))


for _p in ("tiny", "micro", "mini", "gpu"):
    SUITES.register(f"lhp-{_p}", lambda p=_p: _lhp_suite(p))
    SUITES.register(f"lhp-{_p}-copyreg", lambda p=_p: _lhp_suite(p, COPY_REG_DEFAULT))


def context_length(suite=None, model=None) -> int | None:
    """Tokens per window (BOS included) to run a suite's model on: the one rule for window length.

    lhp suites record the context they were trained on (``training_record`` attr ``context``);
    suites trained before the configs carried it save ``max_position_embeddings = 2048`` whatever
    the context, and rotary models run at any length, so the config alone would let windows run
    far past what the model ever saw. Otherwise the model config's ``max_position_embeddings``
    (or ``n_positions``; Pythia: 2048), capped at 2048; None when there is neither a record nor a model.
    """
    if suite is not None:
        try:
            ctx = get_suite(suite).training_record().attrs.get("context")
            if ctx:
                return int(ctx)
        except (SuiteError, FileNotFoundError, NotImplementedError, AttributeError):
            pass
    if model is None:
        return None
    cfg = getattr(model, "config", model)  # a model or its config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    return int(min(n, 2048))


def get_suite(suite: str | Path | Suite, tokens_per_step: int | None = None, *,
              revisions: Sequence[str] | None = None, sequence_length: int | None = None,
              world_size: int | None = None) -> Suite:
    """A registered suite by id, a local folder of checkpoints by path, or a hub repo at named revisions.

    What a string is taken for, in this order:

    * a registered id (``lhp suite list``): ``pythia``, ``pythia-deduped``, ``olmo``, ``olmo2``, ``lhp-*``;
    * a folder of Hugging Face Trainer ``checkpoint-<N>/`` folders: :class:`TrainerSuite`;
    * a folder of ``step<N>/`` or ``<model>/step<N>/`` checkpoints: :class:`LocalSuite`;
    * one checkpoint folder (``config.json`` in it): :class:`ModelFolderSuite`;
    * with ``revisions``, a hub repo id (``org/name``):
      :class:`lhp_core.revisions.HubRevisionsSuite`.

    Parameters
    ----------
    suite
        The id, path or repo (or a :class:`Suite`, returned as it is).
    tokens_per_step
        Tokens consumed per optimizer step, for suites that do not record it (folders without
        ``training_record.nc``, hub repos): ``tokens_seen = step x tokens_per_step``.
    revisions
        Hub repos only: branch or tag names (``main``, ``step1000``; ``NAME=STEP`` gives a step),
        or glob patterns over the repo's branches (``step*``).
    sequence_length, world_size
        Trainer folders only: tokens per training sequence and processes (see :class:`TrainerSuite`).

    Where none of these options is given, those ``LHP_SUITE_OPTIONS`` gives ``suite`` apply
    (:func:`lhp_core.config.suite_options`; ``lhp book --suite`` sets it for its chapters).

    Raises
    ------
    SuiteError
        The string is none of these, or an option is given that the suite it names does not use.
    """
    options = {"tokens_per_step": tokens_per_step, "revisions": revisions, "sequence_length": sequence_length,
               "world_size": world_size}
    given = [k for k, v in options.items() if v is not None]
    if not given and not isinstance(suite, Suite):
        # lhp book --suite S --seq-len N: the chapters' kernels name S alone and read its options here.
        preset = config.suite_options(str(suite))
        unknown = sorted(set(preset) - set(OPTION_FLAGS))
        if unknown:
            raise SuiteError(f"{config.SUITE_OPTIONS_VAR} gives {str(suite)!r} {unknown}, which are not suite options; "
                             f"use {', '.join(OPTION_FLAGS)} (as {', '.join(OPTION_FLAGS.values())})")
        if preset:
            return get_suite(suite, **preset)

    def refuse(names: Sequence[str], what: str) -> None:
        extra = [n for n in given if n not in names]
        if extra:
            flags = ", ".join(OPTION_FLAGS[n] for n in extra)
            raise SuiteError(f"{flags} do{'es' * (len(extra) == 1)} not apply to {what}; leave "
                             f"{'it' if len(extra) == 1 else 'them'} out")

    if isinstance(suite, Suite):
        refuse((), f"a suite object ({suite.id!r}); give the options when it is made")
        return suite
    s = str(suite)
    if s in SUITES:
        refuse((), f"the registered suite {s!r} (it knows its checkpoints and tokens)")
        return SUITES.get(s)
    path = Path(s).expanduser()
    if path.is_dir():
        if is_trainer_output(path):
            refuse(("tokens_per_step", "sequence_length", "world_size"), f"{path}")
            return TrainerSuite(path, tokens_per_step, sequence_length, world_size)
        refuse(("tokens_per_step",), f"{path} (--seq-len and --world-size: Trainer checkpoint-<N> folders only)")
        local = LocalSuite(path, tokens_per_step=tokens_per_step)
        if (path / "config.json").is_file() and not local._discovered():
            return ModelFolderSuite(path, tokens_per_step=tokens_per_step)
        if tokens_per_step is not None and (path / "training_record.nc").is_file():
            raise SuiteError(f"{path} has a training_record.nc, which gives tokens_seen; leave out --tokens-per-step")
        return local
    if revisions is not None:
        if not _HUB_ID.match(s):
            raise SuiteError(f"{s!r} is neither an existing folder nor a hub repo id (org/name) for --revisions")
        refuse(("tokens_per_step", "revisions"), f"hub repo {s}")
        return REPO_SUITES.get("revisions")(s, revisions, tokens_per_step=tokens_per_step)
    hub = (f"; {s!r} looks like a hub repo id: name its checkpoints with --revisions (main, step1000 ..., or a "
           "pattern such as 'step*')") if _HUB_ID.match(s) else ""
    raise SuiteError(
        f"unknown suite {s!r}: not a registered id and not an existing folder; valid suites: "
        f"{', '.join(SUITES.names())} (or the path of a folder of checkpoint-<N>/, step<N>/ or <model>/step<N>/ "
        f"checkpoints, or of one model){hub}"
    )


#: The command-line flag of each get_suite option (:mod:`lhp_core.cli.suite`), for messages.
OPTION_FLAGS = {"tokens_per_step": "--tokens-per-step", "revisions": "--revisions", "sequence_length": "--seq-len",
                 "world_size": "--world-size"}


def check(suite: str | Suite, models: list[str] | None = None, progress: bool = True,
          steps: Sequence[int] | None = None):
    """Hash every checkpoint's weights (or those at ``steps``) and flag steps whose weights equal an earlier step's.

    Returns
    -------
    pandas.DataFrame with columns ``model, step, weights_sha256, same_as_step`` (earliest step
    with identical weights, or -1), ``record_mismatch`` (True where a training record exists
    and lists a different hash: the file changed after training) and ``missing`` (True where the
    record lists a step whose folder is gone; its hash is ``""``).
    """
    import pandas as pd  # pandas takes a second to import; `lhp suite list` and `show` need none
    s = get_suite(suite)
    models = [s.resolve_model(m) for m in (models or s.models)]
    rec = s.record if isinstance(s, LocalSuite) else None
    rows = []
    todo = [(m, st) for m in models for st in s.steps(m) if steps is None or st in steps]
    for m, st in bar(todo, desc=f"hashing {s.id}", unit="ckpt", disable=not progress):
        try:
            sha, missing = weights_sha256(s.checkpoint_path(m, st)), False
        except FileNotFoundError:
            if not isinstance(s, LocalSuite):
                raise
            sha, missing = "", True
        listed = None
        if rec is not None and m in rec["model"].values and st in rec["step"].values:
            listed = str(rec["weights_sha256"].sel(model=m, step=st).item())
        rows.append({"model": m, "step": st, "weights_sha256": sha, "missing": missing,
                     "record_mismatch": not missing and listed is not None and listed != sha})
    df = pd.DataFrame(rows, columns=["model", "step", "weights_sha256", "record_mismatch", "missing"])
    present = df[~df["missing"]]
    first = present.groupby(["model", "weights_sha256"])["step"].transform("min")
    df["same_as_step"] = first.where(first != present["step"], -1).reindex(df.index, fill_value=-1).astype(int)
    return df


def duplicate_groups(df) -> list[tuple[str, list[int]]]:
    """Collapse :func:`check`'s table into ``(model, steps)`` groups that share identical weights."""
    out = []
    for model, g in df[~df["missing"]].groupby("model", sort=False):
        for _, h in g.groupby("weights_sha256", sort=False):
            if len(h) > 1:
                out.append((model, sorted(int(x) for x in h["step"])))
    return out
