"""reading.surprisal_over_steps runs on the sweep engine: equal to the in-memory reference, resumable.

Reference: ``reading.token_scores`` + ``word_surprisal`` (full softmax over whole windows) on
each checkpoint of a trained tiny suite. Tolerance 1e-4 bits (float32, chunked vs full softmax).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lhp_core import checkpoints
from lhp_core.deprecation import RenamedWarning
from lhp_core.metrics import reading
from lhp_core.suites import context_length, get_suite

WORDS = ("Once upon a time , there was an old man who lived in a small house near the river . "
         "Every morning he walked to the market and bought bread , fish and apples for his wife .").split()


@pytest.fixture()
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"item": item, "word": w} for item, n in ((1, 70), (2, 12)) for w in rng.choice(WORDS, n)]
    return pd.DataFrame(rows)


def test_sweep_surprisal_equals_reference_and_resumes(tiny_suite, table, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    suite = get_suite(str(tiny_suite))
    steps = [0, 8, 24, 999]  # 999 is no checkpoint: its column stays NaN
    ds = reading.surprisal_over_steps(suite, table, steps=steps, progress=False)
    assert ds["surprisal"].dims == ("model", "step", "word")
    assert list(ds["step"].values) == steps and list(ds["model"].values) == list(suite.models)
    assert np.isnan(ds["surprisal"].sel(step=999)).all() and np.isnan(ds["tokens_seen"].sel(step=999)).all()
    stim = reading._stimuli(table, "word", "item")
    for m in suite.models:
        for st in (0, 24):
            model, tok = checkpoints.load(suite, m, st)
            sc = reading.token_scores(model, tok, stim, max_length=context_length(suite, model))
            for var, method in (("surprisal", "bow"), ("surprisal_naive", "naive")):
                np.testing.assert_allclose(ds[var].sel(model=m, step=st).values, reading.word_surprisal(sc, method),
                                           rtol=0, atol=1e-4, err_msg=f"{m} step {st} {var}")
            assert int(ds["tokens_seen"].sel(model=m, step=st)) == suite.tokens_seen(m, st)
    # Texts longer than the context were read in several windows.
    assert len(table[table.item == 1]) > context_length(suite)

    # A second call reads the store: no checkpoint is loaded again.
    def refuse(*args, **kwargs):
        raise AssertionError("a completed sweep must not load checkpoints again")

    monkeypatch.setattr(checkpoints, "load", refuse)
    again = reading.surprisal_over_steps(suite, table, steps=steps, progress=False)
    assert again.attrs["n_computed"] == 0 and list((tmp_path / "results" / "measures").glob("surprisal/*"))
    np.testing.assert_array_equal(again["surprisal"].values, ds["surprisal"].values)


def test_uncached_surprisal_leaves_no_store(tiny_suite, table, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    ds = reading.surprisal_over_steps(str(tiny_suite), table, models=["s"], steps=[4], cache=False, progress=False)
    assert np.isfinite(ds["surprisal"]).all() and ds.attrs["n_computed"] == 1
    assert not (tmp_path / "results").exists()


def test_ppp_over_steps_goes_through_the_runner(tiny_suite, table, tmp_path, monkeypatch):
    monkeypatch.setenv("LHP_CACHE", str(tmp_path))
    rng = np.random.default_rng(1)
    t = table.assign(rt=250 + 6 * table["word"].str.len() + rng.normal(scale=30, size=len(table)))
    kw = dict(spillover=1, n_folds=5, seed=2, exclusions="aoyama_wilcox")  # named: the default warns for a release
    grid = dict(models=["s", "m"], steps=[0, 24, 999])
    ds = reading.ppp_over_steps(str(tiny_suite), t, "rt", **grid, progress=False, **kw)
    assert ds.attrs["measure"] == "ppp" and ds.attrs["n_computed"] == 4 and "git_commit" in ds.attrs
    assert ds["ppp"].dims == ("model", "step") and np.isnan(ds["ppp"].sel(step=999)).all()
    # the same numbers as the regression on the surprisal grid in memory
    sp = reading.surprisal_over_steps(str(tiny_suite), t, **grid, progress=False)
    for var in ("surprisal", "surprisal_naive"):
        got = ds if var == "surprisal" else reading.ppp_over_steps(str(tiny_suite), t, "rt", **grid, surprisal=var,
                                                                   progress=False, **kw)
        ref = reading.ppp_grid(t, sp[var], "rt", **kw)
        assert got.attrs["n_words"] == ref.attrs["n_words"] and got.attrs["n_excluded"] == ref.attrs["n_excluded"]
        for k in ("ppp", "ppp_lo", "ppp_hi", "ppp_se", "delta_ll"):
            np.testing.assert_allclose(got[k].values, ref[k].transpose(*got[k].dims).values, rtol=0, atol=1e-12,
                                       err_msg=f"{var} {k}")
    # cached by the weights: a second call loads no checkpoint
    monkeypatch.setattr(checkpoints, "load", lambda *a, **k: pytest.fail("the cached PPP loaded a checkpoint"))
    again = reading.ppp_over_steps(str(tiny_suite), t, "rt", **grid, progress=False, **kw)
    assert again.attrs["n_computed"] == 0
    np.testing.assert_array_equal(again["ppp"].values, ds["ppp"].values)
    # the previous release's call still works for one release, with a warning naming the new function
    with pytest.warns(RenamedWarning, match="ppp_over_steps\\(suite, table, rt"):
        old = reading.ppp_over_steps(t, sp["surprisal"], "rt", **kw)
    np.testing.assert_array_equal(old["ppp"].values, reading.ppp_grid(t, sp["surprisal"], "rt", **kw)["ppp"].values)
