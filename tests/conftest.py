"""Test tiers (unit / integration / notebooks, by folder), the ``--device`` option, and no network.

Run one tier with ``pytest tests/unit`` or ``pytest -m unit``; GPU paths run with
``pytest --device cuda`` (CI has no GPU, so there every GPU path runs on CPU).

No test may reach the network: every socket ``connect``/``sendto`` to an address outside the
loopback range, and every name lookup of a host other than this one, is refused
(:class:`NetworkBlocked`) and fails the test that made it, even where the code under test
catches the error (a download falling back to a message). Loopback and unix sockets stay open:
the distributed-dask tests talk to their own scheduler on 127.0.0.1. Tests that start Python
subprocesses pass ``HF_HUB_OFFLINE=1`` themselves.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class NetworkBlocked(ConnectionError):
    """A test tried to reach a host outside this machine."""


_ATTEMPTS: list[str] = []
_LOCAL_NAMES = {"", "localhost", "ip6-localhost", "ip6-loopback", socket.gethostname()}


def is_local_address(address) -> bool:
    """True for unix-socket paths, loopback IPs and this machine's own names."""
    if isinstance(address, (str, bytes)):  # AF_UNIX path (or abstract name)
        return True
    host = address[0]
    host = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host in _LOCAL_NAMES


def _refuse(what: str) -> None:
    _ATTEMPTS.append(what)
    raise NetworkBlocked(f"tests may not reach the network ({what}); use a local fixture or HF_HUB_OFFLINE=1")


def _install_guard() -> None:
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
            _refuse(f"connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
            _refuse(f"connect to {address!r}")
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
            _refuse(f"sendto {address!r}")
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_local_address((host, 0)):
            _refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
    socket.getaddrinfo = getaddrinfo


_install_guard()


@pytest.fixture(autouse=True)
def _no_network():
    """Fail the test if it (or a session fixture it set up) tried to reach another host."""
    _ATTEMPTS.clear()
    yield
    if _ATTEMPTS:
        tried = "; ".join(dict.fromkeys(_ATTEMPTS))
        _ATTEMPTS.clear()
        pytest.fail(f"test tried to reach the network: {tried}", pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for model code: cpu (default) or cuda")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    device = config.getoption("--device")
    for item in items:
        tier = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "notebooks"):
            item.add_marker(getattr(pytest.mark, tier))
        if "gpu" in item.keywords and not device.startswith("cuda"):
            item.add_marker(pytest.mark.skip(reason="needs --device cuda"))


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")


def _point_at_shared_data() -> None:
    """Point the fetch layer at ``../shared/data`` unless the caller chose a mirror.

    Done when this conftest is imported, before collection: test modules may read data at import
    time (parametrize lists built from a corpus), and a fixture would come too late for them.
    """
    if "LHP_DATA_MIRROR" not in os.environ:
        shared = ROOT.parent / "shared" / "data"
        if shared.is_dir():
            os.environ["LHP_DATA_MIRROR"] = str(shared)


_point_at_shared_data()
# Before anything imports huggingface_hub (it reads the variable once): transformers from 5.25 asks the hub
# about kernels when some models (GPT-Neo) are built from a config, which no test may do.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _data_mirror() -> None:
    """The mirror chosen at import (kept as a fixture: session fixtures that read data depend on it)."""
    _point_at_shared_data()


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory: pytest.TempPathFactory, _data_mirror: None) -> Path:
    """A real suite trained with ``lhp train --preset tiny`` (2 models x 7 steps, ~10 s, once per session).

    Layout: ``<root>/{s,m}/step{0,1,2,4,8,16,24}/`` HF checkpoints, ``<root>/training_record.nc``.
    Open it with ``lhp_core.suites.get_suite(str(tiny_suite))`` or load a checkpoint with
    ``lhp_core.checkpoints.load(str(tiny_suite), "m", 24)``.
    """
    from lhp_core.train import train

    return train("tiny", tmp_path_factory.mktemp("suites") / "lhp-tiny", threads=1, progress=False)
