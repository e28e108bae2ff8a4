"""Task battery: builders are deterministic, metrics match hand-computed values, HF scoring matches a manual pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lhp_core.metrics import tasks as T


class TableScorer:
    """A fake model: log-probabilities looked up from a table (default: −len(continuation))."""

    def __init__(self, table: dict[tuple[str, str], tuple[float, bool]] | None = None) -> None:
        self.table = table or {}

    def score(self, pairs):
        out = []
        for c, x in pairs:
            lp, g = self.table.get((c, x), (-float(len(x)), False))
            out.append(T.Continuation(logprob=lp, greedy=g, n_tokens=1))
        return out


LEX = T.Lexicon(nouns=(("dog", "dogs"), ("key", "keys"), ("year", "years")), verbs=(("runs", "run"), ("seems", "seem")))
DOCS = [
    "The cat sat on the mat while the dog slept by the door of the house and the wind blew hard outside all "
    "night long until the morning came and everyone woke up to find the cat still on the mat.",
    "Nothing here ends with a repeated word at all so this document yields no items whatsoever for the test "
    "because none of the final words have appeared before in any of these sentences today ok.",
]


def test_item_metrics_multiple_choice_by_hand() -> None:
    lp = np.log(np.array([0.2, 0.5, 0.3]))
    m = T.item_metrics(lp, np.array([False] * 3), answer=1)
    assert m["accuracy"] == 1.0
    assert m["prob_correct"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx(0.2**2 + 0.5**2 + 0.3**2)
    assert m["logprob"] == pytest.approx(np.log(0.5))
    wrong = T.item_metrics(lp, np.array([False] * 3), answer=0)
    assert wrong["accuracy"] == 0.0 and wrong["brier"] == pytest.approx(0.8**2 + 0.5**2 + 0.3**2)
    # unnormalised scores: softmax normalises (probs 1/(1+e), e/(1+e))
    m2 = T.item_metrics(np.array([-3.0, -2.0]), np.array([False, False]), answer=0)
    assert m2["prob_correct"] == pytest.approx(1 / (1 + np.e))
    # ties are wrong, not right: an untrained model at chance
    assert T.item_metrics(np.array([-1.0, -1.0]), np.array([False, False]), 0)["accuracy"] == 0.0


def test_item_metrics_single_continuation_by_hand() -> None:
    m = T.item_metrics(np.array([np.log(0.25)]), np.array([True]), 0)
    assert m == pytest.approx({"accuracy": 1.0, "prob_correct": 0.25, "brier": 0.5625, "logprob": np.log(0.25)})


def test_score_task_and_summary_with_fake_model() -> None:
    task = T.Task("fake", 0.5, "two items", lambda n, seed: [
        T.Item("", ("good", "badbad")),          # -4 vs -6: right
        T.Item("", ("goodgood", "bad"), 0),      # -8 vs -3: wrong
    ][:n])
    df = T.score_task(TableScorer(), task, n_items=2)
    assert df["accuracy"].tolist() == [1.0, 0.0]
    s = T.summarize(df).iloc[0]
    assert s["accuracy"] == 0.5
    assert s["accuracy_stderr"] == pytest.approx(np.std([1, 0], ddof=1) / np.sqrt(2))
    p1, p2 = 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(5))
    assert s["prob_correct"] == pytest.approx((p1 + p2) / 2)
    assert s["brier"] == pytest.approx((2 * (1 - p1) ** 2 + 2 * (1 - p2) ** 2) / 2)
    assert s["logprob"] == pytest.approx((-4 - 8) / 2)
    rep = T.option_report(TableScorer(), T.Item("", ("a", "bbb"), 1))
    assert rep["correct"].tolist() == [False, True]
    assert rep["prob"].sum() == pytest.approx(1.0)


def test_lambada_items_target_seen_earlier() -> None:
    items = T.lambada_items(DOCS, n=10, seed=0, min_words=10, max_words=60)
    assert len(items) == 1
    it = items[0]
    assert it.options == (" mat",)
    assert "mat" in it.context and not it.context.endswith("mat")


def test_agreement_and_determiner_items() -> None:
    items = T.agreement_items(LEX, 50, seed=1)
    assert len(items) == 50 and all(len(i.options) == 2 and i.answer == 0 for i in items)
    for it in items:
        good, bad = it.options
        subj, verb = good.split()[1], good.split()[2]
        assert (subj in ("dogs", "keys", "years")) == (verb in ("run", "seem"))
        assert good.split()[:2] == bad.split()[:2] and good != bad
    att = T.agreement_items(LEX, 20, seed=1, attractor=True)
    for it in att:
        w = it.options[0].split()
        head, attractor = w[1], w[-2]
        assert head.endswith("s") != attractor.endswith("s")  # opposite number
    det = T.determiner_items(LEX, 20, seed=0)
    for it in det:
        d, noun = it.options[0].split()[2:]
        assert (d in ("these", "those")) == noun.endswith("s")
    assert T.agreement_items(LEX, 5, seed=3) == T.agreement_items(LEX, 5, seed=3)


def test_copy_and_word_order_items() -> None:
    vocab = [f"w{i}" for i in range(30)]
    items = T.copy_items(vocab, 5, seed=0)
    for it in items:
        seq, start = it.context.split("\n")
        assert (start + it.options[0]).split() == seq.split()
    with pytest.raises(ValueError, match="at least 8 distinct words"):
        T.copy_items(["a", "b"], 1)
    sents = ["One two three four five six seven.", "A b c d e f g h.", "Too short."]
    wo = T.word_order_items(sents, 5, seed=0)
    assert len(wo) == 2
    for it in wo:
        assert len(set(it.options)) == 4 and it.options[it.answer] in sents
        assert all(sorted(o.split()) == sorted(it.options[it.answer].split()) for o in it.options)
    assert {it.answer for it in T.word_order_items(sents * 20, 40, seed=1)} == {0, 1, 2, 3}


def test_registry_declares_chance_and_rejects_unknown() -> None:
    assert set(T.names()) >= {"lambada", "agreement", "attractor", "determiner", "copy", "word_order"}
    assert T.get("word_order").chance == 0.25 and T.get("agreement").chance == 0.5 and T.get("copy").chance == 0.0
    with pytest.raises(KeyError, match="valid tasks"):
        T.get("lambda")
    with pytest.raises(ValueError, match="n_items must be positive"):
        T.get("copy").items(0)


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from lhp_core.tokenizer import train_bpe

    torch.manual_seed(0)
    tok = train_bpe(DOCS * 5, vocab_size=300)
    cfg = GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    return GPTNeoXForCausalLM(cfg).eval(), tok


def test_hf_scorer_matches_manual_unbatched_pass(tiny_lm) -> None:
    model, tok = tiny_lm
    pairs = [("The cat sat on the", " mat"), ("", "The dog slept"), ("wind blew hard outside all night", " long until")]
    got = T.HFScorer(model, tok, batch_size=2).score(pairs)
    for (c, x), s in zip(pairs, got):
        ctx = [tok.bos_token_id] + (tok.encode(c, add_special_tokens=False) if c else [])
        cont = tok.encode(x, add_special_tokens=False)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0], -1)
        want = sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
        greedy = all(int(logp[len(ctx) - 1 + j].argmax()) == t for j, t in enumerate(cont))
        assert s.logprob == pytest.approx(want, abs=1e-4)
        assert s.greedy == greedy and s.n_tokens == len(cont)


def test_hf_scorer_cuts_long_items_to_the_context(tiny_lm) -> None:
    """An item longer than max_len keeps its last max_len + 1 tokens (the continuation and the
    nearest context), scored as one window: what a model trained on max_len tokens can see."""
    model, tok = tiny_lm
    context, cont = "wind blew hard outside all night and the cat sat on the old mat", " long until"
    full = ([tok.bos_token_id] + tok.encode(context, add_special_tokens=False)
            + tok.encode(cont, add_special_tokens=False))
    n_cont = len(tok.encode(cont, add_special_tokens=False))
    assert len(full) > 9
    (got,) = T.HFScorer(model, tok, max_len=8).score([(context, cont)])
    ids = torch.tensor([full[-9:]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[:, :-1]).logits[0], -1)
    want = sum(float(logp[8 - n_cont + j, t]) for j, t in enumerate(full[-n_cont:]))
    assert got.logprob == pytest.approx(want, abs=1e-4)
    (uncut,) = T.HFScorer(model, tok).score([(context, cont)])  # the config's 128 positions: nothing cut
    assert abs(uncut.logprob - got.logprob) > 1e-3


class _ShortMemoryLM(torch.nn.Module):
    """Next-token logits from the current and ``memory - 1`` previous tokens only (a hand-built n-gram).

    With that little memory, scoring in windows that leave every target at least ``memory``
    tokens of its own window must equal scoring the whole sequence at once.
    """

    def __init__(self, vocab: int, memory: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(memory)
        self.tables = [torch.randn(vocab, vocab, generator=g) * 3 for _ in range(memory)]
        self.config = type("Config", (), {"max_position_embeddings": 100_000})()

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.tables[0].shape[1])
        for lag, table in enumerate(self.tables):
            prev = torch.cat([input_ids[:, :1].expand(-1, lag), input_ids[:, : input_ids.shape[1] - lag]], 1)
            logits = logits + table[prev]
        return type("Out", (), {"logits": logits})()


@pytest.mark.parametrize("max_len", [2, 3, 4, 5, 8])
def test_hf_scorer_windows_a_continuation_longer_than_the_context(tiny_lm, max_len) -> None:
    """A continuation of more than max_len tokens is scored in windows, each token once, with the
    most context a window gives: a model that looks back at most ``memory`` tokens scores it
    exactly as in one pass over the whole sequence (1e-4 nats over ~40 tokens)."""
    _, tok = tiny_lm
    cont = " the cat sat on the old mat while the wind blew hard outside all night long until dawn"
    n = len(tok.encode(cont, add_special_tokens=False))
    assert n > 2 * max_len
    # Every target keeps >= max_len - max_len // 2 + 1 >= 2 tokens of its window; with a context, the
    # first window may start right before the continuation, so there only memory 1 is exact.
    cases = [(1, "wind blew hard outside"), (2, "")]
    for memory, context in cases:
        lm = _ShortMemoryLM(len(tok), memory)
        pairs = [(context, cont), (context, " mat")]
        windowed = T.HFScorer(lm, tok, max_len=max_len, batch_size=3).score(pairs)
        whole = T.HFScorer(lm, tok).score(pairs)
        for w, u in zip(windowed, whole):
            assert w.n_tokens == u.n_tokens
            assert w.logprob == pytest.approx(u.logprob, abs=1e-4)
            assert w.greedy == u.greedy
        assert windowed[0].n_tokens == n
    # A real transformer sees less context through the windows than in one pass.
    model, _ = tiny_lm
    (cut,) = T.HFScorer(model, tok, max_len=max_len).score([("", cont)])
    (uncut,) = T.HFScorer(model, tok).score([("", cont)])
    assert cut.n_tokens == n and np.isfinite(cut.logprob) and abs(cut.logprob - uncut.logprob) > 1e-3


def test_build_items_round_trips_through_the_json_cache(tmp_path, monkeypatch) -> None:
    fake = T.Task("fake_det", 0.5, "det", lambda n, seed: T.determiner_items(LEX, n, seed))
    monkeypatch.setitem(T.TASKS._factories, "fake_det", lambda: fake)
    first = T.build_items(["fake_det"], 6, 0, tmp_path)
    assert list(tmp_path.glob("items-fake_det-6-0.json"))
    cached = T.build_items(["fake_det"], 6, 0, tmp_path)
    assert cached == first and cached["fake_det"] == fake.items(6, 0)
    with pytest.raises(KeyError, match="valid tasks"):
        T.task_battery_over_steps("lhp-tiny", tasks=["nope"])


def test_inspect_item_uses_loader_and_checks_index(tiny_lm, monkeypatch, tmp_path) -> None:
    model, tok = tiny_lm
    fake = T.Task("fake_agr", 0.5, "agr", lambda n, seed: T.agreement_items(LEX, n, seed))
    monkeypatch.setitem(T.TASKS._factories, "fake_agr", lambda: fake)
    rep = T.inspect_item("toy", "m", 3, "fake_agr", 1, n_items=4, loader=lambda *a, **k: (model, tok),
                         cache_dir=tmp_path)
    item = fake.items(4, 0)[1]
    assert rep["option"].tolist() == list(item.options)
    assert rep["prob"].sum() == pytest.approx(1.0)
    assert rep["correct"].tolist() == [True, False]
    with pytest.raises(IndexError, match="out of range"):
        T.inspect_item("toy", "m", 3, "fake_agr", 9, n_items=4, loader=lambda *a, **k: (model, tok),
                       cache_dir=tmp_path)
