"""The bundled training corpus: a fixed train / held-out split by document, and token streams.

Documents come from :func:`lhp_core.data.corpora.documents`. Each document goes to the
held-out split when a hash of its text falls below ``val_fraction``, so the split does not
depend on corpus order or on which other corpora are mixed in, and a held-out document is
never seen by the tokenizer or the optimiser.

WikiText-2 is left out of the default mix so that other chapters can evaluate on it
without contamination.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from lhp_core.data import corpora

DEFAULT_CORPORA: tuple[str, ...] = (
    "brown", "abc", "state_union", "inaugural", "webtext", "movie_reviews", "childes", "treebank",
)


@dataclass(frozen=True)
class Corpus:
    """Training and held-out documents.

    Attributes
    ----------
    names
        Corpus names mixed in (see :func:`lhp_core.data.corpora.names`).
    train, val
        Documents (plain strings) of each split, in corpus order.
    """

    names: tuple[str, ...]
    val_fraction: float
    train: list[str] = field(repr=False)
    val: list[str] = field(repr=False)

    def describe(self) -> str:
        n_tr, n_va = sum(map(len, self.train)), sum(map(len, self.val))
        return (
            f"corpora {'+'.join(self.names)}: {len(self.train)} train docs ({n_tr:,} chars), "
            f"{len(self.val)} held-out docs ({n_va:,} chars), split by document hash at {self.val_fraction:g}"
        )


def is_held_out(doc: str, val_fraction: float) -> bool:
    """Whether ``doc`` belongs to the held-out split (a pure function of its text)."""
    h = int.from_bytes(hashlib.sha256(doc.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < val_fraction


def load(
    names: tuple[str, ...] | list[str] = DEFAULT_CORPORA,
    val_fraction: float = 0.05,
    max_train_chars: int | None = None,
    max_val_chars: int | None = None,
) -> Corpus:
    """Read and split the corpora.

    Parameters
    ----------
    names
        Corpus names passed to :func:`lhp_core.data.corpora.documents`.
    val_fraction
        Expected share of documents held out (by hash of the document text).
    max_train_chars, max_val_chars
        Keep only the first documents of each split up to about this many characters
        (corpus order; used by the small presets). ``None`` keeps everything.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    unknown = [n for n in names if n not in corpora.names()]
    if unknown:
        raise KeyError(f"unknown corpora {unknown}; valid corpora: {', '.join(corpora.names())}")
    train: list[str] = []
    val: list[str] = []
    for name in names:
        for doc in corpora.documents(name):
            if doc.strip():
                (val if is_held_out(doc, val_fraction) else train).append(doc)
    if not val:
        raise ValueError(f"no held-out documents in {names} at val_fraction={val_fraction}; raise val_fraction")
    return Corpus(tuple(names), val_fraction, _truncate(train, max_train_chars), _truncate(val, max_val_chars))


def _truncate(docs: list[str], max_chars: int | None) -> list[str]:
    if max_chars is None:
        return docs
    out, n = [], 0
    for d in docs:
        if n >= max_chars:
            break
        d = d[: max_chars - n]
        out.append(d)
        n += len(d)
    return out


def token_stream(tokenizer, docs: list[str]) -> np.ndarray:
    """Concatenate tokenised documents, each followed by ``<|endoftext|>`` (as GPT-NeoX does).

    Parameters
    ----------
    tokenizer
        A ``PreTrainedTokenizerFast`` whose ``eos_token_id`` separates documents.
    docs
        Documents in order.

    Returns
    -------
    np.ndarray, shape (n_tokens,), dtype int32
    """
    eos = tokenizer.eos_token_id
    encs = tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False)
    parts: list[np.ndarray] = []
    for e in encs:
        parts.append(np.asarray(e.ids, dtype=np.int32))
        parts.append(np.asarray([eos], dtype=np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
