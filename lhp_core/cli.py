"""The lhp command line.

Each sub-command lives next to the code it drives: the module named in
:data:`COMMANDS` provides ``configure(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``lhp --help`` is fast.

Errors are one line on stderr, ``lhp COMMAND: error: <what is wrong and how to fix it>``; the
exit status says which kind (:data:`EXIT_CODES`); ``--debug`` shows the traceback instead.
Numeric options are checked by argparse with the types below, before any work starts.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lhp_core.data.cli", "list and verify the datasets named in data_manifests/"),
    "train": ("lhp_core.train", "train a Pythia-style checkpoint suite from the bundled corpus"),
    "suite": ("lhp_core.suites", "inspect a checkpoint suite (list, check for duplicate or changed weights)"),
    "sweep": ("lhp_core.sweep", "extract reduced internals of every checkpoint into a results store"),
    "book": ("lhp_core.book", "execute the book's chapters with papermill and build the HTML"),
}

#: Exit statuses of every command.
EXIT_CODES = {0: "success", 1: "a problem was found (the one-line message names it and the fix)",
              2: "bad usage: unknown command or option, or an invalid option value"}

EPILOG = "exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + (
    ". --debug (anywhere on the line) prints the full traceback of an error instead of one line.")


# ---- option types (argparse calls them while parsing: a bad value exits 2 with its message) ----
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
    import re

    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


# ---- the command line ----------------------------------------------------------------------
def _version() -> str:
    from lhp_core import __version__

    return f"lhp {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lhp", description="The lhp command line: train checkpoint suites, sweep them, build the book.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily in main() for the command actually used.
    return parser


def _one_line(err: BaseException) -> str:
    # KeyError's str() is the repr of its message; SuiteError and others already print plainly.
    text = err.args[0] if type(err) is KeyError and err.args else str(err)
    return " ".join(str(text).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (:data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        try:
            parser.parse_args(argv)  # --help and --version exit 0 here; an unknown command or option exits 2
        except SystemExit as e:
            return int(e.code or 0)
        parser.print_help(sys.stderr)  # no command given
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"lhp {name}", description=COMMANDS[name][1], epilog=EPILOG)
    module.configure(sub)
    try:
        args = sub.parse_args(argv[1:])
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"lhp {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        known = isinstance(err, (OSError, ValueError, KeyError, RuntimeError, NotImplementedError))
        kind = "error" if known else f"internal error ({type(err).__name__}; please report it with --debug output)"
        print(f"lhp {name}: {kind}: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
