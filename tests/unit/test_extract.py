"""extract() against a naive reference: HF ``output_hidden_states`` / ``labels=`` loss, pooled in numpy.

Tolerance: 1e-5 absolute + relative in float32 on CPU (different batch shapes reorder sums).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from lhp_core.extract import extract
from lhp_core.stimuli import Stimuli
from lhp_core.tokenizer import train_bpe

TOL = dict(rtol=1e-5, atol=1e-5)
WORDS = ("the cat sat on a mat while dogs ran far away from the old barn and "
         "birds sang songs about rain , sun and wind .").split()


@pytest.fixture(scope="module")
def tok():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(300)]
    return train_bpe(texts, vocab_size=300)


GATED = ("llama", "olmo", "olmo2")  # act(gate(x)) * up(x) MLPs; OLMo 2 normalises after each sub-block


def _model(arch: str, vocab: int, seed: int = 0):
    torch.manual_seed(seed)
    if arch in GATED:
        from transformers import AutoConfig, AutoModelForCausalLM

        cfg = AutoConfig.for_model(arch, vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                                   bos_token_id=0, eos_token_id=0, pad_token_id=1)
        return AutoModelForCausalLM.from_config(cfg).eval()
    if arch == "gpt_neox":
        cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=48, max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
        return GPTNeoXForCausalLM(cfg).eval()
    cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(1)
    return Stimuli.from_words([list(rng.choice(WORDS, n)) for n in (9, 3, 14, 6)], ids=["a", "b", "c", "d"])


def _ref_tokens(tok, words):
    """Token ids and word index per token, by tokenizing word by word (independent of offsets)."""
    ids, word = [], []
    for i, w in enumerate(words):
        t = tok(("" if i == 0 else " ") + w, add_special_tokens=False)["input_ids"]
        ids += t
        word += [i] * len(t)
    return np.array(ids), np.array(word)


def _mlp_ref(model, hs, i, mlp_in):
    """MLP activations of block i from its input hidden state (gated MLPs: from the MLP's input
    ``mlp_in[i]``, caught by a hook on the MLP module), written out by hand."""
    with torch.no_grad():
        if model.config.model_type in GATED:
            mlp = model.model.layers[i].mlp
            return mlp.act_fn(mlp.gate_proj(mlp_in[i])) * mlp.up_proj(mlp_in[i])
        if model.config.model_type == "gpt_neox":  # parallel residual: MLP reads LN(h)
            blk = model.gpt_neox.layers[i]
            return blk.mlp.act(blk.mlp.dense_h_to_4h(blk.post_attention_layernorm(hs[i])))
        blk = model.transformer.h[i]
        mid = hs[i] + blk.attn(blk.ln_1(hs[i]))[0]
        return blk.mlp.act(blk.mlp.c_fc(blk.ln_2(mid)))


def _reference(model, tok, stimuli, max_length):
    """Per stimulus: per-token resid [L+1, n, d], mlp [L, n, m], logprob [n] and word index [n]."""
    width = max_length - 1
    out = []
    for text, spans in zip(stimuli.texts, stimuli.word_spans):
        words = [text[a:b] for a, b in spans]
        ids, word = _ref_tokens(tok, words)
        n = len(ids)
        resid, mlp, lp = np.zeros((3, n, 32)), np.zeros((2, n, 48)), np.zeros(n)
        stride = width // 2
        runs = {}
        for j in range(n):  # the window with the most left context: the first one holding j
            k = 0 if j < width else (j - width) // stride + 1
            start = k * stride
            if start not in runs:
                x = torch.tensor(np.concatenate([[tok.bos_token_id], ids[start:start + width]]))[None]
                mlp_in = {}
                hooks = [blk.mlp.register_forward_pre_hook(
                             lambda mod, a, i=i, mlp_in=mlp_in: mlp_in.__setitem__(i, a[0]))
                         for i, blk in enumerate(model.model.layers)] if model.config.model_type in GATED else []
                with torch.no_grad():
                    r = model(x, output_hidden_states=True, labels=x)
                for h in hooks:
                    h.remove()
                ce = torch.nn.functional.cross_entropy(r.logits[0, :-1], x[0, 1:], reduction="none")
                # HF's own loss is the mean of these per-token cross-entropies
                np.testing.assert_allclose(r.loss.item(), ce.mean().item(), **TOL)
                runs[start] = (r, [_mlp_ref(model, r.hidden_states, i, mlp_in) for i in range(2)], ce)
            r, m, ce = runs[start]
            p = j - start + 1
            resid[:, j] = np.stack([h[0, p].numpy() for h in r.hidden_states])
            for i in range(2):
                mlp[i, j] = m[i][0, p].numpy()
            lp[j] = -ce[p - 1].item()
        out.append((resid, mlp, lp, word))
    return out


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", *GATED])
@pytest.mark.parametrize("max_length", [64, 8])  # 8: the 14-word text spans several windows
def test_matches_hf_reference(tok, stimuli, arch, max_length):
    model = _model(arch, len(tok))
    reds = ["word_mean", "word_last", "word_sum", "stimulus_mean", "stimulus_last", "stimulus_max", "per_token"]
    got = extract(model, tok, stimuli, ["resid", "mlp", "logprobs"], reds, batch_size=3, max_length=max_length)
    ref = _reference(model, tok, stimuli, max_length)
    assert got.encoded.n_tokens == sum(len(r[3]) for r in ref)
    if max_length == 8:
        assert len(got.encoded.windows) > len(stimuli.ids)
    w0 = 0
    tok0 = 0
    for s, (resid, mlp, lp, word) in enumerate(ref):
        n_w = word.max() + 1
        mlp_full = np.concatenate([np.full((1,) + mlp.shape[1:], np.nan), mlp])  # block sites: NaN at layer 0
        for site, arr in (("resid", resid), ("mlp", mlp_full), ("logprobs", lp)):
            v = got.values[site]
            per_word = [arr[..., word == w, :] if arr.ndim == 3 else arr[word == w] for w in range(n_w)]
            ax = 1 if arr.ndim == 3 else 0
            exp = {
                "word_mean": np.stack([x.mean(ax) for x in per_word], ax),
                "word_sum": np.stack([x.sum(ax) for x in per_word], ax),
                "word_last": np.stack([x.take(-1, ax) for x in per_word], ax),
            }
            for red, e in exp.items():
                g = v[red][:, w0:w0 + n_w] if arr.ndim == 3 else v[red][w0:w0 + n_w]
                np.testing.assert_allclose(g, e, **TOL, err_msg=f"{arch} {site} {red} stimulus {s}")
            for red, e in (("stimulus_mean", arr.mean(ax)), ("stimulus_last", arr.take(-1, ax)),
                           ("stimulus_max", arr.max(ax))):
                g = v[red][:, s] if arr.ndim == 3 else v[red][s]
                np.testing.assert_allclose(g, e, **TOL, err_msg=f"{arch} {site} {red}")
            tk = v["per_token"][:, tok0:tok0 + len(word)] if arr.ndim == 3 else v["per_token"][tok0:tok0 + len(word)]
            np.testing.assert_allclose(tk, arr, **TOL)
        w0 += n_w
        tok0 += len(word)


def test_word_logprob_is_sum_over_subwords(tok, stimuli):
    model = _model("gpt_neox", len(tok))
    got = extract(model, tok, stimuli, ["logprobs"], ["per_token", "word_sum"])
    enc = got.encoded
    tokens = got.values["logprobs"]["per_token"]
    expected = np.bincount(enc.token_word, weights=tokens, minlength=enc.n_words)
    np.testing.assert_allclose(got.values["logprobs"]["word_sum"], expected, **TOL)
    assert np.all(tokens < 0)


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2"])
@pytest.mark.parametrize("max_length", [64, 9])
def test_bow_word_logprob_equals_full_softmax_reference(tok, arch, max_length):
    """``logprobs_bow`` ``word_sum`` (chunked, on the device) equals the bow-corrected word
    log-prob that metrics.reading computes from full softmax outputs, also across windows."""
    from lhp_core.metrics import reading

    rng = np.random.default_rng(3)
    stim = Stimuli.from_words([list(rng.choice(WORDS, n)) for n in (9, 3, 40, 6)])
    model = _model(arch, len(tok))
    got = extract(model, tok, stim, ["logprobs", "logprobs_bow"], ["word_sum", "per_token"], batch_size=3,
                  max_length=max_length)
    ref = reading.token_scores(model, tok, stim, max_length=max_length)
    bow = got.values["logprobs_bow"]["word_sum"]
    np.testing.assert_allclose(bow, -reading.LOG2 * reading.word_surprisal(ref, "bow"), **TOL)
    np.testing.assert_allclose(got.values["logprobs"]["word_sum"], -reading.LOG2 * reading.word_surprisal(ref, "naive"),
                               **TOL)
    # The correction is not a no-op here, and per token it only moves mass between a word's ends.
    assert np.abs(bow - got.values["logprobs"]["word_sum"]).max() > 0.5
    np.testing.assert_allclose(np.bincount(got.encoded.token_word, weights=got.values["logprobs_bow"]["per_token"],
                                           minlength=got.encoded.n_words), bow, **TOL)


def test_attn_out_and_linear(tok, stimuli):
    model = _model("gpt_neox", len(tok))
    got = extract(model, tok, stimuli, ["attn_out", "linear"], ["token"])
    # The linear site's mlp_in block, passed through the activation, is the MLP neuron site.
    mlp = extract(model, tok, stimuli, ["mlp"], ["token"]).values["mlp"]["per_token"]
    lin = got.values["linear"]["per_token"]
    d, m = 32, 48
    assert lin.shape == (3, got.encoded.n_tokens, 3 * d + d + m + d)
    mlp_in = torch.tensor(lin[1:, :, 4 * d:4 * d + m])
    np.testing.assert_allclose(model.gpt_neox.layers[0].mlp.act(mlp_in).numpy(), mlp[1:], **TOL)
    # attention dense output is what the attention module returns
    np.testing.assert_allclose(lin[1:, :, 3 * d:4 * d], got.values["attn_out"]["per_token"][1:], **TOL)
    assert np.isnan(lin[0]).all()


def test_head_scores_match_eager_attentions(tok, stimuli):
    model = _model("gpt2", len(tok))
    got = extract(model, tok, stimuli, ["heads"], [], head_scores=["bos", "entropy"])
    model.set_attn_implementation("eager")
    for s, text in enumerate(stimuli.texts):
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            att = model(torch.tensor([ids]), output_attentions=True).attentions
        for layer, a in enumerate(att, start=1):
            a = a[0].numpy()  # [head, query, key]
            np.testing.assert_allclose(got.values["heads"]["bos"][layer, :, s], a[:, 1:, 0].mean(1), **TOL)
            ent = -(a * np.log(np.clip(a, 1e-30, None))).sum(-1)[:, 1:].mean(1)
            np.testing.assert_allclose(got.values["heads"]["entropy"][layer, :, s], ent, **TOL)


def test_bad_input(tok, stimuli):
    model = _model("gpt_neox", len(tok))
    with pytest.raises(KeyError, match="valid sites: resid"):
        extract(model, tok, stimuli, ["residual"], ["token"])
    with pytest.raises(KeyError, match="word_mean"):
        extract(model, tok, stimuli, ["resid"], ["word_avg"])
    with pytest.raises(KeyError, match="bos"):
        extract(model, tok, stimuli, ["heads"], [], head_scores=["nope"])
    small = _model("gpt_neox", len(tok) - 20)
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        extract(small, tok, stimuli, ["resid"], ["token"])
    with torch.no_grad():
        model.gpt_neox.layers[1].mlp.dense_h_to_4h.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"model 's' step 7.*'mlp' from layer 2.*first at layer 2.*float32"):
        extract(model, tok, stimuli, ["resid", "mlp"], ["word_mean"], where="model 's' step 7")


def _compare(got, ref, dtype) -> None:
    """float32 on another device: 1e-4 (TF32 off). bfloat16: per array, max error <= 2 % of the
    reference's largest magnitude and Pearson r >= 0.9995 (bf16 on the CPU measured <= 0.8 % and
    r >= 0.99997 on this model)."""
    for site, by_red in ref.values.items():
        for red, e in by_red.items():
            g = got.values[site][red]
            assert g.shape == e.shape and g.dtype == np.float32, (site, red)
            ok = ~np.isnan(e)
            np.testing.assert_array_equal(np.isnan(g), ~ok)
            if dtype == torch.float32:
                np.testing.assert_allclose(g[ok], e[ok], rtol=1e-4, atol=1e-4, err_msg=f"{site} {red}")
            else:
                assert np.abs(g[ok] - e[ok]).max() <= 0.02 * np.abs(e[ok]).max(), (site, red)
                assert np.corrcoef(g[ok], e[ok])[0, 1] >= 0.9995, (site, red)


def check_device_matches_cpu(tok, stimuli, device: str, dtype) -> None:
    import copy

    model = _model("gpt_neox", len(tok))
    sites = ["resid", "mlp", "attn_out", "logprobs", "logprobs_bow"]
    reds = ["word_mean", "word_sum", "stimulus_last", "stimulus_max", "per_token"]
    ref = extract(model, tok, stimuli, sites, reds, batch_size=3, max_length=8)
    on_device = copy.deepcopy(model).to(device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        got = extract(on_device, tok, stimuli, sites, reds, batch_size=3, max_length=8)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    assert got.n_tokens == ref.n_tokens
    _compare(got, ref, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_device_extraction_matches_cpu(tok, stimuli, device, dtype):
    """``--device cuda``: hooks and on-device reducers on the GPU give the CPU float32 values."""
    check_device_matches_cpu(tok, stimuli, device, dtype)


def test_bfloat16_on_cpu_within_the_gpu_tolerance(tok, stimuli):
    """The bfloat16 tolerance of the GPU test, exercised where CI can run it (bf16 on the CPU)."""
    check_device_matches_cpu(tok, stimuli, "cpu", torch.bfloat16)


def test_cpu_batches_hold_one_window_length_and_results_do_not_depend_on_batching(tok, stimuli):
    """On a CPU only windows of equal length share a batch (no padding, no mask); every window runs
    once, and pooled values equal one-window-at-a-time runs and padded batches (1e-5)."""
    from lhp_core.extract import batches
    from lhp_core.stimuli import encode

    model = _model("gpt_neox", len(tok))
    enc = encode(stimuli, tok, 16)
    lengths = [len(w) for w in enc.windows]
    cpu = batches(enc, 4, pad=False)
    assert sorted(w for b in cpu for w in b) == list(range(len(enc.windows)))
    assert all(len({lengths[w] for w in b}) == 1 and len(b) <= 4 for b in cpu)
    padded = batches(enc, 4, pad=True)
    assert any(len({lengths[w] for w in b}) > 1 for b in padded) and all(len(b) <= 4 for b in padded[:-1])
    sites, reds = ["resid", "mlp", "logprobs"], ["word_mean", "word_sum"]
    one = extract(model, tok, stimuli, sites, reds, batch_size=1, max_length=16)
    many = extract(model, tok, stimuli, sites, reds, batch_size=4, max_length=16)
    for site, by_red in one.values.items():
        for red, arr in by_red.items():
            np.testing.assert_allclose(many.values[site][red], arr, rtol=0, atol=1e-5, err_msg=f"{site} {red}")
    assert many.n_tokens == one.n_tokens == sum(lengths)
