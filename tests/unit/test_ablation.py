"""Head ablation against a forward pass recomputed by hand from the weights of a tiny model.

The reference builds each block from its parameters (layer norms, the q/k/v projection split into
heads, rotary embeddings for GPT-NeoX, causal softmax, the output projection as a matrix product,
the MLP) and ablates by editing the heads' concatenated outputs ``z`` itself. Tolerance: 1e-5
absolute on the logits in float32 (the two paths sum in different orders).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM
from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

from lhp_core import ablation
from lhp_core.metrics import reading
from lhp_core.metrics.ablation import conditions, matched_random, ppp_by_condition, select_heads

TOL = 1e-5
H, D, VOCAB, L = 4, 32, 50, 3


def _model(arch: str):
    torch.manual_seed(0)
    if arch == "gpt_neox":
        cfg = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
                            intermediate_size=48, max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
        return GPTNeoXForCausalLM(cfg).eval()
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=D, n_layer=L, n_head=H, n_inner=48, n_positions=64,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def _reference(model, ids: torch.Tensor, ablated: dict[int, list[int]], replace, patterns=None):
    """Logits ``[batch, seq, vocab]`` and each block's attention pattern, recomputed from the weights.

    ``ablated``: block index (0-based) -> heads whose slice of ``z`` is set to ``replace(block, head)``;
    ``patterns``: per block ``[batch, head, q, k]`` to use instead of softmax(q k^T).
    """
    B, S = ids.shape
    d = D // H
    causal = torch.full((S, S), float("-inf")).triu(1)
    neox = model.config.model_type == "gpt_neox"
    if neox:
        base = model.gpt_neox
        x = base.embed_in(ids)
        pos = torch.arange(S)[None].expand(B, S)
        cos, sin = base.rotary_emb(x, pos)
        blocks = base.layers
    else:
        base = model.transformer
        x = base.wte(ids) + base.wpe(torch.arange(S))[None]
        blocks = base.h
    seen = []
    for i, blk in enumerate(blocks):
        if neox:
            a_in = blk.input_layernorm(x)
            qkv = blk.attention.query_key_value(a_in).view(B, S, H, 3 * d).transpose(1, 2)
            q, k, v = qkv.chunk(3, dim=-1)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
        else:
            a_in = blk.ln_1(x)
            q, k, v = (t.view(B, S, H, d).transpose(1, 2) for t in blk.attn.c_attn(a_in).split(D, dim=-1))
        att = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5 + causal, dim=-1)
        seen.append(att)
        if patterns is not None:
            att = patterns[i]
        z = (att @ v).transpose(1, 2).reshape(B, S, H * d)
        for h in ablated.get(i, []):
            z[..., h * d:(h + 1) * d] = replace(i, h)
        if neox:
            out = z @ blk.attention.dense.weight.T + blk.attention.dense.bias
            x = x + out + blk.mlp(blk.post_attention_layernorm(x))  # parallel residual
        else:
            out = z @ blk.attn.c_proj.weight + blk.attn.c_proj.bias  # Conv1D: weight is [in, out]
            x = x + out
            x = x + blk.mlp(blk.ln_2(x))
    if neox:
        return model.get_output_embeddings()(base.final_layer_norm(x)), seen
    return model.lm_head(base.ln_f(x)), seen


ARCHS = ("gpt_neox", "gpt2")
CASES = {"one head, first block": [(1, 2)], "heads in two blocks": [(1, 0), (2, 1), (2, 3)]}


@pytest.fixture(scope="module", params=ARCHS)
def net(request):
    return _model(request.param)


@pytest.fixture(scope="module")
def ids():
    return torch.as_tensor(np.random.default_rng(0).integers(1, VOCAB, size=(3, 12)))


@pytest.fixture(scope="module")
def means(net):
    ref = np.random.default_rng(1).integers(1, VOCAB, size=(5, 10))
    return ablation.head_means(net, ref, bos_token_id=0)


def test_reference_is_the_model(net, ids):
    with torch.inference_mode():
        ref, _ = _reference(net, ids, {}, None)
        assert torch.allclose(net(input_ids=ids).logits, ref, atol=TOL, rtol=0)


def test_head_means_by_hand(net, means):
    """The mean of each head's slice of z over every reference token (BOS included), from the reference pass."""
    ref = np.random.default_rng(1).integers(1, VOCAB, size=(5, 10))
    x = torch.as_tensor(np.concatenate([np.zeros((5, 1), dtype=np.int64), ref], axis=1))
    zs = []
    proj = [b.attention.dense if net.config.model_type == "gpt_neox" else b.attn.c_proj for b in
            (net.gpt_neox.layers if net.config.model_type == "gpt_neox" else net.transformer.h)]
    hooks = [p.register_forward_pre_hook(lambda m, a: zs.append(a[0].reshape(-1, D).mean(0))) for p in proj]
    with torch.inference_mode():
        net(input_ids=x)
    for h in hooks:
        h.remove()
    assert means.shape == (L, H, D // H)
    assert torch.allclose(means.reshape(L, D), torch.stack(zs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ablation.MODES)
@pytest.mark.parametrize("preserve", [False, True], ids=["plain", "pattern-preserving"])
@pytest.mark.parametrize("case", list(CASES))
def test_ablation_equals_hand_computation(net, ids, means, mode, preserve, case):
    heads = CASES[case]
    by_block: dict[int, list[int]] = {}
    for layer, h in heads:
        by_block.setdefault(layer - 1, []).append(h)
    replace = (lambda i, h: 0.0) if mode == "zero" else (lambda i, h: means[i, h])
    with torch.inference_mode():
        clean, clean_patterns = _reference(net, ids, {}, None)
        want, ablated_patterns = _reference(net, ids, by_block, replace,
                                            clean_patterns if preserve else None)
        with ablation.ablate(net, heads, mode, means=means, preserve_patterns=preserve):
            got = net(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        after = net(input_ids=ids).logits
    assert torch.allclose(got, want, atol=TOL, rtol=0)
    assert not torch.allclose(got, clean, atol=1e-3)  # the ablation did something
    assert torch.allclose(after, clean, atol=TOL, rtol=0)  # and is gone after the block
    if not preserve and case == "heads in two blocks":
        # without the pattern fixed, the later blocks' attention moves: the two modes differ
        assert not torch.allclose(ablated_patterns[2], clean_patterns[2], atol=1e-4)


def test_only_the_head_slice_changes(net, ids):
    """The output projection's input differs from the clean run in the ablated head's slice only."""
    d = D // H
    blocks = net.gpt_neox.layers if net.config.model_type == "gpt_neox" else net.transformer.h
    proj = blocks[0].attention.dense if net.config.model_type == "gpt_neox" else blocks[0].attn.c_proj
    seen = []
    hook = proj.register_forward_hook(lambda m, a, o: seen.append(a[0].clone()))
    try:
        with torch.inference_mode():
            net(input_ids=ids)
            with ablation.ablate(net, [(1, 1)], "zero"):
                net(input_ids=ids)
    finally:
        hook.remove()
    # forward hooks see the input the pre-hook returned
    clean, ablated = seen
    assert torch.equal(ablated[..., d:2 * d], torch.zeros_like(ablated[..., d:2 * d]))
    keep = torch.ones(D, dtype=torch.bool)
    keep[d:2 * d] = False
    assert torch.equal(ablated[..., keep], clean[..., keep])


def test_bad_input_is_named(net):
    with pytest.raises(ValueError, match=r"heads \[\(0, 1\)\] are not in this model: layers are 1..3"):
        with ablation.ablate(net, [(0, 1)]):
            pass
    with pytest.raises(ValueError, match="unknown ablation mode 'ones'"):
        with ablation.ablate(net, [(1, 1)], "ones"):
            pass
    with pytest.raises(ValueError, match="mean ablation needs means of shape"):
        with ablation.ablate(net, [(1, 1)], "mean"):
            pass


# ----------------------------------------------------------------------------- over training: the rules


def _scores(values: np.ndarray) -> xr.DataArray:
    s, n_layer, n_head = values.shape
    return xr.DataArray(values, dims=("step", "layer", "head"),
                        coords={"step": np.arange(s) * 10, "layer": np.arange(1, n_layer + 1),
                                "head": np.arange(n_head)})


def test_select_heads_by_hand():
    v = np.zeros((3, 2, 4))
    v[-1, 1, 2], v[-1, 0, 3], v[-1, 1, 0] = 0.6, 0.4, 0.1  # last step: top 2 are L2H2, L1H3
    v[1, 0, 1] = 0.25  # step 10: L1H1 crosses 0.2
    s = _scores(v)
    assert select_heads(s, 10, "top_k", k=2) == [(1, 3), (2, 2)]
    assert select_heads(s, 10, "threshold", threshold=0.2) == [(1, 1)]
    assert select_heads(s, 10, "induction", k=2, threshold=0.2) == [(1, 1), (1, 3), (2, 2)]
    assert select_heads(s, 0, "induction", k=1, threshold=0.2) == [(2, 2)]
    with pytest.raises(ValueError, match="unknown head-selection rule 'best'"):
        select_heads(s, 0, "best")


def test_matched_random_keeps_layers_and_avoids_selected():
    sel = [(1, 0), (1, 3), (2, 5)]
    draws, short = matched_random(sel, 8, 50, np.random.default_rng(0))
    assert short == 0
    for d in draws:
        assert not set(d) & set(sel)
        assert sorted(layer for layer, _ in d) == [1, 1, 2]
    assert len({tuple(d) for d in draws}) == 50  # distinct sets while there are enough (105 here)
    # a layer with too few other heads: the rest come from the other selected layer, and are counted
    draws, short = matched_random([(1, 0), (1, 1), (2, 0)], 2, 5, np.random.default_rng(0))
    assert short == 2 and all(len(d) == 1 and d[0] == (2, 1) for d in draws)
    conds, _ = conditions(sel, 8, 3, 0, "l", 100)
    assert list(conds) == ["clean", "selected", "random 1", "random 2", "random 3", "layer"]
    assert conds["layer"] == [(1, h) for h in range(8)] + [(2, h) for h in range(8)]
    assert conditions(sel, 8, 3, 0, "l", 100)[0] == conds  # same checkpoint, same draws


def test_ppp_by_condition_equals_ppp_of_each_condition():
    """Paired PPP of every condition at once equals reading.ppp_grid run on each condition alone
    (no word is excluded at one condition only here, so the rows and folds are the same)."""
    rng = np.random.default_rng(0)
    n = 300
    words = [f"w{'x' * (i % 7)}" for i in range(n)]
    table = pd.DataFrame({"item": np.repeat([1, 2, 3], n // 3), "word": words, "rt": rng.normal(300, 40, n)})
    sp = rng.gamma(4.0, 2.0, size=(1, 2, 3, n)) + 0.1
    table["rt"] += 5 * sp[0, 1, 0]
    ds = xr.Dataset({"surprisal": (("model", "step", "condition", "word"), sp)},
                    coords={"model": ["l"], "step": [0, 100], "condition": ["clean", "selected", "layer"],
                            "word": np.arange(n)})
    got = ppp_by_condition(table, ds, "rt", measure="spr", exclusions="aoyama_wilcox", spillover=4)
    for c in ds.condition.values:
        want = reading.ppp_grid(table, ds["surprisal"].sel(condition=c), "rt", measure="spr",
                                      exclusions="aoyama_wilcox", spillover=4)
        np.testing.assert_allclose(got["ppp"].sel(condition=c).values, want["ppp"].values, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got["ppp_lo"].sel(condition=c).values, want["ppp_lo"].values, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- the study's rules


def test_icl_onset_by_hand():
    from lhp_core.studies.ablation import icl_onset

    steps = np.array([0, 10, 20, 40, 80])
    assert icl_onset(steps, np.array([0, 2, 0, 3, 4]), np.array([1, 1, 1, 1, 1])) == \
        {"step": 40.0, "lo": 20.0, "hi": 40.0, "found": True}
    assert icl_onset(steps, np.array([2, 2, 2, 2, 2]), np.ones(5))["step"] == 0.0
    assert not icl_onset(steps, np.array([2, 2, 2, 2, 0]), np.ones(5))["found"]


@pytest.mark.parametrize("sel,verdict", [(0.004, "holds"), (0.0005, "does not hold at this scale"),
                                         (-0.004, "contradicted")])
def test_restoration_verdict(sel, verdict):
    from lhp_core.studies.ablation import restoration_verdict

    r = {"ppp_pre": 0.012, "ppp_clean": 0.009, "change_selected": sel, "change_random_lo": -0.001,
         "change_random_hi": 0.001}
    assert restoration_verdict(r) == verdict
    assert restoration_verdict({**r, "ppp_pre": 0.006}) == verdict  # the direction of the claim, not of the past
    assert restoration_verdict({"transition_found": False}) == "not measurable here"


def test_icl_verdict():
    from lhp_core.studies.ablation import icl_verdict

    assert icl_verdict(True, True, 0.1, 0.0) == "holds"
    assert icl_verdict(False, False, 0.1, 0.0) == "not measurable here"
    assert icl_verdict(False, True, -0.07, -0.02) == "contradicted"
    assert icl_verdict(False, True, 0.01, -0.02) == "does not hold at this scale"


def test_pattern_replay_with_grouped_query_attention():
    """Llama with 2 key/value heads for 4 query heads: replaying the clean run's own patterns (nothing
    ablated) gives the clean logits, and zero-ablating a head through the replay path equals the plain
    zero ablation in the last block (where no later attention can move)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model("llama", vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, num_attention_heads=H,
                               num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                               bos_token_id=0, eos_token_id=0, pad_token_id=1)
    net = AutoModelForCausalLM.from_config(cfg).eval()
    x = torch.as_tensor(np.random.default_rng(0).integers(2, VOCAB, size=(2, 10)))
    with torch.inference_mode():
        clean = net(input_ids=x).logits
        with ablation.ablate(net, [], preserve_patterns=True):
            replay = net(input_ids=x).logits
        with ablation.ablate(net, [(2, 3)], "zero", preserve_patterns=True):
            frozen = net(input_ids=x).logits
        with ablation.ablate(net, [(2, 3)], "zero"):
            plain = net(input_ids=x).logits
    assert torch.allclose(replay, clean, atol=TOL, rtol=0)
    assert torch.allclose(frozen, plain, atol=TOL, rtol=0) and not torch.allclose(frozen, clean, atol=1e-3)
