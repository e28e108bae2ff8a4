"""Byte-level BPE tokenizers trained offline with ``tokenizers`` (as GPT-NeoX/Pythia use).

The special token ``<|endoftext|>`` is both BOS and EOS, as in Pythia, so
"prepend BOS" means the same thing for our suites and for Pythia.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOT = "<|endoftext|>"
PAD = "<|padding|>"


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
