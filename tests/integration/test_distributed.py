"""Sweeps on dask for real: a process-based LocalCluster, and a separately started ``dask scheduler``
and ``dask worker`` on 127.0.0.1; each store equals the serial one.

Small on purpose (one model of lhp-tiny, two steps, two stimuli): starting worker processes that
import torch is most of the time. The scheduler and worker are killed whatever happens.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xarray as xr

from lhp_core import open_results
from lhp_core.stimuli import Stimuli
from lhp_core.sweep import sweep

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SITES = ["resid", "logprobs"]
ARGS = {"sites": SITES, "reducers": ["word_mean", "word_sum"], "models": ["s"], "steps": [8, 24],
        "batch_size": 2, "progress": False}


def stimuli() -> Stimuli:
    return Stimuli.from_texts(["the cat sat on the mat .", "the people ran far away from home ."], ids=["a", "b"])


@pytest.fixture(scope="module")
def serial_store(tiny_suite, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return sweep(str(tiny_suite), stimuli(), tmp_path_factory.mktemp("serial") / "r.zarr", **ARGS)


def assert_same_store(a: Path, b: Path) -> None:
    for site in SITES:
        xr.testing.assert_identical(open_results(a, "s", site=site).load(), open_results(b, "s", site=site).load())
    assert open_results(a, "s")["complete"].values.all()


def test_local_cluster_of_processes_equals_serial(tiny_suite, serial_store, tmp_path):
    out = sweep(str(tiny_suite), stimuli(), tmp_path / "d.zarr", workers=2, processes=True, **ARGS)
    assert_same_store(out, serial_store)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    # own session: the whole process group (a worker's children too) is killed at the end
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _scheduler_address(path: Path, proc: subprocess.Popen, log: Path) -> str:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dask scheduler exited ({proc.returncode}): {log.read_text()[-2000:]}")
        if path.is_file():
            try:
                return json.loads(path.read_text())["address"]
            except (ValueError, KeyError):
                pass  # being written
        time.sleep(0.2)
    raise AssertionError(f"dask scheduler wrote no {path} in 120 s: {log.read_text()[-2000:]}")


def test_separate_scheduler_and_worker_equal_serial(tiny_suite, serial_store, tmp_path):
    from distributed import Client

    env, scheduler_file = _env(), tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker.log"]
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(scheduler_file)], logs[0], env)]
    try:
        address = _scheduler_address(scheduler_file, procs[0], logs[0])
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"], logs[1], env))
        with Client(address, timeout=60) as client:
            try:
                client.wait_for_workers(1, timeout=120)
            except TimeoutError:
                raise AssertionError(f"no dask worker joined: {logs[1].read_text()[-2000:]}") from None
            assert [w["host"] for w in client.scheduler_info()["workers"].values()] == ["127.0.0.1"]
        out = sweep(str(tiny_suite), stimuli(), tmp_path / "d.zarr", scheduler=address, **ARGS)
    finally:
        _stop(procs)
    assert_same_store(out, serial_store)
