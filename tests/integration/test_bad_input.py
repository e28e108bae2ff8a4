"""Bad input and existing data, one case per row: nothing lost, nothing silently wrong, every
error one line that names the fix.

Each case asserts the exact behaviour: the error type and that its message names the fix, or
that no user file was touched (every file's bytes hashed before and after). The cases marked
*silent before* exited 0 with a wrong or destructive result before these checks existed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from lhp_core import open_results
from lhp_core.checkpoints import TokenizerMismatch, load
from lhp_core.cli import main
from lhp_core.stimuli import Stimuli, StimulusError, read_stimuli
from lhp_core.store import LOCK, MARKER, StoreError, is_store
from lhp_core.suites import get_suite
from lhp_core.sweep import sweep
from lhp_core.weights import CorruptCheckpoint, weights_sha256
from tests.hub_cache import fake_hub_snapshot

SMALL = {"sites": ["resid"], "reducers": ["stimulus_mean"], "models": ["s"], "steps": [0, 24], "progress": False}


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (and the set of folders): what "untouched" means. A
    store's lock file is left out: each sweep writes its holder there."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if rel == LOCK:
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def stim() -> Stimuli:
    return Stimuli.from_texts(["the cat sat on the mat .", "a dog ran far away ."], ids=["a", "b"])


@dataclass
class Ctx:
    suite: Path  # the session's trained tiny suite (never modified)
    tmp: Path
    capsys: pytest.CaptureFixture

    def copy(self) -> Path:
        """A private copy of the suite, for cases that damage it."""
        dst = self.tmp / "suite"
        shutil.copytree(self.suite, dst)
        return dst

    def user_folder(self) -> Path:
        """A folder of a user's files that is not a results store."""
        f = self.tmp / "results"
        (f / "sub").mkdir(parents=True)
        (f / "notes.txt").write_text("my notes\n")
        (f / "sub" / "data.csv").write_text("x,y\n1,2\n")
        return f

    def cli(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in argv])
        out = self.capsys.readouterr()
        return code, out.out, out.err


CASES: dict[str, Callable[[Ctx], None]] = {}


