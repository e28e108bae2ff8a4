"""Progress output that suits where it goes: a terminal, a log file, or a ``lhp book`` chapter.

Library code reports progress through :func:`bar` only (never ``tqdm.auto``, whose notebook
widget leaves widget state in executed chapters, and with it script tags that load
require.js and the widget manager from a CDN)::

    from lhp_core import progress

    for ckpt in progress.bar(todo, desc="sweep", unit="ckpt"):
        ...
    with progress.bar(total=n_steps, initial=resumed_at, desc="lhp-mini s (run 1 of 2)", unit="step") as b:
        b.update(1)
        b.set_postfix(loss=f"{loss:.3f}", refresh=False)

Where the output goes decides what a bar prints (:func:`mode`):

``tty``
    stderr is a terminal: an ordinary tqdm bar, redrawn in place.
``plain``
    stderr is a file or a pipe (``lhp book > log 2>&1``, a Jupyter session): whole lines, no
    carriage returns, at most one every :data:`PLAIN_INTERVAL` seconds per bar, plus a first
    and a closing line (``leave=False`` bars print neither).
``status``
    ``LHP_PROGRESS_STATUS`` names a file: nothing is printed; the state of this process's
    open bars is written to that file, where a :class:`Monitor` in the parent process (``lhp
    book``, :func:`lhp_core.train.ensure_all`) reads it for its heartbeat.
``off``
    ``disable=True``; or inside a ``lhp book`` chapter kernel (``LHP_BOOK_RUN=1``) without a
    status file; or ``disable=None`` (show only on a terminal) away from a terminal.

Rates and ETAs count only work done here and now: steps passed as ``initial`` or
:meth:`Bar.skip` (resumed or already finished work) and the first unit (loading, warm-up)
are left out, and until a second unit is done the bar shows ``?`` rather than an ETA of hours.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Self

from tqdm.std import tqdm

#: Seconds between two lines of one bar when the output is not a terminal.
PLAIN_INTERVAL = 30.0
#: Seconds between two redraws of a bar on a terminal.
TTY_INTERVAL = 0.5
#: Seconds between two writes of a status file.
STATUS_INTERVAL = 2.0
#: Set to ``1`` by ``lhp book`` in its chapter kernels.
BOOK_RUN_VAR = "LHP_BOOK_RUN"
#: Path of the status file the bars of this process (and of kernels it starts) write to.
STATUS_VAR = "LHP_PROGRESS_STATUS"
#: Longest status text a :class:`Monitor` shows per running item.
STATUS_CHARS = 160


def _clock() -> float:
    return time.monotonic()


def in_book_run() -> bool:
    """True inside a chapter kernel started by ``lhp book``."""
    return os.environ.get(BOOK_RUN_VAR) == "1"


def _isatty(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def mode(file: IO[str] | None = None, disable: bool | None = False) -> str:
    """``"tty"``, ``"plain"``, ``"status"`` or ``"off"``: how a bar writing to ``file`` shows (module docstring)."""
    if disable:
        return "off"
    if os.environ.get(STATUS_VAR):
        return "status"
    if in_book_run():
        return "off"
    if _isatty(file if file is not None else sys.stderr):
        return "tty"
    return "off" if disable is None else "plain"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


def _interval(seconds: float) -> str:
    return tqdm.format_interval(max(0.0, seconds))


class Bar(tqdm):
    """A tqdm bar whose display depends on :func:`mode`; make one with :func:`bar`."""

    monitor_interval = 0  # no tqdm monitor thread: it would force redraws past our throttle

    def __init__(self, iterable: Iterable | None = None, *, lhp_mode: str, interval: float,
                 stream: IO[str] | None = None, **kwargs: Any) -> None:
        self._lhp_mode = lhp_mode
        self._lhp_interval = interval
        self._lhp_stream = stream if stream is not None else sys.stderr
        self._lhp_ready = False  # tqdm's __init__ draws once with its own clock: not in plain/status mode
        self._lhp_last: float | None = None  # last line or status write
        self._lhp_closing = False
        self._lhp_t0: float | None = None  # end of the first unit of work done here
        self._lhp_n0 = 0.0  # n at that time, plus units skipped since
        if lhp_mode == "tty":
            kwargs["file"] = self._lhp_stream
        else:
            kwargs["file"] = _NullFile()  # tqdm's own writes (close, clear) go nowhere; display() writes
        super().__init__(iterable, disable=lhp_mode == "off", mininterval=interval if lhp_mode == "tty" else 0,
                         miniters=1, **kwargs)
        self._time = _clock
        self.start_t = self.last_print_t = _clock()
        self._lhp_ready = True
        if self.disable:
            return
        if lhp_mode == "status":
            _STATUS_BARS.append(self)
        if lhp_mode != "tty":
            self.display()

    # ------------------------------------------------------------------ counting

    def update(self, n: float = 1) -> bool | None:
        if not self.disable and self._lhp_t0 is None and n > 0:
            # The first unit's time includes start-up (loading, compiling): rates begin after it.
            self._lhp_t0, self._lhp_n0 = self._time(), self.n + n
        return super().update(n)

    def skip(self, n: int) -> None:
        """Count ``n`` units as already done (resumed, cached): they advance the bar but not its rate."""
        if self.disable or n <= 0:
            return
        self.initial += n
        self.n += n
        self.last_print_n += n
        self._lhp_n0 += n

    def __iter__(self) -> Iterator[Any]:
        # One update() per item (tqdm's fast path bypasses update(), and with it our rate).
        if self.disable:
            yield from self.iterable
            return
        try:
            for obj in self.iterable:
                yield obj
                self.update(1)
        finally:
            self.close()

    def rate(self) -> float | None:
        """Units per second over the work done since the first unit, or None before a second unit is done."""
        if self._lhp_t0 is None:
            return None
        done, seconds = self.n - self._lhp_n0, self._time() - self._lhp_t0
        return done / seconds if done > 0 and seconds > 0 else None

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict
        # 0 (not None) makes tqdm print "?" instead of averaging over skipped work and start-up.
        d["rate"] = self.rate() or 0.0
        return d

    # ------------------------------------------------------------------ display

    def line(self) -> str:
        """The bar as one plain line (no bar graphics, no carriage return)."""
        n, total, unit, rate = self.n, self.total, self.unit, self.rate()
        done = self._lhp_closing
        count = f"{_num(n)}/{_num(total)} {unit}" if total else f"{_num(n)} {unit}"
        if done:
            text = f"{count} done in {_interval(self._time() - self.start_t)}"
        else:
            pct = f" ({100 * n / total:.0f}%)" if total else ""
            text = f"{count}{pct}, {_interval(self._time() - self.start_t)} elapsed"
        if rate:
            text += f", {rate:.3g} {unit}/s" if rate >= 1 else f", {1 / rate:.3g} s/{unit}"
            if total and not done and n < total:
                text += f", ETA {_interval((total - n) / rate)}"
        if self.initial:
            text += f"; {_num(self.initial)} already done"
        if self.postfix and not done:
            text += f"; {self.postfix}"
        return f"{self.desc.rstrip(': ')}: {text}" if self.desc else text

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        if self._lhp_mode == "tty":
            return super().display(msg, pos)
        if msg is not None or not self._lhp_ready:
            return None  # tqdm clearing its line, or drawing from its __init__: ours draws after
        now = self._time()
        first = self._lhp_last is None
        if not (first or self._lhp_closing or now - self._lhp_last >= self._lhp_interval):
            return None
        self._lhp_last = now
        if self._lhp_mode == "status":
            _write_status()
        elif self.leave or not (first or self._lhp_closing):
            self._lhp_stream.write(self.line() + "\n")
            self._lhp_stream.flush()
        return True

    def close(self) -> None:
        if self._lhp_mode == "tty" or self.disable:
            return super().close()
        self._lhp_closing = True
        self.display()
        self._lhp_ready = False  # tqdm's close() draws the closing state again
        if self in _STATUS_BARS:
            _STATUS_BARS.remove(self)
            _write_status()
        super().close()


class _NullFile:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


#: Open bars of this process in status mode, oldest (outermost) first.
_STATUS_BARS: list[Bar] = []


def _write_status() -> None:
    """Write the open status bars of this process, outermost first, to the status file (atomically)."""
    path = os.environ.get(STATUS_VAR)
    if not path:
        return
    text = " > ".join(b.line() for b in _STATUS_BARS)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        Path(tmp).write_text(text)
        os.replace(tmp, path)
    except OSError:  # the monitor removed the folder: nobody is reading any more
        pass


def bar(
    iterable: Iterable | None = None,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool | None = False,
    initial: float = 0,
    leave: bool = True,
    position: int | None = None,
    file: IO[str] | None = None,
    interval: float | None = None,
) -> Bar:
    """A progress bar for library code: tqdm on a terminal, throttled lines elsewhere (module docstring).

    Parameters
    ----------
    iterable
        Iterate over this (``total`` defaults to its ``len``).
    total, desc, unit, leave, position
        As in tqdm. ``leave=False``: no first and closing line away from a terminal.
    disable
        True: no output. None: show only on a terminal (for minor loops).
    initial
        Units already done (a resumed run): counted, but not in the rate or ETA.
    file
        Stream to write to (default ``sys.stderr``); decides tty versus plain.
    interval
        Seconds between redraws (default :data:`TTY_INTERVAL`, :data:`PLAIN_INTERVAL` or
        :data:`STATUS_INTERVAL` by mode).

    Returns
    -------
    Bar
        Use as an iterator, or as a context manager with ``update(n)`` / ``skip(n)``.
    """
    how = mode(file, disable)
    if interval is None:
        interval = {"tty": TTY_INTERVAL, "plain": PLAIN_INTERVAL}.get(how, STATUS_INTERVAL)
    return Bar(iterable, lhp_mode=how, interval=interval, stream=file, total=total, desc=desc, unit=unit,
               initial=initial, leave=leave, position=position)


# ---------------------------------------------------------------------------- several processes


@contextmanager
def reporting_to(path: str | Path) -> Iterator[Path]:
    """Within the block, bars of this process and of processes it starts write their state to ``path``.

    Creating the (empty) file tells a :class:`Monitor` watching its folder that the work has started.
    """
    path = Path(path)
    path.write_text("")
    old = os.environ.get(STATUS_VAR)
    os.environ[STATUS_VAR] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop(STATUS_VAR, None)
        else:
            os.environ[STATUS_VAR] = old


class Monitor:
    """One overall display of ``total`` items worked on in other processes (chapters, training runs).

    A worker runs its item inside ``reporting_to(monitor.status_path(name))``; the monitor prints
    a line when an item finishes and, while items run, a heartbeat with the number done, the
    elapsed time and each running item's time and latest bar state: a line every
    :data:`PLAIN_INTERVAL` seconds when the output is not a terminal, redrawn in place every
    second on a terminal. Lines are written only from the thread that calls :meth:`wait`,
    :meth:`beat` and :meth:`finished`.

    Parameters
    ----------
    desc
        What the items are, plural (``"chapters"``, ``"training runs"``).
    total
        Number of items.
    prefix
        Put in front of every line, e.g. ``"[lhp book]"``.
    file
        Output stream (default ``sys.stdout``).
    enabled
        False: print nothing.
    interval
        Seconds between heartbeats (default by output, as above).
    """

    def __init__(self, desc: str, total: int, prefix: str = "", file: IO[str] | None = None,
                 enabled: bool = True, interval: float | None = None) -> None:
        self.desc, self.total, self.prefix, self.enabled = desc, total, prefix, enabled
        # Short and private: status files of concurrent runs never meet.
        self.status_dir = Path(tempfile.mkdtemp(prefix="lhp-progress-"))
        self.file = file if file is not None else sys.stdout
        self.tty = _isatty(self.file)
        self.interval = interval if interval is not None else (1.0 if self.tty else PLAIN_INTERVAL)
        self.start = _clock()
        self.done = 0
        self._names: dict[str, str] = {}  # status file -> item name
        self._started: dict[str, float] = {}  # item name -> when its status file first appeared
        self._last = self.start
        self._drawn = False

    def status_path(self, name: str) -> Path:
        """The status file of item ``name`` (the worker passes it to :func:`reporting_to`)."""
        path = self.status_dir / (f"{len(self._names)}.status" if name not in self._names.values() else
                                  next(f for f, n in self._names.items() if n == name))
        self._names[path.name] = name
        return path

    def _running(self) -> dict[str, tuple[float, str]]:
        now, out = _clock(), {}
        for path in self.status_dir.glob("*.status"):
            name = self._names.get(path.name, path.stem)
            started = self._started.setdefault(name, now)
            try:
                text = path.read_text().strip()
            except OSError:  # finished and removed meanwhile
                continue
            out[name] = (now - started, text)
        return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))

    def _emit(self, line: str, *, replace: bool) -> None:
        self._last = _clock()
        if not self.enabled:
            return
        text = f"{self.prefix} {line}" if self.prefix else line
        if self.tty:
            # The heartbeat redraws one line in place; event lines go above it.
            width = shutil.get_terminal_size().columns
            self.file.write("\r\x1b[K" + (text[: width - 1] if replace else text + "\n"))
            self._drawn = replace
        else:
            self.file.write(text + "\n")
        self.file.flush()

    def write(self, line: str) -> None:
        """Print an event line (above the heartbeat on a terminal)."""
        self._emit(line, replace=False)

    def summary(self) -> str:
        """``"chapters 2/6 done, 5:12 elapsed; running: reading 4:30 (sweep: 45/90 ckpt ...)"``."""
        parts = []
        for name, (seconds, text) in self._running().items():
            text = text if len(text) <= STATUS_CHARS else text[: STATUS_CHARS - 3] + "..."
            parts.append(f"{name} {_interval(seconds)}" + (f" ({text})" if text else ""))
        head = f"{self.desc} {self.done}/{self.total} done, {_interval(_clock() - self.start)} elapsed"
        return head + (f"; running: {', '.join(parts)}" if parts else "")

    def beat(self) -> None:
        """Print the heartbeat if :attr:`interval` seconds passed since the last line."""
        self._running()  # note start times as soon as status files appear
        if _clock() - self._last >= self.interval:
            self._emit(self.summary(), replace=self.tty)

    def finished(self, name: str, seconds: float) -> None:
        """Item ``name`` is done after ``seconds``: print it and stop showing its status."""
        self.done += 1
        for file, item in self._names.items():
            if item == name:
                (self.status_dir / file).unlink(missing_ok=True)
        self._started.pop(name, None)
        self.write(f"{name} done in {seconds:.0f} s ({self.desc} {self.done}/{self.total}, "
                   f"{_interval(_clock() - self.start)} elapsed)")

    def wait(self, futures: Iterable[Future], poll: float = 1.0) -> Iterator[Future]:
        """Yield ``futures`` as they complete, beating while none does."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
            yield from done
            self.beat()

    def close(self) -> None:
        """Clear the heartbeat line and remove the status files."""
        if self.tty and self._drawn and self.enabled:
            self.file.write("\r\x1b[K")
            self.file.flush()
        shutil.rmtree(self.status_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
