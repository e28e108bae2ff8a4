"""When a word is learned: children's age of acquisition (Wordbank) and a model's, over training.

Children (:func:`child_aoa`): a word's age of acquisition (AoA) is the age at which half of the
children produce it, from a binomial GLM of ``produces`` on age per word, as ``wordbankr::fit_aoa``
fits it (Frank et al. 2017); the interval resamples children within each month of age. Wordbank
publishes ``ceil`` of that age (the first whole month at which the fit reaches one half,
:func:`wordbank_rounding`).

Models (:func:`word_aoa_over_steps`), after Chang & Bergen (2022, *Word acquisition in neural
language models*, TACL): a word's mean surprisal in held-out contexts at every checkpoint, a
four-parameter sigmoid fitted on log10 step (:func:`fit_sigmoid`), and the AoA is the step where
the fit crosses the midpoint between the untrained level (step 0) and the fitted final level
(:func:`sigmoid_aoa`); the interval resamples each word's contexts.

The CDI's items are printed forms (``chicken (animal)``, ``soda/pop``, ``child's own name``);
:func:`text_forms` maps each to the text a model scores, or excludes it with the reason.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from lhp_core import schema
from lhp_core.measures import Checkpoint, Measure, over_grid, over_steps
from lhp_core.metrics.tasks import HFScorer
from lhp_core.provenance import config_sha256
from lhp_core.suites import context_length

#: CDI sections grouped into lexical classes (Bates et al. 1994, as Wordbank groups the English form).
LEXICAL_CLASS: dict[str, str] = {
    **{c: "nouns" for c in ("animals", "vehicles", "toys", "food_drink", "clothing", "body_parts", "household",
                             "furniture_rooms", "outside", "places", "people")},
    "action_words": "verbs", "descriptive_words": "adjectives",
    **{c: "function_words" for c in ("pronouns", "question_words", "locations", "quantifiers", "helping_verbs",
                                      "connecting_words")},
    **{c: "other" for c in ("sounds", "games_routines", "time_words")},
}
_NAME_SLOT = re.compile(r"'s (own )?name$")
_SENSE = re.compile(r"\s*\(([^)]*)\)\s*$")


# ------------------------------------------------------------------------- children


def fit_logistic(x: np.ndarray, successes: np.ndarray, trials: np.ndarray, n_iter: int = 50,
                 tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Binomial GLM with logit link, ``logit p = a + b x``, by Newton's method, many fits at once.

    Parameters
    ----------
    x
        ``(n_x,)`` the predictor (ages in months).
    successes, trials
        ``(..., n_x)`` counts per predictor value; a cell with no trials carries no weight.

    Returns
    -------
    intercept, slope
        ``(...)`` each: the maximum-likelihood coefficients (as R's ``glm(cbind(k, n - k) ~ x, binomial)``).
    """
    x = np.asarray(x, dtype=float)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    xc = x - x.mean()  # centring keeps the Hessian well conditioned; the intercept is shifted back below
    p0 = np.clip(k.sum(-1) / np.maximum(n.sum(-1), 1), 1e-6, 1 - 1e-6)
    a = np.log(p0 / (1 - p0))
    b = np.zeros_like(a)
    for _ in range(n_iter):
        p = 1 / (1 + np.exp(-(a[..., None] + b[..., None] * xc)))
        w = n * p * (1 - p)
        r = k - n * p
        g0, g1 = r.sum(-1), (r * xc).sum(-1)
        h00, h01, h11 = w.sum(-1), (w * xc).sum(-1), (w * xc * xc).sum(-1)
        det = h00 * h11 - h01 ** 2
        da = (h11 * g0 - h01 * g1) / det
        db = (h00 * g1 - h01 * g0) / det
        a, b = a + da, b + db
        if np.nanmax(np.abs(np.concatenate([np.ravel(da), np.ravel(db)]))) < tol:
            break
    return a - b * x.mean(), b


def wordbank_rounding(aoa: np.ndarray | pd.Series) -> np.ndarray:
    """Wordbank's published AoA from a fitted one: the first whole month at which the fit reaches one half.

    The fit rises with age, so that month is ``ceil(aoa)``; it reproduces every published estimate whose
    fitted age lies inside the form's 16-30 months (``tests/unit/test_words.py``).
    """
    return np.ceil(np.asarray(aoa, dtype=float))


