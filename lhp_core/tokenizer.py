"""Byte-level BPE tokenizers trained offline with ``tokenizers`` (as GPT-NeoX/Pythia use).

The special token ``<|endoftext|>`` is both BOS and EOS, as in Pythia, so
"prepend BOS" means the same thing for our suites and for Pythia.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOT = "<|endoftext|>"
PAD = "<|padding|>"
#: Leading marks of a word-initial token: byte-level BPE (Ġ space, Ċ newline, ĉ tab), SentencePiece (▁).
_WS_MARKS = ("Ġ", "Ċ", "ĉ", "▁", " ", "\n", "\t")


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    Parameters
    ----------
    texts
        Training documents (the training split only, never held-out text).
    vocab_size
        Target vocabulary size including the two special tokens.

    Returns
    -------
    A ``PreTrainedTokenizerFast`` with ``bos = eos = <|endoftext|>`` and a separate pad token,
    that saves and loads with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=PAD,
        model_max_length=2048,
    )


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """A sha256 over the tokenizer's serialised vocabulary and merges.

    Two tokenizers with the same fingerprint map every string to the same ids, which is
    what "the tokenizer is identical across a suite" means.
    """
    import hashlib

    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def save(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> None:
    tokenizer.save_pretrained(str(path))


def bow_mask(tokenizer, vocab_size: int | None = None) -> np.ndarray:
    """Which token ids begin a new word (bow): a leading whitespace mark, or the EOS token.

    Used for the word-boundary correction of word probabilities (:mod:`lhp_core.metrics.reading`).

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer (byte-level BPE writes a leading space as ``"Ġ"``).
    vocab_size
        Length of the model's output layer (it may exceed the tokenizer's vocabulary:
        padded rows are never a word start).

    Returns
    -------
    mask : bool array, shape ``[vocab_size]``.
    """
    n_tok = len(tokenizer)
    n = n_tok if vocab_size is None else int(vocab_size)
    toks = tokenizer.convert_ids_to_tokens(list(range(min(n, n_tok))))
    mask = np.zeros(n, dtype=bool)
    for i, t in enumerate(toks):
        mask[i] = bool(t) and t.startswith(_WS_MARKS)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id < n:
        mask[tokenizer.eos_token_id] = True
    if not mask.any():
        raise ValueError(
            "no token of this tokenizer begins with whitespace; the bow correction is for leading-space "
            "tokenizers (GPT-2/Pythia BPE). For end-of-word tokenizers use the plain subword sum: "
            "reading.word_surprisal(..., method='naive') or the sweep's `logprobs` site"
        )
    return mask
