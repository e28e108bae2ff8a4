"""PPP options (spillover by paradigm, frequency column, exclusion rules, SE) against statsmodels OLS
fitted by hand and against exclusions counted by hand; input validation of the reading-time analyses."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import xarray as xr
from scipy import stats

from lhp_core.metrics import reading

# These tests pin today's PPP defaults on purpose; the warning that they changed is tested below.
pytestmark = pytest.mark.filterwarnings("ignore::lhp_core.deprecation.ChangedDefaultWarning")

ITEMS, WORDS = 6, 70
BETAS = (10.0, 6.0, 4.0, 3.0, 2.0)  # effect of the surprisal of the current word and of words 1..4 back


def synthetic(seed: int = 0, betas=BETAS) -> pd.DataFrame:
    """Clean items (no punctuation, no missing values) whose RT depends on surprisal up to 4 words back."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(ITEMS):
        s = rng.gamma(2.0, 3.0, size=WORDS)
        freq = rng.normal(5.0, 1.0, size=WORDS)
        length = rng.integers(1, 12, size=WORDS).astype(float)
        for t in range(WORDS):
            rt = 280 + 5 * length[t] - 8 * freq[t] + sum(b * s[t - j] for j, b in enumerate(betas) if t - j >= 0)
            rows.append({"item": item, "position": t + 1, "word": "w" * int(length[t]), "len": length[t],
                         "freq": freq[t], "surp": s[t], "rt": rt + rng.normal(scale=30)})
    return pd.DataFrame(rows)


