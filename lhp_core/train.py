"""``lhp train``: train a Pythia-style checkpoint suite (GPT-NeoX models) from the bundled corpus.

One suite = several model sizes trained on the same tokenizer, the same held-out split and
the same data order, each saved on a log-then-even checkpoint schedule::

    DIR/tokenizer/                      byte-level BPE trained on the training split only
    DIR/<model>/step<N>/                Hugging Face checkpoint (safetensors) + tokenizer
    DIR/<model>/train_state.pt          optimizer, step, history (only while training)
    DIR/<model>/history.json            per-checkpoint numbers once the model is done
    DIR/training_record.nc              xarray, dims (model, step)

The batch at step ``s`` is a pure function of ``(seed, s)``, so resuming needs only the step,
the weights and the optimizer state; a resumed run ends with checkpoints byte-identical to
an uninterrupted one. Checkpoint folders are written to a temporary name and renamed, so a
killed run never leaves a half-written ``step<N>/``. For the same reason a finished model's
lost step folder can be made again: re-running ``lhp train`` retrains that model from step 0
(with the thread count the record names) up to the missing steps and installs each re-created
folder only if its weights hash equals the one in ``training_record.nc``.

Induction-friendly data: with ``repeat_frac > 0`` that share of training rows copies one span
of ``span_min..span_max`` tokens to ``span_copies`` later positions in the same row. Pure corpus text
(``--repeat-frac 0``) gives small models too few repeats to form induction heads in a CPU
budget (see :data:`PRESETS` for measurements).
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import pickle
import shutil
import sys
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from transformers import AutoTokenizer, GPTNeoXForCausalLM
from transformers.utils import logging as hf_logging

from lhp_core import corpus, schema
from lhp_core import tokenizer as tok
from lhp_core.checkpoints import check_device
from lhp_core.presets import PRESETS, Preset, Size, default_out, make_config
from lhp_core.progress import Monitor, bar, reporting_to
from lhp_core.provenance import git_commit
from lhp_core.suites import LocalSuite, Suite, count_params, get_suite
from lhp_core.weights import weights_sha256

RECORD = "training_record.nc"


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    """Token streams and fixed evaluation batches of one suite."""

    train: np.ndarray  # (n_train_tokens,) int32
    val: object  # torch.LongTensor (val_seqs, context)
    probe: object  # torch.LongTensor (probe_seqs, 1 + 2 * probe_len)
    tokenizer: object = field(repr=False)


def _prepare_data(preset: Preset, out: Path, seed: int) -> Data:

    corp = corpus.load(preset.corpora, max_train_chars=preset.max_train_chars, max_val_chars=preset.max_val_chars)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        tmp = out / f".tmp-tokenizer-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tok.save(tok.train_bpe(corp.train, preset.vocab_size), tmp)
        try:
            os.replace(tmp, tok_dir)
        except OSError:  # another size of this suite, training in another process, saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    # Always the saved copy: resumed runs and sizes trained in other processes share one vocabulary.
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    train = corpus.token_stream(tokenizer, corp.train)
    val = corpus.token_stream(tokenizer, corp.val)
    ctx = preset.context
    if len(train) < 4 * ctx or len(val) < preset.val_seqs * ctx // 4:
        raise ValueError(f"corpus too small for context {ctx}: {len(train)} train / {len(val)} held-out tokens")
    # Held-out sequences are evenly spaced windows (overlapping only if the split is small).
    starts = np.linspace(0, len(val) - ctx - 1, preset.val_seqs).astype(np.int64)
    val_batch = np.stack([val[s : s + ctx] for s in starts])
    L = min(preset.probe_len, (ctx - 1) // 2)
    rng = np.random.default_rng([seed, 7])
    # Probe spans come from the held-out stream: natural token statistics, never trained on.
    pstarts = rng.integers(0, len(val) - L, preset.probe_seqs)
    spans = np.stack([val[s : s + L] for s in pstarts])
    eos = np.full((preset.probe_seqs, 1), tokenizer.eos_token_id, dtype=np.int32)
    probe = np.concatenate([eos, spans, spans], axis=1)
    return Data(train, torch.as_tensor(val_batch, dtype=torch.long), torch.as_tensor(probe, dtype=torch.long),
                tokenizer)


def batch_at(step: int, stream: np.ndarray, preset: Preset, seed: int, repeat_frac: float) -> np.ndarray:
    """The training batch of ``step``: a pure function of ``(seed, step)``.

    Returns
    -------
    np.ndarray, shape (batch_size, context), dtype int64
    """
    B, T = preset.batch_size, preset.context
    rng = np.random.default_rng([seed, 1, step])
    starts = rng.integers(0, len(stream) - T, B)
    x = stream[starts[:, None] + np.arange(T)].astype(np.int64)
    # Always draw the same numbers so the data order does not depend on repeat_frac's branches.
    rep, u_len, u_src, u_dst = rng.random(B), rng.random(B), rng.random(B), rng.random(B)
    k = preset.span_copies
    lo, hi = preset.span_min, min(preset.span_max, T // (k + 1))
    if k == 1:
        for r in np.flatnonzero(rep < repeat_frac):
            L = lo + int(u_len[r] * (hi - lo + 1))
            p = int(u_src[r] * (T - 2 * L + 1))
            q = p + L + int(u_dst[r] * (T - p - 2 * L + 1))
            x[r, q : q + L] = x[r, p : p + L]
        return x
    u_gap = rng.random((B, k))  # drawn after the others: k = 1 batches are unchanged
    for r in np.flatnonzero(rep < repeat_frac):
        L = lo + int(u_len[r] * (hi - lo + 1))
        p = int(u_src[r] * (T - (k + 1) * L + 1))
        slack = (T - p - (k + 1) * L) // k  # each gap at most this: all copies fit in the row
        q = p + L
        for i in range(k):
            q += int(u_gap[r, i] * (slack + 1))
            x[r, q : q + L] = x[r, p : p + L]
            q += L
    return x


# ----------------------------------------------------------------------------- model


def induction_mask(ids):
    """Where attention would be induction-style.

    ``mask[b, i, j]`` is true when key ``j`` is the token right after an earlier occurrence of
    the query token: ``ids[b, j-1] == ids[b, i]`` with ``j - 1 < i`` and ``j < i`` (self excluded).

    Parameters
    ----------
    ids : torch.LongTensor, shape (batch, token)

    Returns
    -------
    torch.BoolTensor, shape (batch, token, token)
    """

    T = ids.shape[1]
    prev = torch.cat([torch.full_like(ids[:, :1], -1), ids[:, :-1]], dim=1)  # prev[j] = ids[j-1]
    same = ids[:, :, None] == prev[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril(-1)
    return same & causal


def copy_penalty(attentions, ids):
    """Mean induction-style attention mass, the quantity ``--copy-reg`` penalises.

    Parameters
    ----------
    attentions : sequence of torch.Tensor, each (batch, head, token, token)
    ids : torch.LongTensor, shape (batch, token)

    Returns
    -------
    Scalar tensor: mass on induction keys, summed over keys, averaged over layers, heads and
    the query positions that have at least one such key (0 if none do).
    """

    mask = induction_mask(ids)
    has = mask.any(-1)  # (batch, token)
    if not bool(has.any()):
        return torch.zeros((), device=ids.device)
    m = mask[:, None].to(attentions[0].dtype)
    per_layer = [(a * m).sum(-1).mean(1)[has].mean() for a in attentions]
    return torch.stack(per_layer).mean()


@dataclass
class _Eval:
    val_loss: float
    probe_first_loss: float
    probe_second_loss: float


def evaluate(model, data: Data, device: str) -> _Eval:
    """Held-out loss and induction-probe losses (nats/token)."""

    model.eval()
    with torch.no_grad():
        vals = []
        for chunk in data.val.split(16):
            x = chunk.to(device)
            vals.append(model(input_ids=x, labels=x).loss.float().item() * len(chunk))
        x = data.probe.to(device)
        logits = model(input_ids=x).logits.float()
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none")  # (probe, token-1)
        L = (x.shape[1] - 1) // 2
        # nll[:, t] predicts token t+1; first copy = tokens 1..L, second = L+1..2L; the first token
        # of each copy has no in-context cue, so it is left out of both.
        first = nll[:, 1:L].mean().item()
        second = nll[:, L + 1 :].mean().item()
    model.train()
    return _Eval(sum(vals) / len(data.val), first, second)


def _lr_lambda(preset: Preset):
    def f(step: int) -> float:
        if step < preset.warmup:
            return (step + 1) / preset.warmup
        t = (step - preset.warmup) / max(1, preset.total_steps - preset.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def _save_checkpoint(model, tokenizer, folder: Path, expect: str | None = None) -> str:
    """Save to a temporary folder, then rename; with ``expect``, only if the weights hash equals it."""
    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    sha = weights_sha256(tmp)
    if expect is not None and sha != expect:
        shutil.rmtree(tmp)
        raise RuntimeError(
            f"re-created {folder} has weights sha256 {sha[:16]}..., training_record.nc lists {expect[:16]}...: this "
            f"machine (torch {torch.__version__}, {torch.get_num_threads()} threads) does not reproduce the original "
            "run, so nothing was installed; restore the folder from a copy of the suite instead"
        )
    shutil.rmtree(folder, ignore_errors=True)  # a later-step folder left by a run killed before its state was saved
    os.replace(tmp, folder)
    return sha


def _atomic_torch_save(obj, path: Path) -> None:

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _initial_model(size: Size, preset: Preset, seed: int, eager: bool):
    torch.manual_seed(seed * 1000 + size.seed_offset)
    return GPTNeoXForCausalLM(make_config(size, preset, eager))


def _optimizer(model, preset: Preset):
    """AdamW (no decay on biases and norms) and its warm-up + cosine schedule."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": preset.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=preset.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False,
    )
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(preset))


