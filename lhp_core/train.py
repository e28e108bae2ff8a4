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
killed run never leaves a half-written ``step<N>/``.

Induction-friendly data: with ``repeat_frac > 0`` that share of training rows copies one span
of ``span_min..span_max`` tokens to ``span_copies`` later positions in the same row. Pure corpus text
(``--repeat-frac 0``) gives small models too few repeats to form induction heads in a CPU
budget (see :data:`PRESETS` for measurements).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from lhp_core import config, schema
from lhp_core.schedule import log_then_even_n

RECORD = "training_record.nc"


@dataclass(frozen=True)
class Size:
    """One model of a suite.

    ``seed_offset`` distinguishes seed replicas of the same shape (``"xs-seed1"``): it changes
    the initialisation only, never the data order.
    """

    name: str
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int | None = None  # default 4 * d_model, as in Pythia
    seed_offset: int = 0


@dataclass(frozen=True)
class Preset:
    """A training recipe: model sizes, data, optimiser and checkpoint schedule."""

    name: str
    sizes: tuple[Size, ...]
    vocab_size: int
    context: int
    batch_size: int
    total_steps: int
    n_even: int  # evenly spaced checkpoints after the log-spaced ones
    lr: float
    warmup: int
    corpora: tuple[str, ...] = ("inaugural",)
    max_train_chars: int | None = None
    max_val_chars: int | None = 200_000
    repeat_frac: float = 0.5
    span_min: int = 10
    span_max: int = 60
    span_copies: int = 1  # later copies of the span in each repeated row
    weight_decay: float = 0.01
    val_seqs: int = 32
    probe_seqs: int = 32
    probe_len: int = 50
    rotary_pct: float = 0.25  # Pythia's value; tiny heads need more rotary dims to find the previous token
    bf16: bool = False  # autocast on CUDA
    note: str = ""

    def steps(self) -> list[int]:
        return log_then_even_n(self.total_steps, self.n_even)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context

    def fingerprint(self) -> str:
        """Short hash of every field: a suite folder trained with another recipe is detected by it."""
        import hashlib

        fields = asdict(self)
        if fields["span_copies"] == 1:
            del fields["span_copies"]  # added later: suites trained before it keep their fingerprint
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def recipe(self) -> str:
        sizes = ", ".join(f"{s.name}: {s.n_layer}L d{s.d_model} h{s.n_head}" for s in self.sizes)
        return (
            f"GPT-NeoX ({sizes}); BPE vocab {self.vocab_size}; context {self.context}, batch {self.batch_size}, "
            f"{self.total_steps} steps; AdamW lr {self.lr:g} (warmup {self.warmup}, cosine to 10%), wd {self.weight_decay:g}; "
            f"{self.repeat_frac:.0%} of rows repeat one span of {self.span_min}-{self.span_max} tokens "
            f"{'later in the row' if self.span_copies == 1 else f'{self.span_copies} times later in the row'}; "
            f"corpora {'+'.join(self.corpora)}. {self.note}"
        ).strip()


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        sizes=(Size("s", 1, 32, 2), Size("m", 2, 48, 4)),
        vocab_size=384, context=64, batch_size=8, total_steps=24, n_even=3, lr=3e-3, warmup=4,
        corpora=("inaugural",), max_train_chars=300_000, max_val_chars=60_000,
        span_min=5, span_max=20, val_seqs=8, probe_seqs=8, probe_len=20,
        note="For tests: seconds on one CPU core.",
    ),
    "micro": Preset(
        name="micro",
        sizes=(Size("s", 1, 32, 2), Size("m", 2, 48, 4), Size("l", 2, 64, 4)),
        vocab_size=512, context=128, batch_size=8, total_steps=120, n_even=6, lr=5e-3, warmup=10,
        corpora=("inaugural", "state_union", "childes"), max_train_chars=2_000_000,
        repeat_frac=1.0, span_min=10, span_max=60, val_seqs=32, probe_seqs=32, probe_len=50, rotary_pct=1.0,
        note="CI-sized (12 checkpoints per model); too short for induction heads.",
    ),
    # mini, measured with `lhp train --preset mini --threads 1` (seed 0): 8.5 minutes in all (training s 66 s,
    # m 137 s, l 287 s; l ~10k tokens/s). l's probe losses (1st / 2nd copy) are level up to step 2100
    # (4.26 / 4.26), then the 2nd copy drops: step 2400 4.33 / 3.87, 2700 4.23 / 2.98, 3000 4.08 / 2.55,
    # 6000 3.63 / 1.51 (induction heads). m follows later (3600 4.28 / 3.97, 4500 4.23 / 3.07, 6000
    # 4.09 / 2.59); s never does (6000 4.46 / 4.45). The former recipe (context 128, one 10-60 token copy
    # per row, 600 steps of 2048 tokens) ended at 3.50 / 3.48 in l: no induction.
    "mini": Preset(
        name="mini",
        sizes=(Size("s", 1, 32, 2), Size("m", 2, 64, 4), Size("l", 2, 128, 8)),
        vocab_size=512, context=64, batch_size=8, total_steps=6000, n_even=20, lr=3e-3, warmup=100,
        corpora=("brown", "abc", "state_union", "inaugural", "webtext", "childes"), max_train_chars=4_000_000,
        repeat_frac=1.0, span_min=6, span_max=16, span_copies=3, weight_decay=0.0,
        val_seqs=64, probe_seqs=32, probe_len=50, rotary_pct=1.0,
        note="The book's default suite (CPU); induction heads form in l (probe 2nd copy drops below the 1st).",
    ),
    "gpu": Preset(
        name="gpu",
        sizes=(
            Size("xs", 2, 64, 2), Size("xs-seed1", 2, 64, 2, seed_offset=1),
            Size("s", 2, 128, 4), Size("m", 4, 192, 4), Size("l", 4, 256, 4), Size("xl", 6, 672, 8),
            Size("xl-seed1", 6, 672, 8, seed_offset=1),
        ),
        vocab_size=4096, context=256, batch_size=64, total_steps=4000, n_even=40, lr=2e-3, warmup=200,
        corpora=("brown", "abc", "state_union", "inaugural", "webtext", "movie_reviews", "childes", "treebank"),
        max_train_chars=None, repeat_frac=0.5, span_min=10, span_max=60, val_seqs=128, bf16=True,
        note="One H100, bf16 autocast; untested in this repository (no GPU was available when it was written).",
    ),
}


