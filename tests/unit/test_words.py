"""Word age of acquisition: children's logistic fit against statsmodels and Wordbank's published AoA; the
model's sigmoid fit against curves with known midpoints and scipy; the comparison against scipy and statsmodels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats

from lhp_core.data import wordbank
from lhp_core.metrics import words


@pytest.fixture(scope="module")
def children() -> pd.DataFrame:
    return words.child_aoa(wordbank.responses(), n_boot=20)


def test_logistic_fit_equals_statsmodels_glm() -> None:
    rng = np.random.default_rng(1)
    ages = np.arange(16, 31, dtype=float)
    n = rng.integers(200, 800, size=(5, ages.size)).astype(float)
    p = 1 / (1 + np.exp(-(rng.uniform(-12, -4, (5, 1)) + rng.uniform(0.2, 0.5, (5, 1)) * ages)))
    k = rng.binomial(n.astype(int), p).astype(float)
    a, b = words.fit_logistic(ages, k, n)
    for i in range(5):
        ref = sm.GLM(np.c_[k[i], n[i] - k[i]], sm.add_constant(ages), family=sm.families.Binomial()).fit(tol=1e-12)
        np.testing.assert_allclose([a[i], b[i]], ref.params, rtol=1e-8)


def test_child_aoa_reproduces_wordbank_published_estimates(children) -> None:
    pub = wordbank.published_aoa().set_index("word")["aoa"]
    fit = children.set_index("item_definition")["aoa"]
    both = fit.loc[pub.index]
    inside = both.between(16, 30)
    # Every word whose fitted AoA lies within the form's 16-30 months is published as ceil(AoA): 573 of 588.
    assert inside.sum() == 573
    assert (words.wordbank_rounding(both[inside]) == pub[inside]).all()
    # The other 15 are produced by half the children before 16 months (published from wider age ranges).
    assert (both[~inside] < 16).all() and (pub[~inside] <= 18).all()
    # The 92 words without a published AoA are produced by half the children only after 30 months.
    assert (fit.drop(pub.index) > 30).all() and len(fit.drop(pub.index)) == 92


def test_child_aoa_columns_and_interval(children) -> None:
    assert len(children) == 680 and children["item_id"].iloc[0] == "item_1"
    ok = children["aoa"].between(16, 30)
    assert (children.loc[ok, "aoa_lo"] <= children.loc[ok, "aoa"]).all()
    assert (children.loc[ok, "aoa"] <= children.loc[ok, "aoa_hi"]).all()
    assert (children.loc[ok, "aoa_hi"] - children.loc[ok, "aoa_lo"]).median() < 1.5  # months; ~9,000 children
    assert set(children["lexical_class"]) == {"nouns", "verbs", "adjectives", "function_words", "other"}


def test_text_forms_state_each_mapping_and_exclusion() -> None:
    f = words.text_forms(wordbank.words()).set_index("item_definition")
    assert f.at["choo choo", "form"] == "choo choo" and f.at["choo choo", "rule"] == "multi-word"
    assert f.at["soda/pop", "form"] == "soda" and f.at["soda/pop", "rule"] == "first alternative"
    assert f.at["daddy*", "form"] == "daddy" and f.at["give me five!", "form"] == "give me five"
    assert f.at["toy (object)", "form"] == "toy"
    assert f.at["chicken (animal)", "excluded"] == "homograph of chicken (food)"
    assert f.at["child's own name", "excluded"].startswith("name slot")
    excluded = f[f["excluded"] != ""]
    assert excluded["form"].isna().all() and len(excluded) == 27  # 3 name slots, 12 homograph pairs
    kept = f[f["excluded"] == ""]
    assert kept["form"].str.lower().is_unique and len(kept) == 653


def test_sigmoid_aoa_of_exact_curves_is_the_known_midpoint() -> None:
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000])
    x = np.log10(steps[1:])
    top, bottom, x0, k = np.array([9.0, 12.0, 7.0]), np.array([3.0, 5.0, 6.5]), np.array([1.5, 2.2, 0.8]), \
        np.array([4.0, 2.5, 6.0])
    curve = words.sigmoid(x, top, bottom, x0, k)
    theta = words.fit_sigmoid(x, curve)
    np.testing.assert_allclose(theta, np.c_[top, bottom, x0, k], rtol=1e-6)
    # Midpoint between the step-0 level (= top) and the final level: closed form of the crossing.
    final = words.sigmoid(x[-1:], top, bottom, x0, k)[:, 0]
    share = ((top + final) / 2 - bottom) / (top - bottom)
    expected = 10 ** (x0 + np.log(1 / share - 1) / k)
    start = np.concatenate([[top], curve.T]).T
    np.testing.assert_allclose(words.curve_aoa(steps, start), expected, rtol=1e-6)
    # A curve flat at the final level crosses where the sigmoid's own midpoint is: 10**x0.
    np.testing.assert_allclose(expected[0], 10 ** 1.5, rtol=1e-3)


def test_sigmoid_fit_equals_scipy_curve_fit_on_noisy_curves() -> None:
    rng = np.random.default_rng(3)
    x = np.log10([1, 2, 4, 8, 16, 20, 40, 60, 80, 100, 120, 200, 400])
    y = words.sigmoid(x, 10.0, 4.0, 1.2, 5.0) + rng.normal(0, 0.2, (20, x.size))
    theta = words.fit_sigmoid(x, y)

    def f(xx, top, bottom, x0, k):
        return bottom + (top - bottom) / (1 + np.exp(k * (xx - x0)))

    for i in range(len(y)):
        ref, _ = optimize.curve_fit(f, x, y[i], p0=[10, 4, 1, 3], maxfev=20000)
        sse, sse_ref = ((f(x, *theta[i]) - y[i]) ** 2).sum(), ((f(x, *ref) - y[i]) ** 2).sum()
        assert sse <= sse_ref * (1 + 1e-7)
        np.testing.assert_allclose(theta[i], ref, rtol=1e-4, atol=1e-5)


def test_sigmoid_aoa_is_nan_where_the_curve_does_not_fall() -> None:
    steps = np.array([0, 1, 2, 4, 8, 16, 32])
    rising = words.sigmoid(np.log10(steps[1:]), 3.0, 9.0, 0.6, 4.0)
    flat = np.full(steps.size, 5.0)
    out = words.curve_aoa(steps, np.stack([np.r_[3.0, rising], flat]))
    assert np.isnan(out).all()


def test_word_contexts_find_whole_words_and_cap() -> None:
    docs = ["The dog ran. A hotdog is food. Dogs? dog's bowl.", "Uh  oh, the DOG barked! uh oh", "choo choo train"]
    table, counts = words.word_contexts(["dog", "uh oh", "choo choo", "giraffe"], docs, max_per_word=2, seed=0)
    assert counts.to_dict() == {"dog": 2, "uh oh": 2, "choo choo": 1, "giraffe": 0}
    row = table.set_index("stimulus").loc["choo choo#0"]
    assert row.context == "" and row.target == "choo choo"
    dog = table[table.form == "dog"]
    assert dog.target.tolist() == [" dog", " DOG"] and dog.context.tolist() == ["The", "Uh  oh, the"]
    assert words.word_frequencies(["dog", "uh oh"], docs).to_dict() == pytest.approx(
        {"dog": 2 * 1e6 / 20, "uh oh": 2 * 1e6 / 20})


def test_spearman_matches_scipy_and_its_permutation_null() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = 0.4 * x + rng.normal(size=60)
    out = words.spearman(x, y, n_boot=500, n_perm=4000, seed=1)
    ref = stats.spearmanr(x, y)
    assert out["rho"] == pytest.approx(ref.statistic, abs=1e-12)
    assert out["lo"] < out["rho"] < out["hi"]
    # The permutation p-value estimates the exact permutation p; scipy's t approximation is close at n = 60.
    assert out["p"] == pytest.approx(ref.pvalue, abs=0.01)


def test_regression_equals_statsmodels_ols() -> None:
    rng = np.random.default_rng(2)
    t = pd.DataFrame({"freq": rng.normal(size=80), "length": rng.integers(1, 9, 80).astype(float),
                      "cls": rng.choice(["nouns", "verbs", "other"], 80)})
    t["aoa"] = 2 - 1.5 * t.freq + 0.3 * t.length + (t.cls == "verbs") + rng.normal(size=80)
    t.loc[3, "freq"] = np.nan
    out = words.regression(t, "aoa", ["freq", "length"], "cls").set_index("term")
    d = t.dropna()
    X = pd.DataFrame({"const": 1.0, "freq": (d.freq - d.freq.mean()) / d.freq.std(),
                      "length": (d.length - d.length.mean()) / d.length.std(),
                      "other": (d.cls == "other") * 1.0, "verbs": (d.cls == "verbs") * 1.0})
    ref = sm.OLS(d.aoa, X).fit()
    np.testing.assert_allclose(out["coef"], ref.params, rtol=1e-10)
    np.testing.assert_allclose(out["se"], ref.bse, rtol=1e-10)
    np.testing.assert_allclose(out[["lo", "hi"]], ref.conf_int(), rtol=1e-10)
    np.testing.assert_allclose(out["p"], ref.pvalues, rtol=1e-8)
    assert out.attrs["n_dropped"] == 1 and out.attrs["r2"] == pytest.approx(ref.rsquared, rel=1e-12)


def test_study_rules() -> None:
    from lhp_core.studies import words as study

    assert study.order_verdict(0.1, 0.5, 0.01) == "holds"
    assert study.order_verdict(-0.05, 0.5, 0.01) == "does not hold at this scale"
    assert study.order_verdict(-0.5, -0.1, 0.01) == "contradicted"
    assert study.frequency_verdict(-0.1, -0.6, -0.3) == "holds"
    assert study.frequency_verdict(-0.1, -0.2, -0.3) == "contradicted"
    assert study.frequency_verdict(0.1, -0.6, -0.3) == "does not hold at this scale"


def test_category_shift_by_hand() -> None:
    from lhp_core.studies import words as study

    # The model learns the animals first and the verbs last; children the other way round.
    t = pd.DataFrame({"model": "m", "category": ["animals"] * 3 + ["verbs"] * 3,
                      "model_aoa": [1.0, 2, 3, 4, 5, 6], "child_aoa": [26.0, 27, 28, 20, 21, 22]})
    out = study.category_shift(t, n_boot=50).set_index("category")
    # percentile ranks: model animals 1/6..3/6, children animals 4/6..6/6: a shift of -0.5 for every word
    assert out.at["animals", "shift"] == pytest.approx(-0.5) and out.at["verbs", "shift"] == pytest.approx(0.5)
    assert out.at["animals", "learns"] == "earlier" and out.at["verbs", "learns"] == "later"
    assert (out["n"] == 3).all()