def _update(model, opt, sched, x, copy_reg: float, use_bf16: bool):
    """One optimiser step on batch ``x``; returns the language-model loss (without the penalty)."""
    eager = copy_reg > 0
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
        outp = model(input_ids=x, labels=x, output_attentions=eager)
        loss = outp.loss
        total = loss + copy_reg * copy_penalty(outp.attentions, x) if eager else loss
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss


def _recorded_threads(out: Path) -> int | None:
    """The torch thread count of the suite's recorded run (part of a CPU run's bit-level result)."""
    if not (out / RECORD).exists():
        return None
    with xr.open_dataset(out / RECORD) as rec:
        return int(rec.attrs["threads"]) if "threads" in rec.attrs else None


def recreate_missing_steps(size: Size, preset: Preset, data: Data, out: Path, seed: int, copy_reg: float,
                           device: str, repeat_frac: float, history: list[dict]) -> list[int]:
    """Re-create a finished model's lost ``step<N>/`` folders by retraining it from step 0.

    The optimiser state of intermediate steps is not kept, so the run restarts from the seeded
    initialisation; every batch is a pure function of ``(seed, step)``, so with the recorded thread
    count the weights come out identical. Each folder is installed only if its weights hash equals
    the history's (:func:`_save_checkpoint` with ``expect``).

    Returns
    -------
    The steps re-created (empty when no folder was missing).
    """
    mdir = out / size.name
    want = {h["step"]: h["weights_sha256"] for h in history if not (mdir / f"step{h['step']}").is_dir()}
    if not want:
        return []
    threads, recorded = torch.get_num_threads(), _recorded_threads(out)
    torch.set_num_threads(recorded or threads)
    try:
        model = _initial_model(size, preset, seed, copy_reg > 0).to(device).train()
        opt, sched = _optimizer(model, preset)
        use_bf16 = preset.bf16 and device.startswith("cuda")
        if 0 in want:
            _save_checkpoint(model, data.tokenizer, mdir / "step0", expect=want[0])
        for step in range(max(want)):
            x = torch.as_tensor(batch_at(step, data.train, preset, seed, repeat_frac), device=device)
            _update(model, opt, sched, x, copy_reg, use_bf16)
            if step + 1 in want:
                _save_checkpoint(model, data.tokenizer, mdir / f"step{step + 1}", expect=want[step + 1])
    finally:
        torch.set_num_threads(threads)
    print(f"lhp train: re-created {size.name}/step{{{','.join(map(str, sorted(want)))}}} in {out}; weights equal "
          "training_record.nc", file=sys.stderr)
    return sorted(want)


