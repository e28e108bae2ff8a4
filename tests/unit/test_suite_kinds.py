"""Suites from the folders users have: Trainer output, step<N>/ folders, one model folder; what
``get_suite`` recognises, the steps, where tokens_seen comes from, and the errors that name the fix."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from lhp_core.cli import main
from lhp_core.suites import (
    LocalSuite,
    ModelFolderSuite,
    SuiteError,
    TrainerSuite,
    get_suite,
    trainer_arguments,
)
from tests.checkpoint_folders import trainer_folder, training_args_bin


def configs_only(tmp_path: Path, **kw) -> Path:
    return trainer_folder(tmp_path / "run", {8: None, 16: None, 24: None}, **kw)


def test_trainer_folder_tokens_from_logged_num_input_tokens_seen(tmp_path):
    s = get_suite(configs_only(tmp_path, logged_tokens_per_step=300))
    assert isinstance(s, TrainerSuite) and s.models == ["run"] and s.steps("run") == [8, 16, 24]
    assert [s.tokens_seen("run", st) for st in (8, 16, 24)] == [2400, 4800, 7200]
    assert s.tokens_source("run") == "from num_input_tokens_seen in each checkpoint's trainer_state.json"


def test_trainer_folder_tokens_from_the_log_history_entry_of_the_step(tmp_path):
    """Only the log entry of the step has the count (the state's own counter is 0)."""
    root = configs_only(tmp_path, logged_tokens_per_step=300)
    for st in (8, 16, 24):
        path = root / f"checkpoint-{st}" / "trainer_state.json"
        state = json.loads(path.read_text())
        state["num_input_tokens_seen"] = 0
        path.write_text(json.dumps(state))
    assert get_suite(root).tokens_seen("run", 16) == 4800


def test_trainer_folder_tokens_from_batch_accumulation_world_and_sequence_length(tmp_path):
    root = configs_only(tmp_path, train_batch_size=4, gradient_accumulation_steps=3)
    s = get_suite(root, sequence_length=64)
    assert s.tokens_seen("run", 16) == 16 * 4 * 3 * 1 * 64
    src = s.tokens_source("run")
    assert ("train_batch_size 4 (trainer_state.json) x gradient_accumulation_steps 3 (training_args.bin) x "
            "world size 1 (assumed; pass --world-size" in src) and "sequence length 64 (--seq-len)" in src
    s = get_suite(root, sequence_length=64, world_size=8)
    assert s.tokens_seen("run", 16) == 16 * 4 * 3 * 8 * 64 and "world size 8 (--world-size)" in s.tokens_source("run")


def test_trainer_folder_tokens_per_step_given_wins(tmp_path):
    s = get_suite(configs_only(tmp_path, logged_tokens_per_step=300), tokens_per_step=7)
    assert s.tokens_seen("run", 24) == 168 and s.tokens_source("run") == "step x 7 tokens (--tokens-per-step)"


def test_trainer_folder_without_a_token_count_names_the_options(tmp_path):
    s = get_suite(configs_only(tmp_path))
    assert s.tokens_source("run").startswith("unknown: trainer_state.json logs no num_input_tokens_seen")
    with pytest.raises(ValueError, match=r"--seq-len N \(tokens per training sequence\) or --tokens-per-step N"):
        s.tokens_seen("run", 8)
    (tmp_path / "run" / "checkpoint-24" / "training_args.bin").unlink()
    # Gradient accumulation is unknown now, so --seq-len cannot complete the count: the hint names the option
    # that works, with and without --seq-len (before, both suggested --seq-len, which failed the same way).
    for given in ({}, {"sequence_length": 64}):
        s = get_suite(tmp_path / "run", **given)
        with pytest.raises(ValueError, match=r"gradient_accumulation_steps unreadable .*; pass --tokens-per-step N "
                           r"\(tokens per optimizer step: batch size x gradient accumulation x world size x sequence "
                           r"length\); --seq-len cannot complete it$"):
            s.tokens_seen("run", 8)
    s = get_suite(tmp_path / "run", tokens_per_step=4 * 3 * 64)
    assert s.tokens_seen("run", 8) == 8 * 4 * 3 * 64


def test_trainer_arguments_reads_the_fields(tmp_path):
    path = training_args_bin(tmp_path / "training_args.bin", per_device_train_batch_size=5,
                             gradient_accumulation_steps=4, learning_rate=3e-4)
    args = trainer_arguments(path)
    got = (args["per_device_train_batch_size"], args["gradient_accumulation_steps"], args["learning_rate"])
    assert got == (5, 4, 3e-4)
    assert type(args["save_strategy"]).__name__ == "SaveStrategy"  # an enum, seen but never imported


def test_trainer_arguments_runs_nothing_a_pickle_asks_for(tmp_path):
    """A training_args.bin that runs code when unpickled (as torch.load(weights_only=False) would)."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    data = pickle.dumps(Payload())
    pickle.loads(data)  # the file is dangerous: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data)
    (tmp_path / "training_args.bin").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="holds no TrainingArguments fields"):
        trainer_arguments(tmp_path / "training_args.bin")
    assert not marker.exists()
    (tmp_path / "plain.bin").write_bytes(data)
    with pytest.raises(ValueError, match="not a torch.save archive"):
        trainer_arguments(tmp_path / "plain.bin")


def test_trainer_folder_tokenizer_at_the_root(tmp_path, tiny_suite):
    root = trainer_folder(tmp_path / "run", {8: tiny_suite / "s" / "step8"}, tokenizer_at_root=True)
    s = get_suite(root, tokens_per_step=512)
    assert not (root / "checkpoint-8" / "tokenizer.json").exists()
    assert s.tokenizer_dir("run", 8) == root
    (root / "tokenizer.json").unlink()
    (root / "tokenizer_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no tokenizer files .*tokenizer\.save_pretrained"):
        s.tokenizer_dir("run", 8)


@pytest.mark.parametrize(("name", "state", "step", "tokens", "source"), [
    ("final", None, 0, 0, "0 by convention: the step is unknown"),
    ("step1000", None, 1000, None, "unknown: pass --tokens-per-step N"),
    ("checkpoint-500", None, 500, None, "unknown"),
    ("final", {"global_step": 40, "num_input_tokens_seen": 20480}, 40, 20480, "from num_input_tokens_seen"),
    ("final", {"global_step": 40}, 40, None, "unknown"),
])
def test_model_folder_step_and_tokens(tmp_path, name, state, step, tokens, source):
    root = tmp_path / name
    root.mkdir()
    (root / "config.json").write_text("{}")
    if state is not None:
        (root / "trainer_state.json").write_text(json.dumps(state))
    s = get_suite(root)
    assert isinstance(s, ModelFolderSuite) and s.models == [name] and s.steps(name) == [step]
    assert s.checkpoint_path(name, step) == root and s.tokenizer_dir(name, step) == root
    assert s.tokens_source(name).startswith(source)
    if tokens is None:
        with pytest.raises(ValueError, match="pass --tokens-per-step N"):
            s.tokens_seen(name, step)
    else:
        assert s.tokens_seen(name, step) == tokens
    assert get_suite(root, tokens_per_step=10).tokens_seen(name, step) == step * 10


def test_model_folder_named_dot_is_named_by_its_real_folder(tmp_path, monkeypatch):
    root = tmp_path / "my-model"
    root.mkdir()
    (root / "config.json").write_text("{}")
    monkeypatch.chdir(root)
    assert get_suite(".").models == ["my-model"]


def test_step_folder_needs_tokens_per_step_and_takes_it(tiny_suite):
    s = get_suite(tiny_suite / "s")
    assert isinstance(s, LocalSuite) and s.flat and s.steps("s") == [0, 1, 2, 4, 8, 16, 24]
    with pytest.raises(ValueError, match="pass --tokens-per-step N"):
        s.tokens_seen("s", 8)
    assert get_suite(tiny_suite / "s", tokens_per_step=512).tokens_seen("s", 8) == 4096


def test_options_that_do_not_apply_are_refused(tmp_path, tiny_suite):
    with pytest.raises(SuiteError, match="--tokens-per-step does not apply to the registered suite 'pythia'"):
        get_suite("pythia", tokens_per_step=3)
    with pytest.raises(SuiteError, match="training_record.nc, which gives tokens_seen; leave out --tokens-per-step"):
        get_suite(tiny_suite, tokens_per_step=3)
    with pytest.raises(SuiteError, match="--revisions does not apply"):
        get_suite(tiny_suite / "s", revisions=["main"])
    with pytest.raises(SuiteError, match="--seq-len, --world-size do not apply"):
        get_suite(tiny_suite / "s", sequence_length=64, world_size=2)
    root = configs_only(tmp_path)
    with pytest.raises(SuiteError, match="--revisions does not apply"):
        get_suite(root, revisions=["main"])
    with pytest.raises(SuiteError, match="looks like a hub repo id: name its checkpoints with --revisions"):
        get_suite("someone/model")
    with pytest.raises(SuiteError, match="neither an existing folder nor a hub repo id"):
        get_suite(str(tmp_path / "a" / "b" / "c"), revisions=["main"])


def test_suite_show_says_what_was_recognised(tmp_path, tiny_suite, capsys):
    root = configs_only(tmp_path, logged_tokens_per_step=300)
    assert main(["suite", "show", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"suite {root} (Hugging Face Trainer output (checkpoint-<N>/ folders))"
    assert out[1] == ("  run: 3 steps 8..24; tokens_seen: from num_input_tokens_seen in each checkpoint's "
                      "trainer_state.json")
    assert main(["suite", "show", str(tiny_suite / "s"), "--tokens-per-step", "512"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(folder of step<N>/ checkpoints)")
    assert out[1] == "  s: 7 steps 0..24; tokens_seen: step x 512 tokens (--tokens-per-step)"
    assert out[2].startswith("  s: 37,344 params")
    assert main(["suite", "show", str(tiny_suite / "s" / "step24")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(single model folder)")
    assert out[1] == "  step24: 1 step 24; tokens_seen: unknown: pass --tokens-per-step N"
    assert main(["suite", "show", str(root), "--revisions", "main"]) == 1
    assert "--revisions does not apply" in capsys.readouterr().err


def test_suite_options_from_the_environment_apply_where_a_call_gives_none(tmp_path, monkeypatch):
    """``lhp book --suite RUN --seq-len N`` reaches the studies in the chapters' kernels this way."""
    root = configs_only(tmp_path, train_batch_size=4, gradient_accumulation_steps=3)
    monkeypatch.setenv("LHP_SUITE_OPTIONS", json.dumps({str(root): {"sequence_length": 64}}))
    assert get_suite(str(root)).tokens_seen("run", 16) == 16 * 4 * 3 * 64
    assert get_suite(str(root), tokens_per_step=7).tokens_seen("run", 16) == 16 * 7  # a call's own options win
    other = configs_only(tmp_path / "other")
    with pytest.raises(ValueError, match="pass --seq-len N"):  # options belong to the suite they name
        get_suite(str(other)).tokens_seen("run", 16)
    monkeypatch.setenv("LHP_SUITE_OPTIONS", json.dumps({str(root): {"seq_len": 64}}))
    with pytest.raises(SuiteError, match=r"LHP_SUITE_OPTIONS gives .* \['seq_len'\], which are not suite options; "
                                         r"use tokens_per_step, revisions, sequence_length, world_size"):
        get_suite(str(root))
    monkeypatch.setenv("LHP_SUITE_OPTIONS", json.dumps({"pythia": {"tokens_per_step": 5}}))
    with pytest.raises(SuiteError, match="--tokens-per-step does not apply to the registered suite 'pythia'"):
        get_suite("pythia")  # checked as if given on the command line
    for bad in ("{not json", '["a"]', '{"x": 3}'):
        monkeypatch.setenv("LHP_SUITE_OPTIONS", bad)
        with pytest.raises(ValueError, match=r'^LHP_SUITE_OPTIONS is not (JSON|a JSON object of objects).*; set it '
                                             r'to \{"SUITE": \{"tokens_per_step": N\}\} or unset it$'):
            get_suite(str(root))
