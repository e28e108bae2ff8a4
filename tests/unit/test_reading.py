"""Word surprisal (bow correction) against hand-built LMs, and Delta LL against statsmodels."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from scipy import stats
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lhp_core.metrics import reading
from lhp_core.stimuli import Stimuli

# These tests pin today's PPP defaults on purpose; the warning that they changed is tested in test_ppp.py.
pytestmark = pytest.mark.filterwarnings("ignore::lhp_core.deprecation.ChangedDefaultWarning")

torch.set_num_threads(1)

# Vocabulary of the toy tokenizer: every word over {a, b} has exactly one tokenization,
# so the probability of a word is the chain-rule probability of its string plus a boundary.
VOCAB = {"<|endoftext|>": 0, "a": 1, "b": 2, "Ġ": 3, "Ġa": 4, "Ġb": 5}
EOS, A, B, SP, SA, SB = range(6)


def toy_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(vocab=VOCAB, merges=[("Ġ", "a"), ("Ġ", "b")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


class BigramLM(torch.nn.Module):
    """p(next | previous token) from a fixed table: logits[b, t] = log P[ids[b, t]]."""

    def __init__(self, P: np.ndarray, n_ctx: int = 64) -> None:
        super().__init__()
        self.logP = torch.log(torch.as_tensor(P, dtype=torch.float64).clamp_min(1e-300))
        self.config = SimpleNamespace(max_position_embeddings=n_ctx)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logP[input_ids])


def letter_markov(c_a: float, c_b: float) -> np.ndarray:
    """After a token ending in letter x, continue the word (a or b) with prob c_x, else start a
    new word (Ġa or Ġb); letters are uniform and EOS / a bare space never occur."""
    rows = {}
    for x, c in (("a", c_a), ("b", c_b)):
        rows[x] = np.array([0.0, c / 2, c / 2, 0.0, (1 - c) / 2, (1 - c) / 2])
    P = np.tile(rows["a"], (6, 1))
    P[[B, SB]] = rows["b"]
    return P


def random_bigram(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(6), size=6)
    P[:, SP] = 0.0  # a bare space is never canonical here
    return P / P.sum(1, keepdims=True)


def test_bow_mask_marks_leading_space_and_eos():
    mask = reading.bow_mask(toy_tokenizer(), vocab_size=8)
    assert mask.tolist() == [True, False, False, True, True, True, False, False]


def test_bow_word_probabilities_sum_to_closed_form():
    """Letter-Markov LM: a word is longer than L with prob cbar**L, cbar = (c_a + c_b) / 2, so the
    words of length <= L have total probability 1 - cbar**L. The naive subword sum gives
    prefix probabilities times P_bow of the context, (1 - c_b) * (1 - cbar**L) / (1 - cbar)."""
    c_a, c_b, L = 0.7, 0.2, 6
    cbar = (c_a + c_b) / 2
    tok = toy_tokenizer()
    words = ["".join(w) for k in range(1, L + 1) for w in itertools.product("ab", repeat=k)]
    stim = Stimuli.from_words([["ab", w] for w in words])
    scores = reading.token_scores(BigramLM(letter_markov(c_a, c_b)), tok, stim, max_length=32)
    bow = reading.word_surprisal(scores, "bow").reshape(-1, 2)[:, 1]
    naive = reading.word_surprisal(scores, "naive").reshape(-1, 2)[:, 1]
    assert np.sum(2.0 ** -bow) == pytest.approx(1 - cbar**L, abs=1e-12)
    assert np.sum(2.0 ** -naive) == pytest.approx((1 - c_b) * (1 - cbar**L) / (1 - cbar), abs=1e-12)


def test_bow_surprisal_matches_chain_rule_of_the_string():
    """Random bigram LM: word probability = p(tokens) * P(boundary after) / P(boundary before)."""
    P = random_bigram(1)
    bow = np.array([1, 0, 0, 1, 1, 1], bool)
    words = ["ab", "b", "aab", "ba", "a", "bbb"]
    tok = toy_tokenizer()
    scores = reading.token_scores(BigramLM(P), tok, Stimuli.from_words([words]), max_length=64)
    got = reading.word_surprisal(scores, "bow")
    expected, prev = [], EOS
    for i, w in enumerate(words):
        ids = tok(("" if i == 0 else " ") + w, add_special_tokens=False)["input_ids"]
        p, before = 1.0, P[prev, bow].sum()
        for t in ids:
            p *= P[prev, t]
            prev = t
        after = P[prev, bow].sum()
        expected.append(-np.log2(p * after / (before if i > 0 else 1.0)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_sliding_windows_match_a_single_window():
    P = random_bigram(2)
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("ab"), size=rng.integers(1, 4))) for _ in range(60)]
    stim = Stimuli.from_words([words, words[:7]])
    tok = toy_tokenizer()
    long = reading.word_surprisal(reading.token_scores(BigramLM(P), tok, stim, max_length=512))
    short = reading.word_surprisal(reading.token_scores(BigramLM(P), tok, stim, max_length=9, batch_size=3))
    np.testing.assert_allclose(short, long, rtol=0, atol=1e-10)


def test_word_surprisal_rejects_unknown_method():
    s = reading.TokenScores(np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1, bool), np.zeros(1, int), 1)
    with pytest.raises(ValueError, match="'bow' or 'naive'"):
        reading.word_surprisal(s, "sum")


# --------------------------------------------------------------------------- Delta LL


def test_delta_loglik_matches_direct_statsmodels():
    rng = np.random.default_rng(0)
    n = 400
    Xb = rng.normal(size=(n, 3))
    s = rng.normal(size=(n, 2))
    y = 300 + Xb @ [10, -5, 3] + 8 * s[:, 0] + rng.normal(scale=20, size=n)
    res = reading.delta_loglik(y, Xb, np.column_stack([Xb, s]), n_folds=10, seed=3)
    direct = np.empty(n)
    for f in range(10):
        tr, te = res.folds != f, res.folds == f
        lls = []
        for X in (Xb, np.column_stack([Xb, s])):
            Xc = sm.add_constant(X)
            fit = sm.OLS(y[tr], Xc[tr]).fit()
            lls.append(stats.norm.logpdf(y[te], fit.predict(Xc[te]), np.sqrt(fit.mse_resid)))
        direct[te] = lls[1] - lls[0]
    np.testing.assert_allclose(res.per_word, direct, rtol=0, atol=1e-8)
    assert res.mean == pytest.approx(direct.mean(), abs=1e-8)
    assert res.lo < res.mean < res.hi
    assert np.bincount(res.folds).tolist() == [40] * 10


def _table(n_items: int = 8, n_words: int = 120, beta: float = 12.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vocab = ["the", "cat", "sat", "on", "mat", "quietly", "because", "of", "rain", "extraordinary"]
    rows = []
    for item in range(n_items):
        surp = rng.gamma(2.0, 3.0, size=n_words)
        for k in range(n_words):
            w = vocab[rng.integers(len(vocab))]
            prev = surp[k - 1] if k else 0.0
            rt = 250 + 6 * len(w) + beta * surp[k] + 0.5 * beta * prev + rng.normal(scale=40)
            rows.append({"item": item, "word": w, "rt": rt, "surp": surp[k]})
    return pd.DataFrame(rows)


def test_ppp_positive_when_surprisal_drives_rt_and_near_zero_otherwise():
    real = reading.ppp(_table(beta=12.0), "rt", "surp", spillover=2)
    null = reading.ppp(_table(beta=0.0), "rt", "surp", spillover=2)
    assert real.lo > 0.05
    # With no effect the extra predictors only overfit: held-out Delta LL is slightly negative.
    assert -0.02 < null.mean < 0.002
    lo, hi = real.bootstrap(500)
    assert lo < real.mean < hi


def test_exclusions_each_reason():
    t = pd.DataFrame({"item": [1, 1, 1, 1, 1, 2, 2, 2], "word": ["A", "dog,", "ran", "far", "away.", "I", "saw", "it"],
                      "rt": [200, 300, 50, 0, 400, 200, np.nan, 200]})
    ex = reading.exclusions(t, "rt", "word", "item", rt_range=(100, 3000), drop_zero=True)
    assert ex["edge"].tolist() == [True, False, False, False, True, True, False, True]
    assert ex["punct"].tolist() == [False, True, False, False, True, False, False, False]
    assert ex["rt_range"].tolist() == [False, False, True, True, False, False, False, False]
    assert ex["rt_nan"].sum() == 1 and ex["rt_zero"].sum() == 1
    assert ex["keep"].tolist() == [False] * 8


def test_ppp_errors_name_the_problem():
    t = _table(n_items=1, n_words=10)
    with pytest.raises(KeyError, match="surprisal column 'nope'"):
        reading.ppp(t, "rt", "nope")
    with pytest.raises(ValueError, match="survive the exclusions"):
        reading.ppp(t, "rt", "surp")
    with pytest.raises(ValueError, match="NaN"):
        reading.delta_loglik(np.array([1.0, np.nan] * 20), np.ones((40, 1)), np.ones((40, 2)))


def test_log_frequency_and_length():
    assert reading.word_length(["dog,", "it's"]).tolist() == [3.0, 3.0]
    f = reading.log_frequency(["The", "the.", "zzzqxj"])
    assert f[0] == f[1] > 6 and f[2] == 0.0


def test_ppp_over_steps_equals_ppp_per_checkpoint():
    import xarray as xr

    t = _table(n_items=6, n_words=80, beta=8.0, seed=4)
    rng = np.random.default_rng(5)
    surps = np.stack([t["surp"].to_numpy(), t["surp"].to_numpy() + rng.normal(scale=3.0, size=len(t))])
    da = xr.DataArray(surps[None], dims=("model", "step", "word"), coords={"model": ["x"], "step": [10, 20]})
    res = reading.ppp_over_steps(t, da, "rt", spillover=2, seed=7)
    for j in range(2):
        one = reading.ppp(t.assign(s=surps[j]), "rt", "s", spillover=2, seed=7)
        assert float(res["ppp"][0, j]) == pytest.approx(one.mean, abs=1e-10)
        np.testing.assert_allclose(res["delta_ll"][0, j].values, one.per_word, atol=1e-10)
    assert float(res["ppp"][0, 0]) > float(res["ppp"][0, 1])  # noisier surprisal predicts less
