"""lhp_core.progress: what a bar prints on a terminal, into a file, and inside a `lhp book` run.

Time is a fake clock (``progress.time`` replaced), so throttling and rates are exact.
"""
from __future__ import annotations

import io
import os
import re
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lhp_core import progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=c.monotonic))
    monkeypatch.delenv(progress.BOOK_RUN_VAR, raising=False)
    monkeypatch.delenv(progress.STATUS_VAR, raising=False)
    return c


def test_mode_follows_the_output(clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert progress.mode(Tty()) == "tty"
    assert progress.mode(io.StringIO()) == "plain"
    assert progress.mode(io.StringIO(), disable=None) == "off"  # None: only on a terminal
    assert progress.mode(Tty(), disable=None) == "tty"
    assert progress.mode(Tty(), disable=True) == "off"
    monkeypatch.setenv(progress.BOOK_RUN_VAR, "1")
    assert progress.mode(Tty()) == "off" and progress.in_book_run()
    monkeypatch.setenv(progress.STATUS_VAR, str(tmp_path / "s"))
    assert progress.mode(Tty()) == "status"


def test_plain_output_is_throttled_whole_lines(clock: Clock) -> None:
    """A 4,800-step run over 600 s writes a first line, one line per 30 s and a closing line: no \\r."""
    out = io.StringIO()
    with progress.bar(total=4800, desc="lhp-micro s (run 1 of 3)", unit="step", file=out) as b:
        for i in range(4800):
            clock.tick(0.125)
            b.set_postfix(loss=f"{5 - i / 2000:.3f}")  # refresh=True, as careless callers do: still throttled
            b.update(1)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) == 1 + 600 // 30 + 1, lines
    assert len(text) < 3000  # the unthrottled bar wrote 3.4 MB for a book's training
    assert lines[0] == "lhp-micro s (run 1 of 3): 0/4800 step (0%), 00:00 elapsed"
    # Drawn by set_postfix at 30 s, before step 240 is counted; the rate leaves out the first step:
    # 238 steps in 29.875 s, and 4561 steps left at that rate.
    assert lines[1] == "lhp-micro s (run 1 of 3): 239/4800 step (5%), 00:30 elapsed, 7.97 step/s, ETA 09:32; loss=4.880"
    assert lines[-1] == "lhp-micro s (run 1 of 3): 4800/4800 step done in 10:00, 8 step/s"


def test_no_rate_or_eta_before_a_second_unit(clock: Clock) -> None:
    """The first unit (loading, warm-up) is left out of the rate: no ETA of hours after one slow step."""
    out = io.StringIO()
    b = progress.bar(total=100, desc="sweep", unit="ckpt", file=out, interval=0)
    clock.tick(300)  # a slow first checkpoint
    b.update(1)
    assert b.rate() is None and "ETA" not in out.getvalue().splitlines()[-1]
    clock.tick(2)
    b.update(1)
    assert b.rate() == pytest.approx(0.5)
    assert out.getvalue().splitlines()[-1].endswith("2 s/ckpt, ETA 03:16")  # 98 left at 2 s each
    b.close()


def test_resumed_and_skipped_work_has_no_bogus_rate(clock: Clock) -> None:
    out = io.StringIO()
    with progress.bar(total=6000, desc="done already", unit="step", file=out) as b:
        b.skip(6000)
    assert out.getvalue().splitlines()[-1] == "done already: 6000/6000 step done in 00:00; 6000 already done"
    out = io.StringIO()
    with progress.bar(total=100, initial=40, desc="resumed", unit="step", file=out, interval=0) as b:
        for _ in range(60):
            clock.tick(1.0)
            b.update(1)
    # 59 steps in 59 s after the first: 1 step/s, not (100 - 0) / 60 s.
    assert out.getvalue().splitlines()[-1] == "resumed: 100/100 step done in 01:00, 1 step/s; 40 already done"
    tty = Tty()
    with progress.bar(total=6000, desc="skipped", unit="step", file=tty) as b:
        b.skip(6000)
    final = tty.getvalue().split("\r")[-1]
    assert "6000/6000" in final and "?step/s" in final and "step/s]" in final
    assert not re.search(r"\d+(\.\d+)?step/s", final)