def case(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    CASES[fn.__name__] = fn
    return fn


# ---- results stores -----------------------------------------------------------------------
@case
def overwrite_of_a_folder_that_is_not_a_store(c: Ctx) -> None:
    """Silent before: `--overwrite` deleted notes.txt and sub/data.csv and exited 0."""
    folder = c.user_folder()
    before = digest(folder)
    with pytest.raises(StoreError, match=r"not an lhp results store.*nothing was changed or deleted.*new --out"):
        sweep(str(c.suite), stim(), folder, overwrite=True, **SMALL)
    code, _, err = c.cli("sweep", c.suite, "--stimuli", _txt(c), "--out", folder, "--overwrite", "--models", "s",
                         "--steps", "24", "--device", "cpu")
    assert (code == 1 and err.count("\n") == 1 and err.startswith("lhp sweep: error:")
            and "not an lhp results store" in err)
    assert digest(folder) == before


@case
def sweep_into_a_folder_that_is_not_a_store(c: Ctx) -> None:
    folder = c.user_folder()
    before = digest(folder)
    with pytest.raises(StoreError, match="not an lhp results store"):
        sweep(str(c.suite), stim(), folder, **SMALL)
    assert digest(folder) == before


@case
def overwrite_deletes_only_the_stores_own_entries(c: Ctx) -> None:
    out = sweep(str(c.suite), stim(), c.tmp / "r.zarr", **SMALL)
    (out / "notes.txt").write_text("a user's file inside the store folder\n")
    sweep(str(c.suite), stim(), out, overwrite=True, **{**SMALL, "steps": [24]})
    assert (out / "notes.txt").read_text().startswith("a user's file")
    assert open_results(out, "s")["step"].values.tolist() == [24]


@case
def store_made_before_the_marker_is_recognised(c: Ctx) -> None:
    """Stores written before the marker file are known by their root attrs (store_version, config_sha256)."""
    out = sweep(str(c.suite), stim(), c.tmp / "r.zarr", **SMALL)
    (out / MARKER).unlink()
    assert is_store(out)
    sweep(str(c.suite), stim(), out, **SMALL)  # resumes: nothing to do
    assert (out / MARKER).is_file()
    (out / MARKER).unlink()
    sweep(str(c.suite), stim(), out, overwrite=True, **{**SMALL, "steps": [0]})
    assert open_results(out, "s")["step"].values.tolist() == [0]


@case
def configuration_mismatch_names_each_field(c: Ctx) -> None:
    out = sweep(str(c.suite), stim(), c.tmp / "r.zarr", **SMALL)
    with pytest.raises(StoreError, match=r'dtype: float32 in the store, bfloat16 now; steps\[.s.\]: \[0, 24\] '
                                         r'in the store, \[24\] now\).*new --out.*--overwrite'):
        sweep(str(c.suite), stim(), out, dtype="bfloat16", **{**SMALL, "steps": [24]})


@case
def trailing_slash_is_the_same_suite(c: Ctx) -> None:
    """Silent before (as an error): `SUITE/` counted as another configuration than `SUITE`."""
    out = sweep(str(c.suite), stim(), c.tmp / "r.zarr", **SMALL)
    before = digest(out)
    sweep(str(c.suite) + "/", stim(), out, **SMALL)
    relative = os.path.relpath(c.suite)
    sweep(relative, stim(), out, **SMALL)
    assert digest(out) == before  # resumed with nothing to redo


@case
def cuda_requested_without_cuda(c: Ctx) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = c.tmp / "r.zarr"
    with pytest.raises(RuntimeError, match="no usable CUDA.*--device cpu"):
        sweep(str(c.suite), stim(), out, device="cuda", **SMALL)
    code, _, err = c.cli("sweep", c.suite, "--stimuli", _txt(c), "--out", out, "--device", "cuda")
    assert code == 1 and "no usable CUDA" in err and err.count("\n") == 1
    code, _, err = c.cli("train", "--preset", "tiny", "--out", c.tmp / "t", "--device", "cuda", "--no-progress")
    assert code == 1 and "no usable CUDA" in err
    assert not out.exists() and not (c.tmp / "t").exists()  # nothing half-made


# ---- stimulus files -----------------------------------------------------------------------
def _txt(c: Ctx) -> Path:
    f = c.tmp / "s.txt"
    f.write_text("the cat sat on the mat .\n")
    return f


@case
def empty_text_cell(c: Ctx) -> None:
    """Silent before: the empty cell became the stimulus "nan"."""
    f = c.tmp / "s.csv"
    f.write_text("stimulus,text\na,the cat sat .\nb,\nc,a dog ran .\n")
    with pytest.raises(StimulusError, match=r"s.csv: column 'text' is empty on lines 3; fill those cells or delete"):
        read_stimuli(f)


@case
def empty_word_cell(c: Ctx) -> None:
    f = c.tmp / "w.tsv"
    f.write_text("stimulus\tword\nx\tthe\nx\t\nx\tcat\n")
    with pytest.raises(StimulusError, match=r"column 'word' is empty on lines 3"):
        read_stimuli(f)


@case
def words_that_pandas_would_read_as_missing(c: Ctx) -> None:
    """Silent before: "NA", "null", "nan" became NaN and then the word "nan"."""
    f = c.tmp / "w.csv"
    f.write_text("stimulus,word\nx,NA\nx,null\nx,nan\nx,None\n")
    s = read_stimuli(f)
    assert s.texts == ("NA null nan None",) and s.n_words == 4


@case
def blank_lines_keep_line_number_ids(c: Ctx) -> None:
    """Silent before: blank lines were dropped and the ids renumbered (line 4 became s00001)."""
    f = c.tmp / "s.txt"
    f.write_text("first line\n\n   \nfourth line\n\n")
    s = read_stimuli(f)
    assert s.ids == ("1", "4") and s.texts == ("first line", "fourth line")
    (c.tmp / "blank.txt").write_text("\n \n")
    with pytest.raises(StimulusError, match="every line is blank"):
        read_stimuli(c.tmp / "blank.txt")


@case
def file_that_is_not_utf8(c: Ctx) -> None:
    f = c.tmp / "latin.csv"
    f.write_bytes("stimulus,text\na,the cat\nb,un caf\u00e9 noir\n".encode("latin-1"))
    with pytest.raises(StimulusError, match=r"latin.csv: byte 0xe9 on line 3 is not valid utf-8; .*--encoding"):
        read_stimuli(f)
    assert read_stimuli(f, encoding="latin-1").texts[1] == "un caf\u00e9 noir"
    code, _, err = c.cli("sweep", c.suite, "--stimuli", f, "--out", c.tmp / "r.zarr")
    assert code == 1 and "--encoding" in err and err.count("\n") == 1
    assert not (c.tmp / "r.zarr").exists()
    bom = c.tmp / "bom.txt"
    bom.write_bytes("\ufeffone\n".encode())
    assert read_stimuli(bom).texts == ("one",)


@case
def duplicate_ids(c: Ctx) -> None:
    f = c.tmp / "s.csv"
    f.write_text("stimulus,text\na,one\nb,two\na,three\n")
    with pytest.raises(StimulusError, match=r"stimulus ids repeat on lines 2, 4 \(a\)"):
        read_stimuli(f)
    with pytest.raises(StimulusError, match="must be unique; duplicated: x"):
        Stimuli.from_texts(["one", "two"], ids=["x", "x"])


@case
def missing_values_in_memory(c: Ctx) -> None:
    """Silent before: str(nan) made the word "nan"."""
    with pytest.raises(StimulusError, match=r"texts of stimuli b are missing.*'nan'"):
        Stimuli.from_texts(["one", float("nan")], ids=["a", "b"])
    with pytest.raises(StimulusError, match=r"stimulus a: words at positions 1 are missing"):
        Stimuli.from_words([["one", None, "three"]], ids=["a"])
    frame = pd.DataFrame({"stimulus": ["x", "x", "y"], "word": ["one", np.nan, "two"]})
    with pytest.raises(StimulusError, match=r"column 'word' is empty in rows 1; fill those cells"):
        Stimuli.from_frame(frame, word="word")
    frame = pd.DataFrame({"stimulus": ["x", None], "text": ["one", "two"]})
    with pytest.raises(StimulusError, match=r"column 'stimulus' is empty in rows 1"):
        Stimuli.from_frame(frame, text="text")


@case
def word_table_without_ids(c: Ctx) -> None:
    f = c.tmp / "w.csv"
    f.write_text("word\nthe\ncat\n")
    with pytest.raises(StimulusError, match="no id column 'stimulus'.*--id-column"):
        read_stimuli(f)


# ---- checkpoints --------------------------------------------------------------------------
def _flip_byte(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))


