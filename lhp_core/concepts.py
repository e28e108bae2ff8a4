"""Concepts for the expert-neuron study and the sentences that probe them.

Concepts are THINGS object concepts (Hebart et al., 2019) whose display word is one
unambiguous lower-case word, grouped by their human-rated bottom-up category
(``animal``, ``food``, ``tool`` ...). The category names are concepts too, so the
experts of ``dog`` can be compared with those of ``animal``.

For each concept, *positives* are sentences that contain the word (or its plural):
corpus sentences, held-out split first, plus fixed templates filled with the word.
*Negatives* are as many sentences without the word: corpus sentences from a shared
pool, and the same templates filled with other concepts' words, so that an expert
cannot win by detecting template structure. Everything is deterministic given the
seed: the same inputs give the same table on every machine.
"""
from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lhp_core import config, corpus
from lhp_core.data import things
from lhp_core.metrics.similarity import embedding_similarity

__all__ = [
    "TEMPLATES",
    "split_sentences",
    "sentence_pool",
    "WordIndex",
    "eligible_concepts",
    "select_concepts",
    "build_stimuli",
    "spose_similarity",
]

TEMPLATES: tuple[str, ...] = (
    "I saw {a} {w} yesterday.",
    "There is {a} {w} in the picture.",
    "She told me about the {w}.",
    "This is a short story about {a} {w}.",
    "He pointed at the {w} and smiled.",
    "We talked about the {w} for a while.",
    "The {w} was right there on the left.",
    "Have you ever seen {a} {w} up close?",
    "My friend wrote a long note about the {w}.",
    "Nobody expected to find {a} {w} here.",
)

_SENT_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"[a-z]+")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def split_sentences(docs: Iterable[str], min_words: int = 5, max_words: int = 30) -> list[str]:
    """Sentences of ``docs`` (split at ``.!?`` + space and at line breaks), deduplicated in order.

    Only sentences of ``min_words`` to ``max_words`` whitespace words are kept: short
    fragments carry little context and long ones cost compute.
    """
    seen: dict[str, None] = {}
    for doc in docs:
        for s in _SENT_END.split(doc):
            s = " ".join(s.split())
            if min_words <= len(s.split()) <= max_words and s not in seen:
                seen[s] = None
    return list(seen)


def sentence_pool(
    max_sentences: int | None = None, val_fraction: float = 0.05, cache: bool = True
) -> pd.DataFrame:
    """Sentences of the bundled training corpus (:mod:`lhp_core.corpus`), held-out split first.

    Parameters
    ----------
    max_sentences
        Keep at most this many (held-out sentences are kept before training ones).
    val_fraction
        Held-out share used by :func:`lhp_core.corpus.load` (the suites' own split).
    cache
        Keep the split sentences under ``config.cache_dir()/concepts`` so later calls
        skip reading and splitting the corpora.

    Returns
    -------
    pd.DataFrame
        ``text``, ``split`` (``"held_out"`` or ``"train"``).
    """
    path = config.cache_dir() / "concepts" / f"pool-{'+'.join(corpus.DEFAULT_CORPORA)}-{val_fraction:g}.parquet"
    if cache and path.exists():
        df = pd.read_parquet(path)
    else:
        c = corpus.load(val_fraction=val_fraction)
        held = split_sentences(c.val)
        held_set = set(held)
        train = [s for s in split_sentences(c.train) if s not in held_set]
        df = pd.DataFrame({"text": held + train, "split": ["held_out"] * len(held) + ["train"] * len(train)})
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            df.to_parquet(tmp, index=False)
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return df if max_sentences is None else df.iloc[:max_sentences].reset_index(drop=True)


class WordIndex:
    """Lower-cased word -> sentences containing it, for fast lookup of many concept words.

    Parameters
    ----------
    sentences
        ``(n_sentences,)`` texts.
    """
    def __init__(self, sentences: Sequence[str]) -> None:
        self.sentences = list(sentences)
        index: dict[str, list[int]] = {}
        for i, s in enumerate(self.sentences):
            for tok in set(_TOKEN.findall(s.lower())):
                index.setdefault(tok, []).append(i)
        self._index = {k: np.asarray(v) for k, v in index.items()}

    def forms(self, word: str) -> tuple[str, ...]:
        """Surface forms counted as mentions: the word and its regular plural."""
        w = word.lower()
        return (w, w + "es") if w.endswith(("s", "x", "ch", "sh")) else (w, w + "s")

    def mentions(self, word: str) -> np.ndarray:
        """Sorted indices of sentences that contain ``word`` or its plural."""
        hits = [self._index.get(f, np.empty(0, dtype=int)) for f in self.forms(word)]
        return np.unique(np.concatenate(hits)).astype(int)


