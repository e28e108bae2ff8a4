"""Benchmark: ``lhp_core.sweep`` against the hand loop a researcher writes.

In one run, on the same random-weight GPT-NeoX checkpoints and the same stimuli:

* **hand loop**: load each checkpoint, run each text with ``output_hidden_states=True`` (and
  forward hooks on the MLP activations), move everything to CPU numpy, average tokens into
  words, save with ``np.savez``;
* **lhp sweep**: ``sweep(..., sites=["resid", "mlp"], reducers=["word_mean"])`` (batched, pooled
  on the device, prefetching the next checkpoint, writing zarr regions).

Every text fits one window, so both loops run exactly the same tokens.

Reported: tokens/s of both and the ratio; the share of the FLOP floor (2 × non-embedding
params × tokens at the device's measured matmul rate: fp32 on CPU, bf16 on CUDA); host peak
memory of a 5-step and a 20-step sweep (fresh processes; must agree within 10 %, as the sweep
holds one checkpoint's results at a time); and the sweep's steady-state cost per step (an
N-step sweep minus a 1-step sweep, over N - 1) against max(load, compute) of one step measured
alone (1.0 = load fully hidden behind compute), next to the cost with the sweep's one-off set-up,
first load and last write spread over the N steps.

Usage::

    python benchmarks/sweep_bench.py                                  # CPU, ~2-3 min on 2 cores
    bash benchmarks/device/check.sh                                   # GPU: pythia-410m size, bf16
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CONFIGS = {
    # small enough that the CPU benchmark finishes in about three minutes on 2 cores
    "cpu-small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "pythia-160m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "pythia-410m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "cpu"
    return f"{model}, {torch.get_num_threads()} threads"


def matmul_rate(device: str, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOP/s on ``device`` in ``dtype``."""
    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    reps = 20 if device.startswith("cuda") else 10
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stimuli_texts(n_texts: int, n_words: int, seed: int = 0) -> list[list[str]]:
    """Texts of pseudo-words (2-4 syllables): self-contained, so the benchmark needs no word list."""
    rng = np.random.default_rng(seed)
    syll = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    vocab = sorted({"".join(rng.choice(syll, rng.integers(2, 5))) for _ in range(4000)})[:3000]
    return [list(rng.choice(vocab, n_words)) for _ in range(n_texts)]


