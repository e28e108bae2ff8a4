"""Shared fixtures of the notebook tier: the `ci` book, executed and built once per session.

``ci_book`` runs ``lhp_core.book.build_book("ci")``: it trains ``lhp-micro`` if the suite is
missing (``train.ensure``), executes every chapter of ``book/_toc.yml`` with papermill and
builds the HTML. Chapter tests read their numbers with
``lhp_core.book.read_record(ci_book.executed["<chapter>"])``; the browser test serves
``ci_book.html``. Set ``LHP_BOOK_OUT`` to keep the build (default: a pytest temp folder).
While iterating on a test, ``LHP_BOOK_PREBUILT=<out>`` reuses a finished
``lhp book --profile ci --out <out>`` instead of executing again (CI never sets it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lhp_core import book


@pytest.fixture(scope="session")
def ci_book(tmp_path_factory: pytest.TempPathFactory) -> book.BookRun:
    if os.environ.get("LHP_BOOK_PREBUILT"):
        out = Path(os.environ["LHP_BOOK_PREBUILT"])
        executed = {c: out / "executed" / f"{c}.ipynb" for c in book.chapters()}
        executed = {c: p for c, p in executed.items() if p.is_file()}
        if not (out / "html" / "index.html").is_file():
            pytest.fail(f"LHP_BOOK_PREBUILT={out} has no html/index.html; run lhp book --profile ci --out {out}")
        return book.BookRun(profile="ci", executed=executed, html=out / "html")
    out = Path(os.environ["LHP_BOOK_OUT"]) if os.environ.get("LHP_BOOK_OUT") else tmp_path_factory.mktemp("book")
    return book.build_book("ci", out=out, progress=False)


@pytest.fixture(scope="session")
def ci_records(ci_book: book.BookRun) -> dict[str, dict]:
    """``chapter -> recorded numbers`` for every chapter of the ci book."""
    return {name: book.read_record(path) for name, path in ci_book.executed.items()}