def default_out(preset: str, copy_reg: float = 0.0) -> Path:
    """``config.suites_dir()/lhp-<preset>[-copyreg]``: where :func:`lhp_core.suites.ensure` looks."""
    return config.suites_dir() / (f"lhp-{preset}" + ("-copyreg" if copy_reg > 0 else ""))


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    """Token streams and fixed evaluation batches of one suite."""

    train: np.ndarray  # (n_train_tokens,) int32
    val: "object"  # torch.LongTensor (val_seqs, context)
    probe: "object"  # torch.LongTensor (probe_seqs, 1 + 2 * probe_len)
    tokenizer: "object" = field(repr=False)


def _prepare_data(preset: Preset, out: Path, seed: int) -> Data:
    import torch
    from transformers import AutoTokenizer

    from lhp_core import corpus, tokenizer as tok

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
    return Data(train, torch.as_tensor(val_batch, dtype=torch.long), torch.as_tensor(probe, dtype=torch.long), tokenizer)


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


def make_config(size: Size, preset: Preset, eager: bool):
    from transformers import GPTNeoXConfig

    cfg = GPTNeoXConfig(
        vocab_size=preset.vocab_size,
        hidden_size=size.d_model,
        num_hidden_layers=size.n_layer,
        num_attention_heads=size.n_head,
        intermediate_size=size.d_ff or 4 * size.d_model,
        max_position_embeddings=preset.context,  # positions past the context were never trained
        rotary_pct=preset.rotary_pct,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    if eager:
        cfg._attn_implementation = "eager"  # attention weights are needed for --copy-reg
    return cfg


def count_params(model) -> tuple[int, int]:
    """(total, non-embedding) parameters; non-embedding excludes input and output embeddings, as Pythia counts."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    return total, total - emb


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
    import torch

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
    import torch

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
    import torch
    import torch.nn.functional as F

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


def _save_checkpoint(model, tokenizer, folder: Path) -> str:
    from lhp_core.checkpoints import weights_sha256

    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)  # a later-step folder left by a run killed before its state was saved
    os.replace(tmp, folder)
    return weights_sha256(folder)


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_model(
    size: Size, preset: Preset, data: Data, out: Path, seed: int, copy_reg: float, device: str,
    repeat_frac: float, pbar=None,
) -> list[dict]:
    """Train (or resume, or skip if done) one model; returns its per-checkpoint history."""
    import torch
    from transformers import GPTNeoXForCausalLM

    mdir = out / size.name
    mdir.mkdir(parents=True, exist_ok=True)
    done = mdir / "history.json"
    if done.exists():
        if pbar is not None:
            pbar.update(preset.total_steps)
        return json.loads(done.read_text())
    schedule = preset.steps()
    state_path = mdir / "train_state.pt"
    eager = copy_reg > 0
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        step = state["step"]
        model = GPTNeoXForCausalLM.from_pretrained(mdir / f"step{step}", dtype=torch.float32)
        if eager:
            model.config._attn_implementation = "eager"
        history, wall0 = state["history"], state["wall_time"]
    else:
        torch.manual_seed(seed * 1000 + size.seed_offset)
        model = GPTNeoXForCausalLM(make_config(size, preset, eager))
        state, step, history, wall0 = None, 0, [], 0.0
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": preset.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=preset.lr, betas=(0.9, 0.95), eps=1e-8, foreach=False,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(preset))
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    n_total, n_nonemb = count_params(model)
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
    tick = time.perf_counter()
    while step < preset.total_steps:
        x = torch.as_tensor(batch_at(step, data.train, preset, seed, repeat_frac), device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            outp = model(input_ids=x, labels=x, output_attentions=eager)
            loss = outp.loss
            total = loss + copy_reg * copy_penalty(outp.attentions, x) if eager else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if pbar is not None:
            now = time.perf_counter()
            pbar.update(1)
            pbar.set_postfix(model=size.name, loss=f"{losses[-1]:.3f}",
                             tok_s=f"{preset.tokens_per_step / max(now - tick, 1e-9):,.0f}")
            tick = now
        if step in schedule:
            checkpoint(step, float(np.mean(losses)))
            losses = []
    done.write_text(json.dumps(history))
    state_path.unlink(missing_ok=True)
    return history


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_record(histories: dict[str, list[dict]], preset: Preset, attrs: dict):
    """Assemble ``training_record.nc`` from per-model histories.

    Returns
    -------
    xarray.Dataset with dims (model, step), coordinate tokens_seen(model, step),
    n_params / n_params_nonembedding along model.
    """
    import xarray as xr

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
        {k: ((M, S), grid(k)) for k in ("train_loss", "val_loss", "probe_first_loss", "probe_second_loss", "wall_time")},
        coords={M: models, S: steps},
    )
    ds["weights_sha256"] = ((M, S), grid("weights_sha256", str).astype(str))
    ds = ds.assign_coords({
        schema.TOKENS_SEEN: ((M, S), np.tile(np.asarray(steps, dtype=np.int64) * preset.tokens_per_step, (len(models), 1))),
        "n_params": (M, np.array([histories[m][0]["n_params"] for m in models], dtype=np.int64)),
        "n_params_nonembedding": (M, np.array([histories[m][0]["n_params_nonembedding"] for m in models], dtype=np.int64)),
    })
    notes = {"train_loss": "mean training-batch loss over the updates up to this checkpoint (step 0: first batch at init)",
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
    bar_position: int = 0,
    sizes: list[str] | tuple[str, ...] | None = None,
    record: bool = True,
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
    bar_position
        Line of the progress bar, so suites trained side by side each keep their own bar.
    sizes
        Train only these of the preset's model sizes (default: all). Each size's run does not
        depend on the others, so a subset equals the same models of the full suite, and sizes
        may train in separate processes into one folder.
    record
        Write ``training_record.nc`` for the sizes trained (False: only train them, as each
        process of :func:`lhp_core.suites.ensure_all` does; a final call writes the record).

    Returns
    -------
    Path to the suite folder.
    """
    import torch
    from tqdm.auto import tqdm

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
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch.cuda.is_available() is False; use --device cpu")
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
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar (ours) instead of one per save_pretrained
    # Bit-identical reruns need deterministic kernels; warn_only keeps CPU ops that have no flag working.
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = _prepare_data(preset, out, seed)
    histories: dict[str, list[dict]] = {}
    with tqdm(total=preset.total_steps * len(preset.sizes), desc=f"lhp train {out.name}", unit="step",
              disable=not progress, mininterval=1.0, position=bar_position) as pbar:
        for size in preset.sizes:
            histories[size.name] = train_model(size, preset, data, out, seed, copy_reg, device, preset.repeat_frac, pbar)
    if not record:
        return out
    from lhp_core.tokenizer import tokenizer_fingerprint

    attrs = {
        "suite": out.name, "preset": preset.name, "recipe": preset.recipe(), "recipe_sha": recipe_sha, "git_commit": _git_commit(),
        "device": device, "torch_version": torch.__version__, "seed": int(seed), "copy_reg": float(copy_reg),
        "repeat_frac": float(preset.repeat_frac), "span_min": preset.span_min, "span_max": preset.span_max,
        "span_copies": preset.span_copies, "weight_decay": preset.weight_decay,
        "vocab_size": preset.vocab_size, "context": preset.context, "batch_size": preset.batch_size,
        "tokens_per_step": preset.tokens_per_step, "total_steps": preset.total_steps, "lr": preset.lr,
        "corpora": "+".join(preset.corpora), "train_tokens_available": int(len(data.train)),
        "probe": f"{preset.probe_seqs} held-out spans of {(data.probe.shape[1] - 1) // 2} tokens, repeated twice after <|endoftext|>",
        "tokenizer_fingerprint": tokenizer_fingerprint(data.tokenizer), "threads": int(threads),
        "sizes_json": json.dumps([asdict(s) for s in preset.sizes]),
    }
    ds = build_record(histories, preset, attrs)
    tmp = out / (RECORD + ".tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, out / RECORD)
    return out


# ----------------------------------------------------------------------------- CLI


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, choices=list(PRESETS), help="training recipe")
    parser.add_argument("--out", default=None, help="suite folder (default: $LHP_SUITES/lhp-<preset>[-copyreg])")
    parser.add_argument("--copy-reg", type=float, default=0.0, help="weight of the induction-attention penalty (0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--repeat-frac", type=float, default=None,
                        help="share of rows with a repeated span (default: the preset's; 0 = natural text only)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed for reproducibility)")
    parser.add_argument("--sizes", nargs="+", default=None, metavar="SIZE", help="train only these model sizes of the preset")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    out = train(args.preset, args.out, copy_reg=args.copy_reg, seed=args.seed, device=args.device,
                repeat_frac=args.repeat_frac, threads=args.threads, progress=not args.no_progress, sizes=args.sizes)
    print(f"suite written to {out}")
    return 0