def build(root: Path, config: str, n_steps: int, words: list[list[str]], max_len: int, dtype: torch.dtype,
          device: str = "cpu"):
    """Write ``n_steps`` random-weight checkpoints of model ``m`` under ``root`` and return a Suite.

    Saved in the dtype they are loaded in (bf16 on CUDA, as Pythia's half-precision files), so a
    load reads as many bytes as a real checkpoint's."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from lhp_core.suites import get_suite
    from lhp_core.tokenizer import train_bpe

    tok = train_bpe([" ".join(w) for w in words], vocab_size=4000)
    vocab = 50304 if config.startswith("pythia") else len(tok)
    cfg = GPTNeoXConfig(vocab_size=vocab, max_position_embeddings=max_len, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, **CONFIGS[config])
    for step in range(n_steps):
        path = root / "m" / f"step{step}"
        if (path / "model.safetensors").exists():
            continue
        torch.manual_seed(step)
        with torch.device(device):  # random init of a 410M model on the GPU takes a second, not a minute
            GPTNeoXForCausalLM(cfg).to(dtype).save_pretrained(path)
        tok.save_pretrained(path)
    return get_suite(str(root), tokens_per_step=1000)


def hand_loop(suite, steps, stimuli, device, dtype, out: Path, sites: list[str], reducer: str) -> tuple[float, int]:
    """What a researcher writes by hand. Returns (seconds, tokens run).

    Residual stream from ``output_hidden_states=True``; MLP neurons from forward hooks on each
    block's activation function; everything to CPU numpy, then pooled into words (``word_mean``)
    or over each text (``stimulus_mean``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0, n_tok, results = time.perf_counter(), 0, {}
    for step in steps:
        path = suite.checkpoint_path("m", step)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        tok = AutoTokenizer.from_pretrained(path)
        acts: list[np.ndarray] = []
        hooks = [blk.mlp.act.register_forward_hook(
                     lambda mod, inp, o, acts=acts: acts.append(o[0, 1:].float().cpu().numpy()))
                 for blk in model.gpt_neox.layers] if "mlp" in sites else []
        per_text = {site: [] for site in sites}
        for text, spans in zip(stimuli.texts, stimuli.word_spans):
            enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
            ids = [tok.bos_token_id] + enc["input_ids"]
            acts.clear()
            with torch.no_grad():
                hs = model(torch.tensor([ids], device=device), output_hidden_states="resid" in sites).hidden_states
            arrays = {}
            if "resid" in sites:
                arrays["resid"] = np.stack([h[0, 1:].float().cpu().numpy() for h in hs])  # [layer, token, hidden]
            if "mlp" in sites:
                arrays["mlp"] = np.stack(acts)  # [layer, token, neuron]
            starts = np.array([a for a, _ in spans])
            word = np.searchsorted(starts, [b - 1 for _, b in enc["offset_mapping"]], side="right") - 1
            for site, a in arrays.items():
                if reducer == "stimulus_mean":
                    per_text[site].append(a.mean(1, keepdims=True))
                else:
                    per_text[site].append(np.stack([a[:, word == w].mean(1) for w in range(len(spans))], 1))
            n_tok += len(ids)
        for site in sites:
            results[f"{site}_step{step}"] = np.concatenate(per_text[site], 1)
        for h in hooks:
            h.remove()
        del model
    np.savez(out, **results)
    return time.perf_counter() - t0, n_tok


def lhp_sweep(suite, steps, stimuli, device, dtype_name, out: Path, batch_size: int, sites: list[str],
              reducer: str) -> tuple[float, int]:
    import dask.array  # noqa: F401  (imported once per process: not part of any step's cost)
    import xarray as xr
    import zarr  # noqa: F401

    from lhp_core.sweep import sweep

    t0 = time.perf_counter()
    sweep(suite, stimuli, out, sites=sites, reducers=[reducer], steps=list(steps), device=device,
          dtype=dtype_name, batch_size=batch_size, progress=False, overwrite=True)
    secs = time.perf_counter() - t0
    n_tok = int(xr.open_zarr(str(out), group="m", consolidated=False)["n_tokens"].sum())
    return secs, n_tok


def peak_rss_child(args, n_steps: int, tmp: Path) -> float:
    """Peak host RSS (MiB) of a fresh process running an ``n_steps`` sweep."""
    cmd = [sys.executable, __file__, "--child-steps", str(n_steps), "--root", str(tmp / "suite"),
           "--device", args.device, "--config", args.config, "--texts", str(args.texts), "--words", str(args.words),
           "--batch-size", str(args.batch_size), "--reducer", args.reducer, "--sites", *args.sites,
           "--dtype", _dtype_name(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def _dtype_name(args) -> str:
    """bfloat16 on CUDA, float32 on the CPU, unless ``--dtype`` says (bf16 on the CPU rehearses the GPU path)."""
    return args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")


def child(args) -> None:
    from lhp_core.stimuli import Stimuli
    from lhp_core.suites import get_suite

    stim = Stimuli.from_words(stimuli_texts(args.texts, args.words))
    suite = get_suite(args.root, tokens_per_step=1000)
    dtype = _dtype_name(args)
    with tempfile.TemporaryDirectory() as d:
        lhp_sweep(suite, range(args.child_steps), stim, args.device, dtype, Path(d) / "r.zarr", args.batch_size,
                  args.sites, args.reducer)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", default="cpu-small", choices=list(CONFIGS))
    p.add_argument("--steps", type=int, default=5, help="checkpoints in the speed comparison")
    p.add_argument("--hand-steps", type=int, default=None,
                   help="run the hand loop on only the first N of them (default: all); rates are per token")
    p.add_argument("--hand-texts", type=int, default=None,
                   help="and on only the first N texts (default: all): its host copies make GPU-sized runs slow")
    p.add_argument("--memory-steps", type=int, nargs=2, default=[5, 20])
    p.add_argument("--texts", type=int, default=8)
    p.add_argument("--words", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sites", nargs="+", default=["resid", "mlp"], choices=["resid", "mlp"],
                   help="what both loops extract (default: residual stream + MLP neurons)")
    p.add_argument("--reducer", default="word_mean", choices=["word_mean", "stimulus_mean"],
                   help="pooling of both loops; stimulus_mean for GPU-sized runs, whose per-word output "
                        "(words x layers x (hidden + neurons) floats) would outgrow host memory")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                   help="checkpoint and compute dtype (default: bfloat16 on CUDA, float32 on the CPU)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the numbers here")
    p.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.child_steps:
        return child(args)

    from lhp_core.extract import extract
    from lhp_core.stimuli import Stimuli

    dtype_name = _dtype_name(args)
    dtype = getattr(torch, dtype_name)
    words = stimuli_texts(args.texts, args.words)
    stim = Stimuli.from_words(words)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        suite = build(tmp / "suite", args.config, max(args.steps, *args.memory_steps), words, 1024, dtype, args.device)
        steps = list(range(args.steps))
        from lhp_core.checkpoints import load

        # one step alone: load, then compute (warm-up included so the sweep is not charged for it)
        load(suite, "m", 0, device=args.device, dtype=dtype)
        t = time.perf_counter()
        model, tok = load(suite, "m", 1, device=args.device, dtype=dtype)
        _sync(args.device)
        t_load = time.perf_counter() - t
        extract(model, tok, stim, args.sites, [args.reducer], batch_size=args.batch_size)
        t = time.perf_counter()
        ex = extract(model, tok, stim, args.sites, [args.reducer], batch_size=args.batch_size)
        _sync(args.device)
        t_compute = time.perf_counter() - t
        if len(ex.encoded.windows) != len(stim.ids):
            raise SystemExit(f"some texts are longer than one {model.config.max_position_embeddings}-token window, "
                             "so the hand loop would run other tokens than the sweep; use fewer --words")
        # The blocks and final norm: what the sweep runs (no input embedding lookup, no LM head).
        n_nonemb = sum(p.numel() for p in model.base_model.parameters()) - model.get_input_embeddings().weight.numel()
        del model

        hand_stim = Stimuli.from_words(words[: args.hand_texts]) if args.hand_texts else stim
        t_hand, tok_hand = hand_loop(suite, steps[: args.hand_steps or args.steps], hand_stim, args.device, dtype,
                                     tmp / "hand.npz", args.sites, args.reducer)
        t_lhp, tok_lhp = lhp_sweep(suite, steps, stim, args.device, dtype_name, tmp / "lhp.zarr", args.batch_size,
                                   args.sites, args.reducer)
        # A one-step sweep pays what every sweep pays once (store set-up, the first load, the last
        # write); the difference is the steady-state cost of a step.
        t_one, _ = lhp_sweep(suite, steps[:1], stim, args.device, dtype_name, tmp / "one.zarr", args.batch_size,
                             args.sites, args.reducer)
        t_step = (t_lhp - t_one) / (args.steps - 1) if args.steps > 1 else t_lhp
        rate = matmul_rate(args.device, dtype)
        floor = 2 * n_nonemb * tok_lhp / rate
        mem = {n: peak_rss_child(args, n, tmp) for n in args.memory_steps}

    res = {
        "device": device_name(args.device), "config": args.config, "dtype": dtype_name, "steps": args.steps,
        "hand_steps": args.hand_steps or args.steps, "hand_texts": args.hand_texts or args.texts,
        "sites": "+".join(args.sites), "reducer": args.reducer,
        "tokens_per_step": ex.n_tokens, "nonembedding_params": n_nonemb,
        "hand_tok_s": tok_hand / t_hand, "lhp_tok_s": tok_lhp / t_lhp,
        "speedup": (tok_lhp / t_lhp) / (tok_hand / t_hand),
        "matmul_tflops": rate / 1e12, "flop_floor_share": floor / t_lhp,
        "peak_rss_mib": mem, "rss_ratio": max(mem.values()) / min(mem.values()),
        "load_s": t_load, "compute_s": t_compute, "sweep_one_step_s": t_one, "sweep_step_s": t_step,
        "step_over_max_load_compute": t_step / max(t_load, t_compute),
        "amortised_step_over_max_load_compute": (t_lhp / args.steps) / max(t_load, t_compute),
    }
    print(json.dumps(res, indent=1))
    a, b = args.memory_steps
    print(f"\n| device | {res['device']} ({res['dtype']}, {args.config}, {n_nonemb / 1e6:.1f}M non-emb params, "
          f"{res['sites']}, {args.reducer}) |\n|---|---|")
    print(f"| hand loop tokens/s ({res['hand_steps']} checkpoint(s) x {res['hand_texts']} texts) | "
          f"{res['hand_tok_s']:.0f} |")
    print(f"| lhp sweep tokens/s ({args.steps} checkpoints x {args.texts} texts, batch {args.batch_size}) | "
          f"{res['lhp_tok_s']:.0f} |")
    print(f"| speed-up | {res['speedup']:.2f}x |")
    print(f"| share of FLOP floor ({res['matmul_tflops'] * 1e3:.0f} GFLOP/s measured matmul) | "
          f"{res['flop_floor_share']:.1%} |")
    print(f"| host peak RSS {a} vs {b} steps | {mem[a]:.0f} / {mem[b]:.0f} MiB (ratio {res['rss_ratio']:.3f}) |")
    print(f"| sweep step (steady state: ({args.steps}-step - 1-step sweep) / {args.steps - 1}) / "
          f"max(load {t_load:.2f} s, compute {t_compute:.2f} s) | {res['step_over_max_load_compute']:.2f} |")
    print(f"| the same with set-up, first load and last write spread over {args.steps} steps | "
          f"{res['amortised_step_over_max_load_compute']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
