"""An offline battery of downstream tasks, scored with discontinuous and continuous metrics.

Every task is a list of :class:`Item` s: a context and one or more continuations, the
first-listed answer index marking the correct one. Items are built from text only (no
tokenizer), deterministically from a seed, so every checkpoint of every suite sees the
same questions.

Tasks (registry :data:`TASKS`, ids in :func:`names`)

``lambada``      last word of a held-out passage, chosen so that it already occurred earlier
                 in the passage (LAMBADA-style: predictable from broad context). Exact match
                 of the greedy continuation; chance 0.
``agreement``    subject–verb agreement minimal pairs (``the year seems`` / ``the years seems``)
                 built from Brown-tagged vocabulary; chance 0.5.
``attractor``    agreement across a prepositional phrase with a number-mismatched
                 attractor (``the key to the cabinets is`` / ``... are``); chance 0.5.
``determiner``   determiner–noun number agreement (``this year`` / ``these year``); chance 0.5.
``copy``         in-context copying of a random word sequence (induction); exact match, chance 0.
``word_order``   pick the held-out sentence among it and three versions with two adjacent
                 words swapped; 4-way multiple choice, chance 0.25.

Metrics per item (:func:`item_metrics`): ``accuracy`` (argmax option is correct, or for a
single continuation: every token is the greedy choice), ``prob_correct`` (probability
of the correct option, normalised over options; the raw continuation probability for
single-continuation tasks), ``brier`` (squared error of that probability vector against
the one-hot answer), ``logprob`` (log-probability of the correct continuation, nats).

:func:`score_task` runs a :class:`Scorer` (anything with ``score(pairs)``; :class:`HFScorer`
wraps a Hugging Face causal LM) and returns a tidy per-item table;
:func:`task_battery_over_steps` scores every checkpoint of a suite through the measure runner
(:mod:`lhp_core.measures`) and returns an ``xarray.Dataset`` with dims ``(model, step, task)``.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy import special

from lhp_core import config, corpus, schema
from lhp_core.checkpoints import load
from lhp_core.data import corpora
from lhp_core.measures import Checkpoint, Measure, over_steps
from lhp_core.provenance import config_sha256
from lhp_core.registry import Registry
from lhp_core.suites import context_length, get_suite

METRICS = ("accuracy", "prob_correct", "brier", "logprob")


@dataclass(frozen=True)
class Item:
    """One question: a context and candidate continuations (``options[answer]`` is correct)."""

    context: str
    options: tuple[str, ...]
    answer: int = 0

    def __post_init__(self) -> None:
        if not self.options or not 0 <= self.answer < len(self.options):
            raise ValueError(
                f"item needs >= 1 option and a valid answer index, got {len(self.options)} / {self.answer}"
            )


@dataclass(frozen=True)
class Task:
    """A task: how to build its items and its chance level of ``accuracy``."""

    id: str
    chance: float
    description: str
    build: Callable[[int, int], list[Item]] = field(repr=False)

    def items(self, n: int, seed: int = 0) -> list[Item]:
        """``n`` items drawn deterministically from ``seed`` (fewer if the source runs out)."""
        if n < 1:
            raise ValueError(f"n_items must be positive, got {n}")
        return self.build(n, seed)


TASKS: Registry[Task] = Registry("task")


def names() -> list[str]:
    return TASKS.names()


def get(task_id: str) -> Task:
    return TASKS.get(task_id)


# ------------------------------------------------------------------ builders (pure, text in, items out)

_WORD = re.compile(r"[A-Za-z]+")


def lambada_items(docs: Sequence[str], n: int, seed: int = 0, min_words: int = 30, max_words: int = 80) -> list[Item]:
    """Last-word items from documents.

    A passage is ``min_words``–``max_words`` whitespace words of a document ending at a
    sentence end; the target is its last word (letters only, ≥ 3 characters), kept only
    if the same word occurred earlier in the passage, so context can predict it.
    Candidates are shuffled with ``seed`` and the first ``n`` kept.
    """
    cands: list[Item] = []
    for doc in docs:
        words = doc.split()
        ends = [i for i, w in enumerate(words) if w.endswith((".", "!", "?")) and i + 1 >= min_words]
        last = -10**9
        for i in ends:
            if i - last < min_words:  # non-overlapping passages
                continue
            target = words[i].rstrip(".!?\"'")
            if not _WORD.fullmatch(target) or len(target) < 3:
                continue
            start = max(0, i + 1 - max_words)
            prev = {w.strip(".,;:!?\"'()").lower() for w in words[start:i]}
            if target.lower() not in prev:
                continue
            context = " ".join(words[start:i])
            cands.append(Item(context=context, options=(" " + target,)))
            last = i
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cands))
    return [cands[j] for j in order[:n]]


@dataclass(frozen=True)
class Lexicon:
    """Number-marked vocabulary for agreement templates.

    ``nouns``: (singular, plural) pairs; ``verbs``: (3rd-singular, base/plural) pairs.
    """

    nouns: tuple[tuple[str, str], ...]
    verbs: tuple[tuple[str, str], ...]
    preps: tuple[str, ...] = ("near", "behind", "next to", "with", "beside")


def agreement_items(lex: Lexicon, n: int, seed: int = 0, attractor: bool = False) -> list[Item]:
    """Subject–verb agreement minimal pairs; with ``attractor``, a PP noun of opposite number intervenes."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        (ns, npl) = lex.nouns[rng.integers(len(lex.nouns))]
        (vs, vpl) = lex.verbs[rng.integers(len(lex.verbs))]
        plural = bool(rng.integers(2))
        subj = npl if plural else ns
        if attractor:
            (as_, apl) = lex.nouns[rng.integers(len(lex.nouns))]
            prep = lex.preps[rng.integers(len(lex.preps))]
            subj = f"{subj} {prep} the {as_ if plural else apl}"
        good, bad = (vpl, vs) if plural else (vs, vpl)
        items.append(Item(context="", options=(f"The {subj} {good}", f"The {subj} {bad}")))
    return items


