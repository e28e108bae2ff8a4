"""Option types of the ``lhp`` commands: argparse calls them while parsing, so a bad value exits 2 with
its message before any work starts.

They live apart from :mod:`lhp_core.cli`, which imports each command's module by name when it runs,
so that a command module can use them without importing the dispatcher back.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, workers, threads)."""
    return at_least(1)(text)


def at_least(low: int) -> Callable[[str], int]:
    """An option type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def float_in(low: float, high: float | None = None) -> Callable[[str], float]:
    """An option type: a float in ``[low, high]`` (no upper bound when ``high`` is None)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {span}, got {text!r}") from None
        if not (value >= low and (high is None or value <= high)):  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected a number {span}, got {text}")
        return value

    parse.__name__ = f"number {span}"
    return parse


def device_name(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``; whether it is usable here is checked when the command runs."""
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text
