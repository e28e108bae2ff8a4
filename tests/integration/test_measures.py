"""The measure runner on a real trained suite: every driver returns Dataset(model, step, ...) with
tokens_seen and provenance, and a second call reads the cache without running any model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lhp_core import checkpoints, concepts, measures, sweep
from lhp_core.data import corpora
from lhp_core.metrics import ablation, brain, experts, heads, instruct, loss, probing, reading, similarity, tasks, words
from lhp_core.suites import get_suite

STEPS = [0, 24]
TEXTS = ["The old man walked to the market and bought bread for his wife.",
         "Birds sang in the rain while the river ran fast under the bridge.",
         "A small house stood near the bridge and the children played in the garden all day."]


def _sentences(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = " ".join(TEXTS).replace(".", "").split()
    sents = [" ".join(rng.choice(words, size=rng.integers(5, 12))) + "." for _ in range(n)]
    return pd.DataFrame({"sentence": sents, "response": rng.normal(size=n),
                         "condition": np.where(np.arange(n) % 2, "baseline", "drive")})


def _expert_stimuli():
    pool = pd.DataFrame({"text": [f"The {w} number {i} was seen near the old house today."
                                  for w in ("dog", "cat", "apple", "animal") for i in range(4)]
                         + [f"Nothing in sentence {i} is about any object at all." for i in range(12)],
                         "split": "held_out"})
    return concepts.build_stimuli(["dog", "cat", "apple", "animal"], pool, n_corpus=3, n_template=2, n_negative_pool=8)


def _drivers():
    """(name, call) of every over-training driver, at sizes that run in seconds on lhp-tiny."""
    texts, table = _expert_stimuli()
    prompts = instruct.build_prompts(["house", "water", "river", "market"], n_per_template=2)
    brown = corpora.brown_tagged_sentences()
    rng = np.random.default_rng(0)
    human = rng.normal(size=(3, 3))
    human = human @ human.T
    return [
        ("task_battery", lambda s: tasks.task_battery_over_steps(s, steps=STEPS, tasks=["agreement", "copy"],
                                                                  n_items=4, progress=False)),
        ("icl", lambda s: heads.icl_over_steps(s, TEXTS * 4, steps=STEPS, n_windows=2, progress=False)),
        ("head_scores", lambda s: heads.head_scores_over_steps(s, steps=STEPS, n_seq=3, seq_len=8,
                                                               convention="aoyama_wilcox", progress=False)),
        ("instruction_following", lambda s: instruct.instruction_following_over_steps(s, prompts, steps=STEPS,
                                                                                     progress=False)),
        ("loss", lambda s: loss.loss_over_steps(s, TEXTS, steps=STEPS, progress=False)),
        ("repeat_probe", lambda s: loss.repeat_probe_over_steps(s, TEXTS * 4, steps=STEPS, n_seq=3, seq_len=6,
                                                                progress=False)),
        ("surprisal", lambda s: reading.surprisal_over_steps(
            s, pd.DataFrame({"item": 1, "word": TEXTS[0].split()}), steps=STEPS, progress=False)),
        ("brain_scores", lambda s: brain.brain_scores_over_steps(s, _sentences(), steps=STEPS, n_folds=4, n_boot=10,
                                                                 n_permutations=3, progress=False)),
        ("pos_probe", lambda s: probing.pos_probe_over_steps(s, brown, n_sentences=12, steps=STEPS, n_folds=2,
                                                            progress=False)),
        ("expert_ap", lambda s: experts.expert_ap_over_steps(s, texts, table, steps=STEPS, progress=False)),
        ("ablation", lambda s: ablation.ablation_over_steps(
            s, pd.DataFrame({"item": 1, "word": TEXTS[0].split()}), TEXTS * 4, steps=STEPS, k=1, n_draws=2,
            n_windows=2, n_seq=3, seq_len=8, progress=False)),
        ("embedding_rsa", lambda s: similarity.embedding_rsa_over_steps(s, ["dog", "cat", "apple"], human,
                                                                        steps=STEPS, progress=False)),
        ("word_aoa", lambda s: words.word_aoa_over_steps(
            s, words.word_contexts(["the", "people", "house"], TEXTS * 2 + ["The people of the house."])[0],
            steps=STEPS, n_boot=5, progress=False)),
    ]


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name,call", _drivers(), ids=[n for n, _ in _drivers()])
def test_every_driver_stacks_and_reads_its_cache(tiny_suite, isolated, monkeypatch, name, call):
    suite = get_suite(str(tiny_suite))
    rec = suite.training_record()
    ds = call(suite)
    assert ds.attrs["measure"] == name and ds.attrs["n_computed"] == ds.attrs["n_checkpoints"] == 4
    for key in ("suite", "config_sha256", "git_commit", "torch_version", "dtype"):
        assert ds.attrs[key], key
    assert list(ds["model"].values) == ["s", "m"] and list(ds["step"].values) == STEPS
    assert ds["tokens_seen"].dims == ("model", "step")
    np.testing.assert_array_equal(ds["tokens_seen"].values, rec["tokens_seen"].sel(step=STEPS).values)
    np.testing.assert_array_equal(ds["checkpoint_id"].values, rec["weights_sha256"].sel(step=STEPS).values)
    for v, var in ds.data_vars.items():
        assert var.attrs.get("units") and var.attrs.get("description"), v
        if "step" in var.dims:
            assert var.dims[:2] == ("model", "step"), (v, var.dims)
    assert list((isolated / "results" / "measures" / name).rglob("*.nc"))

    def refuse(*args, **kwargs):
        raise AssertionError("a cached measure must not load or sweep a checkpoint")

    monkeypatch.setattr(checkpoints, "load", refuse)
    monkeypatch.setattr(sweep, "extract", refuse)
    again = call(suite)
    assert again.attrs["n_computed"] == 0
    xr.testing.assert_identical(again.drop_attrs(), ds.drop_attrs())


def test_runner_recomputes_for_new_weights_or_config_and_outer_joins(tiny_suite, isolated, monkeypatch):
    suite = get_suite(str(tiny_suite))
    calls = []

    def compute(ck):
        calls.append((ck.model, ck.step))
        n = ck.lm.config.num_hidden_layers
        return xr.Dataset({"norm": (("layer",), [float(p.detach().norm()) for p in
                                                 (ck.lm.get_submodule(f"gpt_neox.layers.{i}.mlp.dense_4h_to_h").weight
                                                  for i in range(n))], {"units": "1", "description": "weight norm"})})

    m = measures.Measure("test_norm", compute, {"a": 1})
    ds = measures.over_steps(suite, m, steps=[0, 8, 999], progress=False)
    # s has 1 layer and m 2: s is padded with NaN; step 999 exists in no model and stays NaN.
    assert dict(ds["norm"].sizes) == {"model": 2, "step": 3, "layer": 2}
    assert np.isnan(ds["norm"].sel(model="s", layer=1)).all() and np.isnan(ds["norm"].sel(step=999)).all()
    assert np.isnan(ds["tokens_seen"].sel(step=999)).all() and len(calls) == 4
    measures.over_steps(suite, m, steps=[0, 8], progress=False)
    assert len(calls) == 4
    measures.over_steps(suite, measures.Measure("test_norm", compute, {"a": 2}), steps=[0], progress=False)
    assert len(calls) == 6  # another configuration: computed again
    # Retrained weights get another checkpoint id, so the cached result is not read.
    real = checkpoints.checkpoint_id
    monkeypatch.setattr(checkpoints, "checkpoint_id", lambda s, mo, st: "f" * 64 if st == 8 else real(s, mo, st))
    measures.over_steps(suite, m, steps=[0, 8], progress=False)
    assert len(calls) == 8 and calls[-2:] == [("s", 8), ("m", 8)]


def test_grid_results_are_cached_by_the_grid_and_weights_they_come_from(tiny_suite, isolated, monkeypatch):
    suite = get_suite(str(tiny_suite))
    m = measures.Measure("test_sum", lambda ck: xr.Dataset({"x": ((), float(ck.step), {"units": "1",
                                                                                        "description": "step"})}))
    fits = []

    def fit(source):
        def compute():
            fits.append(1)
            return xr.Dataset({"total": (("model",), source["x"].sum("step").values,
                                         {"units": "1", "description": "sum over steps"})},
                              coords={"model": source["model"].values})
        return compute

    ds = measures.over_steps(suite, m, steps=[0, 8], progress=False)
    first = measures.over_grid("test_total", ds, {"p": 1}, fit(ds))
    again = measures.over_grid("test_total", ds, {"p": 1}, fit(ds))
    assert len(fits) == 1 and list((isolated / "results" / "grid" / "test_total").rglob("*.nc"))
    xr.testing.assert_identical(first, again)
    np.testing.assert_array_equal(first["total"].values, [8.0, 8.0])
    measures.over_grid("test_total", ds, {"p": 2}, fit(ds))
    assert len(fits) == 2  # other parameters: computed again
    wider = measures.over_steps(suite, m, steps=[0, 8, 24], progress=False)
    measures.over_grid("test_total", wider, {"p": 1}, fit(wider))
    assert len(fits) == 3  # another grid
    real = checkpoints.checkpoint_id
    monkeypatch.setattr(checkpoints, "checkpoint_id", lambda s, mo, st: "f" * 64 if st == 8 else real(s, mo, st))
    retrained = measures.over_steps(suite, m, steps=[0, 8], progress=False)
    measures.over_grid("test_total", retrained, {"p": 1}, fit(retrained))
    assert len(fits) == 4  # retrained weights at step 8
    measures.over_grid("test_total", ds, {"p": 1}, fit(ds), cache=False)
    assert len(fits) == 5
    with pytest.raises(ValueError, match="'bare' has no units, description"):
        measures.over_grid("test_bare", ds, {}, lambda: xr.Dataset({"bare": ((), 1.0)}))


def test_results_must_state_units_and_keep_to_the_schema(tiny_suite, isolated):
    bare = measures.Measure("test_bare", lambda ck: xr.Dataset({"x": ((), 1.0)}))
    with pytest.raises(ValueError, match="'x' has no units, description"):
        measures.over_steps(str(tiny_suite), bare, steps=[0], progress=False)
    odd = measures.Measure("test_odd", lambda ck: xr.Dataset({"x": (("widget",), [1.0], {"units": "1",
                                                                                         "description": "x"})}))
    with pytest.raises(ValueError, match="widget"):
        measures.over_steps(str(tiny_suite), odd, steps=[0], progress=False)
    with pytest.raises(ValueError, match="none of steps"):
        measures.over_steps(str(tiny_suite), bare, steps=[999], progress=False)


def test_step_grid_keeps_each_models_own_steps(tiny_suite):
    suite = get_suite(str(tiny_suite))
    assert measures.step_grid(suite, ["m"], [0, 3, 4]) == {"m": [0, 4]}
    assert measures.step_grid(suite, None, None) == {m: suite.steps(m) for m in suite.models}
    assert measures.step_grid(suite, ["s"], "0,24") == {"s": [0, 24]}
    assert measures.step_axis({"a": [0, 4], "b": [8]}) == [0, 4, 8]
    assert measures.step_axis({"a": [0, 4]}, [4, 0, 999]) == [0, 4, 999]