def determiner_items(lex: Lexicon, n: int, seed: int = 0) -> list[Item]:
    """``this/that + singular`` vs ``these/those + singular`` (and the plural mirror image)."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        ns, npl = lex.nouns[rng.integers(len(lex.nouns))]
        near = bool(rng.integers(2))
        sg, pl = ("this", "these") if near else ("that", "those")
        if rng.integers(2):
            items.append(Item(context="", options=(f"I saw {sg} {ns}", f"I saw {pl} {ns}")))
        else:
            items.append(Item(context="", options=(f"I saw {pl} {npl}", f"I saw {sg} {npl}")))
    return items


def copy_items(vocab: Sequence[str], n: int, seed: int = 0, length: int = 8, prompt: int = 2) -> list[Item]:
    """Random word sequences shown once, then started again: the rest must be copied.

    Context ``w1 … wL`` newline ``w1 … w_prompt``; continuation `` w_{prompt+1} … wL``.
    """
    if len(vocab) < length:
        raise ValueError(f"copy needs at least {length} distinct words, got {len(vocab)}")
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        seq = [vocab[j] for j in rng.choice(len(vocab), size=length, replace=False)]
        items.append(Item(context=" ".join(seq) + "\n" + " ".join(seq[:prompt]),
                          options=(" " + " ".join(seq[prompt:]),)))
    return items


def word_order_items(sentences: Sequence[str], n: int, seed: int = 0, n_options: int = 4) -> list[Item]:
    """The original sentence among ``n_options − 1`` adjacent-word swaps; answer position random."""
    rng = np.random.default_rng(seed)
    items = []
    for j in rng.permutation(len(sentences)):
        words = sentences[j].split()
        if len(words) < n_options + 2:
            continue
        swaps = rng.choice(len(words) - 1, size=n_options - 1, replace=False)
        distractors = []
        for s in swaps:
            w = list(words)
            w[s], w[s + 1] = w[s + 1], w[s]
            distractors.append(" ".join(w))
        original = " ".join(words)
        if len({original, *distractors}) < n_options:  # swapped two identical words
            continue
        answer = int(rng.integers(n_options))
        opts = distractors[:answer] + [original] + distractors[answer:]
        items.append(Item(context="", options=tuple(opts), answer=answer))
        if len(items) == n:
            break
    return items


# ------------------------------------------------------------------ default text sources (held-out split)


@lru_cache(maxsize=1)
def _held_out_docs() -> tuple[str, ...]:
    return tuple(corpus.load().val)


def _sentences(docs: Sequence[str], min_words: int = 6, max_words: int = 20) -> list[str]:
    out = []
    for doc in docs:
        for s in re.split(r"(?<=[.!?])\s+", doc.replace("\n", " ")):
            k = len(s.split())
            if min_words <= k <= max_words and s[:1].isupper():
                out.append(s.strip())
    return out


def _common_words(docs: Sequence[str], n: int = 400) -> list[str]:
    c = Counter(w for d in docs for w in re.findall(r"\b[a-z]{3,8}\b", d))
    return [w for w, _ in c.most_common(n)]


@lru_cache(maxsize=1)
def brown_lexicon(n_nouns: int = 60, n_verbs: int = 40) -> Lexicon:
    """Frequent regular noun (NN/NNS) and verb (VBZ/VB) pairs from the tagged Brown corpus."""
    c = Counter((w.lower(), t) for s in corpora.brown_tagged_sentences("brown") for w, t in s)
    nouns = [(w, w + "s") for (w, t), _ in c.most_common() if t == "NN" and w.isalpha() and (w + "s", "NNS") in c]
    verbs = [(w, w[:-1]) for (w, t), _ in c.most_common() if t == "VBZ" and w.isalpha() and w.endswith("s")
             and (w[:-1], "VB") in c and w not in ("is", "has", "does")]
    return Lexicon(nouns=tuple(nouns[:n_nouns]), verbs=tuple(verbs[:n_verbs]))


TASKS.register("lambada", lambda: Task(
    "lambada", 0.0, "last word of a held-out passage, seen earlier in it (exact match)",
    lambda n, seed: lambada_items(_held_out_docs(), n, seed)))
TASKS.register("agreement", lambda: Task(
    "agreement", 0.5, "subject-verb agreement minimal pairs",
    lambda n, seed: agreement_items(brown_lexicon(), n, seed)))
TASKS.register("attractor", lambda: Task(
    "attractor", 0.5, "subject-verb agreement across an attractor noun of opposite number",
    lambda n, seed: agreement_items(brown_lexicon(), n, seed, attractor=True)))
TASKS.register("determiner", lambda: Task(
    "determiner", 0.5, "determiner-noun number agreement minimal pairs",
    lambda n, seed: determiner_items(brown_lexicon(), n, seed)))
TASKS.register("copy", lambda: Task(
    "copy", 0.0, "copy a random 8-word sequence seen once in context (exact match of 6 words)",
    lambda n, seed: copy_items(_common_words(_held_out_docs()), n, seed)))
TASKS.register("word_order", lambda: Task(
    "word_order", 0.25, "pick the held-out sentence among three adjacent-word swaps",
    lambda n, seed: word_order_items(_sentences(_held_out_docs()), n, seed)))


# ------------------------------------------------------------------ scoring


@dataclass(frozen=True)
class Continuation:
    """Score of one continuation: summed log-probability (nats), whether every token was the argmax."""

    logprob: float
    greedy: bool
    n_tokens: int


class Scorer(Protocol):
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[Continuation]:
        """Score each ``(context, continuation)``."""
        ...


def item_metrics(logprobs: np.ndarray, greedy: np.ndarray, answer: int) -> dict[str, float]:
    """Metrics of one item from its options' scores.

    Parameters
    ----------
    logprobs
        ``(n_options,)`` summed log-probability of each continuation.
    greedy
        ``(n_options,)`` whether each continuation is the greedy decode (used when there is
        a single option).
    """
    lp = np.asarray(logprobs, dtype=float)
    if lp.size == 1:
        p = float(np.exp(lp[0]))
        return {"accuracy": float(bool(greedy[0])), "prob_correct": p, "brier": (1 - p) ** 2, "logprob": float(lp[0])}
    probs = special.softmax(lp)
    onehot = np.zeros_like(probs)
    onehot[answer] = 1
    # Ties count as wrong: an untrained model that scores every option the same is at chance, not perfect.
    best = np.flatnonzero(lp == lp.max())
    return {
        "accuracy": float(best.size == 1 and best[0] == answer),
        "prob_correct": float(probs[answer]),
        "brier": float(((probs - onehot) ** 2).sum()),
        "logprob": float(lp[answer]),
    }


def score_items(scorer: Scorer, items: Sequence[Item]) -> pd.DataFrame:
    """Per-item metrics: columns ``item`` + :data:`METRICS`."""
    pairs = [(it.context, o) for it in items for o in it.options]
    scores = scorer.score(pairs)
    rows, j = [], 0
    for i, it in enumerate(items):
        s = scores[j: j + len(it.options)]
        j += len(it.options)
        m = item_metrics(np.array([c.logprob for c in s]), np.array([c.greedy for c in s]), it.answer)
        rows.append({"item": i, **m})
    return pd.DataFrame(rows)


def score_task(scorer: Scorer, task: str | Task, n_items: int = 200, seed: int = 0) -> pd.DataFrame:
    """Tidy per-item table for one task: ``task, item, accuracy, prob_correct, brier, logprob``."""
    t = get(task) if isinstance(task, str) else task
    df = score_items(scorer, t.items(n_items, seed))
    df.insert(0, schema.TASK, t.id)
    return df


def summarize(per_item: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per task, plus ``accuracy_stderr`` and ``n_items``."""
    g = per_item.groupby(schema.TASK, sort=False)
    out = g[list(METRICS)].mean()
    out["accuracy_stderr"] = g["accuracy"].std(ddof=1) / np.sqrt(g.size())
    out["n_items"] = g.size()
    return out.reset_index()


