"""What `lhp book --profile ci > log 2>&1` leaves in the log, and what it leaves in the executed chapters.

The log is the one ``ci_book`` wrote while building the book every other notebook test reads
(conftest.py), so this costs no second run. It must stay small (progress bars throttled to
whole lines, no carriage returns), carry no kernel or papermill noise, count the chapters
and end with the wall-time line.
"""
from __future__ import annotations

import re
from pathlib import Path

from lhp_core import book

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 200_000


def test_log_is_small_plain_and_ends_with_the_wall_time_line(ci_book_log: Path) -> None:
    data = ci_book_log.read_bytes()
    assert len(data) < MAX_BYTES, f"{ci_book_log} is {len(data)} bytes"
    assert b"\r" not in data, "progress bars redrawn in place in a file"
    text = data.decode()
    for noise in ("Passed unknown parameter", "without encryption"):
        assert noise not in text, noise
    lines = text.strip().splitlines()
    n = len(book.chapters(ROOT))
    assert re.fullmatch(rf"\[lhp book\] {n} chapters in \d+ s wall time \(\d+ s of chapter time, \d+ at a time\)"
                        r"(; \d+ s in all with training and the HTML build)?", lines[-1]), lines[-1]
    done = [line for line in lines if re.match(r"\[lhp book\] \w+ done in \d+ s \(chapters \d+/\d+, ", line)]
    assert [re.search(r"chapters (\d+)/", line).group(1) for line in done] == [str(k) for k in range(1, n + 1)]
    assert not any(line.startswith("[lhp book] warning:") for line in lines), "a chapter holds widget state"


def test_executed_chapters_hold_no_widget_state(ci_book: book.BookRun) -> None:
    for chapter, path in ci_book.executed.items():
        assert book.widget_models(path) == {}, f"{chapter}: widget state makes its page load scripts from a CDN"
        assert "application/vnd.jupyter.widget-view+json" not in path.read_text(), chapter


def test_chapters_show_no_changed_default_or_renamed_warning(ci_book: book.BookRun) -> None:
    """A chapter passes every value whose default changed (lhp_core.deprecation), so its page shows no warning."""
    for chapter, path in ci_book.executed.items():
        text = path.read_text()
        for warning in ("ChangedDefaultWarning", "RenamedWarning"):
            assert warning not in text, f"{chapter} shows a {warning}: pass the value explicitly in its study"
