"""Per-checkpoint cost of ablated forward passes against the clean pass (``lhp_core.ablation``).

One random-weight GPT-NeoX checkpoint at a suite size's shape (default: ``lhp-mini``'s ``l``), full-context
windows of random tokens scored with :func:`lhp_core.metrics.heads.position_losses` (the batching the ICL
and repeated-sequence measures of ``ablation_over_steps`` use), timed clean and with two heads ablated in
each mode: zero, mean (the reference means computed once per checkpoint, timed separately) and
pattern-preserving (zero, every pattern fixed to the clean run's: a clean eager pass plus the ablated pass).
Prints a markdown table with the device. Each timing is the median of ``--repeats`` runs, interleaved.

    python benchmarks/ablation_bench.py                       # CPU, lhp-mini l shape, 256 windows
    python benchmarks/ablation_bench.py --device cuda --preset gpu --size xl --windows 2048
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time

import numpy as np
import torch
from transformers import GPTNeoXForCausalLM

from lhp_core import ablation
from lhp_core.metrics import heads
from lhp_core.presets import PRESETS, make_config


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {torch.get_num_threads()} torch threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mini", choices=sorted(PRESETS))
    ap.add_argument("--size", default="l")
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = PRESETS[args.preset]
    size = next(s for s in preset.sizes if s.name == args.size)
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(make_config(size, preset, eager=False)).eval().to(args.device)
    model.set_attn_implementation("sdpa")
    lay = ablation.head_layout(model)
    ctx = preset.context
    windows = np.random.default_rng(0).integers(1, preset.vocab_size, size=(args.windows, ctx - 1))
    chosen = [(lay.n_layers, 0), (lay.n_layers, 1)]

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    means = ablation.head_means(model, windows, 0, device=args.device)

    def run(mode: str, pattern: bool = False):
        def go():
            with ablation.ablate(model, [] if mode == "clean" else chosen, "zero" if mode == "clean" else mode,
                                 means, preserve_patterns=pattern):
                heads.position_losses(model, windows, 0, device=args.device)
        return go

    cases = {"clean": run("clean"), "zero": run("zero"), "mean": run("mean"), "pattern-preserving": run("zero", True),
             "reference means (once per checkpoint)": lambda: ablation.head_means(model, windows, 0,
                                                                                  device=args.device)}
    for fn in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for k, fn in cases.items():
            times[k].append(timed(fn))
    n_tokens = args.windows * ctx
    clean = statistics.median(times["clean"])
    print(f"device: {device_name(args.device)}; model: {args.preset} {size.name} ({lay.n_layers} layers x "
          f"{lay.n_heads} heads, d_model {lay.n_heads * lay.head_dim}), {args.windows} windows x {ctx} tokens, "
          f"median of {args.repeats}\n")
    print("| pass | seconds | tokens/s | x clean |")
    print("|---|---|---|---|")
    for k, ts in times.items():
        t = statistics.median(ts)
        print(f"| {k} | {t:.3f} ({min(ts):.3f}-{max(ts):.3f}) | {n_tokens / t:,.0f} | {t / clean:.2f} |")


if __name__ == "__main__":
    main()
