"""Sites found from the module tree, for 50 dense and 8 mixture-of-experts decoder families of transformers 5.

References are computed without lhp's hooks: the residual stream is HF's ``output_hidden_states``;
MLP activations are recomputed by hand from the MLP's input (caught on the MLP module named in
``FAMILIES``, or on the norm feeding it) by applying the MLP's own sub-layers, e.g.
``act_fn(gate_proj(x)) * up_proj(x)``; head scores come from ``output_attentions=True``.
Each window of the extract pipeline is run alone and unpadded, so the comparison also covers
padding, batching and the 50 % window overlap (``max_length=8`` splits every text).

Tolerance: 1e-5 absolute + relative in float32 on CPU (different batch shapes reorder sums).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import transformers
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForCausalLM

from lhp_core import sites as S
from lhp_core.extract import extract
from lhp_core.stimuli import Stimuli
from lhp_core.tokenizer import train_bpe

TOL = {"rtol": 1e-5, "atol": 1e-5}
WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "far", "away", "from", "the", "old", "barn",
         "and", "birds", "sang", "songs", "about", "rain", ",", "sun", "and", "wind", "."]
SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 48, "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1}


def gated(m, x):
    return m.act_fn(m.gate_proj(x)) * m.up_proj(x)


def fused_gated(m, x):  # Phi-3, GLM: one gate_up_proj, gate first
    gate, up = m.gate_up_proj(x).chunk(2, dim=-1)
    return up * m.activation_fn(gate)


def plain(fc: str, act: str) -> Callable:
    return lambda m, x: getattr(m, act)(getattr(m, fc)(x))


@dataclass(frozen=True)
class Family:
    """How to build a tiny model and where its MLP is, written by hand.

    ``mlp``: path of the MLP module of block ``{i}``; ``act(mlp_module, x)`` gives its activations
    from its input ``x``; ``mlp_input``: path of a module whose *output* is that input, when the
    MLP's layers sit in the block (OPT-style) rather than in a module called with ``x``.
    """

    mlp: str
    act: Callable
    mlp_input: str = ""
    config: dict = field(default_factory=dict)


MLA = {"q_lora_rank": 16, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8}
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "olmo", "olmo2", "olmo3", "granite", "stablelm",
              "cohere", "cohere2", "exaone4", "ernie4_5", "seed_oss", "smollm3", "internlm3", "diffllama")
FAMILIES: dict[str, Family] = {
    **{a: Family("model.layers.{i}.mlp", gated) for a in LLAMA_LIKE},
    **{a: Family("model.layers.{i}.mlp", gated, config={"head_dim": 8}) for a in ("gemma", "gemma2", "gemma3_text",
                                                                                   "vaultgemma", "helium", "ministral",
                                                                                   "hunyuan_v1_dense")},
    "gpt2": Family("transformer.h.{i}.mlp", plain("c_fc", "act")),
    "openai-gpt": Family("transformer.h.{i}.mlp", plain("c_fc", "act")),  # post-norm, no final norm
    "gpt_neo": Family("transformer.h.{i}.mlp", plain("c_fc", "act"),  # attention nested in a wrapper
                      config={"num_layers": 2, "attention_types": [[["global", "local"], 1]], "window_size": 4}),
    "gpt_bigcode": Family("transformer.h.{i}.mlp", plain("c_fc", "act")),
    "starcoder2": Family("model.layers.{i}.mlp", plain("c_fc", "act")),
    "gpt_neox": Family("gpt_neox.layers.{i}.mlp", plain("dense_h_to_4h", "act")),
    "falcon": Family("transformer.h.{i}.mlp", plain("dense_h_to_4h", "act")),
    "bloom": Family("transformer.h.{i}.mlp", plain("dense_h_to_4h", "gelu_impl")),
    "persimmon": Family("model.layers.{i}.mlp", plain("dense_h_to_4h", "act")),
    "gptj": Family("transformer.h.{i}.mlp", plain("fc_in", "act"), config={"rotary_dim": 4}),
    "codegen": Family("transformer.h.{i}.mlp", plain("fc_in", "act"), config={"rotary_dim": 4}),
    "mpt": Family("transformer.blocks.{i}.ffn", plain("up_proj", "act")),
    "phi": Family("model.layers.{i}.mlp", plain("fc1", "activation_fn")),
    "phi3": Family("model.layers.{i}.mlp", fused_gated),
    "glm": Family("model.layers.{i}.mlp", fused_gated),
    "glm4": Family("model.layers.{i}.mlp", fused_gated),
    "nemotron": Family("model.layers.{i}.mlp", plain("up_proj", "act_fn")),
    "arcee": Family("model.layers.{i}.mlp", plain("up_proj", "act_fn")),
    "apertus": Family("model.layers.{i}.mlp", plain("up_proj", "act_fn")),
    "bitnet": Family("model.layers.{i}.mlp", lambda m, x: m.ffn_sub_norm(gated(m, x))),
    "ctrl": Family("transformer.h.{i}.ffn", lambda m, x: m[1](m[0](x))),
    # the tiny config's layers are all attention; real LFM2 mixes in conv layers (refused, see below)
    "lfm2": Family("model.layers.{i}.feed_forward", lambda m, x: torch.nn.functional.silu(m.w1(x)) * m.w3(x)),
    "opt": Family("model.decoder.layers.{i}", plain("fc1", "activation_fn"),
                  "model.decoder.layers.{i}.final_layer_norm", {"ffn_dim": 48, "word_embed_proj_dim": 32}),
    "xglm": Family("model.layers.{i}", plain("fc1", "activation_fn"), "model.layers.{i}.final_layer_norm"),
    "biogpt": Family("biogpt.layers.{i}", plain("fc1", "activation_fn"), "biogpt.layers.{i}.final_layer_norm"),
    # multi-head latent attention; first_k_dense_replace=3 > 2 layers: dense MLPs
    "deepseek_v3": Family("model.layers.{i}.mlp", gated, config={"num_key_value_heads": 4, **MLA}),
}
#: Mixture-of-experts families: ``mlp`` and ``linear`` are refused, the other sites must work.
MOE: dict[str, dict] = {
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                  "shared_expert_intermediate_size": 16},
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16},
    "olmoe": {"num_experts": 4, "num_experts_per_tok": 2},
    "phimoe": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "granitemoe": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "gpt_oss": {"num_local_experts": 4, "num_experts_per_tok": 2, "head_dim": 8},
    # block 0 dense, block 1 MoE: the model counts as MoE
    "deepseek_v3": {"n_routed_experts": 4, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
                    "first_k_dense_replace": 1, "moe_intermediate_size": 16, "num_key_value_heads": 4, **MLA},
}
#: Families whose attention cannot switch to eager at run time: the heads site needs them loaded eager.
EAGER_AT_LOAD = ("falcon",)
#: Families whose attention modules return weights only when the whole model is asked for output_attentions.
NO_HEADS = ("openai-gpt",)
#: Hand-written maps of the five architectures lhp mapped by hand before discovery: discovery must agree.
LEGACY = {
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm", "attention", "mlp.dense_4h_to_h",
                 {"qkv": ("attention.query_key_value",), "attn_dense": ("attention.dense",),
                  "mlp_in": ("mlp.dense_h_to_4h",), "mlp_out": ("mlp.dense_4h_to_h",)}),
    "gpt2": ("transformer.h", "transformer.ln_f", "attn", "mlp.c_proj",
             {"qkv": ("attn.c_attn",), "attn_dense": ("attn.c_proj",), "mlp_in": ("mlp.c_fc",),
              "mlp_out": ("mlp.c_proj",)}),
    **{a: ("model.layers", "model.norm", "self_attn", "mlp.down_proj",
           {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "attn_dense": ("self_attn.o_proj",),
            "mlp_in": ("mlp.gate_proj", "mlp.up_proj"), "mlp_out": ("mlp.down_proj",)})
       for a in ("llama", "olmo", "olmo2")},
}


def _model(arch: str, vocab: int, extra: dict | None = None, **load):
    if arch not in CONFIG_MAPPING:  # a family newer than the installed transformers (e.g. at its declared floor)
        pytest.skip(f"transformers {transformers.__version__} has no {arch!r} models")
    torch.manual_seed(0)
    kw = {**SIZE, **(FAMILIES[arch].config if arch in FAMILIES else {}), **(extra or {})}
    cfg = AutoConfig.for_model(arch, vocab_size=vocab, **kw)
    return AutoModelForCausalLM.from_config(cfg, **load).eval()


@pytest.fixture(scope="module")
def tok():
    rng = np.random.default_rng(0)
    return train_bpe([" ".join(rng.choice(WORDS, 12)) for _ in range(300)], vocab_size=300)


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(1)
    return Stimuli.from_words([list(rng.choice(WORDS, n)) for n in (9, 3, 14, 6)], ids=["a", "b", "c", "d"])


def _reference(model, family: Family | None, enc) -> dict[str, np.ndarray]:
    """Per global token: ``resid`` ``[L+1, n_tokens, d]`` and (dense families) ``mlp`` ``[L+1, n_tokens, m]``
    (NaN at layer 0), each window run alone."""
    n_layers = model.config.num_hidden_layers
    out: dict[str, np.ndarray] = {}
    for w, ids in enumerate(enc.windows):
        caught: dict[int, torch.Tensor] = {}
        hooks = []
        for i in range(n_layers if family else 0):
            if family.mlp_input:
                hooks.append(model.get_submodule(family.mlp_input.format(i=i)).register_forward_hook(
                    lambda mod, a, o, i=i, c=caught: c.__setitem__(i, o)))
            else:
                hooks.append(model.get_submodule(family.mlp.format(i=i)).register_forward_pre_hook(
                    lambda mod, a, i=i, c=caught: c.__setitem__(i, a[0])))
        with torch.no_grad():
            hs = model(torch.as_tensor(ids)[None], output_hidden_states=True).hidden_states
            mlp = [family.act(model.get_submodule(family.mlp.format(i=i)), caught[i]) for i in range(len(caught))]
        for h in hooks:
            h.remove()
        pos = np.nonzero(enc.keep[w])[0]
        tokens = enc.token_of[w][pos]
        per_site = {"resid": torch.stack(hs)[:, 0]}
        if mlp:  # OPT-style blocks run their MLP on [batch * seq, hidden]
            mlp = torch.stack([a.reshape(len(ids), a.shape[-1]) for a in mlp])
            per_site["mlp"] = torch.cat([torch.full_like(mlp[:1], float("nan")), mlp])
        for site, t in per_site.items():
            if site not in out:
                out[site] = np.full((n_layers + 1, enc.n_tokens, t.shape[-1]), np.inf)
            out[site][:, tokens] = t[:, pos].numpy()
    for site, v in out.items():
        assert not np.isinf(v).any(), f"reference left tokens of {site} unset"
    return out


@pytest.mark.parametrize("max_length", [64, 8])  # 8: every text spans several windows
@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_resid_and_mlp_match_hand_reference(tok, stimuli, arch, max_length):
    model = _model(arch, len(tok))
    got = extract(model, tok, stimuli, ["resid", "mlp"], ["per_token"], batch_size=3, max_length=max_length)
    enc = got.encoded
    if max_length == 8:
        assert len(enc.windows) > 2 * enc.n_stimuli
    ref = _reference(model, FAMILIES[arch], enc)
    assert ref["mlp"].shape == got.values["mlp"]["per_token"].shape
    for site in ("resid", "mlp"):
        np.testing.assert_allclose(got.values[site]["per_token"], ref[site], **TOL, err_msg=f"{arch} {site}")


@pytest.mark.parametrize("arch", sorted(MOE))
def test_moe_resid_matches_and_mlp_is_refused(tok, stimuli, arch):
    model = _model(arch, len(tok), MOE[arch])
    assert S.site_map(model).mlp_out is None and "mlp" not in S.feature_sizes(model)
    for max_length in (64, 8):
        got = extract(model, tok, stimuli, ["resid", "attn_out"], ["per_token"], batch_size=3, max_length=max_length)
        ref = _reference(model, None, got.encoded)
        np.testing.assert_allclose(got.values["resid"]["per_token"], ref["resid"], **TOL, err_msg=arch)
        assert np.isfinite(got.values["attn_out"]["per_token"][1:]).all()
    for site in ("mlp", "linear"):
        err = rf"\['{site}'\] need a dense MLP.*mixture of experts at 'model\.layers\.<i>\."
        with pytest.raises(ValueError, match=err):
            extract(model, tok, stimuli, ["resid", site], ["per_token"])
    with pytest.raises(ValueError, match="need a dense MLP"):
        S.linear_layout(model)


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_final_norm_turns_last_block_output_into_last_hidden_state(tok, arch):
    model = _model(arch, len(tok))
    sm = S.site_map(model)
    caught = []
    hook = S.blocks(model)[-1].register_forward_hook(lambda mod, a, o: caught.append(o if torch.is_tensor(o) else o[0]))
    with torch.no_grad():
        last = model(torch.arange(2, 12)[None], output_hidden_states=True).hidden_states[-1]
        hook.remove()
        normed = model.get_submodule(sm.final_norm)(caught[0]) if sm.final_norm else caught[0]
    assert (sm.final_norm == "") == (arch == "openai-gpt")  # GPT-1 is post-norm: no final norm
    np.testing.assert_allclose(normed.numpy(), last.numpy(), **TOL)


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_linear_and_attn_out(tok, stimuli, arch):
    """Layout order and widths, the attention-output slice against the attention module's own output
    (caught here), and the MLP-output slice against the output projection applied to the mlp site."""
    model = _model(arch, len(tok))
    sm = S.site_map(model)
    got = extract(model, tok, stimuli, ["linear", "attn_out", "mlp"], ["per_token"], batch_size=3, max_length=8)
    lin = got.values["linear"]["per_token"]
    names = S.linear_layout(model)[0]
    block = S.blocks(model)[0]
    widths = [S._out_features(block.get_submodule(p)) for ps in sm.linear.values() for p in ps]
    assert lin.shape == (3, got.encoded.n_tokens, sum(widths)) == (3, got.encoded.n_tokens, len(names))
    assert list(sm.linear) == ["qkv", "attn_dense", "mlp_in", "mlp_out"]
    groups = [n.split(".")[0] for n in names]
    assert groups == sorted(groups, key=list(sm.linear).index)  # grouped in the documented order
    assert np.isnan(lin[0]).all() and np.isfinite(lin[1:]).all()
    i_dense = groups.index("attn_dense")
    d = got.features["resid"][0]
    np.testing.assert_allclose(lin[1:, :, i_dense:i_dense + d], got.values["attn_out"]["per_token"][1:], **TOL)
    # The mlp_out slice is the output projection of the mlp site (MLP activations).
    mlp = torch.as_tensor(got.values["mlp"]["per_token"][1:])
    with torch.no_grad():
        projected = np.stack([S.blocks(model)[i].get_submodule(sm.mlp_out)(mlp[i]).numpy() for i in range(2)])
    np.testing.assert_allclose(lin[1:, :, groups.index("mlp_out"):], projected, **TOL)
    # attn_out is what the attention module returns, except where that module adds the residual itself.
    if arch != "bloom":
        att = {}
        hooks = [b.get_submodule(sm.attn).register_forward_hook(lambda mod, a, o, i=i: att.__setitem__(i, o[0]))
                 for i, b in enumerate(S.blocks(model))]
        ids = got.encoded.windows[0]
        with torch.no_grad():
            model(torch.as_tensor(ids)[None])
        for h in hooks:
            h.remove()
        pos = np.nonzero(got.encoded.keep[0])[0]
        tokens = got.encoded.token_of[0][pos]
        for i in range(2):
            np.testing.assert_allclose(got.values["attn_out"]["per_token"][i + 1, tokens], att[i][0, pos].numpy(),
                                       **TOL)


@pytest.mark.parametrize("arch", sorted(FAMILIES) + [f"moe:{a}" for a in sorted(MOE)])
def test_head_scores_match_eager_attentions(tok, stimuli, arch):
    moe = arch.startswith("moe:")
    arch = arch.removeprefix("moe:")
    model = _model(arch, len(tok), MOE[arch] if moe else None)
    no_weights = r"\.0\.(self_attention|attn)' \(\w+\) returned no attention weights.*attn_implementation='eager'"
    if arch in NO_HEADS:
        with pytest.raises(RuntimeError, match=no_weights):
            extract(model, tok, stimuli, ["heads"], [], head_scores=["bos"], max_length=64)
        return
    if arch in EAGER_AT_LOAD:
        # Whether these switch to eager after loading depends on the transformers release (falcon does from
        # 5.25): either the heads site works, and the scores below must equal eager attentions, or it
        # refuses with the message that names the fix.
        try:
            extract(model, tok, stimuli, ["heads"], [], head_scores=["bos"], max_length=64)
        except RuntimeError as err:
            assert re.search(no_weights, str(err), re.S), err
            model = _model(arch, len(tok), attn_implementation="eager")
    got = extract(model, tok, stimuli, ["heads"], [], head_scores=["bos", "entropy"], max_length=64)
    assert got.values["heads"]["bos"].shape == (3, 4, len(stimuli.ids))
    model.set_attn_implementation("eager")
    for s, ids in enumerate(got.encoded.windows):
        with torch.no_grad():
            att = model(torch.as_tensor(ids)[None], output_attentions=True).attentions
        for layer, a in enumerate(att, start=1):
            a = a[0].numpy()  # [head, query, key]
            np.testing.assert_allclose(got.values["heads"]["bos"][layer, :, s], a[:, 1:, 0].mean(1), **TOL)
            ent = -(a * np.log(np.clip(a, 1e-30, None))).sum(-1)[:, 1:].mean(1)
            np.testing.assert_allclose(got.values["heads"]["entropy"][layer, :, s], ent, **TOL)


@pytest.mark.parametrize("arch", sorted(LEGACY))
def test_discovery_reproduces_the_former_hand_written_maps(tok, arch):
    blocks, final_norm, attn, mlp_out, linear = LEGACY[arch]
    sm = S.site_map(_model(arch, len(tok)))
    assert (sm.blocks, sm.final_norm, sm.attn, sm.mlp_out, sm.linear) == (blocks, final_norm, attn, mlp_out, linear)


def test_unmappable_architecture_lists_modules_and_how_to_register(tok):
    model = _model("mamba", len(tok))  # a state-space model: no attention module
    with pytest.raises(NotImplementedError) as err:
        S.site_map(model)
    msg = str(err.value)
    assert "'mamba'" in msg and "no attention module in backbone.layers.0" in msg
    assert "backbone.layers (ModuleList of 2 MambaBlock)" in msg and "backbone.layers.0.mixer.out_proj (Linear" in msg
    assert "SITE_MAPS['mamba'] = SiteMap(" in msg
    # a hybrid whose first block is a convolution: blocks without attention are not mapped either
    hybrid = _model("lfm2", len(tok), {"num_hidden_layers": 3, "layer_types": ["conv", "full_attention", "conv"]})
    with pytest.raises(NotImplementedError, match=r"'lfm2'.*no attention module in model\.layers\.0\. Modules found: "
                                                  r".*model\.layers\.0\.conv \(Lfm2ShortConv\)"):
        S.site_map(hybrid)


def test_registered_map_overrides_discovery(tok, stimuli, monkeypatch):
    """A map in SITE_MAPS wins: here one that reads ``mlp`` at the input of ``up_proj`` (the normed residual)."""
    model = _model("qwen2", len(tok))
    found = S.site_map(model)
    custom = S.SiteMap(found.blocks, found.final_norm, found.attn, found.attn_out, found.mlp, "mlp.up_proj",
                       found.linear)
    monkeypatch.setitem(S.SITE_MAPS, "qwen2", custom)
    assert S.site_map(model) is custom and S.feature_sizes(model)["mlp"] == (32,)
    got = extract(model, tok, stimuli, ["mlp"], ["per_token"], max_length=64)
    ref = _reference(model, Family("model.layers.{i}.mlp", lambda m, x: x), got.encoded)
    np.testing.assert_allclose(got.values["mlp"]["per_token"], ref["mlp"], **TOL)


def test_sweep_stores_a_discovered_family_and_refuses_moe_mlp_before_writing(tok, stimuli, tmp_path):
    """Through the sweep: a Qwen2 model (refused before discovery) stores the directly extracted values; a
    Mixtral model asked for ``mlp`` stops with the dense-MLP error before anything is written. The loader
    hands over the models and ``tok`` as built (AutoTokenizer would load a Qwen2 checkpoint's tokenizer
    as Qwen2's own class, with its pre-tokenizer)."""
    from lhp_core import open_results
    from lhp_core.suites import get_suite
    from lhp_core.sweep import sweep

    models = {"dense": _model("qwen2", len(tok)), "moe": _model("mixtral", len(tok), MOE["mixtral"])}
    for name, model in models.items():
        model.save_pretrained(tmp_path / "suite" / name / "step0")
        tok.save_pretrained(tmp_path / "suite" / name / "step0")
    suite = get_suite(str(tmp_path / "suite"), tokens_per_step=256)
    runs = {"progress": False, "loader": lambda suite, model, step, device, dtype: (models[model], tok)}
    with pytest.raises(ValueError, match=r"\['mlp'\] need a dense MLP, but 'mixtral'"):
        sweep(suite, stimuli, tmp_path / "moe.zarr", sites=["resid", "mlp"], reducers=["stimulus_mean"], models=["moe"],
              **runs)
    assert not (tmp_path / "moe.zarr" / "moe").exists()
    out = sweep(suite, stimuli, tmp_path / "dense.zarr", sites=["resid", "mlp", "linear"], reducers=["stimulus_mean"],
                models=["dense"], max_length=8, **runs)
    direct = extract(models["dense"], tok, stimuli, ["resid", "mlp", "linear"], ["stimulus_mean"], max_length=8)
    for site in ("resid", "mlp", "linear"):
        stored = open_results(out, "dense", site=site)
        np.testing.assert_allclose(stored["stimulus_mean"].sel(step=0).values,
                                   direct.values[site]["stimulus_mean"], **TOL, err_msg=site)
    assert stored["neuron_module"].values.tolist() == S.linear_layout(models["dense"])[0]
    assert stored["neuron_module"].values[0] == "qkv.q_proj" and stored["neuron_module"].values[-1] == "mlp_out"
