"""Sweeps over a tiny random-weight suite: store contents, resume after a kill, dask = serial.

The suite is built here (two GPT-NeoX widths, three steps each, random weights per step and a
BPE tokenizer from lhp_core.tokenizer) so these tests do not depend on a trained suite.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
)

from lhp_core import open_results
from lhp_core import store as St
from lhp_core.extract import extract
from lhp_core.stimuli import Stimuli
from lhp_core.store import concat_models, models_in
from lhp_core.sweep import select_steps, sweep
from lhp_core.tokenizer import train_bpe

STEPS = [0, 1, 3]
WIDTHS = {"s": 32, "m": 48}
SITES = ["resid", "mlp", "logprobs"]
REDUCERS = ["word_mean", "word_sum", "stimulus_last", "per_token"]


class LocalSuite:
    """The three things a sweep asks of a suite, for a folder ``<root>/<model>/step<N>``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.id = "tiny-random"
        self.models = list(WIDTHS)

    def steps(self, model: str) -> list[int]:
        return sorted(int(p.name[4:]) for p in Path(self.root, model).glob("step*"))

    def tokens_seen(self, model: str, step: int) -> int:
        return step * 4 * 64


def load_local(suite: LocalSuite, model: str, step: int, device: str = "cpu", dtype=torch.float32):
    path = Path(suite.root, model, f"step{step}")
    m = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return m, AutoTokenizer.from_pretrained(path)


def stimuli() -> Stimuli:
    words = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "far", "away", "from", "the", "old", "barn"]
    rng = np.random.default_rng(3)
    return Stimuli.from_words([list(rng.choice(words, n)) for n in (7, 12, 5)], ids=["x", "y", "z"])