def eligible_concepts(table: pd.DataFrame) -> pd.DataFrame:
    """THINGS concepts usable as single-word probes, with their category.

    Parameters
    ----------
    table
        :func:`lhp_core.data.things.concepts` (columns ``id``, ``word``, ``category``,
        ``bottom_up_category``).

    Returns
    -------
    pd.DataFrame
        ``id``, ``word``, ``category`` (the bottom-up category); ambiguous ids (``bat1``),
        multi-word names and concepts with several or multi-word categories are dropped,
        as are concepts whose word is their own category's name.
    """
    need = {"id", "word", "category", "bottom_up_category"}
    if need - set(table.columns):
        raise ValueError(
            f"concept table lacks {sorted(need - set(table.columns))}; pass lhp_core.data.things.concepts()"
        )
    t = table[table["category"].isna()]  # words.csv marks the 207 ambiguous concepts with a category
    t = t[t["word"].str.fullmatch(r"[a-z]+", na=False)]
    cat = t["bottom_up_category"].astype(str).str.strip()
    t = t.assign(category=cat)[cat.str.fullmatch(r"[a-z]+")]
    # a word that names a category ("fruit" in food) would be both a member and a category
    t = t[~t["word"].isin(set(t["category"]))]
    return t[["id", "word", "category"]].reset_index(drop=True)


