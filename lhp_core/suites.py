"""Checkpoint suites: named families of models saved at many training steps.

``get_suite(id_or_path)`` returns a :class:`Suite` for

* ``pythia`` and ``pythia-deduped``: EleutherAI's 8 sizes, 154 checkpoints each, loaded from the
  Hugging Face hub (``EleutherAI/pythia-<size>[-deduped]``, revision ``step<N>``);
* ``olmo`` and ``olmo2``: AI2's OLMo 1 and OLMo 2 models, whose checkpoints are named branches
  (``step1000-tokens4B``; see :mod:`lhp_core.revisions`);
* ``lhp-tiny``, ``lhp-micro``, ``lhp-mini``, ``lhp-gpu`` and their ``-copyreg`` variants: suites
  trained locally by ``lhp train`` into ``config.suites_dir()/<id>`` (:func:`ensure` trains them);
* any local folder of ``step<N>/`` checkpoints, or of ``<model>/step<N>/`` checkpoints.

Command line: ``lhp suite list``, ``lhp suite show SUITE``, ``lhp suite check SUITE``.
"""
from __future__ import annotations

import argparse
import json
import re
from functools import cached_property
from pathlib import Path

from lhp_core import config
from lhp_core.presets import PRESETS, make_config
from lhp_core.progress import bar
from lhp_core.registry import Registry
from lhp_core.schedule import PYTHIA_TOKENS_PER_STEP, pythia_steps
from lhp_core.weights import weights_sha256

#: Hub suites with named-branch checkpoints (OLMo) register themselves from lhp_core.revisions,
#: which builds on this module; the registry imports it on the first lookup.
SUITES: Registry[Suite] = Registry("suite", providers=["lhp_core.revisions"])
COPY_REG_DEFAULT = 1.0  # lambda used by the registered ``lhp-*-copyreg`` suites

# "step1000", or a branch downloaded under its OLMo name, "step1000-tokens4B"
_STEP_DIR = re.compile(r"^step(\d+)(?:-tokens(\d+)B)?$")

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


class SuiteError(KeyError):
    """Unknown suite, model or step; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would repr() the message and hide its line breaks
        return str(self.args[0]) if self.args else ""


class Suite:
    """A family of models with checkpoints by step.

    Attributes
    ----------
    id
        Registry id (``"pythia"``, ``"lhp-mini"``) or the folder path of a local suite.
    models
        Model ids, smallest first where sizes are known.
    """

    id: str
    kind: str  # "hub" or "local"
    #: Every model of the suite uses one tokenizer (Pythia, lhp suites); else it is checked per model.
    shared_tokenizer: bool = True

    @property
    def models(self) -> list[str]:
        raise NotImplementedError

    def steps(self, model: str) -> list[int]:
        raise NotImplementedError

    def tokens_seen(self, model: str, step: int) -> int:
        raise NotImplementedError

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        raise NotImplementedError

    def training_record(self):
        raise NotImplementedError

    def checkpoint_path(self, model: str, step: int) -> Path:
        raise NotImplementedError

    def resolve_model(self, model: str) -> str:
        """The canonical model id for ``model``; unknown ids raise :class:`SuiteError` listing valid ones."""
        if model in self.models:
            return model
        raise SuiteError(f"suite {self.id!r} has no model {model!r}; valid models: {', '.join(self.models)}")

    def check_step(self, model: str, step: int) -> None:
        """Raise :class:`SuiteError` naming the nearest saved steps if ``step`` was not saved."""
        steps = self.steps(model)
        if step not in steps:
            import bisect

            i = bisect.bisect_left(steps, step)
            near = steps[max(0, i - 2) : i + 2]
            raise SuiteError(
                f"suite {self.id!r} model {model!r} has no checkpoint at step {step}; nearest saved steps: {near} "
                f"({len(steps)} steps from {steps[0]} to {steps[-1]}; see Suite.steps(model))"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r}: {len(self.models)} models>"


class HubSuite(Suite):
    """A suite on the Hugging Face hub: each checkpoint is a ``(repo, revision)`` pair.

    Subclasses say which (:meth:`hub_ref`); loading, the snapshot folder and the weights hash
    are the same for all. :class:`PythiaSuite` names revisions ``step<N>``; OLMo's named
    branches are in :mod:`lhp_core.revisions`.
    """

    kind = "hub"
    org = ""  # shown by `lhp suite list`

    def hub_ref(self, model: str, step: int) -> tuple[str, str]:
        raise NotImplementedError

    def checkpoint_path(self, model: str, step: int) -> Path:
        """Local snapshot folder (downloaded into the HF cache unless ``HF_HUB_OFFLINE=1``)."""
        from huggingface_hub import snapshot_download

        repo, rev = self.hub_ref(model, step)
        return Path(snapshot_download(repo, revision=rev, allow_patterns=["*.json", "*.safetensors", "*.txt"]))

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        """Counted from the model's config at its first checkpoint (on the meta device: no weights)."""
        from transformers import AutoConfig

        repo, rev = self.hub_ref(model, self.steps(model)[0])
        return count_params(AutoConfig.from_pretrained(repo, revision=rev), nonembedding)

    def training_record(self):
        raise NotImplementedError(
            f"suite {self.id!r} has no training_record.nc (it was not trained by lhp); its held-out loss "
            "per checkpoint: lhp_core.metrics.loss.loss_over_steps(suite, held_out_texts)"
        )


