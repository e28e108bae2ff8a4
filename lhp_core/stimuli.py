"""Stimulus tables and how they become model inputs.

A :class:`Stimuli` is a table of texts with ids, each optionally pre-segmented into words
(Natural Stories, Provo: a list of words per text) or given as one sentence per stimulus
(Tuckute). :func:`encode` turns it into sliding windows for one tokenizer:

* words are whitespace-separated spans of the text; each subword token is assigned, using
  the tokenizer's offset mapping, to the word holding its first character, whitespace
  counting as part of the word after it (our BPE has leading-space tokens, so " cat" and a
  lone " " before "cat" belong to "cat": word log-probs include the space, as is standard);
* a text longer than the context is split into windows of ``max_length - 1`` tokens with
  50 % overlap, a BOS token is prepended to every window, and each token's value is taken
  from the window where it has the most left context (the first window that holds it);
* word, token and stimulus indices are global (concatenated over stimuli), so results from
  every checkpoint share one ``word`` / ``token`` / ``stimulus`` axis.

Input is checked where it enters (:func:`read_stimuli`, the ``Stimuli.from_*`` constructors):
a missing text or word (an empty cell, ``None``, ``NaN``) is an error naming the rows, never the
word ``"nan"``; ids must be unique; files are decoded with an explicit encoding (UTF-8 unless
told) and a byte that does not decode is an error naming the file, the line and ``encoding=``.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lhp_core.tokenizer import tokenizer_fingerprint

_WORD = re.compile(r"\S+")
_NEWLINE = re.compile(r"\r\n|\r|\n")


class StimulusError(ValueError):
    """A stimulus file or table that cannot be used as given; the message names the rows and the fix."""


def _is_missing(v) -> bool:
    """None, NaN, ``pd.NA`` or ``NaT``: a value that ``str()`` would turn into a fake word."""
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    return type(v).__name__ in ("NAType", "NaTType")


def _listing(items: Sequence, n: int = 5) -> str:
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


@dataclass(frozen=True)
class Stimuli:
    """A table of stimulus texts.

    Attributes
    ----------
    ids
        One id per stimulus (unique strings).
    texts
        The text of each stimulus.
    word_spans
        Per stimulus, the ``(start, end)`` character span of each word in its text.
    kind
        ``"text"``, ``"words"`` (pre-segmented) or ``"sentences"``.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    word_spans: tuple[tuple[tuple[int, int], ...], ...]
    kind: str = "text"

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.texts):
            raise ValueError(f"{len(self.ids)} ids for {len(self.texts)} texts; give one id per text")
        if len(set(self.ids)) != len(self.ids):
            dup = sorted({i for i in self.ids if self.ids.count(i) > 1})
            raise StimulusError(
                f"stimulus ids must be unique; duplicated: {_listing(dup)}; give each stimulus its own id"
            )
        if not self.ids:
            raise StimulusError("no stimuli given; pass at least one text")
        empty = [i for i, t in zip(self.ids, self.texts) if not t.strip()]
        if empty:
            raise StimulusError(f"stimuli {_listing(empty)} have empty text; drop them before the sweep")

    # ---- constructors -------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: Sequence[str], ids: Sequence[str] | None = None) -> Stimuli:
        """Plain texts; words are the whitespace-separated spans. A missing text (None, NaN) is an error."""
        texts = list(texts)
        labels = list(ids) if ids is not None and len(ids) == len(texts) else list(range(len(texts)))
        missing = [labels[i] for i, t in enumerate(texts) if _is_missing(t)]
        if missing:
            raise StimulusError(f"texts of stimuli {_listing(missing)} are missing (None or NaN); fill them in or "
                                "drop those stimuli (str() would turn them into the word 'nan')")
        texts = [str(t) for t in texts]
        spans = tuple(tuple((m.start(), m.end()) for m in _WORD.finditer(t)) for t in texts)
        return cls(_ids(ids, len(texts)), tuple(texts), spans, "text")

    @classmethod
    def from_sentences(cls, sentences: Sequence[str], ids: Sequence[str] | None = None) -> Stimuli:
        """One sentence per stimulus (e.g. Tuckute et al. 2024)."""
        s = cls.from_texts(sentences, ids)
        return cls(s.ids, s.texts, s.word_spans, "sentences")

    @classmethod
    def from_words(cls, words: Sequence[Sequence[str]], ids: Sequence[str] | None = None) -> Stimuli:
        """Pre-segmented texts: a list of words per text, joined with single spaces.

        The word order of the result is exactly the given order, so per-word results line up
        with per-word human data (reading times) by position.
        """
        texts, spans = [], []
        words = [list(ws) for ws in words]
        labels = list(ids) if ids is not None and len(ids) == len(words) else list(range(len(words)))
        for label, ws in zip(labels, words):
            missing = [k for k, w in enumerate(ws) if _is_missing(w)]
            if missing:
                raise StimulusError(f"stimulus {label}: words at positions {_listing(missing)} are missing (None or "
                                    "NaN); fill them in or drop those rows (str() would turn them into the word 'nan')")
            pos, sp = 0, []
            for w in ws:
                w = str(w)
                if not w or any(c.isspace() for c in w):
                    raise StimulusError(
                        f"word {w!r} is empty or contains whitespace; words must be single tokens of text"
                    )
                sp.append((pos, pos + len(w)))
                pos += len(w) + 1
            texts.append(" ".join(str(w) for w in ws))
            spans.append(tuple(sp))
        return cls(_ids(ids, len(texts)), tuple(texts), tuple(spans), "words")

    @classmethod
    def from_frame(cls, frame, text: str | None = None, word: str | None = None, id: str = "stimulus") -> Stimuli:
        """From a pandas table: one row per stimulus (``text=``) or one row per word (``word=``).

        With ``word=``, rows are grouped by ``id`` in order of first appearance and kept in
        row order within each stimulus. A missing value (``NaN``, ``None``, an empty string) in the
        text, word or id column is an error naming the rows (by index label).
        """
        if (text is None) == (word is None):
            raise ValueError("pass exactly one of text= (row per stimulus) or word= (row per word)")
        col = text if text is not None else word
        for c in (col, id):
            if c not in frame.columns:
                raise KeyError(f"column {c!r} not in the table; columns are {list(frame.columns)}")
        for c in (col, id):
            bad = [label for label, v in frame[c].items() if _is_missing(v) or (isinstance(v, str) and not v.strip())]
            if bad:
                raise StimulusError(f"column {c!r} is empty in rows {_listing(bad)}; fill those cells or drop the rows")
        if text is not None:
            return cls.from_texts(frame[text].tolist(), frame[id].astype(str).tolist())
        groups = frame.groupby(frame[id].astype(str), sort=False)[word]
        ids = list(groups.groups.keys())
        return cls.from_words([groups.get_group(i).astype(str).tolist() for i in ids], ids)

    # ---- global axes --------------------------------------------------------------------
    @property
    def n_words(self) -> int:
        return sum(len(s) for s in self.word_spans)

    def word_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(word_stimulus, word_text)``: shape ``[n_words]`` each, along the global ``word`` axis."""
        stim = [sid for sid, sp in zip(self.ids, self.word_spans) for _ in sp]
        text = [t[a:b] for t, sp in zip(self.texts, self.word_spans) for a, b in sp]
        return np.array(stim, dtype=str), np.array(text, dtype=str)

    def fingerprint(self) -> str:
        """sha256 of ids, texts and word spans: a store records it to refuse mixing stimuli."""
        blob = json.dumps([self.ids, self.texts, self.word_spans, self.kind])
        return hashlib.sha256(blob.encode()).hexdigest()


def _ids(ids: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if ids is None:
        return tuple(f"s{i:05d}" for i in range(n))
    return tuple(str(i) for i in ids)


@dataclass
class Encoded:
    """Stimuli tokenized for one tokenizer and context length.

    Attributes
    ----------
    windows
        Token ids of each window, BOS first; a list of int arrays of shape ``[len_w]``.
    window_stimulus
        Stimulus index of each window, shape ``[n_windows]``.
    keep
        Per window, a bool array ``[len_w]``: the positions whose values this window supplies.
    token_of
        Per window, an int array ``[len_w]``: global token index at each position (-1 for BOS).
    token_id, token_stimulus, token_word
        Along the global ``token`` axis, shape ``[n_tokens]``: the id, stimulus index and
        global word index (-1 only for whitespace after the last word of a text).
    n_words
        Length of the global ``word`` axis.
    """

    windows: list[np.ndarray]
    window_stimulus: np.ndarray
    keep: list[np.ndarray]
    token_of: list[np.ndarray]
    token_id: np.ndarray
    token_stimulus: np.ndarray
    token_word: np.ndarray
    n_words: int
    n_stimuli: int
    max_length: int
    bos_token_id: int
    meta: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.token_id)

    def group_index(self, group: str) -> np.ndarray:
        """Group of each global token for a reducer's axis: shape ``[n_tokens]``, -1 = none."""
        if group == "token":
            return np.arange(self.n_tokens)
        if group == "word":
            return self.token_word
        if group == "stimulus":
            return self.token_stimulus
        raise ValueError(f"unknown group {group!r}; valid: token, word, stimulus")

    def n_groups(self, group: str) -> int:
        return {"token": self.n_tokens, "word": self.n_words, "stimulus": self.n_stimuli}[group]


