"""Inverse-scaling trends: slopes and intervals against statsmodels OLS, Holm by hand, the LAMBADA
loss interpolation on a closed-form curve, and the real results re-derived with numpy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lhp_core.data import pythia_evals as pe
from lhp_core.data import pythia_inverse_scaling as pis
from lhp_core.metrics import inverse_scaling as inv
from lhp_core.metrics.events import COLUMNS

STEPS = np.array([2000, 4000, 8000, 16000, 32000, 64000, 128000, 143000], dtype=float)


def _results(curves: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    rows = [(m, 1234, int(s), t, a, 0.01) for (m, t), acc in curves.items() for s, a in zip(STEPS, acc)]
    return pd.DataFrame(rows, columns=["model", "seed", "step", "task", "accuracy", "accuracy_se"])


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    m = len(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order]).clip(max=1.0)
    out = np.empty(m)
    out[order] = adj
    return out


def test_trends_against_statsmodels_and_holm() -> None:
    rng = np.random.default_rng(7)
    x = np.log10(STEPS)
    curves = {
        ("pythia-70m", "isp_memo_trap"): 0.9 - 0.08 * x + rng.normal(0, 0.01, 8),  # falls
        ("pythia-70m", "isp_neqa"): 0.5 + rng.normal(0, 0.01, 8),  # flat
        ("pythia-1b", "isp_memo_trap"): 0.2 + 0.05 * x + rng.normal(0, 0.01, 8),  # rises
        ("pythia-1b", "isp_neqa"): np.array([0.5, 0.6, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]),  # peaks at 8000
    }
    ds = inv.trends(_results(curves), level=0.9)
    assert list(ds["model"].values) == ["pythia-70m", "pythia-1b"]
    p_all = []
    for (model, task), acc in curves.items():
        fit = sm.OLS(acc, sm.add_constant(x)).fit()
        lo, hi = fit.conf_int(alpha=0.1)[1]
        r = ds.sel(model=model, task=task)
        assert float(r["slope"]) == pytest.approx(fit.params[1], rel=1e-9)
        assert (float(r["slope_lo"]), float(r["slope_hi"])) == pytest.approx((lo, hi), rel=1e-9)
        assert float(r["p_value"]) == pytest.approx(fit.pvalues[1], rel=1e-6)
        assert bool(r["declines"]) == (hi < 0)
        i = int(np.argmax(acc))
        assert float(r["peak_step"]) == STEPS[i] and float(r["peak_accuracy"]) == acc[i]
        assert float(r["drop"]) == pytest.approx(acc[i] - acc[-1], abs=1e-15)
        p_all.append(fit.pvalues[1])
    holm = _holm(np.array(p_all))
    got = [float(ds["p_holm"].sel(model=m, task=t)) for m, t in curves]
    assert got == pytest.approx(holm, rel=1e-6)
    assert bool(ds["declines"].sel(model="pythia-70m", task="isp_memo_trap"))
    assert not bool(ds["declines"].sel(model="pythia-1b", task="isp_memo_trap"))
    r = ds.sel(model="pythia-1b", task="isp_neqa")
    assert (float(r["peak_step"]), float(r["next_step"])) == (8000, 16000)
    assert ds["task_name"].sel(task="isp_neqa").item() == "NeQA"
    assert str(ds["peak_loss_status"].sel(model="pythia-1b", task="isp_neqa").item()) == "not computed"
    for var in ds.data_vars:
        assert ds[var].attrs["units"] and ds[var].attrs["description"], var


def _evals(model: str, steps, loss) -> pd.DataFrame:
    base = {"model": model, "variant": "main", "deduped": False, "shots": 0, "task": "lambada_openai", "metric": "ppl"}
    rows = [dict(base, step=s, value=float(np.exp(v))) for s, v in zip(steps, loss)]
    # rows the loss must ignore: another metric, five-shot, the deduplicated twin, another variant
    rows += [dict(base, step=1000, metric="acc", value=0.3), dict(base, step=1000, shots=5, value=9.0),
             dict(base, step=1000, model=model + "-deduped", deduped=True, value=9.0),
             dict(base, step=1000, variant="batch-1MtokBS", value=9.0)]
    return pd.DataFrame(rows)


def _loss_of(step: float) -> float:
    """A loss linear in log10(step): linear interpolation in log step must reproduce it exactly."""
    return 7.0 - 1.1 * np.log10(step)


def test_loss_interpolates_linearly_in_log_step() -> None:
    known = [0, 1000, 3000, 13000, 143000]
    loss_of = _loss_of
    evals = _evals("pythia-70m", known, [10.0] + [loss_of(s) for s in known[1:]])
    table = inv.lambada_loss(evals)
    assert table["step"].tolist() == known  # only the main, 0-shot, non-deduplicated ppl rows
    out = inv.loss_at(table, "pythia-70m", [2000, 8000, 143000, 500, 200000]).set_index("step")
    for s in (2000, 8000):
        assert out.loc[s, "loss"] == pytest.approx(loss_of(s), abs=1e-12)
        assert out.loc[s, "status"] == "interpolated"
    assert (out.loc[2000, "below"], out.loc[2000, "above"]) == (1000, 3000)
    assert (out.loc[8000, "below"], out.loc[8000, "above"]) == (3000, 13000)
    assert out.loc[143000, "status"] == "evaluated" and out.loc[143000, "loss"] == pytest.approx(loss_of(143000))
    # below the first positive evaluated step (step 0 has no log) and past the last: missing, not extrapolated
    for s in (500, 200000):
        assert out.loc[s, "status"] == "missing" and np.isnan(out.loc[s, "loss"])
    assert (inv.loss_at(table, "pythia-12b", [2000])["status"] == "missing").all()


def test_bad_input() -> None:
    res = _results({("pythia-70m", "isp_neqa"): np.full(8, 0.5)})
    with pytest.raises(ValueError, match="duplicated"):
        inv.trends(pd.concat([res, res.head(1)]))
    with pytest.raises(ValueError, match="lack columns"):
        inv.trends(res.drop(columns="accuracy"))
    with pytest.raises(ValueError, match="at least 3"):
        inv.trends(res.head(2))
    with pytest.raises(ValueError, match="lacks columns"):
        inv.lambada_loss(pd.DataFrame({"model": ["x"]}))


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pis.load()


@pytest.fixture(scope="module")
def evals() -> pd.DataFrame:
    return pe.load("main")


def test_real_trends_against_numpy(real, evals) -> None:
    ds = inv.trends(real, evals)
    n_declines = 0
    for (model, task), g in real.groupby(["model", "task"]):
        g = g.sort_values("step")
        x, y = np.log10(g["step"].to_numpy(float)), g["accuracy"].to_numpy(float)
        slope = np.polyfit(x, y, 1)[0]
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        assert float(ds["slope"].sel(model=model, task=task)) == pytest.approx(slope, rel=1e-9, abs=1e-12)
        declines = fit.conf_int(alpha=0.05)[1][1] < 0
        assert bool(ds["declines"].sel(model=model, task=task)) == declines
        n_declines += declines
    assert int(ds["declines"].sum()) == n_declines > 0
    # peak losses: LAMBADA evaluated at 143000 only, every other step interpolated (checked independently)
    lam = evals[(evals.task == "lambada_openai") & (evals.metric == "ppl") & (evals.shots == 0) & ~evals.deduped]
    for model in ds["model"].values:
        steps = set(lam.loc[lam.model == model, "step"])
        for task in ds["task"].values:
            peak = float(ds["peak_step"].sel(model=model, task=task))
            status = str(ds["peak_loss_status"].sel(model=model, task=task).item())
            assert status == ("evaluated" if peak in steps else "interpolated")
            if status == "evaluated":
                expected = np.log(lam.loc[(lam.model == model) & (lam.step == peak), "value"].item())
                assert float(ds["peak_loss"].sel(model=model, task=task)) == pytest.approx(expected, rel=1e-12)


def test_real_coverage_reports_every_step(real, evals) -> None:
    cov = inv.loss_coverage(real, evals)
    assert len(cov) == 64
    assert set(cov["status"]) <= {"evaluated", "interpolated"}  # no step is outside LAMBADA's range
    assert (cov.loc[cov["step"] == 143000, "status"] == "evaluated").all()
    inside = cov[cov["status"] == "interpolated"]
    assert ((inside["below"] < inside["step"]) & (inside["step"] < inside["above"])).all()


def test_real_events(real) -> None:
    ev = inv.events(real)
    assert list(ev.columns) == COLUMNS
    assert len(ev) == 8 * 12 * 2
    ds = inv.trends(real)
    expected = ds["declines"] & ds["next_step"].notnull()
    runs = ev[ev["seed"] == 1234]
    assert runs["found"].sum() == int(expected.sum())
    assert (ev.loc[ev["seed"] == -1, "found"].to_numpy() == runs["found"].to_numpy()).all()
    found = runs[runs["found"]]
    assert (found["step_hi"] > found["step"]).all() and (found["step_lo"] == found["step"]).all()
    assert set(ev["measure"]) == {f"{name} accuracy" for name in pis.TASK_NAMES.values()}
