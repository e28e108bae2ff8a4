"""``lhp suite``: list the registered suites, show what a suite is, check its weights across steps; and the
options that say what a suite without a training record is (also on ``lhp sweep``)."""
from __future__ import annotations

import argparse
import json

from lhp_core.cli.options import positive_int
from lhp_core.identical import check_hub
from lhp_core.suites import OPTION_FLAGS, SUITES, HubSuite, LocalSuite, Suite, check, duplicate_groups, get_suite


def add_suite_options(parser: argparse.ArgumentParser) -> None:
    """The options that say what a suite without a training record is (``lhp sweep``, ``lhp suite show``)."""
    g = parser.add_argument_group("suites without a training record")
    g.add_argument("--tokens-per-step", type=positive_int, default=None,
                   help="tokens per optimizer step: tokens_seen = step x N (folders and hub repos)")
    g.add_argument("--revisions", nargs="+", default=None, metavar="REV",
                   help="hub repo checkpoints: branch/tag names (main step1000; NAME=STEP sets a step) or "
                        "patterns over its branches ('step*')")
    g.add_argument("--seq-len", type=positive_int, default=None, dest="sequence_length",
                   help="Trainer folders: tokens per training sequence (tokens/step = train_batch_size x "
                        "gradient accumulation x world size x this)")
    g.add_argument("--world-size", type=positive_int, default=None,
                   help="Trainer folders: number of training processes (default 1)")


def suite_from_args(args: argparse.Namespace) -> str | Suite:
    """The suite the command line names: its string when no option is given, else the :class:`Suite` built with them."""
    options = {k: getattr(args, k, None) for k in OPTION_FLAGS}
    if all(v is None for v in options.values()):
        return args.suite
    return get_suite(args.suite, **options)


def _train_command(s: LocalSuite) -> str:
    """The ``lhp train`` command that builds the registered suite ``s`` (as :func:`lhp_core.train.ensure` would)."""
    cmd = f"lhp train --preset {s.preset}"
    if s.copy_reg:
        cmd += f" --copy-reg {s.copy_reg:g}"
    if s.sizes:
        cmd += f" --sizes {' '.join(s.sizes)}"
    return cmd


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="registered suites and whether they are available locally")
    show = sub.add_parser("show", help="what a suite is: its kind, models, steps, where tokens_seen comes from, "
                                       "parameter counts")
    show.add_argument("suite", help="registered id, folder (Trainer output, step<N>/ folders, one model) or hub repo")
    add_suite_options(show)
    chk = sub.add_parser("check", help="hash weights across steps; report identical weights")
    chk.add_argument("suite")
    chk.add_argument("--model", action="append", default=None, help="only this model (repeatable)")
    chk.add_argument("--json", action="store_true", help="print the full table as JSON lines")
    chk.add_argument("--strict", action="store_true", help="exit 1 when steps share identical weights")
    chk.add_argument("--offline", action="store_true",
                     help="hub suites: read the revisions in the Hugging Face cache, not the hub's file metadata")
    add_suite_options(chk)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for sid in SUITES.names():
            s = SUITES.get(sid)
            where = f"hub ({s.org})" if s.kind == "hub" else (
                f"trained at {s.root}" if s.is_trained else f"not trained ({_train_command(s)})")
            print(f"{sid:22s} {where}")
        return 0
    s = get_suite(suite_from_args(args))
    if args.action == "show":
        for line in s.describe():  # what was recognised first: it needs no weights or configs
            print(line, flush=True)
        for m in s.models:
            try:
                n, ne = s.n_params(m), s.n_params(m, nonembedding=True)
                params = f"{n:,} params ({ne:,} non-embedding)"
            except (FileNotFoundError, OSError, ValueError) as e:
                params = f"params unknown ({e})"
            print(f"  {m}: {params}")
        if isinstance(s, LocalSuite) and s.record is not None:
            for k in ("preset", "recipe", "seed", "copy_reg", "device", "git_commit"):
                if k in s.record.attrs:
                    print(f"  {k}: {s.record.attrs[k]}")
        return 0
    if isinstance(s, HubSuite):
        return check_hub(s, args.model, offline=args.offline, strict=args.strict, as_json=args.json)
    df = check(s, args.model)
    if args.json:
        for row in df.to_dict("records"):
            print(json.dumps(row))
    groups = duplicate_groups(df)
    bad, missing = df[df["record_mismatch"]], df[df["missing"]]
    print(f"{len(df) - len(missing)} checkpoints hashed in {s.id}"
          + (f", {len(missing)} missing" if len(missing) else ""))
    for model, steps in groups:
        print(f"  {model}: identical weights at steps {steps}")
    if not groups:
        print("  no two steps of a model share weights")
    for row in bad.itertuples():
        print(f"  {row.model} step {row.step}: weights differ from training_record.nc (file changed or corrupt)")
    for row in missing.itertuples():
        print(f"  {row.model} step {row.step}: checkpoint folder missing (training_record.nc lists it)")
    if len(bad) or len(missing):
        fix = s.restore_hint() if isinstance(s, LocalSuite) else "restore those checkpoints"
        print(f"  to fix: delete the damaged step folders and {fix}")
    return 1 if len(bad) or len(missing) or (args.strict and groups) else 0
