"""Training recipes of the suites ``lhp train`` builds: model sizes, data, optimiser and schedule.

A :class:`Preset` fully determines a suite (with the seed): its sizes, the corpora it reads, the
batch, the learning-rate schedule and which steps are saved. :func:`make_config` turns one size
of a preset into the GPT-NeoX config that is trained, so a suite's models and parameter counts are
known before anything is trained (:mod:`lhp_core.suites` lists untrained ``lhp-*`` suites).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from lhp_core import config
from lhp_core.schedule import log_then_even_n


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
        fields = asdict(self)
        if fields["span_copies"] == 1:
            del fields["span_copies"]  # added later: suites trained before it keep their fingerprint
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def recipe(self) -> str:
        sizes = ", ".join(f"{s.name}: {s.n_layer}L d{s.d_model} h{s.n_head}" for s in self.sizes)
        return (
            f"GPT-NeoX ({sizes}); BPE vocab {self.vocab_size}; context {self.context}, batch {self.batch_size}, "
            f"{self.total_steps} steps; AdamW lr {self.lr:g} (warmup {self.warmup}, cosine to 10%), "
            f"wd {self.weight_decay:g}; "
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
    """``config.suites_dir()/lhp-<preset>[-copyreg]``: where :func:`lhp_core.train.ensure` looks."""
    return config.suites_dir() / (f"lhp-{preset}" + ("-copyreg" if copy_reg > 0 else ""))


def make_config(size: Size, preset: Preset, eager: bool):
    """The GPT-NeoX config of one size of ``preset`` (``eager``: eager attention, for ``--copy-reg``)."""
    # transformers is imported here, not at module level: suites lists presets without loading it.
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
