"""The lhp command line.

Each sub-command's module, named in :data:`COMMANDS` (``lhp_core.cli.<command>``, or the book's and
the data's own), provides ``configure(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``lhp --help`` is fast.

Errors are one line on stderr, ``lhp COMMAND: error: <what is wrong and how to fix it>``; the
exit status says which kind (:data:`EXIT_CODES`); ``--debug`` shows the traceback instead.
Numeric options are checked by argparse with the types of :mod:`lhp_core.cli.options`, before any work
starts. ``python -m lhp_core.cli`` runs :func:`main` (``__main__``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lhp_core import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lhp_core.data.cli", "list and verify the datasets named in data_manifests/"),
    "train": ("lhp_core.cli.train", "train a Pythia-style checkpoint suite from the bundled corpus"),
    "suite": ("lhp_core.cli.suite", "inspect a checkpoint suite (list, check for duplicate or changed weights)"),
    "sweep": ("lhp_core.cli.sweep", "extract reduced internals of every checkpoint into a results store"),
    "book": ("lhp_core.book", "execute the book's chapters with papermill and build the HTML"),
}

#: Exit statuses of every command.
EXIT_CODES = {0: "success", 1: "a problem was found (the one-line message names it and the fix)",
              2: "bad usage: unknown command or option, or an invalid option value"}

EPILOG = "exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + (
    ". --debug (anywhere on the line) prints the full traceback of an error instead of one line.")


# ---- the command line ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lhp", description="The lhp command line: train checkpoint suites, sweep them, build the book.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"lhp {__version__}")
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