@case
def flipped_byte_in_a_checkpoint(c: Ctx) -> None:
    """Silent before: the sweep used the damaged weights and exited 0."""
    root = c.copy()
    _flip_byte(root / "s" / "step24" / "model.safetensors")
    out = c.tmp / "r.zarr"
    with pytest.raises(CorruptCheckpoint, match=r"s/step24 have sha256 .*training_record.nc lists.*"
                                                r"delete that step folder and "
                                                r"re-run `lhp train --preset tiny --out .*suite`: it re-creates"):
        sweep(str(root), stim(), out, **SMALL)
    assert open_results(out, "s")["complete"].values.tolist() == [True, False]


@case
def checkpoint_changed_after_its_region_was_written(c: Ctx) -> None:
    """Silent before: a resumed sweep kept regions of weights no longer on disk. (A suite without a
    training record; with one, the changed file is refused outright, as in the case above.)"""
    root = c.copy()
    (root / "training_record.nc").unlink()
    suite = get_suite(root, tokens_per_step=256)
    out = sweep(suite, stim(), c.tmp / "r.zarr", **SMALL)
    shutil.copy(root / "s" / "step0" / "model.safetensors", root / "s" / "step24" / "model.safetensors")
    with pytest.warns(UserWarning, match=r"checkpoint 's' step 24 changed since its region was written.*recomputing"):
        sweep(get_suite(root, tokens_per_step=256), stim(), out, **SMALL)
    ds = open_results(out, "s")
    assert ds["complete"].values.all()
    assert ds["weights_sha256"].values.tolist() == [weights_sha256(root / "s" / "step0")] * 2
    np.testing.assert_array_equal(ds["resid_stimulus_mean"].sel(step=24).values,
                                  ds["resid_stimulus_mean"].sel(step=0).values)