def count_params(model, nonembedding: bool = False) -> int:
    """Parameters of a causal LM, given the model or its config (built on the meta device: no weights).

    Non-embedding leaves out the input embedding and an *untied* output embedding, as the Pythia
    paper counts; a tied output matrix is the input embedding and is counted once.
    """
    import torch  # torch is needed only here; `lhp suite list` stays light
    from transformers import AutoModelForCausalLM, PretrainedConfig

    if isinstance(model, PretrainedConfig):
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(model)
    total = sum(p.numel() for p in model.parameters())
    emb_in = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    emb = emb_in.numel() + (out.weight.numel() if out is not None and out.weight is not emb_in else 0)
    return total - emb if nonembedding else total


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


class LocalSuite(Suite):
    """A folder of Hugging Face checkpoints: ``<root>/<model>/step<N>/`` or ``<root>/step<N>/``.

    Parameters
    ----------
    root
        The suite folder.
    id
        Registry id; defaults to the folder path.
    preset, copy_reg, sizes
        For registered ``lhp-*`` suites: the ``lhp train`` preset that builds it, its copy-reg
        weight and the preset sizes it trains (None: all), so its models and steps are known
        before it is trained.
    tokens_per_step
        For folders without ``training_record.nc``: tokens consumed per step.
    """

    kind = "local"

    def __init__(self, root: str | Path, id: str | None = None, preset: str | None = None,
                 copy_reg: float = 0.0, tokens_per_step: int | None = None,
                 sizes: tuple[str, ...] | None = None) -> None:
        self.root = Path(root).expanduser()
        self.id = id or str(self.root)
        self.preset = preset
        self.copy_reg = copy_reg
        self.sizes = sizes
        self._tokens_per_step = tokens_per_step

    # -- discovery ---------------------------------------------------------
    @property
    def flat(self) -> bool:
        """True when checkpoints sit directly under the root (one model named after the folder)."""
        return self.root.is_dir() and any(_STEP_DIR.match(p.name) for p in self.root.iterdir() if p.is_dir())

    @property
    def is_trained(self) -> bool:
        return (self.root / "training_record.nc").exists() or (self.root.is_dir() and bool(self._discovered()))

    def _discovered(self) -> list[str]:
        if not self.root.is_dir():
            return []
        if self.flat:
            return [self.root.name]
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and any(_STEP_DIR.match(c.name) for c in p.iterdir() if c.is_dir())
        )

    @cached_property
    def _record(self):
        path = self.root / "training_record.nc"
        if not path.exists():
            return None
        import xarray as xr

        with xr.open_dataset(path) as ds:
            return ds.load()

    def _preset(self):
        return PRESETS[self.preset] if self.preset else None

    @property
    def models(self) -> list[str]:
        if self._record is not None:
            return [str(m) for m in self._record["model"].values]
        found = self._discovered()
        if found:
            return found
        if self.preset:
            return [s.name for s in self._preset().sizes if self.sizes is None or s.name in self.sizes]
        raise SuiteError(
            f"{self.root} holds no checkpoints: expected <model>/step<N>/ or step<N>/ folders with config.json "
            "and model.safetensors"
        )

    def model_dir(self, model: str) -> Path:
        model = self.resolve_model(model)
        return self.root if self.flat else self.root / model

    def _step_dirs(self, model: str) -> dict[int, tuple[Path, int | None]]:
        """Step -> (folder, tokens the folder name states or None)."""
        d = self.model_dir(model)
        out: dict[int, tuple[Path, int | None]] = {}
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.is_dir() and (m := _STEP_DIR.match(p.name)):
                step = int(m.group(1))
                if step in out:
                    raise SuiteError(f"{d} has two folders for step {step}: {out[step][0].name}, {p.name}; keep one")
                out[step] = (p, int(m.group(2)) * 10**9 if m.group(2) else None)
        return dict(sorted(out.items()))

    def steps(self, model: str) -> list[int]:
        """Saved steps: those ``training_record.nc`` lists (a lost step folder is then an error where it
        is loaded, never a step silently missing from a sweep), else the ``step<N>/`` folders found."""
        found = list(self._step_dirs(model))
        rec = self._record
        if found and rec is not None and model in rec["model"].values:
            return [int(s) for s in rec["step"].values]
        if found:
            return found
        if self.preset:
            return self._preset().steps()
        raise SuiteError(f"no step<N>/ folders in {self.model_dir(model)}")

    def tokens_seen(self, model: str, step: int) -> int:
        model = self.resolve_model(model)
        rec = self._record
        if rec is not None and step in rec["step"].values:
            return int(rec["tokens_seen"].sel(model=model, step=step))
        named = self._step_dirs(model).get(int(step), (None, None))[1]
        if named is not None and self._tokens_per_step is None:
            return named
        tps = self._tokens_per_step or (self._preset().tokens_per_step if self.preset else None)
        if tps is None:
            raise ValueError(
                f"tokens per step of {self.id!r} is unknown (no training_record.nc in {self.root}); "
                "pass get_suite(path, tokens_per_step=N)"
            )
        return int(step) * tps

    def n_params(self, model: str, nonembedding: bool = False) -> int:
        model = self.resolve_model(model)
        key = "n_params_nonembedding" if nonembedding else "n_params"
        if self._record is not None:
            return int(self._record[key].sel(model=model))
        from transformers import AutoConfig

        if self.preset and not self._discovered():  # not trained yet: count from the recipe
            size = next(z for z in self._preset().sizes if z.name == model)
            cfg = make_config(size, self._preset(), eager=False)
        else:
            cfg = AutoConfig.from_pretrained(self.checkpoint_path(model, self.steps(model)[0]))
        return count_params(cfg, nonembedding)

    def training_record(self):
        """The suite's ``training_record.nc`` as an in-memory ``xarray.Dataset`` (dims model, step)."""
        if self._record is None:
            fix = f"run lhp_core.train.ensure({self.id!r})" if self.preset else "this folder was not written by lhp train"
            raise FileNotFoundError(f"no training_record.nc in {self.root}; {fix}")
        return self._record

    def checkpoint_path(self, model: str, step: int) -> Path:
        model = self.resolve_model(model)
        path = self._step_dirs(model).get(int(step), (self.model_dir(model) / f"step{step}",))[0]
        if not path.is_dir():
            if self.preset and not self.root.exists():
                raise FileNotFoundError(
                    f"suite {self.id!r} is not trained yet ({self.root} does not exist); run "
                    f"lhp_core.train.ensure({self.id!r}) or `lhp train --preset {self.preset} --out {self.root}`"
                )
            self.check_step(model, step)
            raise FileNotFoundError(f"checkpoint folder {path} is missing; {self.restore_hint()}")
        return path

    def restore_hint(self) -> str:
        """How to bring back a missing or damaged step folder of this suite."""
        path = self.root / "train_args.json"
        if not path.exists():
            return "restore it from where this suite came from"
        args = json.loads(path.read_text())
        preset = PRESETS.get(args.get("preset", ""))
        cmd = f"lhp train --preset {args.get('preset', 'PRESET')} --out {self.root}"
        if args.get("seed"):
            cmd += f" --seed {args['seed']}"
        if args.get("copy_reg"):
            cmd += f" --copy-reg {args['copy_reg']}"
        if preset is not None and args.get("repeat_frac", preset.repeat_frac) != preset.repeat_frac:
            cmd += f" --repeat-frac {args['repeat_frac']}"
        trained = [str(m) for m in self._record["model"].values] if self._record is not None else []
        if preset is not None and trained and trained != [z.name for z in preset.sizes]:
            cmd += " --sizes " + " ".join(trained)
        return f"re-run `{cmd}`: it re-creates missing step folders and checks them against training_record.nc"