def option_report(scorer: Scorer, item: Item) -> pd.DataFrame:
    """One item's options with log-probabilities and normalised probabilities (the book's inspector)."""
    s = scorer.score([(item.context, o) for o in item.options])
    lp = np.array([c.logprob for c in s])
    return pd.DataFrame({
        "option": list(item.options),
        "logprob": lp,
        "prob": special.softmax(lp) if lp.size > 1 else np.exp(lp),
        "greedy": [c.greedy for c in s],
        "correct": [i == item.answer for i in range(len(item.options))],
    })


def inspect_item(
    suite, model: str, step: int, task: str, index: int, n_items: int = 200, seed: int = 0, device: str = "cpu",
    loader: Callable | None = None,
    cache_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The book's inspector: one checkpoint's scores for item ``index`` of ``task``.

    Items come from the same JSON cache as :func:`task_battery_over_steps` (``cache_dir`` defaults to
    ``results_dir()/tasks/items``). Returns :func:`option_report` plus the item's context
    (column ``context``).
    """
    items = build_items([task], n_items, seed, _items_dir() if cache_dir is None else cache_dir)[task]
    if not 0 <= index < len(items):
        raise IndexError(f"task {task!r} has {len(items)} items at n_items={n_items}; index {index} is out of range")
    lm, tok = (loader or load)(suite, model, int(step), device=device)
    rep = option_report(HFScorer(lm, tok, device, max_len=context_length(suite, lm)), items[index])
    return rep.assign(context=items[index].context)


class HFScorer:
    """Scores continuations with a Hugging Face causal LM (right-padded batches).

    The context is prefixed with the BOS token (``<|endoftext|>`` for Pythia and lhp suites)
    and context and continuation are tokenised separately, as the LM Evaluation Harness does,
    so the continuation's tokens do not depend on the context. An item longer than ``max_len``
    tokens (default: the model config's ``max_position_embeddings``; pass the suite's training
    context, :func:`lhp_core.suites.context_length`) keeps its end: the continuation and the
    nearest context, as the harness does. A continuation longer than ``max_len`` itself (a
    whole sentence for a model trained on 64 tokens) is scored in windows of ``max_len`` that
    step back by half a window from its end; each token is scored in the window that gives it
    the most left context, so every token is scored exactly once.
    """

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 32, max_len: int | None = None) -> None:
        self.model, self.tokenizer, self.device, self.batch_size = model, tokenizer, device, batch_size
        self.max_len = int(max_len or getattr(model.config, "max_position_embeddings", 2048))
        if self.max_len < 2:
            raise ValueError(f"max_len must be >= 2 tokens, got {self.max_len}")

    def _pieces(self, context: str, continuation: str) -> tuple[list[tuple[list[int], int]], int]:
        """Windows that together score each continuation token once.

        Returns ``[(ids, k), ...]`` and the continuation's length in tokens: the model reads
        ``ids[:-1]`` and the window scores its targets ``ids[k:]`` (``k >= 1``).
        """
        tok = self.tokenizer
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        ctx = bos + (tok.encode(context, add_special_tokens=False, verbose=False) if context else [])
        cont = tok.encode(continuation, add_special_tokens=False, verbose=False)
        if not cont:
            raise ValueError(f"continuation {continuation!r} encodes to no tokens")
        if not ctx:
            raise ValueError("the tokenizer has no bos_token_id and the context is empty: the first token "
                             "cannot be scored; set tokenizer.bos_token = '<|endoftext|>' (Pythia's BOS)")
        full, first, L = ctx + cont, len(ctx), self.max_len
        # Window starts from the end backwards, until the window reaches the first target's input.
        starts = [max(0, len(full) - (L + 1))]
        while starts[-1] > first - 1:
            starts.append(max(0, starts[-1] - L // 2))
        pieces, next_target = [], first
        for st in reversed(starts):  # earliest window first: it gives its targets the most context
            end = min(st + L, len(full) - 1)  # last target scored by this window
            if end >= next_target:
                pieces.append((full[st: end + 1], next_target - st))
                next_target = end + 1
        return pieces, len(cont)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[Continuation]:
        pieces, n_cont = [], []
        for j, (c, x) in enumerate(pairs):
            ps, n = self._pieces(c, x)
            pieces += [(j, ids, k) for ids, k in ps]
            n_cont.append(n)
        logprob, greedy = np.zeros(len(pairs)), np.ones(len(pairs), dtype=bool)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.no_grad():
            for b in range(0, len(pieces), self.batch_size):
                batch = pieces[b: b + self.batch_size]
                width = max(len(ids) - 1 for _, ids, _ in batch)
                x = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for i, (_, ids, _) in enumerate(batch):
                    x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
                    mask[i, : len(ids) - 1] = 1
                logits = self.model(input_ids=x.to(self.device), attention_mask=mask.to(self.device)).logits.float()
                logp = torch.log_softmax(logits, dim=-1).cpu()
                for i, (j, ids, k) in enumerate(batch):
                    tgt = torch.tensor(ids[k:])
                    lp = logp[i, k - 1: len(ids) - 1]  # position p predicts token p + 1
                    logprob[j] += float(lp.gather(1, tgt[:, None]).sum())
                    greedy[j] &= bool((lp.argmax(-1) == tgt).all())
        return [Continuation(logprob=float(lp), greedy=bool(g), n_tokens=n)
                for lp, g, n in zip(logprob, greedy, n_cont)]


# ------------------------------------------------------------------ over training


def build_items(tasks: Sequence[str], n_items: int, seed: int,
                cache_dir: str | Path | None = None) -> dict[str, list[Item]]:
    """Items of every task, built once (reading the corpus takes seconds) and kept as JSON in ``cache_dir``."""
    out: dict[str, list[Item]] = {}
    for t in tasks:
        path = (Path(cache_dir) / f"items-{re.sub(r'[^A-Za-z0-9._-]+', '_', t)}-{n_items}-{seed}.json"
                if cache_dir else None)
        if path is not None and path.exists():
            out[t] = [Item(d["context"], tuple(d["options"]), d["answer"]) for d in json.loads(path.read_text())]
            continue
        out[t] = get(t).items(n_items, seed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: chapters may run side by side
            tmp.write_text(json.dumps([{"context": i.context, "options": list(i.options), "answer": i.answer}
                                       for i in out[t]]))
            tmp.replace(path)
    return out


def _items_dir() -> Path:
    return config.results_dir() / "tasks" / "items"


#: Units and one-line descriptions of the battery's per-task variables.
VARIABLES = {
    "accuracy": ("share of items",
                 "share of items whose correct option scores highest (single option: greedy decode is exact)"),
    "prob_correct": ("probability", "probability of the correct option, normalised over options (single option: raw)"),
    "brier": ("squared probability error", "squared error of the option probabilities against the one-hot answer"),
    "logprob": ("nats", "log-probability of the correct continuation"),
    "accuracy_stderr": ("share of items", "standard error of accuracy over items"),
    "n_items": ("items", "items scored"),
}


def evaluate_checkpoint(scorer: Scorer, items: dict[str, list[Item]]) -> pd.DataFrame:
    """Per-task summary (:func:`summarize`) of one checkpoint on prebuilt items (:func:`build_items`)."""
    frames = []
    for t, its in items.items():
        df = score_items(scorer, its)
        df.insert(0, schema.TASK, t)
        frames.append(df)
    return summarize(pd.concat(frames, ignore_index=True))


def task_battery_over_steps(suite, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                            tasks: Sequence[str] | None = None, n_items: int = 200, seed: int = 0,
                            device: str = "cpu", batch_size: int = 32, threads: int | None = 1,
                            progress: bool = True) -> xr.Dataset:
    """Every task of the battery scored at every checkpoint (through :func:`lhp_core.measures.over_steps`).

    Parameters
    ----------
    tasks
        Task ids (default: all of :func:`names`).
    n_items, seed
        Items per task and the seed that draws them (the same items at every checkpoint).
    threads
        torch CPU threads while scoring (restored afterwards): the battery's models are small, and
        on a shared CPU one thread is many times faster than torch's default pool.

    Returns
    -------
    xarray.Dataset
        ``(model, step, task)``: :data:`METRICS`, ``accuracy_stderr``, ``n_items``; coordinates
        ``chance(task)``, ``tokens_seen(model, step)``.
    """
    tasks = list(tasks or names())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KeyError(f"unknown tasks {unknown}; valid tasks: {', '.join(names())}")
    s = get_suite(suite)
    items = build_items(tasks, n_items, seed, _items_dir())

    def compute(ck: Checkpoint) -> xr.Dataset:
        scorer = HFScorer(ck.lm, ck.tokenizer, ck.device, batch_size, max_len=context_length(ck.suite, ck.lm))
        ds = xr.Dataset.from_dataframe(evaluate_checkpoint(scorer, items).set_index(schema.TASK))
        for v, (units, text) in VARIABLES.items():
            ds[v].attrs.update(units=units, description=text)
        return ds

    # The items themselves are part of the key: a change in the corpus or a builder rescores.
    items_sha = config_sha256({t: [(i.context, i.options, i.answer) for i in its] for t, its in items.items()})
    measure = Measure("task_battery", compute, {"tasks": tasks, "n_items": n_items, "seed": seed,
                                               "items": items_sha, "context": context_length(s)},
                      description="offline task battery (lhp_core.metrics.tasks): one row per task")
    old_threads = torch.get_num_threads()
    if threads and str(device).startswith("cpu"):
        torch.set_num_threads(threads)
    try:
        ds = over_steps(s, measure, models, steps, device=device, progress=progress)
    finally:
        torch.set_num_threads(old_threads)
    ds = ds.assign_coords(chance=(schema.TASK, [get(t).chance for t in ds[schema.TASK].values]))
    ds["chance"].attrs.update(units="share of items", description="accuracy of guessing")
    return ds
