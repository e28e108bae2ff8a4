"""Test tiers (unit / integration / notebooks, by folder) and the ``--device`` option.

Run one tier with ``pytest tests/unit`` or ``pytest -m unit``; GPU paths run with
``pytest --device cuda`` (CI has no GPU, so there every GPU path runs on CPU).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session", autouse=True)
def _data_mirror() -> None:
    """Point the fetch layer at ``../shared/data`` unless the caller chose a mirror."""
    if "LHP_DATA_MIRROR" not in os.environ:
        shared = ROOT.parent / "shared" / "data"
        if shared.is_dir():
            os.environ["LHP_DATA_MIRROR"] = str(shared)


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory: pytest.TempPathFactory, _data_mirror: None) -> Path:
    """A real suite trained with ``lhp train --preset tiny`` (2 models x 7 steps, ~10 s, once per session).

    Layout: ``<root>/{s,m}/step{0,1,2,4,8,16,24}/`` HF checkpoints, ``<root>/training_record.nc``.
    Open it with ``lhp_core.suites.get_suite(str(tiny_suite))`` or load a checkpoint with
    ``lhp_core.checkpoints.load(str(tiny_suite), "m", 24)``.
    """
    from lhp_core.train import train

    return train("tiny", tmp_path_factory.mktemp("suites") / "lhp-tiny", threads=1, progress=False)