def hand_design(table: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lagged design written out row by row: rows with k predecessors in their item.

    Returns ``X`` ``[n, 3 (1 + k)]`` (lengths, frequencies, surprisals; current word first), ``y`` ``[n]``
    and the table index of each row.
    """
    X, y, rows = [], [], []
    for _, g in table.groupby("item", sort=False):
        g = g.reset_index()
        for t in range(k, len(g)):
            back = [g.loc[t - j] for j in range(k + 1)]
            X.append([r["len"] for r in back] + [r["freq"] for r in back] + [r["surp"] for r in back])
            y.append(g.loc[t, "rt"])
            rows.append(g.loc[t, "index"])
    return np.array(X), np.array(y), np.array(rows)


def hand_delta(X: np.ndarray, y: np.ndarray, k: int, folds: np.ndarray) -> np.ndarray:
    """Per-word held-out Delta LL: statsmodels OLS per fold, Gaussian density with the fit's residual SD."""
    base, full = sm.add_constant(X[:, : 2 * (k + 1)]), sm.add_constant(X)
    out = np.empty(len(y))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        ll = []
        for D in (base, full):
            fit = sm.OLS(y[tr], D[tr]).fit()
            ll.append(stats.norm.logpdf(y[te], fit.predict(D[te]), np.sqrt(fit.mse_resid)))
        out[te] = ll[1] - ll[0]
    return out


def by_hand(table: pd.DataFrame, k: int, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, y, rows = hand_design(table, k)
    return hand_delta(X, y, k, folds), rows


@pytest.mark.parametrize("measure, k", [("spr", 4), ("eye", 2)])
def test_ppp_equals_ols_by_hand_with_paradigm_spillover(measure, k):
    t = synthetic()
    res = reading.ppp(t, "rt", "surp", measure=measure, frequency="freq", length="len", position="position", seed=2)
    assert res.spillover == k == reading.SPILLOVER[measure]
    ref, rows = by_hand(t, k, res.folds)
    np.testing.assert_array_equal(res.rows, rows)
    np.testing.assert_allclose(res.per_word, ref, rtol=0, atol=1e-8)
    assert res.mean == pytest.approx(ref.mean(), abs=1e-10)
    # The standard error Aoyama & Wilcox report: sd(per-word Delta LL) / sqrt(n), R's sd (n - 1).
    assert res.se == pytest.approx(stats.sem(ref), rel=1e-10)
    assert res.excluded == {"rt_nan": 0, "history": ITEMS * k, "predictor_nan": 0, "surprisal_nan": 0,
                            "spillover_nan": 0, "surprisal_zero": 0, "rt_zero": 0, "rt_range": 0}
    assert res.n_rows == len(t) and len(res.per_word) == len(t) - ITEMS * k


def test_spr_spillover_captures_the_lags_that_eye_tracking_spillover_misses():
    t = synthetic(seed=1)
    spr = reading.ppp(t, "rt", "surp", frequency="freq", length="len")
    eye = reading.ppp(t, "rt", "surp", measure="eye", frequency="freq", length="len")
    assert spr.lo > eye.hi


def test_default_frequency_is_wordfreq_and_length_counts_letters():
    """Without frequency=/length= the baseline uses log_frequency and word_length of the word column."""
    t = synthetic(seed=3)
    vocab = ["the", "a", "house", "of", "it", "extraordinary", "river", "wanted"]
    t["word"] = np.random.default_rng(0).choice(vocab, size=len(t))
    t["len"] = reading.word_length(t["word"].tolist())
    t["freq"] = reading.log_frequency(t["word"].tolist())
    res = reading.ppp(t, "rt", "surp", seed=5)
    ref, _ = by_hand(t, 4, res.folds)
    np.testing.assert_allclose(res.per_word, ref, rtol=0, atol=1e-8)


def test_lhp_rules_with_three_words_of_spillover_reproduce_the_earlier_design():
    """exclusions="lhp" drops the first and last word of each item on top of the missing history."""
    t = synthetic(seed=4)
    res = reading.ppp(t, "rt", "surp", exclusions="lhp", spillover=3, frequency="freq", length="len", seed=1)
    assert res.excluded["edge"] == 2 * ITEMS and res.excluded["history"] == 2 * ITEMS
    X, y, rows = hand_design(t, 3)
    last = (t.groupby("item")["position"].transform("max") == t["position"]).to_numpy()
    keep = ~last[rows]
    np.testing.assert_array_equal(res.rows, rows[keep])
    np.testing.assert_allclose(res.per_word, hand_delta(X[keep], y[keep], 3, res.folds), rtol=0, atol=1e-8)


# --------------------------------------------------------------------------- exclusions counted by hand

# Two items; spillover 2. Item 1 has a word without RT (pos 4), a 0 ms word (pos 6), a 0-bit word (pos 8) and
# a word without surprisal (pos 9); item 2 skips position 3 (a gap) and has punctuation at pos 5.
HAND = pd.DataFrame({
    "item": [1] * 10 + [2] * 7,
    "position": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 4, 5, 6, 7, 8],
    "word": ["a", "bb", "ccc", "dd", "e", "ff", "ggg", "h", "ii", "jj", "k", "ll", "mmm", "nn,", "o", "pp", "q."],
    "rt": [300, 310, 320, np.nan, 330, 0, 340, 350, 360, 370, 300, 305, 310, 315, 320, 325, 330],
    "surp": [5.0, 4, 3, 6, 2, 7, 3, 0.0, np.nan, 4, 5, 4, 3, 6, 2, 7, 3],
    "freq": [5.0, 4, 3, 4, 5, 6, 3, 2, 4, 5, 5, 4, 3, 4, 5, 6, 3],
})


def test_aoyama_wilcox_exclusions_counted_by_hand():
    d = reading.exclusion_table(HAND, "rt", HAND["surp"].to_numpy(), spillover=2, measure="eye",
                                rules="aoyama_wilcox", frequency="freq", position="position")
    # item 1: pos 1-2 no history; pos 4 no RT, so pos 5-6 lose theirs; pos 6 is also 0 ms (history first);
    # pos 7 keeps (5, 6 both have RTs); pos 8 has 0 bits; pos 9 has no surprisal; pos 10 has it one back.
    # item 2: pos 1-2 no history, pos 4 and 5 reach back over the gap at 3; pos 5's punctuation is no reason here.
    expected = ["history", "history", "", "rt_nan", "history", "history", "", "surprisal_zero", "surprisal_nan",
                "spillover_nan", "history", "history", "history", "history", "", "", ""]
    assert d.table["reason"].tolist() == expected
    assert d.excluded == {"rt_nan": 1, "history": 8, "predictor_nan": 0, "surprisal_nan": 1, "spillover_nan": 1,
                          "surprisal_zero": 1, "rt_zero": 0, "rt_range": 0}
    assert d.keep.sum() == 5 and d.rt_range is None
    # The kept rows' design: pos 3 of item 1 uses surprisal of pos 3, 2, 1.
    np.testing.assert_array_equal(d.surprisal[0], [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(d.base[0], [3, 2, 1, 3, 4, 5])  # lengths, then frequencies


def test_lhp_exclusions_counted_by_hand():
    d = reading.exclusion_table(HAND, "rt", HAND["surp"].to_numpy(), spillover=2, measure="spr", rules="lhp",
                                frequency="freq", position="position")
    # 100-3000 ms for SPR under lhp: the 0 ms word falls out of range; the word without RT keeps its place.
    # 0 bits is no reason under lhp; pos 4 of item 2 reaches back over the gap, pos 5's punctuation comes first.
    expected = ["edge", "history", "", "rt_nan", "", "rt_range", "", "", "surprisal_nan", "edge",
                "edge", "history", "history", "punct", "", "", "edge"]
    assert d.table["reason"].tolist() == expected
    assert d.excluded == {"edge": 4, "punct": 1, "rt_nan": 1, "rt_zero": 0, "rt_range": 1, "history": 3,
                          "predictor_nan": 0, "surprisal_nan": 1, "spillover_nan": 0}
    assert d.rt_range == reading.LHP_RT_RANGE


def test_row_order_hides_the_gap_and_the_default_position_column_shows_it_with_a_warning():
    from lhp_core.deprecation import ChangedDefaultWarning

    kw = dict(spillover=2, measure="eye", rules="aoyama_wilcox", frequency="freq")
    d = reading.exclusion_table(HAND, "rt", HAND["surp"].to_numpy(), position=None, **kw)
    assert d.table["reason"].tolist()[10:] == ["history", "history", "", "", "", "", ""]
    # Since 0.2.0 the table's own position column is read by default; its gap now counts, so the call is told.
    with pytest.warns(ChangedDefaultWarning, match=r"^reading\.exclusion_table: the default position='position' "
                      r"replaced position=None in 0\.2\.0.*pass position=None \(row order"):
        d = reading.exclusion_table(HAND, "rt", HAND["surp"].to_numpy(), **kw)
    assert d.table["reason"].tolist()[10:] == ["history", "history", "history", "history", "", "", ""]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChangedDefaultWarning)
        explicit = reading.exclusion_table(HAND, "rt", HAND["surp"].to_numpy(), position="position", **kw)
        no_gap = reading.exclusion_table(HAND.iloc[:10], "rt", HAND["surp"].to_numpy()[:10], **kw)  # nothing changed
    assert explicit.table["reason"].tolist() == d.table["reason"].tolist()
    assert no_gap.table["reason"].tolist() == d.table["reason"].tolist()[:10]


def test_rows_out_of_reading_order_are_refused_by_default_and_sorted_rows_give_the_ppp():
    """Before 0.2.0 shuffled rows gave a wrong PPP in silence (Natural Stories: 0.0104 against 0.0267 sorted)."""
    t = reading.natural_stories_table([1])
    kw = dict(frequency="ngram_log10_freq", exclusions="aoyama_wilcox", spillover=4)
    shuffled = t.sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"^rows of group 1 are out of reading order \('position' \d+ at row \d+ "
                       r"comes after \d+\); sort first: table\.sort_values\(\['item', 'position'\]\) "
                       r"\(position=None reads the rows in the order given instead\)$"):
        reading.ppp(shuffled, "rt", "gpt3_surprisal", **kw)
    sorted_ = reading.ppp(shuffled.sort_values(["item", "position"]), "rt", "gpt3_surprisal", **kw)
    assert sorted_.mean == reading.ppp(t, "rt", "gpt3_surprisal", position="position", **kw).mean
    wrong = reading.ppp(shuffled, "rt", "gpt3_surprisal", position=None, **kw)  # asked for: row order
    assert abs(wrong.mean - sorted_.mean) > 0.005


def test_eye_tracking_zero_ms_words_are_kept_or_counted_never_silently_dropped():
    """Skipped words coded 0 ms: kept as 0 ms under lhp (no default range for eye tracking), dropped and
    counted under aoyama_wilcox (rt_zero), counted as rt_range when a range is given by hand."""
    t = synthetic(seed=6)
    zeros = t.index[t["position"] % 9 == 0]
    t.loc[zeros, "rt"] = 0.0
    kw = {"measure": "eye", "frequency": "freq", "length": "len"}
    lhp = reading.ppp(t, "rt", "surp", exclusions="lhp", **kw)
    assert set(zeros) <= set(lhp.rows) and lhp.excluded["rt_zero"] == lhp.excluded["rt_range"] == 0
    aw = reading.ppp(t, "rt", "surp", **kw)
    assert not set(zeros) & set(aw.rows) and aw.excluded["rt_zero"] == len(zeros)
    ranged = reading.ppp(t, "rt", "surp", exclusions="lhp", rt_range=(100, 3000), **kw)
    assert ranged.excluded["rt_range"] == len(zeros)
    # drop_zero under lhp counts them as rt_zero, ahead of the range.
    dz = reading.ppp(t, "rt", "surp", exclusions="lhp", rt_range=(100, 3000), drop_zero=True, **kw)
    assert dz.excluded["rt_zero"] == len(zeros) and dz.excluded["rt_range"] == 0


def test_nan_surprisal_spreading_through_spillover_is_counted():
    t = synthetic(seed=7)
    rng = np.random.default_rng(0)
    holes = rng.choice(len(t), size=60, replace=False)
    t.loc[holes, "surp"] = np.nan
    res = reading.ppp(t, "rt", "surp", frequency="freq", length="len")
    # Count by hand: a row is lost to its own NaN, else (with history) to a NaN among its 4 predecessors.
    own = spill = hist = 0
    for _, g in t.groupby("item"):
        s = g["surp"].to_numpy()
        for i in range(len(g)):
            if i < 4:
                hist += 1
            elif np.isnan(s[i]):
                own += 1
            elif np.isnan(s[i - 4:i]).any():
                spill += 1
    assert (res.excluded["history"], res.excluded["surprisal_nan"], res.excluded["spillover_nan"]) == (hist, own, spill)
    assert len(res.per_word) == len(t) - hist - own - spill
    assert sum(res.excluded.values()) == len(t) - len(res.per_word)


def _steps(t: pd.DataFrame, surps: np.ndarray) -> xr.DataArray:
    return xr.DataArray(surps[None], dims=("model", "step", "word"),
                        coords={"model": ["x"], "step": np.arange(len(surps)) * 10})


def test_ppp_over_steps_reports_se_and_exclusions_and_keeps_rows_paired():
    t = synthetic(seed=8)
    rng = np.random.default_rng(1)
    a = t["surp"].to_numpy()
    b = a + rng.normal(scale=2.0, size=len(t))
    b[[10, 200]] = np.nan  # one checkpoint lacks two words: they leave every checkpoint
    missing = np.full(len(t), np.nan)  # a step this model lacks
    kw = {"frequency": "freq", "length": "len", "seed": 3}
    ds = reading.ppp_over_steps(t, _steps(t, np.stack([a, b, missing])), "rt", **kw)
    one = reading.ppp(t.assign(s=np.where(np.isnan(b), np.nan, a)), "rt", "s", **kw)
    assert float(ds["ppp"][0, 0]) == pytest.approx(one.mean, abs=1e-10)
    assert float(ds["ppp_se"][0, 0]) == pytest.approx(one.se, abs=1e-12)
    np.testing.assert_array_equal(ds["word"].values, one.rows)
    assert np.isnan(ds["ppp"][0, 2]) and np.isfinite(ds["ppp"][0, 1])
    for reason, count in one.excluded.items():
        assert ds.attrs[f"excluded_{reason}"] == count
    assert ds.attrs["excluded_surprisal_nan"] == 2 and ds.attrs["spillover"] == 4
    assert ds.attrs["n_excluded"] == len(t) - ds.attrs["n_words"]
    for v in ds.data_vars.values():
        assert v.attrs["units"] and v.attrs["description"]


# --------------------------------------------------------------------------- input validation


def _design(n=40, p=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=n), rng.normal(size=(n, p))


def test_one_column_design_may_be_1d():
    y, X = _design()
    folds = reading.kfold_ids(len(y), 5)
    np.testing.assert_allclose(reading.cv_loglik(y, X[:, 0], folds), reading.cv_loglik(y, X[:, :1], folds))


BAD_TABLE = synthetic().iloc[:200].reset_index(drop=True)


def _with(**cols):
    t = BAD_TABLE.copy()
    for k, v in cols.items():
        t[k] = v(t)
    return t


def _na_rt(t):
    rt = t["rt"].astype(object)
    rt[[3, 7]] = "n/a"
    return rt


def _nan_word(t):
    w = t["word"].copy()
    w[5] = np.nan
    return w


def _text_surprisal(t):
    s = t["surp"].astype(object)
    s[4] = "high"
    return s


def _shuffled_positions(t):
    p = t["position"].copy()
    p[[20, 21]] = p[[21, 20]].to_numpy()
    return p


y40, X40 = _design()
CASES = [
    ("delta_loglik, (p, n) design", lambda: reading.delta_loglik(y40, X40.T, np.column_stack([X40, X40]).T),
     ValueError, r"X_base has shape \(3, 40\); expected \(n, p\) = \(40, p\).*pass X_base\.T"),
    ("delta_loglik, 3-D design", lambda: reading.delta_loglik(y40, X40[None], X40), ValueError,
     r"X_base has shape \(1, 40, 3\); expected \(n, p\)"),
    ("cv_loglik, (p, n) design", lambda: reading.cv_loglik(y40, X40.T, reading.kfold_ids(40, 5)), ValueError,
     r"X has shape \(3, 40\).*pass X\.T"),
    ("cv_loglik, 2-D y", lambda: reading.cv_loglik(y40[:, None], X40, reading.kfold_ids(40, 5)), ValueError,
     r"y has shape \(40, 1\); expected 1-D"),
    ("ppp, rows out of order", lambda: reading.ppp(_with(position=_shuffled_positions), "rt", "surp",
                                                   position="position", frequency="freq"), ValueError,
     r"rows of group 0 are out of reading order.*sort_values\(\['item', 'position'\]\)"),
    ("ppp_over_steps, rows out of order",
     lambda: reading.ppp_over_steps(_with(position=_shuffled_positions),
                                    _steps(BAD_TABLE, BAD_TABLE[["surp"]].T.values),
                                    "rt", position="position", frequency="freq"), ValueError,
     r"group 0 are out of reading order.*sort_values"),
    ("ppp, 'n/a' reading times", lambda: reading.ppp(_with(rt=_na_rt), "rt", "surp", frequency="freq"), ValueError,
     r"reading-time column 'rt' has 2 values that are not numbers \(e\.g\. \['n/a'\]\).*pd\.to_numeric"),
    ("ppp, missing word", lambda: reading.ppp(_with(word=_nan_word), "rt", "surp"), ValueError,
     r"word column 'word' has 1 missing values \(rows \[5\]\); fill in the words, or pass length= and frequency="),
    ("ppp, text in surprisal", lambda: reading.ppp(_with(surp=_text_surprisal), "rt", "surp", frequency="freq"),
     ValueError, r"surprisal column 'surp' has 1 values that are not numbers.*pd\.to_numeric"),
    ("ppp, missing frequency column", lambda: reading.ppp(BAD_TABLE, "rt", "surp", frequency="subtlex"), KeyError,
     r"frequency column 'subtlex' not in the table; columns are"),
    ("ppp, unknown rules", lambda: reading.ppp(BAD_TABLE, "rt", "surp", exclusions="strict"), ValueError,
     r"unknown exclusions 'strict'; use one of \['aoyama_wilcox', 'lhp'\]"),
    ("ppp, unknown paradigm", lambda: reading.ppp(BAD_TABLE, "rt", "surp", measure="fmri"), ValueError,
     r"unknown measure 'fmri'; use 'spr'"),
    ("ppp, log of 0 ms", lambda: reading.ppp(_with(rt=lambda t: t["rt"].where(t.index != 50, 0.0)), "rt", "surp",
                                              frequency="freq", drop_zero=False, log_rt=True), ValueError,
     r"log_rt needs positive reading times; 1 kept rows are <= 0: drop them with drop_zero=True"),
    ("ppp, too few rows", lambda: reading.ppp(BAD_TABLE.iloc[:20], "rt", "surp", frequency="freq"), ValueError,
     r"only 16 rows survive the exclusions \(history 4\); need at least 20"),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_error(name, call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_natural_stories_table_ships_google_books_log_frequency():
    from lhp_core.data import naturalstories as ns

    t = reading.natural_stories_table([1])
    uni = ns.ngram_frequencies(1)
    word = uni[(uni.field == "word") & (uni.story == 1)].set_index("position")["count"]
    got = t.set_index("position")["ngram_log10_freq"]
    common = word.index[word > 0]
    np.testing.assert_allclose(got.loc[common], np.log10(word.loc[common].astype(float)), rtol=0, atol=1e-12)
    assert got.notna().all()
    res = reading.ppp(t, "rt", "gpt3_surprisal", frequency="ngram_log10_freq", position="position")
    # Story 1's first word has no GPT-3 probability: it and the word 4 later are the only losses after history.
    assert res.excluded["history"] == 4 and res.excluded["spillover_nan"] == 1 and res.excluded["surprisal_nan"] == 0


CHANGED = [("exclusions", "exclusions='aoyama_wilcox' replaced exclusions='lhp' in 0.2.0", "exclusions='lhp'"),
           ("spillover", "spillover=4 replaced spillover=3 in 0.2.0", "spillover=3")]


@pytest.mark.parametrize("function", ["ppp", "ppp_over_steps", "exclusion_table"])
def test_relying_on_a_changed_default_warns_with_the_old_value_and_passing_it_is_silent(function):
    """Both defaults changed in 0.2.0: a call that relies on one is told the old value and how to keep it."""
    from lhp_core.deprecation import ChangedDefaultWarning

    t = BAD_TABLE
    name = "rules" if function == "exclusion_table" else "exclusions"
    calls = {"ppp": lambda **kw: reading.ppp(t, "rt", "surp", frequency="freq", length="len", **kw),
             "ppp_over_steps": lambda **kw: reading.ppp_over_steps(t, _steps(t, t["surp"].to_numpy()[None]), "rt",
                                                                   frequency="freq", length="len", **kw),
             "exclusion_table": lambda **kw: reading.exclusion_table(t, "rt", t["surp"].to_numpy(), frequency="freq",
                                                                     length="len", **kw)}
    call = calls[function]
    with pytest.warns(ChangedDefaultWarning) as rec:
        relied = call()
    got = sorted(str(w.message) for w in rec if w.category is ChangedDefaultWarning)
    assert len(got) == 2 and all(str(w.filename) == __file__ for w in rec)
    for message, (arg, said, keep) in zip(got, sorted(CHANGED)):
        arg = name if arg == "exclusions" else arg
        assert message.startswith(f"reading.{function}: the default {said.replace('exclusions', arg)}")
        assert f"pass {keep.replace('exclusions', arg)} for the old behaviour" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChangedDefaultWarning)
        explicit = call(**{name: "aoyama_wilcox", "spillover": 4})
        call(**{name: "lhp", "spillover": None})  # None: the paradigm's spillover, chosen on purpose
    if function == "ppp":
        assert explicit.mean == relied.mean  # the warning changes nothing but the words