@case
def special_tokens_changed(c: Ctx) -> None:
    """Silent before: the fingerprint covered the backend only, so a changed bos_token passed
    (word log-probs shift by up to 0.085 nats)."""
    root = c.copy()
    cfg_path = root / "m" / "step8" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "bos_token": "<|padding|>"}))
    with pytest.raises(TokenizerMismatch, match=r"m/step8.*special tokens.*tokenizer_config.json"):
        load(root, "m", 8)
    # A suite whose record holds the older backend-only fingerprint: its saved tokenizer/ folder is the reference.
    from lhp_core.tokenizer import backend_fingerprint

    rec = xr.open_dataset(root / "training_record.nc").load()
    tok = load(c.suite, "m", 4)[1]
    rec.attrs["tokenizer_fingerprint"] = backend_fingerprint(tok)
    legacy = c.tmp / "legacy"
    shutil.copytree(root, legacy)
    rec.to_netcdf(legacy / "training_record.nc")
    load(legacy, "m", 4)
    with pytest.raises(TokenizerMismatch, match=r"legacy/m/step8.*legacy/tokenizer"):
        load(legacy, "m", 8)


@case
def window_longer_than_the_trained_context(c: Ctx) -> None:
    """Silent before: --max-length 4096 on a 64-token suite ran without a word."""
    out = c.tmp / "r.zarr"
    with pytest.raises(ValueError, match=r"4096 tokens .* 64-token context .*--allow-beyond-context"):
        sweep(str(c.suite), stim(), out, max_length=4096, **SMALL)
    assert not out.exists()
    code, _, err = c.cli("sweep", c.suite, "--stimuli", _txt(c), "--out", out, "--max-length", "4096",
                         "--device", "cpu")
    assert code == 1 and "--allow-beyond-context" in err and not out.exists()
    sweep(str(c.suite), stim(), out, max_length=4096, allow_beyond_context=True, **SMALL)
    assert open_results(out).attrs["max_length"] == 4096


@case
def deleted_step_folder(c: Ctx) -> None:
    """Silent before: `lhp suite check` hashed the 13 folders left and exited 0; `lhp train` exited
    0 without re-creating the folder its error messages promised it would."""
    root = c.copy()
    listed = str(get_suite(root).training_record()["weights_sha256"].sel(model="s", step=8).item())
    shutil.rmtree(root / "s" / "step8")
    code, out, _ = c.cli("suite", "check", root)
    assert code == 1 and "13 checkpoints hashed" in out and "1 missing" in out
    assert "s step 8: checkpoint folder missing" in out and "lhp train --preset tiny" in out
    with pytest.raises(FileNotFoundError, match=r"s/step8 is missing; re-run `lhp train --preset tiny --out"):
        sweep(str(root), stim(), c.tmp / "r.zarr", **{**SMALL, "steps": "all"})
    record = (root / "training_record.nc").read_bytes()
    code, _, err = c.cli("train", "--preset", "tiny", "--out", root, "--threads", "2", "--no-progress")
    assert code == 0, err
    assert "re-created s/step{8}" in err
    assert weights_sha256(root / "s" / "step8") == listed
    assert (root / "training_record.nc").read_bytes() == record  # the record of the original run stays
    assert c.cli("suite", "check", root)[0] == 0


