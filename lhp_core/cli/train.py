"""``lhp train``: train a Pythia-style checkpoint suite from the bundled corpus (:func:`lhp_core.train.train`)."""
from __future__ import annotations

import argparse

from lhp_core.cli.options import at_least, device_name, float_in, positive_int
from lhp_core.presets import PRESETS
from lhp_core.train import train


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, choices=list(PRESETS), help="training recipe")
    parser.add_argument("--out", default=None, help="suite folder (default: $LHP_SUITES/lhp-<preset>[-copyreg]); "
                                                    "re-run to resume, or to re-create deleted step folders")
    parser.add_argument("--copy-reg", type=float_in(0.0), default=0.0,
                        help="weight of the induction-attention penalty (0 = off)")
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--device", default="cpu", type=device_name,
                        help="cpu or cuda[:N] (checked before anything is written)")
    parser.add_argument("--repeat-frac", type=float_in(0.0, 1.0), default=None,
                        help="share of rows with a repeated span (default: the preset's; 0 = natural text only)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (fixed for reproducibility)")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="SIZE",
                        help="train only these model sizes of the preset")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    out = train(args.preset, args.out, copy_reg=args.copy_reg, seed=args.seed, device=args.device,
                repeat_frac=args.repeat_frac, threads=args.threads, progress=not args.no_progress, sizes=args.sizes)
    print(f"suite written to {out}")
    return 0
