"""Shared fixtures of the notebook tier: the `ci` book, executed and built once per session.

``ci_book`` runs the command a user runs, ``lhp book --profile ci --out <out>``, in a
subprocess with its output redirected to ``<out>/lhp-book.log`` (so the log a user would
get in a file is checked too, at no extra cost: ``test_book_log.py``). It trains
``lhp-micro`` if the suite is missing, executes every chapter of ``book/_toc.yml`` with
papermill and builds the HTML. Chapter tests read their numbers with
``lhp_core.book.read_record(ci_book.executed["<chapter>"])``; the browser test serves
``ci_book.html``. Set ``LHP_BOOK_OUT`` to keep the build (default: a pytest temp folder).
While iterating on a test, ``LHP_BOOK_PREBUILT=<out>`` reuses a finished
``lhp book --profile ci --out <out> > <out>/lhp-book.log 2>&1`` instead of executing again
(CI never sets it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lhp_core import book

ROOT = Path(__file__).resolve().parents[2]
#: Where ``ci_book`` writes the output of ``lhp book``, inside the build folder.
LOG_NAME = "lhp-book.log"


def _run(out: Path) -> book.BookRun:
    return book.BookRun(profile="ci", executed={c: out / "executed" / f"{c}.ipynb" for c in book.chapters(ROOT)},
                        html=out / "html")


@pytest.fixture(scope="session")
def ci_book(tmp_path_factory: pytest.TempPathFactory) -> book.BookRun:
    if os.environ.get("LHP_BOOK_PREBUILT"):
        out = Path(os.environ["LHP_BOOK_PREBUILT"])
        if not (out / "html" / "index.html").is_file():
            pytest.fail(f"LHP_BOOK_PREBUILT={out} has no html/index.html; run lhp book --profile ci --out {out}")
        run = _run(out)
        run.executed = {c: p for c, p in run.executed.items() if p.is_file()}
        return run
    out = Path(os.environ["LHP_BOOK_OUT"]) if os.environ.get("LHP_BOOK_OUT") else tmp_path_factory.mktemp("book")
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    # This checkout's lhp_core, for the command and for the chapters' kernels it starts.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-m", "lhp_core.cli", "book", "--profile", "ci", "--out", str(out)],
                              cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"lhp book --profile ci failed (exit {proc.returncode}); the end of {log}:\n{tail}")
    return _run(out)


@pytest.fixture(scope="session")
def ci_book_log(ci_book: book.BookRun) -> Path:
    """The output of the ``lhp book --profile ci`` that built ``ci_book``."""
    log = ci_book.html.parent / LOG_NAME
    if not log.is_file():
        pytest.skip(f"{log} missing: with LHP_BOOK_PREBUILT, redirect the output of lhp book there")
    return log


@pytest.fixture(scope="session")
def ci_records(ci_book: book.BookRun) -> dict[str, dict]:
    """``chapter -> recorded numbers`` for every chapter of the ci book."""
    return {name: book.read_record(path) for name, path in ci_book.executed.items()}