def select_concepts(
    table: pd.DataFrame,
    index: WordIndex,
    n_categories: int = 4,
    per_category: int = 5,
    min_sentences: int = 5,
    categories: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Pick categories and member concepts that the corpus mentions often enough.

    Members of a category are ranked by corpus mentions (ties: id); a category is kept
    when its name is mentioned ``min_sentences`` times and it has ``per_category``
    members with at least ``min_sentences`` mentions. Categories are taken in the given
    order, else by how many eligible members they have (ties: name).

    Parameters
    ----------
    table
        :func:`eligible_concepts` output.
    index
        :class:`WordIndex` over the sentence pool.

    Returns
    -------
    pd.DataFrame
        ``id``, ``word``, ``category``, ``n_sentences``, one row per member concept,
        grouped by category.
    """
    t = table.assign(n_sentences=[len(index.mentions(w)) for w in table["word"]])
    t = t[t["n_sentences"] >= min_sentences]
    counts = t.groupby("category").size()
    ok = [c for c in counts.index if counts[c] >= per_category and len(index.mentions(c)) >= min_sentences]
    if categories is None:
        order = sorted(ok, key=lambda c: (-counts[c], c))
    else:
        bad = [c for c in categories if c not in ok]
        if bad:
            raise ValueError(
                f"categories {bad} lack {per_category} members with >= {min_sentences} sentences (or the category "
                f"word itself is too rare); usable categories: {sorted(ok)}; lower per_category/min_sentences"
            )
        order = list(categories)
    if len(order) < n_categories:
        raise ValueError(
            f"only {len(order)} categories have {per_category} concepts with >= {min_sentences} sentences; "
            f"need {n_categories}: lower per_category or min_sentences, or use a bigger sentence pool"
        )
    parts = [
        t[t["category"] == c].sort_values(["n_sentences", "id"], ascending=[False, True]).head(per_category)
        for c in order[:n_categories]
    ]
    return pd.concat(parts).reset_index(drop=True)


def _stimulus_id(text: str) -> str:
    return "x" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def build_stimuli(
    words: Sequence[str],
    pool: pd.DataFrame,
    n_corpus: int = 20,
    n_template: int = 10,
    n_negative_pool: int = 400,
    seed: int = 0,
    index: WordIndex | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Positive and negative sentences for each concept word.

    Parameters
    ----------
    words
        Concept words (members and category names), unique.
    pool
        :func:`sentence_pool` output (``text``; held-out rows first).
    n_corpus
        Corpus positives per concept (fewer when the pool has fewer; held-out first).
    n_template
        Templated positives per concept (at most ``len(TEMPLATES)``).
    n_negative_pool
        Size of the shared pool of corpus negatives (sentences mentioning none of ``words``).
    seed
        Seed of every draw.
    index
        A :class:`WordIndex` of ``pool["text"]`` already built (built here otherwise).

    Returns
    -------
    texts : pd.DataFrame
        One row per unique sentence: ``stimulus`` (id from the text hash), ``text``,
        ``source`` (``"corpus"``/``"template"``).
    table : pd.DataFrame
        ``concept``, ``stimulus``, ``label`` (1 positive, 0 negative): for each concept,
        ``n_pos`` positives and ``n_pos`` negatives (as many corpus and template negatives
        as there are corpus and template positives).
    """
    words = [str(w) for w in words]
    if len(set(words)) != len(words):
        raise ValueError("concept words must be unique")
    if not 1 <= n_template <= len(TEMPLATES):
        raise ValueError(f"n_template must be between 1 and {len(TEMPLATES)} (the number of templates)")
    if len(words) < 2:
        raise ValueError("need at least 2 concepts: template negatives use the other concepts' words")
    texts_ = pool["text"].tolist()
    if index is None:
        index = WordIndex(texts_)
    elif index.sentences != texts_:
        raise ValueError("index was built over other sentences than pool; pass WordIndex(pool['text']) or no index")
    sents = index.sentences
    mentions = {w: index.mentions(w) for w in words}
    any_mention = np.zeros(len(sents), dtype=bool)
    for m in mentions.values():
        any_mention[m] = True
    free = np.flatnonzero(~any_mention)
    rng = np.random.default_rng(seed)
    neg_pool = np.sort(rng.choice(free, size=min(n_negative_pool, len(free)), replace=False))
    templates = {w: [t.format(a=_article(w), w=w) for t in TEMPLATES[:n_template]] for w in words}

    texts: dict[str, tuple[str, str]] = {}
    rows: list[tuple[str, str, int]] = []

    def add(concept: str, text: str, source: str, label: int) -> None:
        sid = _stimulus_id(text)
        texts.setdefault(sid, (text, source))
        rows.append((concept, sid, label))

    for w in words:
        r = np.random.default_rng([seed, zlib.crc32(w.encode())])
        pos = mentions[w][:n_corpus]  # pool is held-out first, so these prefer held-out text
        if len(pos) == 0:
            raise ValueError(f"no corpus sentence mentions {w!r}; drop it (select_concepts does) or enlarge the pool")
        for i in pos:
            add(w, sents[i], "corpus", 1)
        for t in templates[w]:
            add(w, t, "template", 1)
        if len(neg_pool) < len(pos):
            raise ValueError(
                f"only {len(neg_pool)} negative corpus sentences for {len(pos)} positives; raise n_negative_pool"
            )
        for i in np.sort(r.choice(neg_pool, size=len(pos), replace=False)):
            add(w, sents[i], "corpus", 0)
        forms = index.forms(w)
        others = [
            t for o in words if o != w for t in templates[o]
            if not any(f in _TOKEN.findall(t.lower()) for f in forms)
        ]
        for j in np.sort(r.choice(len(others), size=n_template, replace=False)):
            add(w, others[j], "template", 0)
    text_df = pd.DataFrame(
        [(sid, t, s) for sid, (t, s) in texts.items()], columns=["stimulus", "text", "source"]
    )
    return text_df, pd.DataFrame(rows, columns=["concept", "stimulus", "label"])


def spose_similarity(ids: Sequence[str], dims: int = 49, metric: str = "dot") -> np.ndarray:
    """Human similarity of THINGS concepts from their SPoSE embedding.

    Parameters
    ----------
    ids
        THINGS concept ids, in the order of the model's concept axis.
    metric
        ``"dot"`` (SPoSE's own similarity) or ``"cosine"``.

    Returns
    -------
    np.ndarray
        ``(n_concepts, n_concepts)``.
    """
    emb = things.spose_embedding(dims)
    missing = [i for i in ids if i not in emb.index]
    if missing:
        raise KeyError(f"ids {missing[:5]} are not THINGS concept ids (see lhp_core.data.things.concept_ids())")
    return embedding_similarity(emb.loc[list(ids)].to_numpy(), metric)
