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

Command line: ``lhp suite list``, ``lhp suite show SUITE [--tokens-per-step N] [--revisions ...]
[--seq-len N] [--world-size N]``, ``lhp suite check SUITE``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

from lhp_core import config
from lhp_core.cli import positive_int
from lhp_core.identical import check_hub
from lhp_core.presets import PRESETS, make_config
from lhp_core.progress import bar
from lhp_core.registry import Registry
from lhp_core.schedule import PYTHIA_TOKENS_PER_STEP, pythia_steps
from lhp_core.weights import weights_sha256

#: Hub suites with named-branch checkpoints (OLMo) register themselves from lhp_core.revisions,
#: which builds on this module; the registry imports it on the first lookup.
SUITES: Registry[Suite] = Registry("suite", providers=["lhp_core.revisions"])
#: Kinds of suite made from a hub repo and named revisions (``lhp_core.revisions`` registers ``revisions``).
REPO_SUITES: Registry[Callable[..., Suite]] = Registry("hub repo suite kind", providers=["lhp_core.revisions"])
COPY_REG_DEFAULT = 1.0  # lambda used by the registered ``lhp-*-copyreg`` suites

# "step1000", or a branch downloaded under its OLMo name, "step1000-tokens4B"
_STEP_DIR = re.compile(r"^step(\d+)(?:-tokens(\d+)B)?$")
# what Hugging Face's Trainer saves every save_steps
_TRAINER_DIR = re.compile(r"^checkpoint-(\d+)$")
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
    form: str = "suite"  # what was recognised, in words ("folder of step<N>/ checkpoints")
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

    def tokens_source(self, model: str) -> str:
        """Where :meth:`tokens_seen` comes from, in words (``lhp suite show``, the store's attrs)."""
        raise NotImplementedError

    def describe(self) -> list[str]:
        """What was recognised, one line each: the kind of suite, then per model its steps and
        where ``tokens_seen`` comes from (``lhp suite show`` prints these before anything loads)."""
        lines = [f"suite {self.id} ({self.form})"]
        for m in self.models:
            st = self.steps(m)
            span = f"{st[0]}..{st[-1]}" if len(st) > 1 else f"{st[0]}"
            lines.append(f"  {m}: {len(st)} step{'s' * (len(st) != 1)} {span}; tokens_seen: {self.tokens_source(m)}")
        return lines

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
    form = "Hugging Face hub models"
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
    form = "folder of step<N>/ checkpoints"

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
    @staticmethod
    def step_of(name: str) -> tuple[int, int | None] | None:
        """``(step, tokens the name states or None)`` of a checkpoint folder name, None if it is not one."""
        m = _STEP_DIR.match(name)
        return (int(m.group(1)), int(m.group(2)) * 10**9 if m.group(2) else None) if m else None

    @property
    def folder_name(self) -> str:
        """The root folder's own name (``.`` and ``..`` made absolute; a link keeps its name): the model id of a
        one-model folder."""
        return Path(os.path.abspath(self.root)).name

    @property
    def flat(self) -> bool:
        """True when checkpoints sit directly under the root (one model named after the folder)."""
        return self.root.is_dir() and any(self.step_of(p.name) for p in self.root.iterdir() if p.is_dir())

    @property
    def is_trained(self) -> bool:
        return (self.root / "training_record.nc").exists() or (self.root.is_dir() and bool(self._discovered()))

    def _discovered(self) -> list[str]:
        if not self.root.is_dir():
            return []
        if self.flat:
            return [self.folder_name]
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".")
            and any(self.step_of(c.name) for c in p.iterdir() if c.is_dir())
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
            if p.is_dir() and (found := self.step_of(p.name)):
                step = found[0]
                if step in out:
                    raise SuiteError(f"{d} has two folders for step {step}: {out[step][0].name}, {p.name}; keep one")
                out[step] = (p, found[1])
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
                f"tokens per step of {self.id!r} is unknown (no training_record.nc in {self.root}, and its folder "
                "names state no tokens); pass --tokens-per-step N (get_suite(path, tokens_per_step=N))"
            )
        return int(step) * tps

    def tokens_source(self, model: str) -> str:
        model = self.resolve_model(model)
        if self._record is not None:
            return f"from {self.root / 'training_record.nc'}"
        if self._tokens_per_step is not None:
            return f"step x {self._tokens_per_step:,} tokens (--tokens-per-step)"
        if self.preset:
            return f"step x {self._preset().tokens_per_step:,} tokens (preset {self.preset})"
        named = [t for _, t in self._step_dirs(model).values()]
        if named and all(t is not None for t in named):
            return "from the folder names (step<N>-tokens<M>B)"
        return "unknown: pass --tokens-per-step N"

    def tokenizer_dir(self, model: str, step: int) -> Path:
        """The checkpoint folder when it holds the tokenizer, else the suite's ``tokenizer/`` folder."""
        path = self.checkpoint_path(model, step)
        return path if _has_tokenizer(path) else self.root / "tokenizer"

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
            fix = (f"run lhp_core.train.ensure({self.id!r})" if self.preset
                   else "this folder was not written by lhp train")
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


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({e}); restore it from the training run") from None