#: Sizes trained in a preset's ``-copyreg`` twin where not all: on 2 CPU cores the mini twin
#: trains beside lhp-mini within its time only for ``l``, the size whose induction transition is
#: clearest (copy-reg ``l`` took 322 s against 296 s plain: eager attention; all of lhp-mini 555 s).
TWIN_SIZES: dict[str, tuple[str, ...]] = {"mini": ("l",)}


def _lhp_suite(preset: str, copy_reg: float = 0.0) -> LocalSuite:
    sid = f"lhp-{preset}" + ("-copyreg" if copy_reg else "")
    return LocalSuite(config.suites_dir() / sid, id=sid, preset=preset, copy_reg=copy_reg,
                      sizes=TWIN_SIZES.get(preset) if copy_reg else None)


SUITES.register("pythia", lambda: PythiaSuite("pythia", deduped=False))
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


def get_suite(suite: str | Path | Suite, tokens_per_step: int | None = None) -> Suite:
    """A registered suite by id, or a local folder of checkpoints by path.

    Parameters
    ----------
    suite
        ``"pythia"``, ``"pythia-deduped"``, ``"lhp-mini"`` (see ``lhp suite list``), a path to a
        folder of ``step<N>/`` or ``<model>/step<N>/`` checkpoints, or a :class:`Suite`.
    tokens_per_step
        Only for local folders without ``training_record.nc``.
    """
    if isinstance(suite, Suite):
        return suite
    s = str(suite)
    if s in SUITES:
        return SUITES.get(s)
    path = Path(s).expanduser()
    if path.is_dir():
        return LocalSuite(path, tokens_per_step=tokens_per_step)
    raise SuiteError(
        f"unknown suite {s!r}: not a registered id and not an existing folder; valid suites: {', '.join(SUITES.names())} "
        "(or the path of a folder of step<N>/ checkpoints)"
    )