def tokenize_words(stimuli: Stimuli, tokenizer) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stimulus, ``(ids [n_tok], word [n_tok])``: token ids and the local word of each token."""
    out = []
    for text, spans in zip(stimuli.texts, stimuli.word_spans):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        # Whitespace belongs to the word after it, so a leading-space token (" cat") and a
        # lone space token both count towards the next word's surprisal.
        char_word = np.full(len(text) + 1, -1, dtype=np.int64)
        prev_end = 0
        for w, (_, b) in enumerate(spans):
            char_word[prev_end:b] = w
            prev_end = b
        words = np.full(len(ids), -1, dtype=np.int64)
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            inside = char_word[a:b]
            inside = inside[inside >= 0]
            if len(inside):
                words[t] = inside[0]
        out.append((ids, words))
    return out


def window_starts(n: int, width: int) -> list[int]:
    """Start offsets of windows of ``width`` tokens with 50 % overlap covering ``n`` tokens."""
    if width < 2:
        raise ValueError(f"window width {width} is too small; use max_length >= 3")
    stride = width // 2
    starts = [0]
    while starts[-1] + width < n:
        starts.append(starts[-1] + stride)
    return starts


#: Recent :func:`encode` results, keyed by (stimuli, tokenizer, max_length) fingerprints.
_ENCODED: OrderedDict[tuple[str, str, int], Encoded] = OrderedDict()
_ENCODED_MAX = 4


def encode(stimuli: Stimuli, tokenizer, max_length: int) -> Encoded:
    """Tokenize ``stimuli`` into BOS-prefixed windows of at most ``max_length`` tokens.

    The result is remembered for the last few (stimuli, tokenizer, ``max_length``) triples: a
    sweep over a suite's checkpoints (one tokenizer, checked identical) tokenizes once, not once
    per checkpoint. Callers share the result, so they must not modify its arrays.

    Parameters
    ----------
    stimuli
        The stimulus table.
    tokenizer
        A Hugging Face fast tokenizer with ``bos_token_id`` set (``<|endoftext|>`` for Pythia and
        lhp suites).
    max_length
        Model context length including the BOS token.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError("the tokenizer has no bos_token_id; set tokenizer.bos_token = '<|endoftext|>' (Pythia's BOS)")

    key = (stimuli.fingerprint(), f"{tokenizer_fingerprint(tokenizer)}:{bos}", int(max_length))
    if key in _ENCODED:
        _ENCODED.move_to_end(key)
        return _ENCODED[key]
    enc = _encode(stimuli, tokenizer, max_length, bos)
    _ENCODED[key] = enc
    while len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return enc


