"""Pieces of the trainer checked against brute-force references: data batches, the held-out split,
the induction mask and the copy regulariser."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lhp_core import corpus
from lhp_core.presets import PRESETS
from lhp_core.train import _lr_lambda, batch_at, copy_penalty, induction_mask, train

P = replace(PRESETS["tiny"], batch_size=64)
STREAM = np.random.default_rng(0).integers(2, 384, 20_000).astype(np.int32)


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    a, b = batch_at(5, STREAM, P, 0, 0.5), batch_at(5, STREAM, P, 0, 0.5)
    assert a.shape == (64, P.context) and a.dtype == np.int64 and np.array_equal(a, b)
    assert not np.array_equal(a, batch_at(6, STREAM, P, 0, 0.5))
    assert not np.array_equal(a, batch_at(5, STREAM, P, 1, 0.5))


def test_natural_rows_are_contiguous_stream_windows() -> None:
    x = batch_at(3, STREAM, P, 0, 0.0)
    T = P.context
    windows = {tuple(STREAM[i : i + T]) for i in range(len(STREAM) - T)}
    assert all(tuple(row) in windows for row in x)


def test_repeated_rows_copy_one_span_later_in_the_row() -> None:
    nat, rep = batch_at(3, STREAM, P, 0, 0.0), batch_at(3, STREAM, P, 0, 1.0)
    T = P.context
    for r in range(len(rep)):
        changed = np.flatnonzero(nat[r] != rep[r])
        assert len(changed) > 0  # random ids: a copied span differs from what it overwrote
        q, end = changed[0], changed[-1] + 1
        L = end - q
        # Random ids rarely agree by chance, so the changed run is the span (maybe shortened at its ends).
        assert L <= min(P.span_max, T // 2)
        found = [p for p in range(0, q - L + 1) if np.array_equal(rep[r, p : p + L], rep[r, q:end])]
        assert found, f"row {r}: span at {q}:{end} has no earlier source"
    frac = np.mean([np.any(nat[r] != batch_at(3, STREAM, P, 0, 0.5)[r]) for r in range(len(nat))])
    assert 0.25 < frac < 0.75  # about half the rows repeat at repeat_frac=0.5 (64 rows)


def test_span_copies_place_k_copies_of_one_span_after_it() -> None:
    k = 3
    Pk = replace(P, span_copies=k, span_min=4, span_max=12)
    stream = np.arange(20_000, dtype=np.int32)  # distinct ids: every copied token differs from what it overwrote
    nat, rep = batch_at(3, stream, Pk, 0, 0.0), batch_at(3, stream, Pk, 0, 1.0)
    assert np.array_equal(nat, batch_at(3, stream, P, 0, 0.0))  # natural rows do not depend on span_copies
    for r in range(len(rep)):
        changed = np.flatnonzero(nat[r] != rep[r])
        L, rem = divmod(len(changed), k)
        assert rem == 0 and Pk.span_min <= L <= min(Pk.span_max, Pk.context // (k + 1))
        src = np.flatnonzero(rep[r] == rep[r, changed[0]])[0]  # the untouched original of the span
        assert src + L <= changed[0]
        for c in range(k):
            np.testing.assert_array_equal(rep[r, changed[c * L : (c + 1) * L]], rep[r, src : src + L])
            assert np.all(np.diff(changed[c * L : (c + 1) * L]) == 1)  # each copy is contiguous


def test_induction_mask_matches_brute_force() -> None:
    ids = torch.tensor([[5, 6, 7, 5, 6, 9, 5], [1, 1, 1, 2, 1, 2, 2]])
    mask = induction_mask(ids)
    B, T = ids.shape
    ref = torch.zeros(B, T, T, dtype=torch.bool)
    for b in range(B):
        for i in range(T):
            for j in range(1, i):
                ref[b, i, j] = bool(ids[b, j - 1] == ids[b, i])
    assert torch.equal(mask, ref)
    assert mask[0, 3].nonzero().flatten().tolist() == [1]  # second "5" -> key after first "5" (the "6")
    assert mask[0, 6].nonzero().flatten().tolist() == [1, 4]


def test_copy_penalty_on_hand_built_attention() -> None:
    ids = torch.tensor([[5, 6, 7, 5, 6]])
    T = 5
    # Head 0 attends fully to the induction key where there is one; head 1 uniformly (causal).
    a0 = torch.eye(T)
    a0[3] = 0
    a0[3, 1] = 1.0  # query "5" at 3 -> key 1 ("6" after the first "5")
    a0[4] = 0
    a0[4, 2] = 1.0  # query "6" at 4 -> key 2 ("7" after the first "6")
    a1 = torch.tril(torch.ones(T, T))
    a1 = a1 / a1.sum(-1, keepdim=True)
    att = torch.stack([a0, a1])[None]  # (1, head, T, T)
    # Queries with an induction key: 3 and 4. Head 0 mass = 1 at both; head 1 mass = 1/4 and 1/5.
    expected = (1.0 + 1.0 + 0.25 + 0.2) / 4
    assert copy_penalty([att, att], ids).item() == pytest.approx(expected, abs=1e-7)
    assert copy_penalty([att], torch.tensor([[1, 2, 3, 4, 5]])).item() == 0.0


def test_lr_schedule_warmup_then_cosine_to_ten_percent() -> None:
    f = _lr_lambda(P)
    assert f(0) == pytest.approx(1 / P.warmup) and f(P.warmup - 1) == pytest.approx(1.0)
    assert f(P.warmup) == pytest.approx(1.0) and f(P.total_steps) == pytest.approx(0.1)
    mid = P.warmup + (P.total_steps - P.warmup) / 2
    assert f(int(mid)) == pytest.approx(0.55, abs=0.05)


def test_held_out_split_is_by_document_and_stable() -> None:
    c = corpus.load(("inaugural", "state_union"), val_fraction=0.2)
    assert c.val and c.train and not set(c.val) & set(c.train)
    assert all(corpus.is_held_out(d, 0.2) for d in c.val)
    c2 = corpus.load(("state_union",), val_fraction=0.2)  # membership does not depend on the mix
    assert set(c2.val) <= set(c.val)
    assert 0.05 < len(c.val) / (len(c.val) + len(c.train)) < 0.4


def test_token_stream_separates_documents_with_eos() -> None:
    from lhp_core.tokenizer import train_bpe

    docs = ["the cat sat on the mat", "a dog ran"]
    tok = train_bpe(docs * 5, 300)
    s = corpus.token_stream(tok, docs)
    eos = tok.eos_token_id
    assert s.dtype == np.int32 and s[-1] == eos and (s == eos).sum() == 2
    first = s[: np.flatnonzero(s == eos)[0]]
    assert tok.decode(first.tolist()) == docs[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [({"preset": "huge"}, "valid presets: tiny, micro, mini, gpu"), ({"preset": "tiny", "copy_reg": -1}, "copy-reg"),
     ({"preset": "tiny", "repeat_frac": 1.5}, "repeat-frac")],
)
def test_bad_training_arguments(kwargs: dict, match: str, tmp_path) -> None:
    with pytest.raises((KeyError, ValueError), match=match):
        train(out=tmp_path, progress=False, **kwargs)