def check(suite: str | Suite, models: list[str] | None = None, progress: bool = True):
    """Hash every checkpoint's weights and flag steps whose weights equal an earlier step's.

    Returns
    -------
    pandas.DataFrame with columns ``model, step, weights_sha256, same_as_step`` (earliest step
    with identical weights, or -1), ``record_mismatch`` (True where a training record exists
    and lists a different hash: the file changed after training) and ``missing`` (True where the
    record lists a step whose folder is gone; its hash is ``""``).
    """
    import pandas as pd
    s = get_suite(suite)
    models = [s.resolve_model(m) for m in (models or s.models)]
    rec = s._record if isinstance(s, LocalSuite) else None
    rows = []
    todo = [(m, st) for m in models for st in s.steps(m)]
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


# ----------------------------------------------------------------------------- CLI


def _train_command(s: LocalSuite) -> str:
    """The ``lhp train`` command that builds the registered suite ``s`` (as :func:`lhp_core.train.ensure` would)."""
    cmd = f"lhp train --preset {s.preset}"
    if s.copy_reg:
        cmd += f" --copy-reg {s.copy_reg:g}"
    if s.sizes:
        cmd += f" --sizes {' '.join(s.sizes)}"
    return cmd


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="registered suites and whether they are available locally")
    show = sub.add_parser("show", help="models, parameter counts and steps of a suite")
    show.add_argument("suite")
    chk = sub.add_parser("check", help="hash weights across steps; report identical weights")
    chk.add_argument("suite")
    chk.add_argument("--model", action="append", default=None, help="only this model (repeatable)")
    chk.add_argument("--json", action="store_true", help="print the full table as JSON lines")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for sid in SUITES.names():
            s = SUITES.get(sid)
            where = f"hub ({s.org})" if s.kind == "hub" else (
                f"trained at {s.root}" if s.is_trained else f"not trained ({_train_command(s)})")
            print(f"{sid:22s} {where}")
        return 0
    s = get_suite(args.suite)
    if args.action == "show":
        print(f"suite {s.id} ({s.kind})")
        for m in s.models:
            st = s.steps(m)
            try:
                n, ne = s.n_params(m), s.n_params(m, nonembedding=True)
                params = f"{n:,} params ({ne:,} non-embedding)"
            except (FileNotFoundError, OSError, ValueError) as e:
                params = f"params unknown ({e})"
            print(f"  {m:22s} {params}; {len(st)} steps {st[0]}..{st[-1]}")
        if isinstance(s, LocalSuite) and s._record is not None:
            for k in ("preset", "recipe", "seed", "copy_reg", "device", "git_commit"):
                if k in s._record.attrs:
                    print(f"  {k}: {s._record.attrs[k]}")
        return 0
    df = check(s, args.model)
    if args.json:
        for row in df.to_dict("records"):
            print(json.dumps(row))
    groups = duplicate_groups(df)
    bad, missing = df[df["record_mismatch"]], df[df["missing"]]
    print(f"{len(df) - len(missing)} checkpoints hashed in {s.id}" + (f", {len(missing)} missing" if len(missing) else ""))
    for model, steps in groups:
        print(f"  {model}: identical weights at steps {steps}")
    if not groups:
        print("  no two steps of a model share weights")
    for row in bad.itertuples():
        print(f"  {row.model} step {row.step}: weights differ from training_record.nc (file changed or corrupt)")
    for row in missing.itertuples():
        print(f"  {row.model} step {row.step}: checkpoint folder missing (training_record.nc lists it)")
    if len(bad) or len(missing):
        fix = s.restore_hint() if isinstance(s, LocalSuite) else "restore those checkpoints"
        print(f"  to fix: delete the damaged step folders and {fix}")
    return 1 if len(bad) or len(missing) else 0