@case
def recreated_step_that_does_not_match_is_not_installed(c: Ctx) -> None:
    from lhp_core.presets import PRESETS
    from lhp_core.train import _prepare_data, recreate_missing_steps

    root = c.copy()
    shutil.rmtree(root / "m" / "step2")
    history = json.loads((root / "m" / "history.json").read_text())
    history = [{**h, "weights_sha256": "0" * 64} if h["step"] == 2 else h for h in history]
    tiny = PRESETS["tiny"]
    data = _prepare_data(tiny, root, 0)
    with pytest.raises(RuntimeError, match=r"re-created .*m/step2 has weights sha256.*nothing was installed"):
        recreate_missing_steps(tiny.sizes[1], tiny, data, root, 0, 0.0, "cpu", tiny.repeat_frac, history)
    assert not (root / "m" / "step2").exists() and not list((root / "m").glob(".tmp-*"))


@case
def training_state_that_is_not_plain_data(c: Ctx) -> None:
    """torch.load(weights_only=True): a pickle that runs code on load is refused, not run."""
    root = c.copy()
    (root / "s" / "history.json").unlink()
    ran = c.tmp / "pickle-ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (ran,))

    torch.save({"step": 0, "optimizer": Evil(), "scheduler": {}, "history": [], "wall_time": 0.0},
               root / "s" / "train_state.pt")
    code, _, err = c.cli("train", "--preset", "tiny", "--out", root, "--threads", "1", "--no-progress")
    assert code == 1 and "does not unpickle" in err and "delete it" in err
    assert not ran.exists()


# ---- the command line ---------------------------------------------------------------------
@case
def errors_are_one_line_and_debug_shows_the_traceback(c: Ctx) -> None:
    """Before: 16-line tracebacks from sweep, train and suite."""
    code, _, err = c.cli("sweep", c.tmp / "no-suite", "--stimuli", _txt(c), "--out", c.tmp / "r.zarr")
    assert code == 1 and err.count("\n") == 1 and err.startswith("lhp sweep: error: unknown suite")
    code, _, err = c.cli("suite", "show", c.tmp / "no-suite")
    assert code == 1 and err.count("\n") == 1 and "valid suites" in err
    code, _, err = c.cli("train", "--preset", "tiny", "--out", c.suite, "--seed", "1", "--no-progress")
    assert code == 1 and err.count("\n") == 1 and "choose another --out" in err
    with pytest.raises(KeyError, match="unknown suite"):
        main(["sweep", str(c.tmp / "no-suite"), "--stimuli", str(_txt(c)), "--out", str(c.tmp / "r.zarr"), "--debug"])


@case
def version_and_help(c: Ctx) -> None:
    """Before: no --version; the help printed raw markup ("The ``lhp`` command line.")."""
    from lhp_core import __version__

    with pytest.raises(SystemExit) as e:  # argparse's --version exits after printing
        from lhp_core.cli import build_parser

        build_parser().parse_args(["--version"])
    assert e.value.code == 0
    code, out, _ = c.cli("--version")
    assert code == 0 and out.strip() == f"lhp {__version__}"
    code, out, _ = c.cli("--help")
    assert code == 0 and "``" not in out and "exit status: 0 success; 1 a problem" in out and "2 bad usage" in out
    assert c.cli()[0] == 2 and c.cli("frobnicate")[0] == 2


