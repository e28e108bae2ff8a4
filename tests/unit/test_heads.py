"""Head scores on a hand-wired 2-layer attention-only model with known attention, and ICL pieces."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lhp_core.metrics import heads
from lhp_core.reducers import HEAD_SCORES, BatchInfo

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
    pat = heads.attention_on_probe(model, ids[0], bpe.bos_token_id, layer=2, head=1)
    np.testing.assert_allclose(pat, att[1][0, 1].numpy(), atol=1e-6)
    np.testing.assert_allclose(pat.sum(1), 1.0, atol=1e-6)
    assert np.triu(pat, 1).max() == 0.0


def test_position_losses_match_cross_entropy_and_icl(bpe):
    model = _tiny_neox(len(bpe), seed=2)
    wins = heads.text_windows(bpe, ["river garden yellow window " * 30], length=40)
    loss = heads.position_losses(model, wins, bpe.bos_token_id, batch_size=3)
    x = torch.as_tensor(np.concatenate([np.full((len(wins), 1), bpe.bos_token_id), wins], 1))
    with torch.inference_mode():
        logits = model(input_ids=x).logits[:, :-1]
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
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
                    coords={"step": [0, 4, 16], "layer": [1, 2], "head": np.arange(4)})
    long = vr.heads_long({"m": ds}, "plain")
    assert len(long) == 3 * 2 * 4 * len(heads.SCORES)
    hm = vr.head_heatmap(long, "induction", "m").to_dict()
    assert len(hm["data"]["values"] if "values" in hm["data"] else hm["datasets"][hm["data"]["name"]]) == 24
    with pytest.raises(ValueError, match="no rows"):
        vr.head_heatmap(long, "induction", "nope")
    model = _tiny_neox(len(bpe))
    _, ids = heads.induction_probe(bpe, n_seq=2, seq_len=6)
    chart = vr.inspect_head_attention({"m": ds}, "m", 4, 2, 1, lambda m, s: (model, bpe), ids)
    spec = chart.to_dict()
    assert len(spec["hconcat"]) == 2
    ppp = pd.DataFrame({"model": ["m"] * 3, "variant": "plain", "step": [0, 4, 16], "tokens_seen": [0, 100, 400],
                        "ppp": [0.0, 0.02, 0.01], "ppp_lo": [-0.01, 0.01, 0.0], "ppp_hi": [0.01, 0.03, 0.02]})
    assert len(vr.ppp_chart(ppp, reference=0.05).to_dict()["layer"]) == 3


def test_probe_longer_than_the_trained_context_is_refused(tiny_suite):
    """lhp-tiny trains on 64-token windows: BOS + 2 x 32 tokens would score positions it never saw."""
    with pytest.raises(ValueError, match="64-token context.*use seq_len <= 31"):
        heads.head_scores_over_steps(str(tiny_suite), n_seq=2, seq_len=32, progress=False)