def test_tty_bar_redraws_in_place(clock: Clock) -> None:
    tty = Tty()
    for _ in progress.bar(range(5), desc="tty", file=tty):
        clock.tick(1)
    text = tty.getvalue()
    assert "\r" in text and "5/5" in text and "1.00it/s" in text


def test_leave_false_prints_only_periodic_lines(clock: Clock) -> None:
    out = io.StringIO()
    for _ in progress.bar(range(3), desc="inner", leave=False, file=out):
        clock.tick(1)
    assert out.getvalue() == ""  # too quick for a 30 s line; no first or closing line


def test_book_run_prints_nothing(clock: Clock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(progress.BOOK_RUN_VAR, "1")
    out = io.StringIO()
    assert list(progress.bar(range(4), desc="x", file=out)) == [0, 1, 2, 3]
    with progress.bar(total=3, file=out) as b:
        b.update(3)
        b.skip(1)
    assert out.getvalue() == "" and capsys.readouterr() == ("", "")


def test_status_file_holds_the_open_bars(clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    status = tmp_path / "chapter.status"
    with progress.reporting_to(status):
        outer = progress.bar(total=90, desc="sweep", unit="ckpt")
        clock.tick(10)
        outer.update(1)
        inner = progress.bar(total=20, desc="surprisal", unit="batch")
        clock.tick(5)
        inner.update(5)
        assert status.read_text() == "sweep: 1/90 ckpt (1%), 00:15 elapsed > surprisal: 5/20 batch (25%), 00:05 elapsed"
        inner.close()
        assert status.read_text() == "sweep: 1/90 ckpt (1%), 00:15 elapsed"
        outer.close()
        assert status.read_text() == ""
    assert capsys.readouterr() == ("", "")
    assert progress.STATUS_VAR not in os.environ


def test_monitor_heartbeat_and_events(clock: Clock) -> None:
    out = io.StringIO()
    with progress.Monitor("chapters", 2, prefix="[lhp book]", file=out) as mon:
        reading, brain = mon.status_path("reading"), mon.status_path("brain")
        reading.write_text("")
        mon.beat()  # notes when reading started; nothing to print yet
        clock.tick(20)
        reading.write_text("sweep: 45/90 ckpt (50%), 00:20 elapsed")
        brain.write_text("")
        mon.beat()
        assert out.getvalue() == ""
        clock.tick(10)
        mon.beat()
        assert out.getvalue() == ("[lhp book] chapters 0/2 done, 00:30 elapsed; running: reading 00:30 "
                                  "(sweep: 45/90 ckpt (50%), 00:20 elapsed), brain 00:10\n")
        clock.tick(5)
        mon.finished("reading", 35.2)
        assert out.getvalue().splitlines()[-1] == "[lhp book] reading done in 35 s (chapters 1/2, 00:35 elapsed)"
        assert not reading.exists()
        clock.tick(30)
        mon.beat()
        assert out.getvalue().splitlines()[-1] == "[lhp book] chapters 1/2 done, 01:05 elapsed; running: brain 00:45"
        folder = mon.status_dir
    assert "\r" not in out.getvalue() and not folder.exists()


def test_monitor_on_a_terminal_redraws_one_line(clock: Clock) -> None:
    tty = Tty()
    with progress.Monitor("training runs", 1, file=tty) as mon:
        mon.status_path("lhp-micro s").write_text("lhp-micro s (run 1 of 1): 10/3000 step")
        clock.tick(1)
        mon.beat()
        clock.tick(1)
        mon.beat()
        mon.finished("lhp-micro s", 2)
        clock.tick(1)
        mon.beat()  # a status line again, cleared on exit
    text = tty.getvalue()
    assert text.endswith("\n\r\x1b[Ktraining runs 1/1 done, 00:03 elapsed\r\x1b[K")
    assert text.count("\r\x1b[K") == 5  # redraw, redraw, event line over the status line, redraw, clear
    assert "lhp-micro s done in 2 s (training runs 1/1" in text


def test_monitor_wait_yields_every_future(clock: Clock) -> None:
    with ThreadPoolExecutor(2) as pool, progress.Monitor("jobs", 3, file=io.StringIO()) as mon:
        futures = [pool.submit(lambda x=x: x * 2) for x in range(3)]
        assert sorted(f.result() for f in mon.wait(futures, poll=0.01)) == [0, 2, 4]
