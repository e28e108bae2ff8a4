"""``lhp sweep``: extract reduced internals of every checkpoint of a suite into a results store
(:func:`lhp_core.sweep.sweep`)."""
from __future__ import annotations

import argparse

import torch

from lhp_core.checkpoints import DTYPES
from lhp_core.cli.options import at_least, device_name, positive_int
from lhp_core.cli.suite import add_suite_options, suite_from_args
from lhp_core.stimuli import read_stimuli
from lhp_core.suites import get_suite
from lhp_core.sweep import STEP_SPECS, parse_steps, sweep


def _step_spec(text: str) -> str:
    try:
        parse_steps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite id (e.g. lhp-mini, pythia), a folder (Trainer output with "
                                      "checkpoint-<N>/, step<N>/ folders, or one model) or a hub repo id "
                                      "with --revisions")
    parser.add_argument("--stimuli", required=True,
                        help="a .txt file (one stimulus per line, id = line number; blank lines skipped) or a "
                             ".csv/.tsv table (see --text-column/--word-column); empty cells are errors")
    parser.add_argument("--encoding", default="utf-8", help="text encoding of the stimulus file (default utf-8)")
    parser.add_argument("--text-column", help="table column holding one text per row")
    parser.add_argument("--word-column", help="table column holding one word per row (pre-segmented texts)")
    parser.add_argument("--id-column", default="stimulus", help="table column with the stimulus id")
    parser.add_argument("--out", required=True, help="output zarr store (re-run to resume)")
    parser.add_argument("--models", nargs="+", help="models of the suite (default: all; Pythia also takes sizes: 70m)")
    parser.add_argument("--steps", default="all", type=_step_spec, help=STEP_SPECS)
    parser.add_argument("--sites", nargs="+", default=["resid"],
                        help="resid mlp attn_out linear logprobs logprobs_bow heads")
    parser.add_argument("--reducers", nargs="+", default=["word_mean"],
                        help="word_mean word_last word_sum stimulus_mean stimulus_last stimulus_max per_token")
    parser.add_argument("--head-scores", nargs="+", default=[], help="head scores for the heads site")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", type=device_name,
                        help="cpu, cuda, cuda:N or mps (checked before anything is written)")
    parser.add_argument("--dtype", default=None, choices=list(DTYPES),
                        help="float32 (CPU default) or bfloat16 (GPU default)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per forward pass")
    parser.add_argument("--max-length", type=at_least(3), default=None,
                        help="window length incl. BOS (default: the suite's training context, else the model's); "
                             "longer than the trained context needs --allow-beyond-context")
    parser.add_argument("--allow-beyond-context", action="store_true",
                        help="accept --max-length beyond the context the model was trained on (untrained positions)")
    parser.add_argument("--workers", type=positive_int, help="run on a local dask cluster with N workers")
    parser.add_argument("--scheduler", help="address of a running dask scheduler (e.g. from dask-jobqueue)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing lhp store at --out (refused for any other folder)")
    parser.add_argument("--wait", action="store_true",
                        help="if another sweep is writing --out, wait for it instead of stopping")
    add_suite_options(parser)


def run(args: argparse.Namespace) -> int:
    stimuli = read_stimuli(args.stimuli, text_column=args.text_column, word_column=args.word_column,
                           id_column=args.id_column, encoding=args.encoding)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    suite = suite_from_args(args)
    for line in get_suite(suite).describe():  # what was recognised, before any checkpoint loads
        print(line, flush=True)
    out = sweep(suite, stimuli, args.out, sites=args.sites, reducers=args.reducers,
                head_scores=args.head_scores, models=args.models, steps=args.steps, device=args.device,
                dtype=dtype, batch_size=args.batch_size, max_length=args.max_length, workers=args.workers,
                scheduler=args.scheduler, overwrite=args.overwrite, wait=args.wait,
                allow_beyond_context=args.allow_beyond_context)
    print(f"wrote {out}")
    return 0