def _encode(stimuli: Stimuli, tokenizer, max_length: int, bos: int) -> Encoded:
    width = max_length - 1
    per_stim = tokenize_words(stimuli, tokenizer)
    windows, wstim, keep, token_of = [], [], [], []
    token_id, token_stim, token_word = [], [], []
    tok_off, word_off = 0, 0
    for s, ((ids, words), spans) in enumerate(zip(per_stim, stimuli.word_spans)):
        n = len(ids)
        covered = 0
        for start in window_starts(n, width):
            end = min(start + width, n)
            pos = np.arange(start, end)
            windows.append(np.concatenate([[bos], ids[start:end]]).astype(np.int64))
            wstim.append(s)
            # The first window holding a token gives it the most left context.
            keep.append(np.concatenate([[False], pos >= covered]))
            token_of.append(np.concatenate([[-1], pos + tok_off]))
            covered = end
        token_id.append(ids)
        token_stim.append(np.full(n, s, dtype=np.int64))
        token_word.append(np.where(words >= 0, words + word_off, -1))
        tok_off += n
        word_off += len(spans)
    return Encoded(
        windows=windows,
        window_stimulus=np.asarray(wstim, dtype=np.int64),
        keep=keep,
        token_of=token_of,
        token_id=np.concatenate(token_id),
        token_stimulus=np.concatenate(token_stim),
        token_word=np.concatenate(token_word),
        n_words=word_off,
        n_stimuli=len(stimuli.ids),
        max_length=max_length,
        bos_token_id=int(bos),
    )