def train_model(
    size: Size, preset: Preset, data: Data, out: Path, seed: int, copy_reg: float, device: str,
    repeat_frac: float, progress: bool = True, run: str = "run 1 of 1",
) -> list[dict]:
    """Train (or resume, or skip if done) one model; returns its per-checkpoint history.

    ``run`` labels its progress bar (``"run 2 of 5"``); a finished model shows no bar. A finished
    model whose step folders were deleted gets them back (:func:`recreate_missing_steps`).
    """
    mdir = out / size.name
    mdir.mkdir(parents=True, exist_ok=True)
    done = mdir / "history.json"
    if done.exists():
        history = json.loads(done.read_text())
        recreate_missing_steps(size, preset, data, out, seed, copy_reg, device, repeat_frac, history)
        return history
    schedule = preset.steps()
    state_path = mdir / "train_state.pt"
    eager = copy_reg > 0
    if state_path.exists():
        # weights_only: the state is tensors, numbers and strings; nothing in it needs arbitrary unpickling
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ValueError(
                f"{state_path} holds objects other than a training state, which lhp does not unpickle (that can "
                f"run code): {' '.join(str(e).split())[:200]}; delete it (model {size.name!r} then trains again "
                "from step 0) or restore it"
            ) from None
        step = state["step"]
        model = GPTNeoXForCausalLM.from_pretrained(mdir / f"step{step}", dtype=torch.float32, use_safetensors=True)
        if eager:
            model.config._attn_implementation = "eager"
        history, wall0 = state["history"], state["wall_time"]
    else:
        model = _initial_model(size, preset, seed, eager)
        state, step, history, wall0 = None, 0, [], 0.0
    model.to(device).train()
    opt, sched = _optimizer(model, preset)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    n_total, n_nonemb = count_params(model), count_params(model, nonembedding=True)
    t_start = time.perf_counter()
    use_bf16 = preset.bf16 and device.startswith("cuda")

    def checkpoint(step: int, train_loss: float) -> None:
        ev = evaluate(model, data, device)
        sha = _save_checkpoint(model, data.tokenizer, mdir / f"step{step}")
        history.append({
            "step": step, "train_loss": train_loss, "val_loss": ev.val_loss,
            "probe_first_loss": ev.probe_first_loss, "probe_second_loss": ev.probe_second_loss,
            "weights_sha256": sha, "wall_time": wall0 + time.perf_counter() - t_start,
            "n_params": n_total, "n_params_nonembedding": n_nonemb,
        })
        _atomic_torch_save(
            {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "history": history, "wall_time": history[-1]["wall_time"]},
            state_path,
        )

    if step == 0 and not history:
        with torch.no_grad():
            x0 = torch.as_tensor(batch_at(0, data.train, preset, seed, repeat_frac), device=device)
            model.eval()
            loss0 = model(input_ids=x0, labels=x0).loss.item()
            model.train()
        checkpoint(0, loss0)
    losses: list[float] = []
    # One bar per model; resumed steps count as done but not in the rate or ETA.
    with bar(total=preset.total_steps, initial=step, desc=f"{out.name} {size.name} ({run})", unit="step",
             disable=not progress) as pbar:
        while step < preset.total_steps:
            x = torch.as_tensor(batch_at(step, data.train, preset, seed, repeat_frac), device=device)
            loss = _update(model, opt, sched, x, copy_reg, use_bf16)
            step += 1
            losses.append(loss.item())
            pbar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)  # shown at the bar's next (throttled) redraw
            pbar.update(1)
            if step in schedule:
                checkpoint(step, float(np.mean(losses)))
                losses = []
    done.write_text(json.dumps(history))
    state_path.unlink(missing_ok=True)
    return history


