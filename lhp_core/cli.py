"""The ``lhp`` command line.

Each sub-command lives next to the code it drives: the module named in
:data:`COMMANDS` provides ``configure(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``lhp --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lhp_core.data.cli", "list and verify the datasets named in data_manifests/"),
    "train": ("lhp_core.train", "train a Pythia-style checkpoint suite from the bundled corpus"),
    "suite": ("lhp_core.suites", "inspect a checkpoint suite (list, check for duplicate weights)"),
    "sweep": ("lhp_core.sweep", "extract reduced internals of every checkpoint into a results store"),
    "book": ("lhp_core.book", "execute the book's chapters with papermill and build the HTML"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lhp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily in main() for the command actually used.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help() if not argv or argv[0] in ("-h", "--help") else parser.error(
            f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}"
        )
        return 0
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    sub = argparse.ArgumentParser(prog=f"lhp {name}", description=COMMANDS[name][1])
    module.configure(sub)
    args = sub.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