@pytest.mark.parametrize("argv, message", [
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--steps", "lg:3"],
     "invalid step spec 'lg:3'; use all, log, log:N"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--steps", "log:0"], "invalid step spec 'log:0'"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--steps", "0,-8"], "invalid step spec '0,-8'"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--batch-size", "0"],
     "--batch-size: expected an integer >= 1, got 0"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--max-length", "2"], "--max-length: expected an integer >= 3"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--workers", "two"],
     "--workers: expected an integer >= 1, got 'two'"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--device", "gpu"], "--device: expected cpu, cuda, cuda:N or mps"),
    (["sweep", "S", "--stimuli", "x", "--out", "o", "--dtype", "fp8"], "--dtype: invalid choice"),
    (["train", "--preset", "tiny", "--threads", "0"], "--threads: expected an integer >= 1"),
    (["train", "--preset", "tiny", "--repeat-frac", "1.5"], "--repeat-frac: expected a number in [0.0, 1.0]"),
    (["train", "--preset", "tiny", "--copy-reg", "nan"], "--copy-reg: expected a number >= 0.0"),
    (["train", "--preset", "tiny", "--seed", "-1"], "--seed: expected an integer >= 0"),
])
def test_bad_option_values_exit_2_while_parsing(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    """Before: `--steps lg:3` -> "invalid literal for int()", `--batch-size 0` -> "range() arg 3 must not be zero"."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ---- hub suites ---------------------------------------------------------------------------
@case
def readme_example_with_bare_pythia_sizes(c: Ctx) -> None:
    """Before: `lhp sweep pythia --models 70m` failed ("models ['70m'] are not in the suite"). A
    tiny checkpoint stands in for pythia-70m in a local Hugging Face cache; a revision with only a
    pickled pytorch_model.bin is refused by name."""
    cache = c.tmp / "hub"
    fake_hub_snapshot(cache, "EleutherAI/pythia-70m", "step1000", c.suite / "m" / "step16", "1" * 40)
    pickled = fake_hub_snapshot(cache, "EleutherAI/pythia-70m", "step2000", c.suite / "m" / "step16", "2" * 40)
    from safetensors.torch import load_file

    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    code = textwrap.dedent(f"""
        import sys
        from lhp_core.cli import main
        from lhp_core.checkpoints import load
        rc = main(["sweep", "pythia", "--models", "70m", "--steps", "1000", "--stimuli", {str(_txt(c))!r},
                   "--out", {str(c.tmp / "p.zarr")!r}, "--sites", "logprobs", "--reducers", "word_sum",
                   "--device", "cpu"])
        assert rc == 0, rc
        try:
            load("pythia", "70m", 2000)
        except OSError as e:
            print("REFUSED:", e)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(c.tmp / "hf")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    ds = open_results(c.tmp / "p.zarr", "pythia-70m")
    assert ds["complete"].values.tolist() == [True] and np.isfinite(ds["logprobs_word_sum"].values).all()
    assert "REFUSED: EleutherAI/pythia-70m revision step2000 has no *.safetensors weights" in r.stdout
    assert "unpickling a .bin can run code" in r.stdout


@pytest.fixture()
def ctx(tiny_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> Ctx:
    torch.set_num_threads(1)
    return Ctx(tiny_suite, tmp_path, capsys)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, ctx: Ctx) -> None:
    CASES[name](ctx)


def test_network_guard_classifies_addresses() -> None:
    """The autouse guard in tests/conftest.py: loopback and unix sockets pass, anything else is refused."""
    from tests.conftest import NetworkBlocked, is_local_address

    assert is_local_address(("127.0.0.1", 8786)) and is_local_address(("::1", 80, 0, 0))
    assert is_local_address(("localhost", 0)) and is_local_address("/tmp/socket")
    assert not is_local_address(("192.0.2.1", 80)) and not is_local_address(("example.org", 443))
    import socket

    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.org", 443)  # refused before any lookup leaves the machine
    from tests import conftest

    conftest._ATTEMPTS.clear()  # this attempt was the point of the test
