"""Byte-level BPE tokenizers trained offline with ``tokenizers`` (as GPT-NeoX/Pythia use).

The special token ``<|endoftext|>`` is both BOS and EOS, as in Pythia, so
"prepend BOS" means the same thing for our suites and for Pythia.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

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


#: Prefix of fingerprints that cover the special tokens (:func:`tokenizer_fingerprint`). Training
#: records written before it hold the backend-only hash (64 hex digits, :func:`backend_fingerprint`).
FINGERPRINT_VERSION = "v2"


def backend_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """sha256 over the serialised backend (vocabulary, merges, pre- and post-processing).

    The fingerprint of lhp before version 2, as older ``training_record.nc`` files store it. It
    misses the special-token roles kept in ``tokenizer_config.json`` (``bos_token`` and so on).
    """
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def special_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, list]:
    """Each special-token role (``bos_token``, ``eos_token``, ...) with its token and id, and whether
    the tokenizer adds BOS/EOS itself: what turns text into the ids a model sees besides the backend."""
    roles: dict[str, list] = {}
    for role, token in sorted(tokenizer.special_tokens_map.items()):
        tokens = token if isinstance(token, list) else [token]
        roles[role] = [[str(t), tokenizer.convert_tokens_to_ids(str(t))] for t in tokens]
    for flag in ("add_bos_token", "add_eos_token"):
        roles[flag] = [bool(getattr(tokenizer, flag, False))]
    return roles


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """``"v2:"`` + a sha256 over the backend (:func:`backend_fingerprint`) and :func:`special_tokens`.

    Two tokenizers with the same fingerprint map every string to the same ids and agree on which
    token is BOS, EOS, padding and unknown, which is what "the tokenizer is identical across a
    suite" means (a changed ``bos_token`` alone changes every window's first token).
    """
    blob = json.dumps({"backend": backend_fingerprint(tokenizer), "special": special_tokens(tokenizer)}, sort_keys=True)
    return f"{FINGERPRINT_VERSION}:{hashlib.sha256(blob.encode()).hexdigest()}"


def fingerprint_matches(recorded: str, tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether ``tokenizer`` has the fingerprint ``recorded`` (of either version).

    A version-2 fingerprint is compared whole. An older one covers the backend only, so only the
    backend can be compared with it; the special tokens of such a suite are checked against its
    saved ``tokenizer/`` folder and across its checkpoints instead (:mod:`lhp_core.checkpoints`).
    """
    if recorded.startswith(f"{FINGERPRINT_VERSION}:"):
        return recorded == tokenizer_fingerprint(tokenizer)
    return recorded == backend_fingerprint(tokenizer)


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