def child_aoa(responses: pd.DataFrame, n_boot: int = 200, proportion: float = 0.5, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Each CDI word's age of acquisition, with an interval from resampling children.

    Parameters
    ----------
    responses
        :func:`lhp_core.data.wordbank.responses` (missing reports are left out of each word's counts).
    n_boot
        Bootstrap resamples; children are resampled with replacement within each month of age, so every
        resample keeps the study's age distribution.
    proportion
        Share of children producing the word at its AoA (0.5 as Wordbank).

    Returns
    -------
    pandas.DataFrame
        One row per item in form order: ``item_id, item_definition, category, lexical_class, aoa``
        (months; may lie outside 16-30 when the fit extrapolates), ``aoa_lo, aoa_hi`` (percentile
        interval at ``level``), ``intercept, slope`` (logit scale, per month), ``n_children`` (reports).
    """
    if not 0 < proportion < 1:
        raise ValueError(f"proportion must be in (0, 1), got {proportion}")
    missing = {"data_id", "item_id", "item_definition", "category", "age", "produces"} - set(responses.columns)
    if missing:
        raise ValueError(f"responses lack columns {sorted(missing)}; pass lhp_core.data.wordbank.responses()")
    items = (responses.drop_duplicates("item_id")[["item_id", "item_definition", "category"]]
             .assign(_o=lambda d: d["item_id"].str.removeprefix("item_").astype(int)).sort_values("_o")
             .drop(columns="_o").reset_index(drop=True))
    wide = responses.pivot(index="data_id", columns="item_id", values="produces")[items["item_id"]]
    ages = responses.drop_duplicates("data_id").set_index("data_id")["age"].loc[wide.index].to_numpy()
    said = wide.to_numpy(dtype=float, na_value=np.nan)
    known = np.isfinite(said)
    said = np.where(known, said, 0.0)
    months = np.unique(ages)
    k = np.stack([said[ages == a].sum(0) for a in months], -1)  # (item, month)
    n = np.stack([known[ages == a].sum(0) for a in months], -1).astype(float)
    a, b = fit_logistic(months, k, n)
    target = np.log(proportion / (1 - proportion))
    aoa = (target - a) / b
    rng = np.random.default_rng(seed)
    kb = np.zeros((n_boot, len(items), len(months)))
    nb = np.zeros_like(kb)
    for j, month in enumerate(months):
        rows = np.flatnonzero(ages == month)
        weights = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=n_boot).astype(float)
        kb[..., j] = weights @ said[rows]
        nb[..., j] = weights @ known[rows]
    ab, bb = fit_logistic(months, kb, nb)
    boot = (target - ab) / bb
    tail = 100 * (1 - level) / 2
    return items.assign(
        lexical_class=items["category"].map(LEXICAL_CLASS).fillna("other"), aoa=aoa,
        aoa_lo=np.percentile(boot, tail, axis=0), aoa_hi=np.percentile(boot, 100 - tail, axis=0),
        intercept=a, slope=b, n_children=n.sum(-1).astype(int),
    )


def text_forms(items: pd.DataFrame) -> pd.DataFrame:
    """The text a model scores for each CDI item, or why the item is left out.

    Rules, in order: a name slot (``child's own name``, ``pet's name``) is excluded (no fixed text);
    the CDI's asterisk (a word with a family-specific variant) is dropped; of alternatives
    (``soda/pop``, ``wanna/want to``) the first is scored; a sense label (``chicken (animal)``) is
    dropped, and when two items then share a text (``chicken (animal)`` and ``chicken (food)``) both
    are excluded as homographs, since a text cannot tell their senses apart; ``!`` is dropped
    (``give me five!``). Multi-word items (``choo choo``, ``uh oh``) are scored as their words.

    Parameters
    ----------
    items
        Columns ``item_id, item_definition`` (:func:`lhp_core.data.wordbank.words`).

    Returns
    -------
    pandas.DataFrame
        ``item_id, item_definition, form`` (None when excluded), ``rule`` (how it was mapped) and
        ``excluded`` (the reason, or ``""``).
    """
    rows = []
    for item_id, text in zip(items["item_id"], items["item_definition"]):
        if _NAME_SLOT.search(text):
            rows.append((item_id, text, None, "name slot", "name slot: no fixed text to score"))
            continue
        form, rule = text.replace("*", "").strip(), []
        if "*" in text:
            rule.append("asterisk dropped")
        if "/" in form:
            form = form.split("/")[0].strip()
            rule.append("first alternative")
        sense = _SENSE.search(form)
        if sense:
            form = form[: sense.start()].strip()
            rule.append(f"sense label ({sense.group(1)}) dropped")
        if form.endswith("!"):
            form = form.rstrip("!").strip()
            rule.append("! dropped")
        if " " in form:
            rule.append("multi-word")
        rows.append((item_id, text, form, ", ".join(rule) or "as printed", ""))
    out = pd.DataFrame(rows, columns=["item_id", "item_definition", "form", "rule", "excluded"])
    shared = out["form"].notna() & out["form"].str.lower().duplicated(keep=False)
    for i in np.flatnonzero(shared):
        others = out.loc[shared & (out["form"].str.lower() == out.at[i, "form"].lower()), "item_definition"]
        out.at[i, "excluded"] = "homograph of " + ", ".join(o for o in others if o != out.at[i, "item_definition"])
    out.loc[out["excluded"] != "", "form"] = None
    return out


# ------------------------------------------------------------------------- model side: the sigmoid


def sigmoid(x: np.ndarray, top: np.ndarray, bottom: np.ndarray, x0: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``bottom + (top - bottom) / (1 + exp(k (x - x0)))``: falls from ``top`` to ``bottom`` around ``x0``.

    Parameters broadcast against ``x`` on the last axis (``(...)`` each, ``x`` ``(n_x,)``).
    """
    top, bottom, x0, k = (np.asarray(v, dtype=float)[..., None] for v in (top, bottom, x0, k))
    return bottom + (top - bottom) / (1 + np.exp(np.clip(k * (x - x0), -500, 500)))


def fit_sigmoid(x: np.ndarray, y: np.ndarray, n_iter: int = 300) -> np.ndarray:
    """Least-squares fit of :func:`sigmoid` to many curves at once (Levenberg-Marquardt).

    Each curve stops after 8 rounds in a row without a relative improvement above 1e-13 once its damping
    has grown past 1e4 (a step that small changes nothing), or after ``n_iter`` rounds.

    Parameters
    ----------
    x
        ``(n_x,)`` positions (log10 step).
    y
        ``(..., n_x)`` curves (mean surprisal); NaN marks a missing point, which carries no weight.

    Returns
    -------
    numpy.ndarray
        ``(..., 4)``: ``top, bottom, x0, k`` minimising the sum of squared residuals (NaN where a curve
        has fewer than 4 points).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    shape = y.shape[:-1]
    y = y.reshape(-1, x.size)
    w = np.isfinite(y).astype(float)
    y0 = np.where(w > 0, y, 0.0)
    span = max(float(np.ptp(x)), 1e-12)
    lo, hi = np.nanmin(np.where(w > 0, y, np.nan), -1), np.nanmax(np.where(w > 0, y, np.nan), -1)
    # Start between the extremes, crossing the middle of x with a slope spanning the range.
    theta = np.stack([hi, lo, np.full_like(hi, x.mean()), np.full_like(hi, 8 / span)], -1)
    theta = np.where(np.isfinite(theta), theta, 0.0)

    def fit(t):
        s = 1 / (1 + np.exp(np.clip(t[:, 3:4] * (x - t[:, 2:3]), -500, 500)))
        return t[:, 1:2] + (t[:, 0:1] - t[:, 1:2]) * s, s

    def sse(t, y0, w):
        return (w * (y0 - fit(t)[0]) ** 2).sum(-1)

    lam = np.full(len(theta), 1e-3)
    cost = sse(theta, y0, w)
    stalled = np.zeros(len(theta), dtype=int)
    live = np.arange(len(theta))
    eye = np.eye(4)
    for _ in range(n_iter):
        # Each curve stops on its own once it has not improved for several rounds of growing damping,
        # so the converged majority stops costing time.
        if live.size == 0:
            break
        t, yy, ww = theta[live], y0[live], w[live]
        f, s = fit(t)
        ds = (t[:, 0:1] - t[:, 1:2]) * s * (1 - s)
        jac = np.stack([s, 1 - s, ds * t[:, 3:4], -ds * (x - t[:, 2:3])], -1)
        jw = jac * ww[..., None]
        jtj = jw.transpose(0, 2, 1) @ jac
        g = (jw.transpose(0, 2, 1) @ (yy - f)[..., None])[..., 0]
        damp = lam[live, None, None] * (eye * np.maximum(np.diagonal(jtj, 0, -2, -1)[:, None, :], 1e-12))
        trial = t + np.linalg.solve(jtj + damp + eye * 1e-15, g[..., None])[..., 0]
        new = sse(trial, yy, ww)
        better = new < cost[live]
        improved = better & (cost[live] - new > 1e-13 * np.maximum(cost[live], 1e-300))
        theta[live] = np.where(better[:, None], trial, t)
        cost[live] = np.where(better, new, cost[live])
        lam[live] = np.where(better, lam[live] / 3, lam[live] * 3)
        stalled[live] = np.where(improved, 0, stalled[live] + 1)
        live = live[(stalled[live] < 8) | (lam[live] < 1e4)]
    theta[w.sum(-1) < 4] = np.nan
    return theta.reshape(shape + (4,))


def sigmoid_aoa(x: np.ndarray, theta: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Where a fitted curve crosses the midpoint between its start and its fitted final level.

    Parameters
    ----------
    x
        ``(n_x,)`` the fitted positions; the final level is the fit at ``x[-1]``.
    theta
        ``(..., 4)`` from :func:`fit_sigmoid`.
    start
        ``(...)`` the untrained level (surprisal at step 0); None uses the fitted ``top``.

    Returns
    -------
    numpy.ndarray
        ``(...)`` the crossing, in units of ``x`` (log10 step); NaN where the curve does not fall
        (final level not below the start, or ``k <= 0``), where the midpoint lies outside the fit's asymptotes,
        and where the crossing lies more than one decade before ``x[0]``. A word already half learned at the
        first positive step crosses before it (the fit extrapolates, up to that decade).
    """
    top, bottom, x0, k = np.moveaxis(np.asarray(theta, dtype=float), -1, 0)
    final = sigmoid(np.asarray([x[-1]], dtype=float), top, bottom, x0, k)[..., 0]
    start = top if start is None else np.asarray(start, dtype=float)
    mid = (start + final) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (mid - bottom) / (top - bottom)
        out = x0 + np.log(1 / share - 1) / k
    # The crossing lies before the last step whenever the fit falls; a decade before the first step is as far
    # back as an extrapolation is kept.
    ok = (final < start) & (k > 0) & (share > 0) & (share < 1) & (out >= x[0] - 1) & (out <= x[-1] + 1e-9)
    return np.where(ok, out, np.nan)


# ------------------------------------------------------------------------- model side: contexts and surprisal


def occurrences(forms: Sequence[str], docs: Sequence[str]) -> dict[str, list[tuple[int, int, int]]]:
    """Where each form occurs in ``docs``: ``(document, start, end)`` character spans, in text order.

    Words are runs of letters, digits and apostrophes compared in lower case, so a form matches whole words,
    never inside another word or a contraction (``dog`` is not found in ``hotdog`` or ``dog's``); a multi-word
    form (``choo choo``) matches its words separated by whitespace only.
    """
    wanted = {tuple(f.lower().split()) for f in forms}
    # Only a token that starts some form is looked at further (most tokens start none).
    sizes_of: dict[str, set[int]] = {}
    for w in wanted:
        sizes_of.setdefault(w[0], set()).add(len(w))
    spans: dict[tuple[str, ...], list[tuple[int, int, int]]] = {w: [] for w in wanted}
    for d, doc in enumerate(docs):
        matches = list(re.finditer(r"[\w']+", doc))
        words = [m.group().lower() for m in matches]
        for i, first in enumerate(words):
            for n in sizes_of.get(first, ()):
                if n == 1:
                    spans[(first,)].append((d, matches[i].start(), matches[i].end()))
                    continue
                gram = tuple(words[i: i + n])
                if len(gram) == n and gram in spans and all(not doc[matches[j].end(): matches[j + 1].start()].strip()
                                         for j in range(i, i + n - 1)):
                    spans[gram].append((d, matches[i].start(), matches[i + n - 1].end()))
    return {f: spans[tuple(f.lower().split())] for f in dict.fromkeys(forms)}


def word_contexts(forms: Sequence[str], docs: Sequence[str], max_per_word: int = 50, context_chars: int = 300,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Held-out occurrences of each form and the text before each.

    A form matches as :func:`occurrences` finds it.

    Parameters
    ----------
    forms
        Texts to find (:func:`text_forms`).
    docs
        Held-out documents (``lhp_core.corpus.load().val``), never text a suite trained on.
    max_per_word
        At most this many occurrences per form, drawn at random (``seed``) when there are more.
    context_chars
        Characters of preceding text kept (cut back to a word boundary).

    Returns
    -------
    contexts
        One row per kept occurrence: ``stimulus`` (``"<form>#<i>"``), ``form``, ``context`` (the
        preceding text, trailing space stripped), ``target`` (the occurrence as written, after one space
        when there is a context).
    counts
        Occurrences of every form in ``docs`` (before the cap), indexed by form.
    """
    if max_per_word < 1:
        raise ValueError(f"max_per_word must be >= 1, got {max_per_word}")
    rng = np.random.default_rng(seed)
    rows, counts = [], {}
    found = occurrences(forms, docs)
    for form in dict.fromkeys(forms):
        hits = found[form]
        counts[form] = len(hits)
        keep = (sorted(rng.choice(len(hits), max_per_word, replace=False)) if len(hits) > max_per_word
                else range(len(hits)))
        for i, j in enumerate(keep):
            d, a, b = hits[j]
            before = docs[d][max(0, a - context_chars): a]
            if a > context_chars and " " in before:
                before = before[before.index(" ") + 1:]
            before = before.rstrip()
            word = " ".join(docs[d][a:b].split())
            rows.append((f"{form}#{i}", form, before, f" {word}" if before else word))
    table = pd.DataFrame(rows, columns=["stimulus", "form", "context", "target"])
    return table, pd.Series(counts, name="n_occurrences", dtype=int)


def word_aoa_over_steps(suite, contexts: pd.DataFrame, models: Sequence[str] | None = None,
                        steps: Sequence[int] | None = None, device: str = "cpu", n_boot: int = 200,
                        level: float = 0.95, seed: int = 0, batch_size: int = 64, cache: bool = True,
                        progress: bool = True) -> xr.Dataset:
    """Each word's surprisal in its held-out contexts at every checkpoint, and its AoA (Chang & Bergen 2022).

    Parameters
    ----------
    suite
        A suite id, folder or :class:`lhp_core.suites.Suite` (its checkpoints, ``tokens_seen`` and tokenizer).
    contexts
        :func:`word_contexts`' table.
    models, steps
        The grid; step 0 (the untrained model) gives each word's start level, else the fitted top is used.
    n_boot
        Resamples of each word's contexts for the AoA interval.

    Returns
    -------
    xarray.Dataset
        ``surprisal`` ``(model, step, stimulus)`` and ``mean_surprisal`` ``(model, step, word)`` in bits;
        ``aoa_step, aoa_lo, aoa_hi`` ``(model, word)`` (steps; NaN where the curve does not fall);
        ``n_contexts`` ``(word)``; coordinates ``tokens_seen``, ``stimulus_word(stimulus)``.
    """
    if contexts.empty:
        raise ValueError("no contexts to score; lower min_occurrences or pass more held-out documents")
    ids = contexts["stimulus"].tolist()
    pairs = list(zip(contexts["context"], contexts["target"]))
    if len(set(ids)) != len(ids):
        raise ValueError("contexts have repeated stimulus ids; build them with word_contexts")

    def compute(ck: Checkpoint) -> xr.Dataset:
        # Scored as the task battery scores continuations: <BOS> + context, the word tokenised on its own,
        # an over-long context keeping its end.
        scorer = HFScorer(ck.lm, ck.tokenizer, ck.device, batch_size, max_len=context_length(ck.suite, ck.lm))
        s = -np.array([c.logprob for c in scorer.score(pairs)]) / np.log(2)
        return xr.Dataset({"surprisal": (schema.STIMULUS, s, {
            "units": "bits",
            "description": "surprisal of the word (sum over its tokens) after <BOS> + its held-out context"})},
            coords={schema.STIMULUS: ids})

    key = {"contexts": config_sha256({"c": contexts[["stimulus", "context", "target"]].values.tolist()})}
    measure = Measure("word_aoa", compute, key, description="surprisal of CDI words in held-out contexts")
    ds = over_steps(suite, measure, models, steps, device=device, cache=cache, progress=progress)
    words = list(dict.fromkeys(contexts["form"]))
    word_of = contexts["form"].to_numpy()
    ds = ds.assign_coords(stimulus_word=(schema.STIMULUS, word_of))
    ds["stimulus_word"].attrs.update(units=schema.TEXT, description="the word each context is scored for")
    mean = ds["surprisal"].groupby("stimulus_word").mean().rename(stimulus_word=schema.WORD).sel({schema.WORD: words})
    ds["mean_surprisal"] = mean.drop_vars([c for c in mean.coords if c not in (schema.MODEL, schema.STEP, schema.WORD)])
    ds["mean_surprisal"].attrs.update(units="bits", description="mean surprisal of the word over its held-out contexts")

    def fit() -> xr.Dataset:
        step_values = ds[schema.STEP].values.astype(float)
        rng = np.random.default_rng(seed)
        surprisal = ds["surprisal"].transpose(schema.MODEL, schema.STEP, schema.STIMULUS).values
        curves = np.empty((ds.sizes[schema.MODEL], len(words), 1 + n_boot, len(step_values)))
        for w, word in enumerate(words):
            cols = np.flatnonzero(word_of == word)
            draws = cols[rng.integers(0, len(cols), (n_boot, len(cols)))]
            curves[:, w, 0] = surprisal[:, :, cols].mean(-1)
            curves[:, w, 1:] = surprisal[:, :, draws].mean(-1).transpose(0, 2, 1)
        fitted = curve_aoa(step_values, curves)  # one batched fit of every (model, word, resample)
        aoa, boot = fitted[..., 0], fitted[..., 1:]
        tail = 100 * (1 - level) / 2
        has = np.isfinite(boot).mean(-1) >= 0.5  # an interval only where most resamples cross the midpoint
        filled = np.where(has[..., None], boot, 0.0)
        lo = np.where(has, np.nanpercentile(filled, tail, -1), np.nan)
        hi = np.where(has, np.nanpercentile(filled, 100 - tail, -1), np.nan)
        dims = (schema.MODEL, schema.WORD)
        return xr.Dataset({
            "aoa_step": (dims, aoa, {"units": "steps", "description": "step where the sigmoid fit on log10 step "
                                     "crosses the midpoint between the untrained and the final surprisal"}),
            "aoa_lo": (dims, lo, {"units": "steps", "description": f"{level:.0%} interval of aoa_step, lower "
                                  "(resampling the word's contexts)"}),
            "aoa_hi": (dims, hi, {"units": "steps", "description": f"{level:.0%} interval of aoa_step, upper"}),
        }, coords={schema.MODEL: ds[schema.MODEL].values, schema.WORD: words})

    # The fit of every (model, word, resample) is the costly part once the surprisal is cached; it is kept
    # by the grid it was fitted on, so the Timeline's second reading of the study does not fit again.
    aoa = over_grid("word_aoa_fit", ds, {"n_boot": n_boot, "level": level, "seed": seed}, fit, cache=cache)
    for name in ("aoa_step", "aoa_lo", "aoa_hi"):
        ds[name] = aoa[name]
    ds["n_contexts"] = (schema.WORD, np.array([int((word_of == w).sum()) for w in words]),
                        {"units": "contexts", "description": "held-out contexts scored for the word"})
    ds.attrs.update(n_boot=int(n_boot), level=float(level), n_words=len(words))
    return ds


def curve_aoa(steps: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """AoA step of surprisal curves over ``steps``: sigmoid on log10 step, midpoint from the step-0 level.

    Parameters
    ----------
    steps
        ``(n_step,)`` checkpoint steps, ascending; step 0 (if present) is the untrained level.
    curves
        ``(..., n_step)`` mean surprisal.

    Returns
    -------
    numpy.ndarray
        ``(...)`` the AoA in steps (NaN where the curve does not fall).
    """
    steps = np.asarray(steps, dtype=float)
    pos = steps > 0
    x = np.log10(steps[pos])
    theta = fit_sigmoid(x, curves[..., pos])
    start = curves[..., list(steps).index(0.0)] if 0.0 in steps else None
    return 10 ** sigmoid_aoa(x, theta, start)


# ------------------------------------------------------------------------- comparison


def spearman(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, n_perm: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict[str, float]:
    """Spearman's rho with a percentile bootstrap interval (resampling pairs) and a permutation p-value.

    Returns
    -------
    dict
        ``rho, lo, hi, p`` (two-sided, ``(1 + #|rho_perm| >= |rho|) / (1 + n_perm)``), ``null_q95``
        (95th percentile of ``|rho_perm|``), ``n`` (pairs).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 4:
        raise ValueError(f"need two equal-length arrays of at least 4 pairs, got {len(x)} and {len(y)}")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    bx, by = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    bx, by = bx - bx.mean(1, keepdims=True), by - by.mean(1, keepdims=True)
    with np.errstate(invalid="ignore"):
        boot = (bx * by).sum(1) / np.sqrt((bx ** 2).sum(1) * (by ** 2).sum(1))
    perm = np.array([np.corrcoef(rx, rng.permutation(ry))[0, 1] for _ in range(n_perm)])
    tail = 100 * (1 - level) / 2
    return {"rho": rho, "lo": float(np.nanpercentile(boot, tail)), "hi": float(np.nanpercentile(boot, 100 - tail)),
            "p": float((1 + (np.abs(perm) >= abs(rho) - 1e-12).sum()) / (1 + n_perm)),
            "null_q95": float(np.percentile(np.abs(perm), 95)), "n": int(len(x))}


def regression(table: pd.DataFrame, outcome: str, predictors: Sequence[str], categorical: str | None = None,
               level: float = 0.95) -> pd.DataFrame:
    """Ordinary least squares of ``outcome`` on z-scored ``predictors`` (and treatment-coded ``categorical``).

    Parameters
    ----------
    table
        One row per word; rows with a missing value in any column used are dropped (count in attrs).
    categorical
        Column of levels; its first level in sorted order is the reference.

    Returns
    -------
    pandas.DataFrame
        ``term, coef, se, lo, hi, t, p`` (t distribution on the residual degrees of freedom); attrs
        ``n`` (words), ``n_dropped``, ``r2``.
    """
    cols = [outcome, *predictors, *([categorical] if categorical else [])]
    data = table[cols].dropna()
    X = [np.ones(len(data))]
    names = ["intercept"]
    for p in predictors:
        v = data[p].to_numpy(dtype=float)
        X.append((v - v.mean()) / v.std(ddof=1))
        names.append(p)
    if categorical:
        levels = sorted(data[categorical].unique())
        for lev in levels[1:]:
            X.append((data[categorical] == lev).to_numpy(dtype=float))
            names.append(f"{categorical}[{lev}]")
    X = np.column_stack(X)
    y = data[outcome].to_numpy(dtype=float)
    dof = len(y) - X.shape[1]
    if dof < 1:
        raise ValueError(f"{len(y)} complete rows for {X.shape[1]} coefficients; need more words")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    sigma2 = resid @ resid / dof
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * sigma2)
    t = coef / se
    q = stats.t.ppf(1 - (1 - level) / 2, dof)
    out = pd.DataFrame({"term": names, "coef": coef, "se": se, "lo": coef - q * se, "hi": coef + q * se, "t": t,
                        "p": 2 * stats.t.sf(np.abs(t), dof)})
    total = (y - y.mean()) @ (y - y.mean())
    out.attrs.update(n=len(y), n_dropped=len(table) - len(y), r2=float(1 - resid @ resid / total))
    return out


def word_frequencies(forms: Sequence[str], docs: Sequence[str], add: float = 0.0) -> pd.Series:
    """Occurrences per million words of each form in ``docs``, indexed by form.

    Words are runs of letters, digits and apostrophes, compared in lower case; a multi-word form counts
    its word sequence (the same matches as :func:`word_contexts`). ``add`` occurrences are added to every
    count (1: add-one smoothing, so the log frequency of an absent word is finite).
    """
    n_words = sum(len(re.findall(r"[\w']+", d)) for d in docs)
    return pd.Series({f: (len(hits) + add) * 1e6 / max(n_words, 1) for f, hits in occurrences(forms, docs).items()},
                     name="per_million", dtype=float)

