"""Checkpoint folders as users have them, built from the project's own tiny checkpoints (no downloads).

* :func:`trainer_folder`: a Hugging Face ``Trainer`` output folder (``checkpoint-<N>/`` with
  ``trainer_state.json`` and ``training_args.bin`` written by transformers' own classes);
* :func:`training_args_bin`: a ``training_args.bin`` as ``Trainer._save`` writes it.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def training_args_bin(path: Path, **fields) -> Path:
    """``torch.save(TrainingArguments(...))`` with ``fields`` set, as the Trainer saves it.

    ``TrainingArguments.__post_init__`` needs ``accelerate``, which lhp does not install, so the
    object is made without it and given what ``__post_init__`` would add: the strategies as enums
    and the device, so the pickle names those classes as a real one does.
    """
    from transformers import TrainingArguments
    from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

    args = object.__new__(TrainingArguments)
    for f in dataclasses.fields(TrainingArguments):
        if f.default is not dataclasses.MISSING:
            setattr(args, f.name, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            setattr(args, f.name, f.default_factory())
    args.__dict__.update(output_dir=str(path.parent.parent), eval_strategy=IntervalStrategy.NO,
                         logging_strategy=IntervalStrategy.STEPS, save_strategy=SaveStrategy.STEPS,
                         lr_scheduler_type=SchedulerType.LINEAR, _n_gpu=0, _setup_devices=torch.device("cpu"))
    args.__dict__.update(fields)
    torch.save(args, path)
    return path


def trainer_state(path: Path, step: int, train_batch_size: int | None, tokens_per_step: int | None) -> Path:
    """``trainer_state.json`` of a checkpoint at ``step`` (transformers' ``TrainerState.save_to_json``);
    with ``tokens_per_step``, ``num_input_tokens_seen`` is logged as ``include_num_input_tokens_seen`` does."""
    from transformers import TrainerState

    log = [{"step": s, "loss": 5.0 - s / 10, "learning_rate": 1e-3, "epoch": s / 100}
           for s in range(1, step + 1) if s % 4 == 0]
    if tokens_per_step:
        for entry in log:
            entry["num_input_tokens_seen"] = entry["step"] * tokens_per_step
    state = TrainerState(global_step=step, max_steps=step, logging_steps=4, save_steps=8, log_history=log,
                         train_batch_size=train_batch_size,
                         num_input_tokens_seen=step * tokens_per_step if tokens_per_step else 0)
    state.save_to_json(str(path))
    return path


def trainer_folder(dest: Path, steps: dict[int, Path | None], train_batch_size: int | None = 4,
                   gradient_accumulation_steps: int = 2, logged_tokens_per_step: int | None = None,
                   tokenizer_at_root: bool = False) -> Path:
    """A Trainer output folder: ``dest/checkpoint-<N>/`` for each ``N`` of ``steps``.

    Each checkpoint is a copy of ``steps[N]`` (a checkpoint folder), or only a ``config.json``
    where it is None (enough to recognise the suite). ``tokenizer_at_root`` moves the tokenizer
    files out of the checkpoints into ``dest`` (as ``Trainer.save_model`` leaves them).
    """
    dest.mkdir(parents=True)
    for step, src in steps.items():
        ckpt = dest / f"checkpoint-{step}"
        if src is None:
            ckpt.mkdir()
            (ckpt / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
        else:
            shutil.copytree(src, ckpt)
        trainer_state(ckpt / "trainer_state.json", step, train_batch_size, logged_tokens_per_step)
        training_args_bin(ckpt / "training_args.bin", per_device_train_batch_size=train_batch_size or 8,
                          gradient_accumulation_steps=gradient_accumulation_steps)
        (ckpt / "rng_state.pth").write_bytes(b"")  # the Trainer's other files are there too, and ignored
        if tokenizer_at_root:
            for name in TOKENIZER_FILES:
                if (ckpt / name).exists():
                    shutil.move(ckpt / name, dest / name)
    return dest
