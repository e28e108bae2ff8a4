"""Suites on local disk: a folder of ``step<N>/`` checkpoints or of ``<model>/step<N>/`` checkpoints, with
or without lhp's ``training_record.nc`` (:class:`LocalSuite`, also what ``lhp train`` writes); the output
folder of a Hugging Face ``Trainer`` (:class:`TrainerSuite`); one model folder (:class:`ModelFolderSuite`).

:func:`lhp_core.suites.get_suite` recognises them from a path and registers the ``lhp-*`` suites.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import zipfile
from functools import cached_property
from pathlib import Path

from lhp_core.presets import PRESETS, make_config
from lhp_core.suite_base import Suite, SuiteError, count_params

# "step1000", or a branch downloaded under its OLMo name, "step1000-tokens4B"
_STEP_DIR = re.compile(r"^step(\d+)(?:-tokens(\d+)B)?$")
# what Hugging Face's Trainer saves every save_steps
_TRAINER_DIR = re.compile(r"^checkpoint-(\d+)$")


def is_trainer_output(path: Path) -> bool:
    """Whether the folder ``path`` holds a Hugging Face ``Trainer``'s ``checkpoint-<N>/`` folders."""
    return any(_TRAINER_DIR.match(p.name) for p in path.iterdir() if p.is_dir())


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
    def record(self):
        path = self.root / "training_record.nc"
        if not path.exists():
            return None
        import xarray as xr  # xarray takes seconds to import; only a suite with a training record needs it

        with xr.open_dataset(path) as ds:
            return ds.load()

    @property
    def recipe(self):
        """The :class:`lhp_core.presets.Preset` of a registered ``lhp-*`` suite; None for other folders."""
        return PRESETS[self.preset] if self.preset else None

    @property
    def models(self) -> list[str]:
        if self.record is not None:
            return [str(m) for m in self.record["model"].values]
        found = self._discovered()
        if found:
            return found
        if self.preset:
            return [s.name for s in self.recipe.sizes if self.sizes is None or s.name in self.sizes]
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
        rec = self.record
        if found and rec is not None and model in rec["model"].values:
            return [int(s) for s in rec["step"].values]
        if found:
            return found
        if self.preset:
            return self.recipe.steps()
        raise SuiteError(f"no step<N>/ folders in {self.model_dir(model)}")

    def tokens_seen(self, model: str, step: int) -> int:
        model = self.resolve_model(model)
        rec = self.record
        if rec is not None and step in rec["step"].values:
            return int(rec["tokens_seen"].sel(model=model, step=step))
        named = self._step_dirs(model).get(int(step), (None, None))[1]
        if named is not None and self._tokens_per_step is None:
            return named
        tps = self._tokens_per_step or (self.recipe.tokens_per_step if self.preset else None)
        if tps is None:
            raise ValueError(
                f"tokens per step of {self.id!r} is unknown (no training_record.nc in {self.root}, and its folder "
                "names state no tokens); pass --tokens-per-step N (get_suite(path, tokens_per_step=N))"
            )
        return int(step) * tps

    def tokens_source(self, model: str) -> str:
        model = self.resolve_model(model)
        if self.record is not None:
            return f"from {self.root / 'training_record.nc'}"
        if self._tokens_per_step is not None:
            return f"step x {self._tokens_per_step:,} tokens (--tokens-per-step)"
        if self.preset:
            return f"step x {self.recipe.tokens_per_step:,} tokens (preset {self.preset})"
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
        if self.record is not None:
            return int(self.record[key].sel(model=model))
        from transformers import AutoConfig  # transformers takes seconds to import; `lhp suite list` needs none

        if self.preset and not self._discovered():  # not trained yet: count from the recipe
            size = next(z for z in self.recipe.sizes if z.name == model)
            cfg = make_config(size, self.recipe, eager=False)
        else:
            cfg = AutoConfig.from_pretrained(self.checkpoint_path(model, self.steps(model)[0]))
        return count_params(cfg, nonembedding)

    def training_record(self):
        """The suite's ``training_record.nc`` as an in-memory ``xarray.Dataset`` (dims model, step)."""
        if self.record is None:
            fix = (f"run lhp_core.train.ensure({self.id!r})" if self.preset
                   else "this folder was not written by lhp train")
            raise FileNotFoundError(f"no training_record.nc in {self.root}; {fix}")
        return self.record

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
        trained = [str(m) for m in self.record["model"].values] if self.record is not None else []
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