def read_stimuli(path: str, text_column: str | None = None, word_column: str | None = None,
                 id_column: str = "stimulus", encoding: str = "utf-8") -> Stimuli:
    """Read a stimulus file: ``.txt`` (one stimulus per line) or a ``.csv`` / ``.tsv`` table.

    ``.txt``: each non-blank line is one stimulus (surrounding whitespace stripped) whose id is its
    1-based line number (``"1"``, ``"2"``, ...). Blank lines hold no stimulus and are skipped, so
    the ids stay the line numbers a user sees in an editor whatever blank lines there are.

    A table needs ``text_column`` (a text per row) or ``word_column`` (a word per row, grouped
    by ``id_column``); without either, a ``text`` or ``word`` column is used if present. Every
    cell is read as text, so words such as ``NA``, ``null`` or ``nan`` stay words; an empty cell
    in the text, word or id column is an error naming its lines, as are duplicate ids (rows per
    stimulus). Without an id column a text table's ids are ``s00000``, ``s00001``, ... by row.

    Parameters
    ----------
    encoding
        The file's text encoding (``"utf-8"``, a leading byte-order mark is dropped); a file that
        does not decode is an error naming the line and this option (``--encoding`` on the command line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"stimulus file {p} does not exist")
    if p.suffix not in (".txt", ".csv", ".tsv"):
        raise StimulusError(f"unsupported stimulus file {p.name}; use .txt (a stimulus per line), .csv or .tsv")
    text = _decode(p, encoding)
    if p.suffix == ".txt":
        lines = [(str(i + 1), ln.strip()) for i, ln in enumerate(_NEWLINE.split(text)) if ln.strip()]
        if not lines:
            raise StimulusError(f"{p} has no stimuli: every line is blank; write one stimulus per line")
        return Stimuli.from_sentences([t for _, t in lines], ids=[i for i, _ in lines])
    return _read_table(p, text, text_column, word_column, id_column)


def _decode(p, encoding: str) -> str:
    data = p.read_bytes()
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except LookupError:
        raise StimulusError(f"unknown encoding {encoding!r} for {p}; pass a Python codec name such as "
                            "utf-8, latin-1 or cp1252") from None
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise StimulusError(
            f"{p}: byte 0x{data[e.start]:02x} on line {line} is not valid {encoding}; pass the file's encoding "
            "(encoding=..., on the command line --encoding, e.g. latin-1 or cp1252) or save the file as UTF-8"
        ) from None


def _read_table(p, text: str, text_column: str | None, word_column: str | None, id_column: str) -> Stimuli:


    # Every cell as a string, no NA parsing: "NA", "null" and "nan" are words, an empty cell is "".
    frame = pd.read_csv(io.StringIO(text), sep="\t" if p.suffix == ".tsv" else ",", dtype=str,
                        keep_default_na=False, na_filter=False)
    if text_column is None and word_column is None:
        if "text" in frame.columns:
            text_column = "text"
        elif "word" in frame.columns:
            word_column = "word"
        else:
            raise StimulusError(f"{p.name} has no 'text' or 'word' column; pass --text-column or --word-column "
                                f"(columns: {list(frame.columns)})")
    col = text_column or word_column
    if col not in frame.columns:
        raise StimulusError(f"{p.name} has no column {col!r}; columns: {list(frame.columns)}")
    if id_column not in frame.columns:
        if word_column:
            raise StimulusError(f"{p.name} has one word per row but no id column {id_column!r} saying which "
                                f"stimulus each word belongs to; pass --id-column (columns: {list(frame.columns)})")
        frame = frame.assign(**{id_column: [f"s{i:05d}" for i in range(len(frame))]})
    # File line of each data row, the header being line 1 (exact unless a quoted cell spans lines).
    lines = np.arange(len(frame)) + 2
    for c in (col, id_column):
        empty = lines[(frame[c].str.strip() == "").to_numpy()]
        if len(empty):
            raise StimulusError(f"{p}: column {c!r} is empty on lines {_listing(empty.tolist())}; fill those cells "
                                "or delete the rows")
    if text_column:
        dup = frame[id_column].duplicated(keep=False).to_numpy()
        if dup.any():
            raise StimulusError(
                f"{p}: stimulus ids repeat on lines {_listing(lines[dup].tolist())} "
                f"({_listing(sorted(set(frame[id_column][dup])))}); each text row needs its own {id_column!r}, "
                "or pass --word-column for a table with one word per row"
            )
    return Stimuli.from_frame(frame, text=text_column, word=word_column, id=id_column)