def build_suite(root: Path) -> LocalSuite:
    words = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "far", "away", "from", "the", "old", "barn"]
    rng = np.random.default_rng(0)
    tok = train_bpe([" ".join(rng.choice(words, 10)) for _ in range(200)], vocab_size=300)
    for k, (model, d) in enumerate(WIDTHS.items()):
        for step in STEPS:
            torch.manual_seed(100 * k + step)
            cfg = GPTNeoXConfig(vocab_size=len(tok), hidden_size=d, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=2 * d, max_position_embeddings=16,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
            path = root / model / f"step{step}"
            GPTNeoXForCausalLM(cfg).save_pretrained(path)
            tok.save_pretrained(path)
    return LocalSuite(str(root))


SWEEP_ARGS = {"sites": SITES, "reducers": REDUCERS, "max_length": 10, "batch_size": 2, "loader": load_local,
              "progress": False}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> LocalSuite:
    torch.set_num_threads(1)
    return build_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture(scope="module")
def serial_store(suite, tmp_path_factory) -> Path:
    return sweep(suite, stimuli(), tmp_path_factory.mktemp("serial") / "r.zarr", **SWEEP_ARGS)


def assert_same_store(a: Path, b: Path) -> None:
    assert models_in(a) == models_in(b) == sorted(WIDTHS)
    for m in WIDTHS:
        for site in SITES:
            xr.testing.assert_identical(open_results(a, m, site=site).load(), open_results(b, m, site=site).load())


def test_store_equals_direct_extraction(suite, serial_store):
    tree = open_results(serial_store)
    assert tree.attrs["suite"] == "tiny-random" and tree.attrs["dtype"] == "float32"
    assert tree.attrs["code_version"] and "config_sha256" in tree.attrs
    for m, width in WIDTHS.items():
        ds = open_results(serial_store, m)
        assert ds["complete"].values.all()
        assert list(ds["step"].values) == STEPS
        assert list(ds["tokens_seen"].values) == [s * 256 for s in STEPS]
        assert ds.sizes["hidden"] == width and ds.sizes["layer"] == 3
        for i, step in enumerate(STEPS):
            model, tok = load_local(suite, m, step)
            direct = extract(model, tok, stimuli(), SITES, REDUCERS, batch_size=2, max_length=10)
            for site in SITES:
                for red in REDUCERS:
                    np.testing.assert_array_equal(ds[f"{site}_{red}"].isel(step=i).values, direct.values[site][red])
        # every step has its own random weights, so their hashes differ
        assert len(set(ds["weights_sha256"].values)) == len(STEPS)
    assert ds["word_text"].values[0] == stimuli().texts[0].split()[0]
    lp = concat_models(serial_store, "logprobs", "word_sum")
    assert lp.dims == ("model", "step", "word") and list(lp["model"].values) == ["m", "s"]
    with pytest.raises(ValueError, match="different width"):
        concat_models(serial_store, "resid", "word_mean")


SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import test_sweep as T
import lhp_core.store as St

def pause():
    # Tell the test where we are, then hold still (with the store's lock) until told to go on or killed.
    Path({flag!r}).write_text("paused")
    while not Path({go!r}).exists():
        time.sleep(0.05)

point = {point!r}
if point == "before-root":  # lock taken, nothing of the store written yet
    real_init = St.initialise
    def initialise(*a, **k):
        pause()
        real_init(*a, **k)
    St.initialise = initialise
elif point == "before-marker":  # root group and configuration written, marker file not yet
    real_marker = St._write_marker
    def marker(path):
        if not (Path(path) / St.MARKER).exists():
            pause()
        real_marker(path)
    St._write_marker = marker
elif point == "region":  # the second region: one site group written, the others not
    real_write, real_mark = St.write_region, St.mark_complete
    state = {{"marked": 0}}
    def mark(*a, **k):
        real_mark(*a, **k)
        state["marked"] += 1
    def write(path, model, index, step, values, groups):
        if state["marked"] == 1:
            real_write(path, model, index, step, values, groups[:1])
            pause()
        real_write(path, model, index, step, values, groups)
    St.write_region, St.mark_complete = write, mark
elif point == "consolidation":  # every region complete, metadata not consolidated yet
    real_consolidate = St.consolidate
    def consolidate(path):
        pause()
        real_consolidate(path)
    St.consolidate = consolidate
T.sweep(T.LocalSuite({root!r}), T.stimuli(), {out!r}, wait={wait!r}, **T.SWEEP_ARGS)
"""


def start_sweep(suite, out: Path, tmp: Path, point: str = "",
                wait: bool = False) -> tuple[subprocess.Popen, Path, Path]:
    """A sweep in a subprocess that stops at ``point`` (see SCRIPT) until ``go`` exists; returns
    ``(process, flag, go)``: ``flag`` appears once it has stopped there."""
    flag, go = tmp / f"flag-{point}-{time.time_ns()}", tmp / f"go-{point}-{time.time_ns()}"
    script = SCRIPT.format(here=str(Path(__file__).parent), flag=str(flag), go=str(go), root=suite.root, out=str(out),
                           point=point, wait=wait)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    return proc, flag, go


def wait_for(proc: subprocess.Popen, flag: Path) -> None:
    deadline = time.time() + 180
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"sweep subprocess exited before it paused: {proc.stderr.read()[-2000:]}")
        assert time.time() < deadline, "sweep subprocess did not reach its pause point"
        time.sleep(0.1)


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_same_finished_store(a: Path, b: Path) -> None:
    """Same values, same provenance, and both consolidated (what open_results reads)."""
    assert_same_store(a, b)
    assert St.is_consolidated(a) and St.is_consolidated(b)
    assert open_results(a).attrs == open_results(b).attrs


@pytest.mark.parametrize("point", ["before-root", "before-marker", "region", "consolidation"])
def test_killed_sweep_resumes_to_identical_store(suite, serial_store, tmp_path, point):
    """Killed (SIGKILL) while creating the store, while writing a region, or before the final
    metadata consolidation: re-running the same sweep gives the uninterrupted run's store."""
    out = tmp_path / "r.zarr"
    proc, flag, _ = start_sweep(suite, out, tmp_path, point)
    try:
        wait_for(proc, flag)
    finally:
        kill(proc)
    if point == "region":
        assert models_in(out) == ["s"]  # the suite's first model
        killed = open_results(out, "s")
        assert killed["complete"].values.tolist() == [True, False, False]
        # the partial second region really holds data that the re-run must overwrite
        assert np.isfinite(killed["resid_word_mean"].isel(step=1).values).all()
        assert np.isnan(killed["mlp_word_mean"].isel(step=1).values).all()
    elif point == "consolidation":
        assert not St.is_consolidated(out) and open_results(out, "m")["complete"].values.all()
    elif point == "before-marker":
        assert St.is_store(out) and not (out / St.MARKER).exists()  # known by its root attrs
    else:
        assert sorted(p.name for p in out.iterdir()) == [St.LOCK]
    sweep(suite, stimuli(), out, **SWEEP_ARGS)
    assert_same_finished_store(out, serial_store)


def test_second_writer_is_refused_or_waits(suite, serial_store, tmp_path):
    """One store, two sweeps: the second stops with an error naming the first (pid, host, start),
    or with wait=True starts when the first ends; the store equals a single run's."""
    import socket
    import threading

    out = tmp_path / "r.zarr"
    first, flag, go = start_sweep(suite, out, tmp_path, "region")
    try:
        wait_for(first, flag)
        with pytest.raises(St.StoreLocked, match=rf"being written by pid {first.pid} on host "
                                                 rf"{socket.gethostname()}, started 20.*--wait"):
            sweep(suite, stimuli(), out, **SWEEP_ARGS)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                sweep(suite, stimuli(), out, wait=True, **SWEEP_ARGS)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                errors.append(e)

        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(1.0)  # not a timing assertion: the second sweep must still be waiting whatever the delay
        assert waiting.is_alive()
        go.write_text("go")
        assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
        waiting.join(timeout=300)
        assert not waiting.is_alive() and not errors, errors
    finally:
        if first.poll() is None:
            kill(first)
    assert_same_finished_store(out, serial_store)


def test_two_sweeps_started_together(suite, serial_store, tmp_path):
    """Before the lock, the second crashed in store creation (GroupNotFoundError), or both computed
    every checkpoint; now with --wait both succeed and the store is a single run's."""
    out = tmp_path / "r.zarr"
    procs = [start_sweep(suite, out, tmp_path, "", wait=True)[0] for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    assert_same_finished_store(out, serial_store)


def test_dask_two_workers_equal_serial(suite, serial_store, tmp_path):
    out = sweep(suite, stimuli(), tmp_path / "d.zarr", workers=2, processes=False, **SWEEP_ARGS)
    assert_same_store(out, serial_store)


def test_rerun_with_other_configuration_is_refused(suite, serial_store):
    with pytest.raises(ValueError,
                       match=r"another configuration \(reducers: .* in the store, \[\"word_last\"\] now\).*new --out"):
        sweep(suite, stimuli(), serial_store, **{**SWEEP_ARGS, "reducers": ["word_last"]})


def test_select_steps():
    avail = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000]
    assert select_steps(avail, "all") == avail
    assert select_steps(avail, "log:4") == [0, 1, 8, 128, 2000] or select_steps(avail, "log:4")[0] == 0
    log = select_steps(avail, "log:4")
    assert log[0] == 0 and log[1] == 1 and log[-1] == 3000 and len(log) == 5
    assert select_steps(avail, "0,8") == [0, 8]
    with pytest.raises(ValueError, match="available"):
        select_steps(avail, [5])


def test_head_scores_and_linear_sites_in_store(suite, tmp_path):
    args = {**SWEEP_ARGS, "sites": ["heads", "linear"], "reducers": ["stimulus_mean"],
            "head_scores": ["bos", "entropy"]}
    args["max_length"] = 16  # head scores need every probe in one window
    out = sweep(suite, stimuli(), tmp_path / "h.zarr", models=["s"], steps="0,3", **args)
    heads = open_results(out, "s", site="heads")
    assert heads["bos"].dims == ("step", "layer", "head", "stimulus") and heads.sizes["head"] == 4
    lin = open_results(out, "s", site="linear")
    assert set(lin["neuron_module"].values.tolist()) == {"qkv", "attn_dense", "mlp_in", "mlp_out"}
    model, tok = load_local(suite, "s", 3)
    direct = extract(model, tok, stimuli(), ["heads", "linear"], ["stimulus_mean"], ["bos", "entropy"], batch_size=2,
                     max_length=16)
    np.testing.assert_array_equal(heads["entropy"].sel(step=3).values, direct.values["heads"]["entropy"])
    np.testing.assert_array_equal(lin["stimulus_mean"].sel(step=3).values, direct.values["linear"]["stimulus_mean"])
    merged = open_results(out, "s")
    assert {"heads_bos", "heads_entropy", "linear_stimulus_mean", "complete"} <= set(merged.variables)
    assert np.isnan(merged["heads_bos"].sel(layer=0)).all() and np.isfinite(merged["heads_bos"].sel(layer=[1, 2])).all()


def test_default_window_is_the_suites_training_context(tiny_suite, tmp_path):
    """A long text is swept in windows of the suite's 64-token training context (BOS + 63,
    sliding by half), never in one window longer than any the model was trained on."""
    from lhp_core.checkpoints import load

    text = " ".join(["the cat sat on a mat while dogs ran far away from the old barn"] * 20)
    stim = Stimuli.from_texts([text], ids=["long"])
    out = sweep(str(tiny_suite), stim, tmp_path / "w.zarr", sites=["logprobs"], reducers=["per_token"],
                models=["s"], steps=[24], progress=False)
    stored = open_results(out, "s", site="logprobs")
    assert open_results(out).attrs["max_length"] == 64  # provenance of the whole sweep
    model, tok = load(tiny_suite, "s", 24)
    want = {n: extract(model, tok, stim, ["logprobs"], ["per_token"], max_length=n).values["logprobs"]["per_token"]
            for n in (64, 2048)}
    got = stored["per_token"].sel(step=24).values
    assert got.size > 64
    np.testing.assert_allclose(got, want[64], rtol=0, atol=1e-6)
    # One 2048-token window is another measurement (lhp-tiny barely uses context: 1.6e-3 nats at most here).
    assert np.abs(want[2048] - want[64]).max() > 1e-4


def check_device_sweep(suite, serial_store, out: Path, device: str, dtype: str) -> None:
    """A sweep on ``device`` (prefetch thread, on-device pooling, host writes) against the CPU
    float32 store: float32 within 1e-4 (TF32 off); bfloat16 within 2 % of each array's largest
    magnitude (the bound of tests/unit/test_extract.py)."""
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        sweep(suite, stimuli(), out, **{**SWEEP_ARGS, "device": device, "dtype": dtype})
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    assert open_results(out).attrs["device"] == device and open_results(out).attrs["dtype"] == dtype
    for m in WIDTHS:
        for site in SITES:
            ref, got = open_results(serial_store, m, site=site).load(), open_results(out, m, site=site).load()
            assert set(got.data_vars) == set(ref.data_vars)
            for var in set(ref.data_vars) - {"weights_sha256"}:  # hashes: below
                e, g = ref[var].values, got[var].values
                if not np.issubdtype(e.dtype, np.floating):
                    np.testing.assert_array_equal(g, e)
                    continue
                ok = ~np.isnan(e)
                np.testing.assert_array_equal(np.isnan(g), ~ok)
                if dtype == "float32":
                    np.testing.assert_allclose(g[ok], e[ok], rtol=1e-4, atol=1e-4, err_msg=f"{m} {site} {var}")
                else:
                    assert np.abs(g[ok] - e[ok]).max() <= 0.02 * np.abs(e[ok]).max(), (m, site, var)
        # This test suite has no lhp record: hashes are of the loaded tensors, so a bfloat16 load
        # (rounded weights) hashes differently; a float32 load on any device does not.
        same = open_results(out, m)["weights_sha256"].values == open_results(serial_store, m)["weights_sha256"].values
        assert same.all() if dtype == "float32" else not same.any()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_device_sweep_equals_cpu_store(suite, serial_store, tmp_path, device, dtype):
    check_device_sweep(suite, serial_store, tmp_path / "g.zarr", device, dtype)


def test_bfloat16_sweep_on_cpu_within_the_gpu_tolerance(suite, serial_store, tmp_path):
    check_device_sweep(suite, serial_store, tmp_path / "b.zarr", "cpu", "bfloat16")


def test_bfloat16_sweep_records_the_checkpoint_files_hash(tiny_suite, tmp_path):
    """For a suite on disk the stored hash is the files' (as in training_record.nc), whatever the load dtype."""
    from lhp_core.suites import get_suite

    out = sweep(str(tiny_suite), stimuli(), tmp_path / "bf.zarr", sites=["resid"], reducers=["stimulus_last"],
                models=["m"], steps=[0, 24], dtype="bfloat16", progress=False)
    listed = get_suite(str(tiny_suite)).training_record()["weights_sha256"].sel(model="m", step=[0, 24]).values
    np.testing.assert_array_equal(open_results(out, "m")["weights_sha256"].values, listed)


@pytest.mark.parametrize("overlap", [True, False], ids=["beside-compute", "in-turn"])
def test_failures_stop_the_sweep_and_keep_what_was_written(suite, serial_store, tmp_path, monkeypatch, overlap):
    """NaN activations at one checkpoint, or a failing write, stop the sweep with the error; the
    steps before stay complete and a re-run finishes the store as an uninterrupted sweep would.
    Both ways of scheduling loads and writes (threads beside the compute, or in turn) behave alike."""
    import lhp_core.store as St

    monkeypatch.setattr("lhp_core.sweep.overlaps", lambda device: overlap)

    def nan_at_s3(s, model, step, device="cpu", dtype=torch.float32):
        m, tok = load_local(s, model, step, device, dtype)
        if (model, step) == ("s", 3):
            with torch.no_grad():
                m.gpt_neox.layers[0].mlp.dense_h_to_4h.weight.fill_(float("nan"))
        return m, tok

    out = tmp_path / "f.zarr"
    with pytest.raises(FloatingPointError, match=r"model 's' step 3"):
        sweep(suite, stimuli(), out, **{**SWEEP_ARGS, "loader": nan_at_s3})
    assert open_results(out, "s")["complete"].values.tolist() == [True, True, False]

    real, calls = St.write_region, []

    def fail_second(*args, **kwargs):
        calls.append(args[1:4])
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(St, "write_region", fail_second)
    with pytest.raises(OSError, match="disk full"):
        sweep(suite, stimuli(), out, **SWEEP_ARGS)
    assert [c[0] for c in calls] == ["s", "m"]  # s step 3 written, then the first step of m failed
    assert open_results(out, "s")["complete"].values.all()
    assert not open_results(out, "m")["complete"].values.any()
    monkeypatch.setattr(St, "write_region", real)
    sweep(suite, stimuli(), out, **SWEEP_ARGS)
    assert_same_store(out, serial_store)


def test_sweep_of_a_bfloat16_saved_suite_hashes_its_files(tmp_path):
    """Checkpoints saved in bfloat16 (as the GPU benchmark and many hub models ship them): the
    sweep hashes their files (numpy cannot read bf16, so this once raised TypeError in the prefetch thread)."""
    from lhp_core.suites import get_suite
    from lhp_core.weights import weights_sha256 as file_sha256

    src = build_suite(tmp_path / "f32")
    for step in STEPS:
        m, tok = load_local(src, "s", step)
        m.to(torch.bfloat16).save_pretrained(tmp_path / "bf16" / "s" / f"step{step}")
        tok.save_pretrained(tmp_path / "bf16" / "s" / f"step{step}")
    suite = get_suite(str(tmp_path / "bf16"), tokens_per_step=256)
    out = sweep(suite, stimuli(), tmp_path / "bf.zarr", sites=["resid"], reducers=["stimulus_last"], max_length=10,
                dtype="bfloat16", progress=False)
    want = [file_sha256(tmp_path / "bf16" / "s" / f"step{s}") for s in STEPS]
    assert open_results(out, "s")["weights_sha256"].values.tolist() == want
    assert len(set(want)) == len(STEPS)


def test_loads_and_writes_overlap_the_compute_only_where_a_core_is_free(monkeypatch):
    from lhp_core import sweep as SW

    assert SW.overlaps("cuda") and SW.overlaps(torch.device("cuda", 1))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not SW.overlaps("cpu")  # every core runs the model: loads and writes go in turn
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert SW.overlaps("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with SW._background("x", "cpu") as ex:
        assert isinstance(ex, SW._Inline)
        done = ex.submit(lambda a: a + 1, 1)
        failed = ex.submit(lambda: 1 / 0)
    assert done.result() == 2 and isinstance(failed.exception(), ZeroDivisionError)