class _Stub:
    """Stands in for every class or function a pickle names, so reading one runs no code of its own."""

    def __init__(self, *args, **kwargs) -> None:
        self.args = args

    def __setstate__(self, state) -> None:
        self.state = state[0] if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict) else state


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # never import: every global becomes a stub
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):  # torch's tensor references: not needed for the arguments
        return None


def trainer_arguments(path: str | Path) -> dict:
    """The fields of a Hugging Face Trainer's ``training_args.bin`` (a ``torch.save`` of ``TrainingArguments``).

    The pickle is read with every class it names replaced by an inert stand-in, so nothing in it
    runs (``torch.load`` would import and call what the file says, or with ``weights_only=True``
    refuse ``TrainingArguments``). Values that are objects (enums, devices) come back as stand-ins;
    numbers and strings as they were saved.

    Raises
    ------
    ValueError
        The file is not a ``torch.save`` zip archive holding a pickled object with fields.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            obj = _StubUnpickler(io.BytesIO(z.read(name))).load()
    except (OSError, StopIteration, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"{path} is not a torch.save archive of TrainingArguments ({type(e).__name__}: {e})") from None
    state = getattr(obj, "state", None)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no TrainingArguments fields")
    return state


class TrainerSuite(LocalSuite):
    """The output folder of a Hugging Face ``Trainer``: ``<root>/checkpoint-<N>/`` (one model, named after the folder).

    Steps are the ``N`` of the folder names (optimizer steps). ``tokens_seen`` comes from, in this order:

    1. ``tokens_per_step`` when given: ``step x tokens_per_step``;
    2. ``num_input_tokens_seen`` in every checkpoint's ``trainer_state.json`` (the Trainer logs it,
       summed over processes, when run with ``include_num_input_tokens_seen``);
    3. ``train_batch_size`` (``trainer_state.json``: sequences per device and step) x
       ``gradient_accumulation_steps`` (``training_args.bin``, read by :func:`trainer_arguments`)
       x ``world_size`` (processes; default 1) x ``sequence_length`` (tokens per sequence: given
       by the user, for packed sequences), times the step.

    Anything else is unknown, and :meth:`tokens_seen` says which option to pass.
    """

    form = "Hugging Face Trainer output (checkpoint-<N>/ folders)"

    def __init__(self, root: str | Path, tokens_per_step: int | None = None, sequence_length: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__(root, tokens_per_step=tokens_per_step)
        self.sequence_length = sequence_length
        self.world_size = world_size

    @staticmethod
    def step_of(name: str) -> tuple[int, int | None] | None:
        m = _TRAINER_DIR.match(name)
        return (int(m.group(1)), None) if m else None

    @property
    def flat(self) -> bool:
        return True

    def _discovered(self) -> list[str]:
        return [self.folder_name] if LocalSuite.flat.fget(self) else []

    def trainer_state(self, step: int) -> dict:
        """``trainer_state.json`` of the checkpoint at ``step`` ({} when the folder has none)."""
        path = self.checkpoint_path(self.folder_name, step) / "trainer_state.json"
        return _read_json(path) if path.is_file() else {}

    @cached_property
    def _tokens(self) -> tuple[dict[int, int] | None, int | None, str]:
        """``(tokens per checkpoint, tokens per step, source in words)``; both None when unknown."""
        steps = list(self._step_dirs(self.folder_name))
        if self._tokens_per_step is not None:
            return None, self._tokens_per_step, f"step x {self._tokens_per_step:,} tokens (--tokens-per-step)"
        logged = {s: _logged_tokens(self.trainer_state(s), s) for s in steps}
        if steps and all(v is not None for v in logged.values()):
            unused = " (--seq-len unused)" if self.sequence_length else ""
            return logged, None, f"from num_input_tokens_seen in each checkpoint's trainer_state.json{unused}"
        last = self.checkpoint_path(self.folder_name, steps[-1])
        batch = self.trainer_state(steps[-1]).get("train_batch_size")
        why = []
        if not batch:
            why.append(f"{last / 'trainer_state.json'} has no train_batch_size")
        try:
            accum = int(trainer_arguments(last / "training_args.bin").get("gradient_accumulation_steps", 1))
        except (OSError, ValueError, TypeError) as e:
            accum = None
            why.append(f"gradient_accumulation_steps unreadable ({e})")
        # --seq-len completes the product only when the batch size and gradient accumulation were read.
        fix = ("pass --seq-len N (tokens per training sequence) or --tokens-per-step N" if not why else
               "pass --tokens-per-step N (tokens per optimizer step: batch size x gradient accumulation x world "
               "size x sequence length); --seq-len cannot complete it")
        if self.sequence_length is None:
            why.append("the sequence length is not given (--seq-len)")
        if why:
            return None, None, ("unknown: trainer_state.json logs no num_input_tokens_seen, and " + "; ".join(why)
                                + "; " + fix)
        world = self.world_size or 1
        tps = int(batch) * accum * world * self.sequence_length
        world_note = "--world-size" if self.world_size else "assumed; pass --world-size for multi-process runs"
        return None, tps, (f"step x {tps:,} tokens = train_batch_size {batch} (trainer_state.json) x "
                           f"gradient_accumulation_steps {accum} (training_args.bin) x world size {world} "
                           f"({world_note}) x sequence length {self.sequence_length} (--seq-len)")

    def tokens_seen(self, model: str, step: int) -> int:
        self.check_step(self.resolve_model(model), int(step))
        per_checkpoint, tps, source = self._tokens
        if per_checkpoint is not None:
            return per_checkpoint[int(step)]
        if tps is None:
            raise ValueError(f"tokens seen by {self.id!r} are {source}")
        return int(step) * tps

    def tokens_source(self, model: str) -> str:
        self.resolve_model(model)
        return self._tokens[2]

    def tokenizer_dir(self, model: str, step: int) -> Path:
        """The checkpoint's tokenizer, else the one ``Trainer.save_model`` left in the output folder."""
        path = self.checkpoint_path(model, step)
        for d in (path, self.root, self.root / "tokenizer"):
            if _has_tokenizer(d):
                return d
        raise FileNotFoundError(f"no tokenizer files (tokenizer.json or tokenizer_config.json) in {path} or "
                                f"{self.root}; save the tokenizer into the output folder "
                                "(tokenizer.save_pretrained(folder))")


