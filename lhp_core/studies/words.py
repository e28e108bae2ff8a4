"""Words: when a language model learns each word, and when children do (Chang & Bergen 2022).

Claims: (1) the order in which a model comes to predict words follows the order in which children
come to say them (a positive rank correlation of the two ages of acquisition); (2) frequency predicts
a model's age of acquisition (AoA) more strongly than children's, whose AoA also depends on lexical
class (nouns early whatever their frequency).

:func:`run` fits children's AoA for the CDI's words (Wordbank, :func:`lhp_core.metrics.words.child_aoa`),
scores each word with enough held-out occurrences at every checkpoint of the suite and fits its AoA
(:func:`lhp_core.metrics.words.word_aoa_over_steps`), and compares the two orders: Spearman with a
bootstrap interval and a permutation null, one regression per learner on frequency, length and lexical
class, and the CDI categories each learns relatively earlier. It needs only the suite's checkpoints,
their ``tokens_seen`` and the tokenizer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import corpus, schema
from lhp_core.data import corpora, wordbank
from lhp_core.findings import Finding
from lhp_core.metrics import words
from lhp_core.metrics.events import POOLED, Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite, get_suite, size_order

SOURCE = "Chang & Bergen 2022"
STUDY = "words"
#: Name of the Timeline panel the AoA events sit on.
CURVE = "mean surprisal of CDI words"
#: Ages (months) the children's data cover; AoAs fitted outside them are extrapolations, left out of the comparison.
AGE_RANGE = (16.0, 30.0)
PREDICTORS = ["log_frequency", "length"]


@dataclass
class Words:
    """Everything the words chapter shows; see :func:`run`."""

    suite: Suite
    models: list[str]
    children: pd.DataFrame
    forms: pd.DataFrame
    counts: pd.Series
    min_occurrences: int
    model_aoa: xr.Dataset
    table: pd.DataFrame
    correlation: pd.DataFrame
    regressions: dict[str, pd.DataFrame]
    categories: pd.DataFrame
    params: dict = field(default_factory=dict)

    @property
    def big(self) -> str:
        """The largest model (the suite's size order)."""
        return size_order(self.models)[-1]

    @property
    def closest(self) -> str:
        """The model whose word order is closest to children's (highest Spearman rho)."""
        return str(self.correlation["rho"].idxmax())

    def eligibility(self) -> pd.DataFrame:
        """Every CDI item: its scored text, held-out occurrences, and whether and why it is left out."""
        t = self.forms.merge(self.children[["item_id", "category", "aoa"]], on="item_id")
        t["n_occurrences"] = t["form"].map(self.counts).fillna(0).astype(int)
        reason = t["excluded"].copy()
        few = (reason == "") & (t["n_occurrences"] < self.min_occurrences)
        reason[few] = f"fewer than {self.min_occurrences} held-out occurrences"
        off = (reason == "") & ~t["aoa"].between(*AGE_RANGE)
        reason[off] = "children's AoA outside 16-30 months (extrapolated)"
        return t.assign(left_out=reason)

    def exclusions(self) -> pd.DataFrame:
        """How many items each reason leaves out."""
        e = self.eligibility()
        reason = e["left_out"].where(~e["left_out"].str.startswith("homograph"), "homograph: two CDI senses, one text")
        out = e.assign(reason=reason)[reason != ""].groupby("reason")
        return out["item_definition"].agg(items="size", examples=lambda v: ", ".join(v.head(4))).reset_index()

    def curves(self) -> list[Curve]:
        """The mean surprisal of the scored words over training, per model."""
        da = self.model_aoa["mean_surprisal"].mean(schema.WORD)
        da.attrs.update(units="bits", description="mean over CDI words of their held-out surprisal")
        return [Curve(CURVE, "bits", da, None, "mean surprisal of the CDI words scored, over their held-out contexts")]

    def events(self, min_words: int = 5) -> pd.DataFrame:
        """Median model AoA of each CDI category per model (categories with ``min_words`` acquired words or more),
        interval from resampling the category's words."""
        rows = []
        rng = np.random.default_rng(self.params.get("seed", 0))
        t = self.table
        for m in self.models:
            last = self.suite.steps(m)[-1]
            per_step = self.suite.tokens_seen(m, last) / last
            for cat, g in t[t[schema.MODEL] == m].groupby("category"):
                aoa = g["model_aoa"].dropna().to_numpy()
                if len(aoa) < min_words:
                    continue
                boot = np.median(aoa[rng.integers(0, len(aoa), (self.params.get("n_boot", 200), len(aoa)))], 1)
                step = float(np.median(aoa))
                rows.append({"study": STUDY, "measure": CURVE, "model": m, "seed": POOLED,
                             "kind": f"median AoA: {cat}", "step": step,
                             "step_lo": min(step, float(np.percentile(boot, 2.5))),
                             "step_hi": max(step, float(np.percentile(boot, 97.5))), "found": True,
                             "tokens_per_step": per_step})
        if not rows:
            return event_table(pd.DataFrame(columns=["study", "measure", "model", "seed", "kind", "step", "step_lo",
                                                     "step_hi", "found"]).astype({"found": bool}))
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def findings(self) -> list[Finding]:
        big, c = self.big, self.correlation.loc[self.big]
        rm, rc = self.regressions[f"model {big}"].set_index("term"), self.regressions["children"].set_index("term")
        fm, fc = rm.loc["log_frequency"], rc.loc["log_frequency"]
        sm, sc = standardized(self.regressions[f"model {big}"]), standardized(self.regressions["children"])
        return [
            Finding("words_order_follows_children", "words children say early, a language model learns early",
                    SOURCE,
                    f"Model {big}, {int(c.n)} CDI words: Spearman {c.rho:.2f} [{c.lo:.2f}, {c.hi:.2f}] between "
                    f"model and child AoA (permutation p = {c.p:.3f}); closest model: {self.closest} "
                    f"({self.correlation.at[self.closest, 'rho']:.2f}).",
                    self.suite.id, order_verdict(c.lo, c.hi, c.p)),
            Finding("words_frequency_drives_models", "frequency predicts a model's AoA more than children's",
                    SOURCE,
                    f"Model {big}: log frequency coefficient {sm:.2f} SD of log AoA per SD "
                    f"[{fm.lo / rm.attrs['sd']:.2f}, {fm.hi / rm.attrs['sd']:.2f}]; children (CHILDES frequency): "
                    f"{sc:.2f} [{fc.lo / rc.attrs['sd']:.2f}, {fc.hi / rc.attrs['sd']:.2f}] SD of AoA per SD.",
                    self.suite.id, frequency_verdict(fm.hi, sm, sc)),
        ]

    def numbers(self) -> dict:
        big, c = self.big, self.correlation.loc[self.big]
        e = self.eligibility()
        out = dict(
            model=big, closest_model=self.closest, n_items=len(e), n_scoreable=int((e["excluded"] == "").sum()),
            n_eligible=int(e["left_out"].eq("").sum()), min_occurrences=self.min_occurrences,
            n_compared=int(c.n), rho=float(c.rho), rho_lo=float(c.lo), rho_hi=float(c.hi), rho_p=float(c.p),
            rho_null_q95=float(c.null_q95),
            n_published_match=int(published_match(self.children)),
            n_model_aoa_found=int(np.isfinite(self.model_aoa["aoa_step"].sel(model=big)).sum()),
        )
        for m in self.models:
            out[f"rho_{m}"] = float(self.correlation.at[m, "rho"])
        for who, reg in (("model", self.regressions[f"model {big}"]), ("children", self.regressions["children"])):
            r = reg.set_index("term")
            for term in PREDICTORS:
                out[f"coef_{who}_{term}"] = float(r.at[term, "coef"])
                out[f"coef_{who}_{term}_lo"] = float(r.at[term, "lo"])
                out[f"coef_{who}_{term}_hi"] = float(r.at[term, "hi"])
            out[f"r2_{who}"] = float(reg.attrs["r2"])
        return out

    def example_words(self, per_class: int = 1) -> list[str]:
        """Words to draw learning curves for: per lexical class, the most frequent in training among those the
        largest model acquires (an AoA was found)."""
        t = self.table[(self.table[schema.MODEL] == self.big) & self.table["model_aoa"].notna()]
        top = t.sort_values("train_freq", ascending=False).groupby("lexical_class", sort=False).head(per_class)
        return top.sort_values("lexical_class")["word"].tolist()

    def predictor_table(self) -> pd.DataFrame:
        """Both regressions side by side: coefficient with interval per term and learner."""
        frames = []
        for who in ("children", f"model {self.big}"):
            r = self.regressions[who]
            frames.append(r.assign(learner=who, r2=r.attrs["r2"], n=r.attrs["n"]))
        return pd.concat(frames, ignore_index=True)[["learner", "term", "coef", "lo", "hi", "p", "r2", "n"]]


def order_verdict(lo: float, hi: float, p: float, alpha: float = 0.05) -> str:
    """Holds when the rank correlation's interval lies above 0 and the permutation p is below ``alpha``;
    contradicted when the interval lies below 0 (the model learns children's early words late)."""
    if lo > 0 and p < alpha:
        return "holds"
    return "contradicted" if hi < 0 and p < alpha else "does not hold at this scale"


def frequency_verdict(model_hi: float, model_std: float, child_std: float) -> str:
    """Holds when the model's frequency coefficient is negative (interval below 0) and, in SD of each
    learner's AoA per SD of log frequency, larger in size than children's; contradicted when the model's
    interval lies below 0 but children's effect is the larger; otherwise not shown at this scale."""
    if not model_hi < 0:
        return "does not hold at this scale"
    return "holds" if abs(model_std) > abs(child_std) else "contradicted"


def standardized(reg: pd.DataFrame, term: str = "log_frequency") -> float:
    """A coefficient of z-scored predictors in SD of the outcome per SD of the predictor."""
    return float(reg.set_index("term").at[term, "coef"] / reg.attrs["sd"])


def published_match(children: pd.DataFrame) -> int:
    """How many of Wordbank's published AoAs :func:`lhp_core.metrics.words.wordbank_rounding` reproduces exactly."""
    pub = wordbank.published_aoa().set_index("word")["aoa"]
    fit = children.set_index("item_definition")["aoa"].reindex(pub.index)
    return int((words.wordbank_rounding(fit) == pub).sum())


def category_shift(table: pd.DataFrame, n_boot: int = 200, seed: int = 0, min_words: int = 3) -> pd.DataFrame:
    """Per model and CDI category: how much earlier or later the model learns its words than children do.

    Each word's AoA is turned into its percentile rank among the compared words, separately for the model and
    for children; a category's shift is the mean of (model rank - child rank) over its words, with a bootstrap
    interval over words. Negative: the model learns the category relatively earlier.

    Returns
    -------
    pandas.DataFrame
        ``model, category, n, shift, lo, hi, learns`` (``"earlier"``, ``"later"`` or ``"as children"``).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for m, g in table.dropna(subset=["model_aoa", "child_aoa"]).groupby(schema.MODEL, sort=False):
        diff = g["model_aoa"].rank(pct=True) - g["child_aoa"].rank(pct=True)
        for cat, d in diff.groupby(g["category"]):
            if len(d) < min_words:
                continue
            v = d.to_numpy()
            boot = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            rows.append({"model": m, "category": cat, "n": len(v), "shift": v.mean(), "lo": lo, "hi": hi,
                         "learns": "earlier" if hi < 0 else "later" if lo > 0 else "as children"})
    return pd.DataFrame(rows, columns=["model", "category", "n", "shift", "lo", "hi", "learns"])


def run(suite: str, models: Sequence[str] | None = None, steps: Sequence[int] | None = None, device: str = "cpu",
        min_occurrences: int = 10, max_contexts: int = 40, context_chars: int = 300,
        corpus_names: Sequence[str] = corpus.DEFAULT_CORPORA, n_boot: int = 200, n_perm: int = 1000, seed: int = 0,
        progress: bool = True) -> Words:
    """Run the words study on ``suite`` (sizes as in the chapter's parameters).

    Parameters
    ----------
    min_occurrences
        A CDI word is scored when it occurs at least this often in the held-out split of ``corpus_names``.
    max_contexts
        At most this many of its held-out contexts are scored (drawn at random).
    corpus_names
        The bundled corpora whose held-out split gives the contexts and whose training split gives the
        model's word frequencies (``lhp_core.corpus``).
    """
    if min_occurrences < 1:
        raise ValueError(f"min_occurrences must be >= 1, got {min_occurrences}")
    s = get_suite(suite)
    models = [s.resolve_model(m) for m in (models or s.models)]
    children = words.child_aoa(wordbank.responses(), n_boot=n_boot, seed=seed)
    forms = words.text_forms(wordbank.words())
    scored = forms[forms["excluded"] == ""]
    split = corpus.load(tuple(corpus_names))
    in_range = children.set_index("item_id")["aoa"].between(*AGE_RANGE)
    all_contexts, counts = words.word_contexts(scored["form"].tolist(), split.val, max_per_word=max_contexts,
                                               context_chars=context_chars, seed=seed)
    keep = [f for f, i in zip(scored["form"], scored["item_id"]) if counts[f] >= min_occurrences and in_range[i]]
    if len(keep) < 4:
        raise ValueError(f"only {len(keep)} CDI words occur {min_occurrences}+ times in the held-out split of "
                         f"{list(corpus_names)}; lower min_occurrences")
    contexts = all_contexts[all_contexts["form"].isin(keep)].reset_index(drop=True)
    ds = words.word_aoa_over_steps(s, contexts, models, steps, device=device, n_boot=n_boot, seed=seed,
                                   progress=progress)
    table = comparison_table(ds, children, forms, split.train, models)
    correlation = pd.DataFrame({m: words.spearman(np.log10(g["model_aoa"]), g["child_aoa"], n_boot=n_boot,
                                                  n_perm=n_perm, seed=seed)
                                for m, g in table.dropna(subset=["model_aoa"]).groupby(schema.MODEL, sort=False)}
                               ).T.astype(float)
    big = size_order(models)[-1]
    regs = {}
    for who, data, outcome, freq in (("children", table[table[schema.MODEL] == big], "child_aoa", "childes_freq"),
                                     *((f"model {m}", table[table[schema.MODEL] == m].assign(
                                         log_aoa=lambda d: np.log10(d["model_aoa"])), "log_aoa", "train_freq")
                                       for m in models)):
        data = data.assign(log_frequency=np.log10(data[freq]))
        reg = words.regression(data, outcome, PREDICTORS, "lexical_class")
        reg.attrs["sd"] = float(data.dropna(subset=[outcome])[outcome].std(ddof=1))
        regs[who] = reg
    return Words(s, models, children, forms, counts, min_occurrences, ds, table, correlation, regs,
                 category_shift(table, n_boot=n_boot, seed=seed),
                 params=dict(seed=seed, device=device, n_boot=n_boot, max_contexts=max_contexts))


def comparison_table(ds: xr.Dataset, children: pd.DataFrame, forms: pd.DataFrame, train_docs: Sequence[str],
                     models: Sequence[str]) -> pd.DataFrame:
    """One row per (model, scored word): model and child AoA with intervals, frequencies, length, category.

    Frequencies are per million words, add-one smoothed (a word absent from a corpus gets 1 occurrence), in the
    training split (for the model) and in CHILDES child-directed speech (for children); length is letters.
    """
    scored = list(ds[schema.WORD].values)
    per_form = forms.dropna(subset=["form"]).merge(children, on=["item_id", "item_definition"]).set_index("form")
    per_form = per_form.loc[scored]
    train = words.word_frequencies(scored, train_docs, add=1)
    childes = words.word_frequencies(scored, corpora.documents("childes"), add=1)
    rows = []
    for m in models:
        aoa = ds.sel({schema.MODEL: m})
        rows.append(pd.DataFrame({
            schema.MODEL: m, "word": scored, "item_definition": per_form["item_definition"].to_numpy(),
            "category": per_form["category"].to_numpy(), "lexical_class": per_form["lexical_class"].to_numpy(),
            "child_aoa": per_form["aoa"].to_numpy(), "child_lo": per_form["aoa_lo"].to_numpy(),
            "child_hi": per_form["aoa_hi"].to_numpy(), "model_aoa": aoa["aoa_step"].values,
            "model_lo": aoa["aoa_lo"].values, "model_hi": aoa["aoa_hi"].values,
            "n_contexts": ds["n_contexts"].values, "train_freq": train.to_numpy(), "childes_freq": childes.to_numpy(),
            "length": [len(w.replace(" ", "")) for w in scored]}))
    return pd.concat(rows, ignore_index=True)


register("words", run, chapter="words")