def build_record(histories: dict[str, list[dict]], preset: Preset, attrs: dict):
    """Assemble ``training_record.nc`` from per-model histories.

    Returns
    -------
    xarray.Dataset with dims (model, step), coordinate tokens_seen(model, step),
    n_params / n_params_nonembedding along model.
    """

    models = list(histories)
    steps = preset.steps()
    M, S = schema.MODEL, schema.STEP

    def grid(key, dtype=float):
        arr = np.empty((len(models), len(steps)), dtype=object if dtype is str else float)
        for i, m in enumerate(models):
            by_step = {h["step"]: h for h in histories[m]}
            for j, s in enumerate(steps):
                arr[i, j] = by_step[s][key]
        return arr

    ds = xr.Dataset(
        {k: ((M, S), grid(k))
         for k in ("train_loss", "val_loss", "probe_first_loss", "probe_second_loss", "wall_time")},
        coords={M: models, S: steps},
    )
    ds["weights_sha256"] = ((M, S), grid("weights_sha256", str).astype(str))
    ds = ds.assign_coords({
        schema.TOKENS_SEEN: ((M, S), np.tile(np.asarray(steps, dtype=np.int64) * preset.tokens_per_step,
                                             (len(models), 1))),
        "n_params": (M, np.array([histories[m][0]["n_params"] for m in models], dtype=np.int64)),
        "n_params_nonembedding": (M, np.array([histories[m][0]["n_params_nonembedding"] for m in models],
                                              dtype=np.int64)),
    })
    notes = {"train_loss": "mean training-batch loss over the updates up to this checkpoint "
                           "(step 0: first batch at init)",
             "val_loss": "held-out documents", "probe_first_loss": "induction probe, 1st copy",
             "probe_second_loss": "induction probe, 2nd copy", "wall_time": "cumulative training seconds"}
    for k, note in notes.items():
        ds[k].attrs.update(units="s" if k == "wall_time" else "nats/token", description=note)
    ds.attrs.update(attrs)
    schema.check_attrs(ds.attrs, "training record")
    return ds