def _logged_tokens(state: dict, step: int) -> int | None:
    """Tokens seen at ``step`` as the Trainer logged them: the state's own counter, else a log entry of that step."""
    n = state.get("num_input_tokens_seen")
    if n:
        return int(n)
    for entry in state.get("log_history", []):
        if entry.get("step") == step and entry.get("num_input_tokens_seen"):
            return int(entry["num_input_tokens_seen"])
    return None


class ModelFolderSuite(LocalSuite):
    """One checkpoint folder (``config.json`` and weights): a suite of one model at one step.

    The step is the folder name's (``step<N>``, ``checkpoint-<N>``), else ``global_step`` of a
    ``trainer_state.json`` in it, else 0 (unknown). ``tokens_seen`` is ``step x tokens_per_step``
    when given, else the state's ``num_input_tokens_seen``; with an unknown step both are 0, and
    :meth:`tokens_source` says so.
    """

    form = "single model folder"

    @property
    def flat(self) -> bool:
        return True

    def _discovered(self) -> list[str]:
        return [self.folder_name]

    @cached_property
    def _step(self) -> tuple[int, str]:
        """``(step, where it comes from)``."""
        named = LocalSuite.step_of(self.folder_name) or TrainerSuite.step_of(self.folder_name)
        if named:
            return named[0], "the folder name"
        state = self._state
        if state.get("global_step") is not None:
            return int(state["global_step"]), "trainer_state.json"
        return 0, ""

    @cached_property
    def _state(self) -> dict:
        path = self.root / "trainer_state.json"
        return _read_json(path) if path.is_file() else {}

    def _step_dirs(self, model: str) -> dict[int, tuple[Path, int | None]]:
        return {self._step[0]: (self.root, None)}

    def tokens_seen(self, model: str, step: int) -> int:
        self.check_step(self.resolve_model(model), int(step))
        step, where = self._step
        if self._tokens_per_step is not None:
            return step * self._tokens_per_step
        logged = _logged_tokens(self._state, step)
        if logged is not None:
            return logged
        if not where:
            return 0
        raise ValueError(f"tokens seen by {self.id!r} at step {step} (from {where}) are unknown; "
                         "pass --tokens-per-step N")

    def tokens_source(self, model: str) -> str:
        self.resolve_model(model)
        step, where = self._step
        if self._tokens_per_step is not None:
            return f"step x {self._tokens_per_step:,} tokens (--tokens-per-step)" + (
                "" if where else "; the step is unknown, so 0")
        if _logged_tokens(self._state, step) is not None:
            return "from num_input_tokens_seen in trainer_state.json"
        if not where:
            return ("0 by convention: the step is unknown (no step in the folder name, no trainer_state.json), "
                    "so it is 0")
        return "unknown: pass --tokens-per-step N"

    def tokenizer_dir(self, model: str, step: int) -> Path:
        return self.root


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

    Raises
    ------
    SuiteError
        The string is none of these, or an option is given that the suite it names does not use.
    """
    options = {"tokens_per_step": tokens_per_step, "revisions": revisions, "sequence_length": sequence_length,
               "world_size": world_size}
    given = [k for k, v in options.items() if v is not None]

    def refuse(names: Sequence[str], what: str) -> None:
        extra = [n for n in given if n not in names]
        if extra:
            flags = ", ".join(_OPTION_FLAGS[n] for n in extra)
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
        if any(_TRAINER_DIR.match(p.name) for p in path.iterdir() if p.is_dir()):
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


#: The command-line flag of each get_suite option, for messages.
_OPTION_FLAGS = {"tokens_per_step": "--tokens-per-step", "revisions": "--revisions", "sequence_length": "--seq-len",
                 "world_size": "--world-size"}


def add_suite_options(parser: argparse.ArgumentParser) -> None:
    """The options that say what a suite without a training record is (``lhp sweep``, ``lhp suite show``)."""
    g = parser.add_argument_group("suites without a training record")
    g.add_argument("--tokens-per-step", type=positive_int, default=None,
                   help="tokens per optimizer step: tokens_seen = step x N (folders and hub repos)")
    g.add_argument("--revisions", nargs="+", default=None, metavar="REV",
                   help="hub repo checkpoints: branch/tag names (main step1000; NAME=STEP sets a step) or "
                        "patterns over its branches ('step*')")
    g.add_argument("--seq-len", type=positive_int, default=None, dest="sequence_length",
                   help="Trainer folders: tokens per training sequence (tokens/step = train_batch_size x "
                        "gradient accumulation x world size x this)")
    g.add_argument("--world-size", type=positive_int, default=None,
                   help="Trainer folders: number of training processes (default 1)")


def suite_from_args(args: argparse.Namespace) -> str | Suite:
    """The suite the command line names: its string when no option is given, else the :class:`Suite` built with them."""
    options = {k: getattr(args, k, None) for k in _OPTION_FLAGS}
    if all(v is None for v in options.values()):
        return args.suite
    return get_suite(args.suite, **options)


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
    show = sub.add_parser("show", help="what a suite is: its kind, models, steps, where tokens_seen comes from, "
                                       "parameter counts")
    show.add_argument("suite", help="registered id, folder (Trainer output, step<N>/ folders, one model) or hub repo")
    add_suite_options(show)
    chk = sub.add_parser("check", help="hash weights across steps; report identical weights")
    chk.add_argument("suite")
    chk.add_argument("--model", action="append", default=None, help="only this model (repeatable)")
    chk.add_argument("--json", action="store_true", help="print the full table as JSON lines")
    chk.add_argument("--strict", action="store_true", help="exit 1 when steps share identical weights")
    chk.add_argument("--offline", action="store_true",
                     help="hub suites: read the revisions in the Hugging Face cache, not the hub's file metadata")
    add_suite_options(chk)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for sid in SUITES.names():
            s = SUITES.get(sid)
            where = f"hub ({s.org})" if s.kind == "hub" else (
                f"trained at {s.root}" if s.is_trained else f"not trained ({_train_command(s)})")
            print(f"{sid:22s} {where}")
        return 0
    s = get_suite(suite_from_args(args))
    if args.action == "show":
        for line in s.describe():  # what was recognised first: it needs no weights or configs
            print(line, flush=True)
        for m in s.models:
            try:
                n, ne = s.n_params(m), s.n_params(m, nonembedding=True)
                params = f"{n:,} params ({ne:,} non-embedding)"
            except (FileNotFoundError, OSError, ValueError) as e:
                params = f"params unknown ({e})"
            print(f"  {m}: {params}")
        if isinstance(s, LocalSuite) and s._record is not None:
            for k in ("preset", "recipe", "seed", "copy_reg", "device", "git_commit"):
                if k in s._record.attrs:
                    print(f"  {k}: {s._record.attrs[k]}")
        return 0
    if isinstance(s, HubSuite):
        return check_hub(s, args.model, offline=args.offline, strict=args.strict, as_json=args.json)
    df = check(s, args.model)
    if args.json:
        for row in df.to_dict("records"):
            print(json.dumps(row))
    groups = duplicate_groups(df)
    bad, missing = df[df["record_mismatch"]], df[df["missing"]]
    print(f"{len(df) - len(missing)} checkpoints hashed in {s.id}"
          + (f", {len(missing)} missing" if len(missing) else ""))
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
    return 1 if len(bad) or len(missing) or (args.strict and groups) else 0
