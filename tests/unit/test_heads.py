"""Head scores on a hand-wired 2-layer attention-only model with known attention, and ICL pieces."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lhp_core.metrics import heads
from lhp_core.reducers import HEAD_SCORES, BatchInfo
from lhp_core.suites import SuiteError

torch.set_num_threads(1)

V, L = 20, 8  # vocabulary (0 = BOS) and repeat length
T = 1 + 2 * L
BETA, GAMMA = 1e4, 2.0


class HandWiredInduction(torch.nn.Module):
    """Attention-only, 2 layers, residual = [token one-hot | position one-hot | previous-token slot].

    Layer 0 head 0 attends from position i to i-1 with logit BETA (so, in float64, entirely)
    and writes the attended token's one-hot into the previous-token slot; head 1 attends
    uniformly and writes nothing. Layer 1 head 0 matches the current token against the
    previous-token slot (K-composition) with logit GAMMA: an induction head.
    """

    def __init__(self) -> None:
        super().__init__()
        D = 2 * V + T
        self.tok = slice(0, V)
        self.pos = slice(V, V + T)
        self.prev = slice(V + T, D)
        self.D = D
        self.config = SimpleNamespace(max_position_embeddings=T)

    def _attend(self, scores: torch.Tensor) -> torch.Tensor:
        n = scores.shape[-1]
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)

    def forward(self, input_ids, output_attentions=True, **_):
        B, n = input_ids.shape
        x = torch.zeros(B, n, self.D, dtype=torch.float64)
        x[..., self.tok] = torch.nn.functional.one_hot(input_ids, V).double()
        x[..., self.pos] = torch.eye(T, dtype=torch.float64)[:n]
        shift = torch.diag(torch.ones(T - 1, dtype=torch.float64), 1)  # pos j -> j + 1
        q0 = BETA * x[..., self.pos]
        k0 = x[..., self.pos] @ shift
        a00 = self._attend(q0 @ k0.transpose(1, 2))
        a01 = self._attend(torch.zeros(B, n, n, dtype=torch.float64))
        x = x.clone()
        x[..., self.prev] = a00 @ x[..., self.tok]
        a10 = self._attend(GAMMA * x[..., self.tok] @ x[..., self.prev].transpose(1, 2))
        a11 = self._attend(torch.zeros(B, n, n, dtype=torch.float64))
        return SimpleNamespace(attentions=(torch.stack([a00, a01], 1), torch.stack([a10, a11], 1)))


def probe(n_seq: int = 5, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_seq):
        first = rng.permutation(np.arange(1, V))[:L]  # distinct tokens: exactly one earlier match
        rows.append(np.concatenate([[0], first, first]))
    return torch.as_tensor(np.array(rows))


def test_scores_match_analytic_values_on_hand_wired_model():
    att = HandWiredInduction()(probe()).attentions
    s = heads.scores_from_patterns(att)
    q_second = np.arange(L + 1, 2 * L + 1)  # queries in the second copy; each has q keys besides the match
    e = np.exp(GAMMA)
    assert s["induction"][1, 0] == pytest.approx(np.mean(e / (e + q_second)), abs=1e-12)
    assert s["duplicate_token"][1, 0] == pytest.approx(np.mean(1 / (e + q_second)), abs=1e-12)
    assert s["prev_token"][0, 0] == pytest.approx(1.0, abs=1e-12)
    # Uniform head: a query at q spreads 1 / (q + 1) over its keys.
    q_all = np.arange(2, T)
    assert s["prev_token"][0, 1] == pytest.approx(np.mean(1 / (q_all + 1)), abs=1e-12)
    assert s["induction"][1, 1] == pytest.approx(np.mean(1 / (q_second + 1)), abs=1e-12)
    assert s["induction"][0, 0] == pytest.approx(0.0, abs=1e-12)


def test_registered_scores_respect_padding():
    ids = probe(2)
    att = HandWiredInduction()(ids).attentions[1]
    short = HandWiredInduction()(ids[:, : 1 + 2 * 5]).attentions[1]  # a shorter repeat would need its own probe
    padded = torch.zeros_like(att)
    padded[:, :, :11, :11] = HandWiredInduction()(torch.cat([ids[:, :6], ids[:, 1:6]], 1)).attentions[1]
    lengths = torch.tensor([T, 11])
    mask = torch.arange(T)[None] < lengths[:, None]
    both = torch.stack([att[0], padded[1]])
    info = BatchInfo(ids, mask, lengths)
    got = HEAD_SCORES.get("induction")(both, info)
    ref_short = heads.scores_from_patterns([padded[1:, :, :11, :11]])["induction"][0]
    assert got[1].numpy() == pytest.approx(ref_short, abs=1e-12)
    assert got[0].numpy() == pytest.approx(heads.scores_from_patterns([att[:1]])["induction"][0], abs=1e-12)
    assert short.shape[-1] == 11
    for name in heads.SCORES:
        assert name in HEAD_SCORES


def test_bad_probe_length_is_rejected():
    att = HandWiredInduction()(probe(1)).attentions[1]
    info = BatchInfo(probe(1), torch.ones(1, T, dtype=torch.bool), torch.tensor([T - 1]))
    with pytest.raises(ValueError, match="repeated twice"):
        heads.induction_score(att, info)


def _tiny_neox(vocab: int, seed: int = 0):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    cfg._attn_implementation = "eager"
    return GPTNeoXForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def bpe():
    from lhp_core.tokenizer import train_bpe

    words = ["river", "mountain", "garden", "yellow", "window", "silver", "market", "teacher", "animal", "forest",
             "letter", "winter", "summer", "people", "number", "little", "between", "family", "country", "picture"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=40)) for _ in range(200)]
    return train_bpe(texts, vocab_size=400)


def test_induction_probe_round_trips_and_sweep_extract_agrees(bpe):
    from lhp_core.extract import extract

    stim, ids = heads.induction_probe(bpe, n_seq=4, seq_len=10, seed=1)
    assert ids.shape == (4, 20) and (ids[:, :10] == ids[:, 10:]).all()
    model = _tiny_neox(len(bpe))
    res = extract(model, bpe, stim, ["heads"], [], head_scores=list(heads.SCORES), max_length=64)
    bos = np.full((4, 1), bpe.bos_token_id)
    with torch.inference_mode():
        att = model(input_ids=torch.as_tensor(np.concatenate([bos, ids], 1)), output_attentions=True).attentions
    ref = heads.scores_from_patterns(att)
    for name in heads.SCORES:
        got = res.values["heads"][name][1:].mean(-1)  # [layer 1..L, head], averaged over stimuli
        np.testing.assert_allclose(got, ref[name], rtol=0, atol=1e-5)
    pats = heads.attention_patterns(model, ids[0], bpe.bos_token_id)
    assert pats.shape == (len(att), att[0].shape[1], 21, 21)
    pat = pats[1, 1]
    np.testing.assert_allclose(pat, att[1][0, 1].numpy(), atol=1e-6)
    with torch.inference_mode():  # the authors' probe: no BOS
        att0 = model(input_ids=torch.as_tensor(ids[:1]), output_attentions=True).attentions
    np.testing.assert_allclose(heads.attention_patterns(model, ids[0])[0, 1], att0[0][0, 1].numpy(), atol=1e-6)
    np.testing.assert_allclose(pat.sum(1), 1.0, atol=1e-6)
    assert np.triu(pat, 1).max() == 0.0


def test_position_losses_match_cross_entropy_and_icl(bpe):
    model = _tiny_neox(len(bpe), seed=2)
    wins = heads.text_windows(bpe, ["river garden yellow window " * 30], length=40)
    loss = heads.position_losses(model, wins, bpe.bos_token_id, batch_size=3)
    x = torch.as_tensor(np.concatenate([np.full((len(wins), 1), bpe.bos_token_id), wins], 1))
    with torch.inference_mode():
        logits = model(input_ids=x).logits[:, :-1]
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                            reduction="none")
    np.testing.assert_allclose(loss, ref.view(len(wins), -1).numpy(), atol=1e-5)
    assert heads.icl_score(loss, 3, 30) == pytest.approx(float(loss[:, 30].mean() - loss[:, 3].mean()))
    assert heads.icl_positions(2048) == (50, 500)
    assert heads.icl_positions(128) == (12, 127)
    with pytest.raises(ValueError, match="too short"):
        heads.icl_positions(8)


def test_viz_helpers_draw_the_right_rows(bpe):
    import pandas as pd
    import xarray as xr

    from lhp_core.viz import reading as vr

    rng = np.random.default_rng(0)
    vals = rng.uniform(size=(3, 2, 4))
    ds = xr.Dataset({n: (("step", "layer", "head"), vals) for n in heads.SCORES},
                    coords={"step": [0, 4, 16], "layer": [1, 2], "head": np.arange(4)}).expand_dims(model=["m"])
    long = vr.heads_long(ds, "plain")
    assert len(long) == 3 * 2 * 4 * len(heads.SCORES)
    hm = vr.head_heatmap(long, "induction", "m").to_dict()
    assert len(hm["data"]["values"] if "values" in hm["data"] else hm["datasets"][hm["data"]["name"]]) == 24
    with pytest.raises(ValueError, match="no rows"):
        vr.head_heatmap(long, "induction", "nope")
    model = _tiny_neox(len(bpe))
    _, ids = heads.induction_probe(bpe, n_seq=2, seq_len=6)
    chart = vr.inspect_head_attention(ds, "m", 4, 2, 1, lambda m, s: (model, bpe), ids, bos=True)
    spec = chart.to_dict()
    assert len(spec["hconcat"]) == 2
    ppp = pd.DataFrame({"model": ["m"] * 3, "variant": "plain", "step": [0, 4, 16], "tokens_seen": [0, 100, 400],
                        "ppp": [0.0, 0.02, 0.01], "ppp_lo": [-0.01, 0.01, 0.0], "ppp_hi": [0.01, 0.03, 0.02]})
    assert len(vr.ppp_chart(ppp, reference=0.05).to_dict()["layer"]) == 3


def test_probe_longer_than_the_trained_context_is_refused(tiny_suite):
    """lhp-tiny trains on 64-token windows: BOS + 2 x 32 tokens would score positions it never saw
    (the authors' probe has no BOS, so 2 x 32 fits and 2 x 33 does not)."""
    with pytest.raises(ValueError, match="64-token context.*use seq_len <= 31"):
        heads.head_scores_over_steps(str(tiny_suite), n_seq=2, seq_len=32, convention="lhp", progress=False)
    with pytest.raises(ValueError, match="64-token context.*use seq_len <= 32"):
        heads.head_scores_over_steps(str(tiny_suite), n_seq=2, seq_len=33, convention="aoyama_wilcox",
                                     progress=False)


# --------------------------------------------------------------------------- conventions


def _one_hot_rows(S: int, target: dict[int, int]) -> torch.Tensor:
    """``[1, 1, S, S]`` pattern: row q puts all attention on ``target[q]`` (key 0 where not given)."""
    A = torch.zeros(1, 1, S, S, dtype=torch.float64)
    for q in range(S):
        A[0, 0, q, target.get(q, 0)] = 1.0
    return A


def test_perfect_heads_score_one_in_their_convention_and_their_share_of_rows_in_transformer_lens():
    L = 6
    ids = torch.as_tensor(np.concatenate([[0], np.arange(1, L + 1), np.arange(1, L + 1)]))[None]  # distinct, BOS 0
    # Without BOS (aoyama_wilcox): the second copy is L..2L-1.
    ind = heads.scores_from_patterns([_one_hot_rows(2 * L, {q: q - L + 1 for q in range(L, 2 * L)})], "aoyama_wilcox")
    prev = heads.scores_from_patterns([_one_hot_rows(2 * L, {q: q - 1 for q in range(1, 2 * L)})], "aoyama_wilcox")
    assert (ind["induction"][0, 0], ind["prev_token"][0, 0], ind["duplicate_token"][0, 0]) == (1.0, 0.0, 0.0)
    assert (prev["induction"][0, 0], prev["prev_token"][0, 0]) == (0.0, 1.0)
    # With BOS: lhp averages over the scored queries; TransformerLens divides by all 2L + 1 rows.
    S = 2 * L + 1
    ind = [_one_hot_rows(S, {q: q - L + 1 for q in range(L + 1, S)})]
    prev = [_one_hot_rows(S, {q: q - 1 for q in range(1, S)})]
    assert heads.scores_from_patterns(ind, "lhp")["induction"][0, 0] == 1.0
    assert heads.scores_from_patterns(ind, "transformer_lens", ids)["induction"][0, 0] == pytest.approx(L / S,
                                                                                                        abs=1e-15)
    assert heads.scores_from_patterns(prev, "lhp")["prev_token"][0, 0] == 1.0
    assert heads.scores_from_patterns(prev, "transformer_lens", ids)["prev_token"][0, 0] == pytest.approx((S - 1) / S)


def test_transformer_lens_counts_every_earlier_occurrence_of_a_token():
    """Uniform causal attention (1 / (q + 1) per key) on a copy with a token repeated inside it."""
    first = [5, 7, 5, 9]
    seq = [0] + first + first
    S = len(seq)
    A = torch.tril(torch.ones(S, S, dtype=torch.float64)) / torch.arange(1, S + 1, dtype=torch.float64)[:, None]
    got = heads.scores_from_patterns([A[None, None]], "transformer_lens", torch.as_tensor(seq)[None])
    dup = sum(1 / (q + 1) for q in range(S) for k in range(q) if seq[k] == seq[q]) / S
    ind = sum(1 / (q + 1) for q in range(S) for k in range(q) if seq[k] == seq[q]) / S  # key k + 1 <= q exists
    prev = sum(1 / (q + 1) for q in range(1, S)) / S
    assert got["duplicate_token"][0, 0] == pytest.approx(dup, abs=1e-14)
    assert got["induction"][0, 0] == pytest.approx(ind, abs=1e-14)
    assert got["prev_token"][0, 0] == pytest.approx(prev, abs=1e-14)
    det = heads.detection_pattern(torch.as_tensor(seq), "induction")
    assert [(q, k) for q, k in zip(*np.nonzero(det.numpy()))] == [(3, 2), (5, 2), (5, 4), (6, 3), (7, 2), (7, 4),
                                                                  (7, 6), (8, 5)]


def test_hand_wired_model_in_transformer_lens_normalisation():
    att = HandWiredInduction()(probe()).attentions
    s = heads.scores_from_patterns(att, "transformer_lens", probe())
    q_second = np.arange(L + 1, 2 * L + 1)
    e = np.exp(GAMMA)
    assert s["induction"][1, 0] == pytest.approx(np.sum(e / (e + q_second)) / T, abs=1e-12)
    assert s["duplicate_token"][1, 0] == pytest.approx(np.sum(1 / (e + q_second)) / T, abs=1e-12)
    assert s["prev_token"][0, 0] == pytest.approx((T - 1) / T, abs=1e-12)


def test_random_probe_draws_from_the_whole_vocabulary():
    ids = heads.random_probe(20, n_seq=100, seq_len=50, seed=3, exclude=[0])
    assert ids.shape == (100, 100) and (ids[:, :50] == ids[:, 50:]).all()
    assert set(np.unique(ids)) == set(range(1, 20))
    assert (heads.random_probe(20, 2, 5, seed=3) == heads.random_probe(20, 2, 5, seed=3)).all()


def _tiny_gpt2(vocab: int = 50, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=40, n_embd=32, n_layer=2, n_head=4, bos_token_id=vocab - 1,
                     eos_token_id=vocab - 1)
    model = GPT2LMHeadModel(cfg).eval()
    # Random init is near uniform attention; sharper weights make the scores differ between heads.
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(20.0)
    return model


def _patterns_from_qk(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Attention recomputed from each block's queries and keys: softmax(q k^T / sqrt(d) + causal mask)."""
    ln1 = []
    hooks = [b.ln_1.register_forward_hook(lambda m, i, o: ln1.append(o.detach())) for b in model.transformer.h]
    with torch.inference_mode():
        model(input_ids=x)
    for h in hooks:
        h.remove()
    H, D = model.config.n_head, model.config.n_embd
    S = x.shape[1]
    out = []
    with torch.inference_mode():
        for block, h in zip(model.transformer.h, ln1):
            qkv = h @ block.attn.c_attn.weight + block.attn.c_attn.bias
            q, k = (t.reshape(*t.shape[:2], H, D // H).transpose(1, 2) for t in qkv.split(D, dim=-1)[:2])
            logits = q @ k.transpose(-1, -2) / np.sqrt(D // H)
            logits = logits.masked_fill(~torch.ones(S, S, dtype=torch.bool).tril(), float("-inf"))
            out.append(torch.softmax(logits, dim=-1))
    return out


def _offsets_by_hand(A: np.ndarray, L: int, bos: bool) -> dict[str, np.ndarray]:
    """Scores from patterns ``[batch, head, S, S]`` by explicit loops over the scored queries."""
    s = 1 if bos else 0
    second = range(s + L, s + 2 * L)
    prev_q = range(2, s + 2 * L) if bos else second
    return {"prev_token": np.mean([A[:, :, q, q - 1] for q in prev_q], axis=(0, 1)),
            "induction": np.mean([A[:, :, q, q - L + 1] for q in second], axis=(0, 1)),
            "duplicate_token": np.mean([A[:, :, q, q - L] for q in second], axis=(0, 1))}


@pytest.mark.parametrize("convention", heads.CONVENTIONS)
def test_head_scores_equal_attention_recomputed_from_queries_and_keys(convention):
    model = _tiny_gpt2()
    L = 8
    ids = heads.random_probe(49, n_seq=5, seq_len=L, seed=1)
    ids[0, [3, L + 3]] = ids[0, 2]  # a token repeated at once: TransformerLens then scores the diagonal too
    got = heads.head_scores(model, ids, convention, batch_size=2)
    bos = convention != "aoyama_wilcox"
    x = torch.as_tensor(np.concatenate([np.full((5, 1), 49), ids], 1) if bos else ids)
    pats = [p.numpy() for p in _patterns_from_qk(model, x)]
    for name in heads.SCORES:
        if convention == "transformer_lens":
            want = []
            for A in pats:
                per_seq = []
                for b, row in enumerate(x.tolist()):
                    hits = [(q, k) for q in range(len(row)) for k in range(q + 1) if {
                        "prev_token": k == q - 1, "duplicate_token": k < q and row[k] == row[q],
                        "induction": 1 <= k and row[k - 1] == row[q] and k - 1 < q}[name]]
                    per_seq.append(sum(A[b, :, q, k] for q, k in hits) / A[b].sum((-1, -2)))
                want.append(np.mean(per_seq, axis=0))
            want = np.array(want)
        else:
            want = np.array([_offsets_by_hand(A, L, bos)[name] for A in pats])
        assert got[name].shape == (2, 4)
        np.testing.assert_allclose(got[name], want, rtol=0, atol=2e-6)
    assert np.ptp(got["prev_token"]) > 0.05  # the heads differ: a real test of the layer/head layout


def test_transformer_lens_scores_in_the_sweep_equal_the_in_memory_ones(bpe):
    from lhp_core.extract import extract

    stim, ids = heads.induction_probe(bpe, n_seq=3, seq_len=8, seed=2)
    model = _tiny_neox(len(bpe), seed=1)
    res = extract(model, bpe, stim, ["heads"], [], head_scores=list(heads.TL_SCORES.values()), max_length=64)
    ref = heads.head_scores(model, ids, "transformer_lens", bos_token_id=bpe.bos_token_id)
    for name, tl in heads.TL_SCORES.items():
        np.testing.assert_allclose(res.values["heads"][tl][1:].mean(-1), ref[name], rtol=0, atol=1e-5)


HEAD_ERRORS = [
    ("not repeated", lambda m: heads.head_scores(m, np.arange(16).reshape(2, 8), "aoyama_wilcox"), ValueError,
     r"ids of shape \(2, 8\) are not sequences repeated twice.*random_probe\(\)"),
    ("unknown convention", lambda m: heads.head_scores(m, heads.random_probe(49, 1, 4), "olsson"), ValueError,
     r"unknown convention 'olsson'; use one of \['aoyama_wilcox', 'lhp', 'transformer_lens'\]"),
    ("no BOS id", lambda m: heads.head_scores(_no_bos(m), heads.random_probe(49, 1, 4), "lhp"), ValueError,
     r"the lhp convention prepends BOS.*pass bos_token_id="),
    ("longer than the context", lambda m: heads.head_scores(m, heads.random_probe(49, 1, 21), "aoyama_wilcox"),
     ValueError,
     r"probe sequences of 42 tokens exceed the model's 40-token context"),
    ("TL without ids", lambda m: heads.scores_from_patterns([torch.ones(1, 1, 5, 5)], "transformer_lens"), ValueError,
     r"transformer_lens convention needs input_ids of shape \(1, 5\)"),
    ("probe of one token", lambda m: heads.random_probe(49, 1, 1), ValueError, r"need n_seq >= 1 and seq_len >= 2"),
]


def _no_bos(model):
    model.config.bos_token_id = None
    return model


@pytest.mark.parametrize("name, call, error, message", HEAD_ERRORS, ids=[c[0] for c in HEAD_ERRORS])
def test_head_score_errors_name_the_fix(name, call, error, message):
    with pytest.raises(error, match=message) as info:
        call(_tiny_gpt2())
    assert "\n" not in str(info.value)


def test_relying_on_the_changed_probe_default_warns_and_passing_it_is_silent(tmp_path):
    """The default probe lost its BOS in 0.2.0 (Aoyama & Wilcox's): a call that relies on it is told how to keep
    the old BOS-prefixed probe; naming a convention (either) is silent and scores the same."""
    from lhp_core.deprecation import ChangedDefaultWarning

    model, ids = _tiny_gpt2(), heads.random_probe(49, n_seq=2, seq_len=4, seed=0)
    with pytest.warns(ChangedDefaultWarning, match=r"^heads\.head_scores: the default convention='aoyama_wilcox' "
                      r"replaced convention='lhp' in 0\.2\.0, .* pass convention='lhp' \(the BOS-prefixed probe\) "
                      "for the old behaviour") as rec:
        relied = heads.head_scores(model, ids)
    assert len(rec) == 1 and rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChangedDefaultWarning)
        explicit = heads.head_scores(model, ids, "aoyama_wilcox")
        heads.head_scores(model, ids, convention="lhp", bos_token_id=49)
    assert all(np.array_equal(relied[k], explicit[k]) for k in heads.SCORES)
    # The driver resolves the default before it reads the suite, so a missing suite shows the warning too.
    with pytest.warns(ChangedDefaultWarning, match=r"^heads\.head_scores_over_steps: the default convention"), \
            pytest.raises(SuiteError, match="unknown suite"):
        heads.head_scores_over_steps(str(tmp_path / "absent"), progress=False)