def train(
    preset: str | Preset,
    out: str | Path | None = None,
    copy_reg: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    repeat_frac: float | None = None,
    threads: int = 2,
    progress: bool = True,
    sizes: list[str] | tuple[str, ...] | None = None,
    record: bool = True,
    runs: tuple[int, int] | None = None,
) -> Path:
    """Train (or resume) a suite and write its training record.

    Parameters
    ----------
    preset
        A name in :data:`PRESETS` or a :class:`Preset`.
    out
        Suite folder; default :func:`default_out`.
    copy_reg
        Weight of :func:`copy_penalty` (0 = off). Uses eager attention when > 0.
    seed
        Seeds the data order, probe sequences and initialisation.
    repeat_frac
        Overrides the preset's share of rows with a repeated span (0 = natural text only).
    threads
        ``torch.set_num_threads``; results are reproducible for a fixed thread count.
    progress
        One progress bar per model trained (:func:`lhp_core.progress.bar`).
    sizes
        Train only these of the preset's model sizes (default: all). Each size's run does not
        depend on the others, so a subset equals the same models of the full suite, and sizes
        may train in separate processes into one folder.
    record
        Write ``training_record.nc`` for the sizes trained (False: only train them, as each
        process of :func:`ensure_all` does; a final call writes the record).
    runs
        ``(first, n)``: the sizes trained here are runs ``first, first + 1, ...`` of ``n`` in all,
        as the progress bars say (default: runs 1..len(sizes) of len(sizes)).

    Returns
    -------
    Path to the suite folder.
    """

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if copy_reg < 0:
        raise ValueError(f"--copy-reg must be >= 0, got {copy_reg}")
    if repeat_frac is not None:
        if not 0 <= repeat_frac <= 1:
            raise ValueError(f"--repeat-frac must be in [0, 1], got {repeat_frac}")
        preset = replace(preset, repeat_frac=repeat_frac)
    check_device(device)  # before the suite folder is made
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    recipe_sha = preset.fingerprint()  # of the whole preset: a subset of its sizes is the same recipe
    if sizes:
        valid = [z.name for z in preset.sizes]
        unknown = [z for z in sizes if z not in valid]
        if unknown:
            raise KeyError(f"unknown sizes {unknown} for preset {preset.name!r}; valid sizes: {', '.join(valid)}")
        preset = replace(preset, sizes=tuple(z for z in preset.sizes if z.name in sizes))
    out = Path(out) if out is not None else default_out(preset.name, copy_reg)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"preset": preset.name, "recipe_sha": recipe_sha, "seed": seed, "copy_reg": float(copy_reg),
            "repeat_frac": preset.repeat_frac}
    meta_path = out / "train_args.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        old.pop("sizes", None)  # written by earlier versions; sizes are independent runs, so not part of the recipe
        if old != meta:
            raise ValueError(f"{out} holds a suite trained with {old}, not {meta}; choose another --out or delete it")
    else:
        tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, meta_path)
    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # one bar (ours) instead of one per save_pretrained
    # Bit-identical reruns need deterministic kernels; warn_only keeps CPU ops that have no flag working.
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = _prepare_data(preset, out, seed)
    # A call that trains nothing new keeps an existing record of the same models as it is (its
    # `threads` and `git_commit` describe the run that made the weights, not this one).
    unchanged = all((out / z.name / "history.json").exists() for z in preset.sizes) and (out / RECORD).exists()
    histories: dict[str, list[dict]] = {}
    first, n_runs = runs or (1, len(preset.sizes))
    for k, size in enumerate(preset.sizes, first):
        histories[size.name] = train_model(size, preset, data, out, seed, copy_reg, device, preset.repeat_frac,
                                           progress, f"run {k} of {n_runs}")
    if not record:
        return out
    if unchanged:
        with xr.open_dataset(out / RECORD) as old_rec:
            if [str(m) for m in old_rec["model"].values] == list(histories):
                return out
    attrs = {
        "suite": out.name, "preset": preset.name, "recipe": preset.recipe(), "recipe_sha": recipe_sha,
        "git_commit": git_commit(),
        "device": device, "torch_version": torch.__version__, "seed": int(seed), "copy_reg": float(copy_reg),
        "repeat_frac": float(preset.repeat_frac), "span_min": preset.span_min, "span_max": preset.span_max,
        "span_copies": preset.span_copies, "weight_decay": preset.weight_decay,
        "vocab_size": preset.vocab_size, "context": preset.context, "batch_size": preset.batch_size,
        "tokens_per_step": preset.tokens_per_step, "total_steps": preset.total_steps, "lr": preset.lr,
        "corpora": "+".join(preset.corpora), "train_tokens_available": len(data.train),
        "probe": f"{preset.probe_seqs} held-out spans of {(data.probe.shape[1] - 1) // 2} tokens, "
                 "repeated twice after <|endoftext|>",
        "tokenizer_fingerprint": tok.tokenizer_fingerprint(data.tokenizer), "threads": int(threads),
        "sizes_json": json.dumps([asdict(s) for s in preset.sizes]),
    }
    ds = build_record(histories, preset, attrs)
    tmp = out / (RECORD + ".tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, out / RECORD)
    return out


# ----------------------------------------------------------------------------- on demand


def _stale_or_missing(s: LocalSuite) -> bool:
    """True when ``s`` must be (re)trained; moves a folder trained with an older recipe aside."""
    args = s.root / "train_args.json"
    if args.exists() and json.loads(args.read_text()).get("recipe_sha") != PRESETS[s.preset].fingerprint():
        # The preset changed since this folder was trained: keep the old suite, train the current recipe.
        stale = s.root.with_name(f"{s.root.name}.stale-{json.loads(args.read_text()).get('recipe_sha', 'old')}")
        warnings.warn(f"{s.root} was trained with an older '{s.preset}' recipe; moved it to {stale} and re-training",
                      stacklevel=3)  # the caller of ensure() / ensure_all()
        s.root.rename(stale)
    return not (s.root / "training_record.nc").exists()


def ensure(suite_id: str, device: str = "cpu", progress: bool = True, threads: int = 2) -> Suite:
    """Return the suite, training it first if it is a local ``lhp-*`` suite that is missing or unfinished.

    Training resumes where an interrupted run stopped. Non-``lhp`` suites are returned as they are.
    ``progress`` and ``threads`` are passed to :func:`train`.
    """
    s = get_suite(suite_id)
    if not (isinstance(s, LocalSuite) and s.preset):
        return s
    if _stale_or_missing(s):
        train(s.preset, s.root, copy_reg=s.copy_reg, device=device, threads=threads, progress=progress, sizes=s.sizes)
    return get_suite(suite_id)


def _train_unit(args: tuple[str, str, str, int, tuple[int, int], str | None]) -> tuple[str, float]:
    """Worker of :func:`ensure_all`: train one size of one suite (no record); returns its label and seconds."""
    suite_id, size, device, threads, runs, status = args
    start = time.perf_counter()
    s = get_suite(suite_id)
    if status is None:
        train(s.preset, s.root, copy_reg=s.copy_reg, device=device, threads=threads, progress=False,
              sizes=[size], record=False, runs=runs)
    else:
        with reporting_to(status):  # the parent's Monitor shows this run's bar
            train(s.preset, s.root, copy_reg=s.copy_reg, device=device, threads=threads, sizes=[size],
                  record=False, runs=runs)
    return f"{suite_id} {size}", time.perf_counter() - start


def ensure_all(suite_ids: list[str], device: str = "cpu", progress: bool = True) -> list[Suite]:
    """:func:`ensure` several suites; on a multi-core CPU their models train side by side.

    Every missing (suite, size) pair is one *run*. Small CPU models use one core poorly, so on a
    multi-core CPU the runs go to ``k`` spawned processes of ``cores // k`` threads each, largest
    first, each process taking the next run as it frees up (longest-processing-time-first
    scheduling: on 2 cores ``lhp-mini`` and its ``-copyreg`` twin finish in about the time of the
    twin's ``l`` plus ``s``, rather than of all of ``lhp-mini`` in one process). Each run is
    independent of the others, so the result is the same as training each suite in one process
    with the same thread count; that count is part of a CPU run's bit-level result and is written
    to each training record.

    Progress: one bar per run, labelled "run k of n"; side by side, one overall display
    (:class:`lhp_core.progress.Monitor`: runs done, and each running run's bar) instead.
    """

    ids = list(dict.fromkeys(suite_ids))
    todo = []
    for sid in ids:
        s = get_suite(sid)
        if isinstance(s, LocalSuite) and s.preset and _stale_or_missing(s):
            todo.append(s)
    units = [(s, z) for s in todo for z in s.recipe.sizes
             if (s.sizes is None or z.name in s.sizes) and not (s.root / z.name / "history.json").exists()]
    # Largest first: parameters, then the copy-reg twin (eager attention is slower) before its plain size.
    units.sort(key=lambda u: (u[1].n_layer * u[1].d_model ** 2, u[0].copy_reg), reverse=True)
    n, cores = len(units), os.cpu_count() or 1
    workers = min(n, cores) if device == "cpu" else 1
    threads = max(1, cores // workers) if workers > 1 else 2
    if workers > 1:
        with Monitor("training runs", n, prefix="[lhp train]", enabled=progress) as mon:
            mon.write(f"{n} runs, {workers} at a time with {threads} thread(s) each: "
                      + ", ".join(f"{s.id} {z.name}" for s, z in units))
            # spawn: a forked child would inherit this process's torch thread pool and any open kernels.
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                jobs: dict[Future, str] = {}
                for k, (s, z) in enumerate(units, 1):
                    label = f"{s.id} {z.name}"
                    status = str(mon.status_path(label)) if progress else None
                    jobs[pool.submit(_train_unit, (s.id, z.name, device, threads, (k, n), status))] = label
                for fut in mon.wait(jobs):
                    mon.finished(*fut.result())
    else:
        first = 1
        for s in todo:  # one call per suite: its data are prepared once for all its sizes
            sizes = [z.name for t, z in units if t is s]
            if sizes:
                train(s.preset, s.root, copy_reg=s.copy_reg, device=device, threads=threads, progress=progress,
                      sizes=sizes, record=False, runs=(first, n))
                first += len(sizes)
    for s in todo:  # every size is trained now: this writes each record
        ensure(s.id, device=device, progress=progress, threads=threads)
    return [get_suite(sid) for sid in ids]
