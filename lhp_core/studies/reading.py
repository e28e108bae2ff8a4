"""Reading times and attention heads over training (Aoyama & Wilcox 2025).

Claim: the psychometric predictive power (PPP) of a model's surprisal for human reading times
rises early in training, peaks, then falls; the peak coincides with the phase transition in which
previous-token and induction heads form; a model whose transition is suppressed (trained with a
copy penalty, the suite's ``-copyreg`` twin) keeps a higher PPP.

:func:`run` computes, for every checkpoint of the suite and of its twin: word surprisal of Natural
Stories (self-paced reading) and of the Provo passages read with MoTR (eye-movement-like measures),
PPP per corpus and measure, head scores on repeated random sequences, the ICL score; then the
transition of each model (level shift of its largest induction score), its PPP peak with a
bootstrap interval over words, and whether the two coincide.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import checkpoints, schema
from lhp_core.findings import Finding
from lhp_core.metrics import changepoint, heads, reading
from lhp_core.metrics.events import Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite
from lhp_core.train import ensure

#: PPP measures: key -> (corpus, reading-time column, paradigm, label).
PPP_MEASURES = {
    "ns_spr": ("ns", "rt", "spr", "Natural Stories self-paced reading"),
    "provo_first": ("pv", "first_duration", "eye", "Provo MoTR first fixation"),
    "provo_gaze": ("pv", "gaze_duration", "eye", "Provo MoTR gaze duration"),
    "provo_total": ("pv", "total_duration", "eye", "Provo MoTR total duration"),
}
SOURCE = "Aoyama & Wilcox 2025"
#: The measures this study follows over training (names of its curves and of the events on them).
INDUCTION = "largest induction score"
PREV_TOKEN = "largest previous-token score"
ICL = "ICL score"


def ppp_name(key: str) -> str:
    """The Timeline's name of a PPP measure (``"ns_spr"`` -> "PPP, Natural Stories self-paced reading")."""
    return f"PPP, {PPP_MEASURES[key][3]}"


@dataclass
class Reading:
    """Everything the reading chapter shows; see :func:`run`."""

    suite: str
    variants: dict[str, Suite]
    models: dict[str, list[str]]
    ns: pd.DataFrame
    pv: pd.DataFrame
    surprisal: dict[tuple[str, str], xr.Dataset]
    ppp: dict[tuple[str, str], xr.Dataset]
    gpt3: reading.PPPResult
    heads: dict[str, xr.Dataset]
    icl: dict[str, xr.Dataset]
    transitions: pd.DataFrame
    prev_token: pd.DataFrame
    icl_changes: pd.DataFrame
    peaks: pd.DataFrame
    big: str
    big_of: dict[str, str]
    conventions: dict[str, float] = field(default_factory=dict)
    spillover_ppp: dict[int, float] = field(default_factory=dict)
    naive_ppp: float = float("nan")
    bow_abs_diff: float = float("nan")
    bow_mean_diff: float = float("nan")
    attention: np.ndarray | None = None  # [layer, head, query, key] of the largest model, last step
    params: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ summaries
    @staticmethod
    def measure_label(measure: str) -> str:
        """The reader's name of a PPP measure key (``"ns_spr"`` -> "Natural Stories self-paced reading")."""
        return PPP_MEASURES[measure][3]

    def summary(self) -> pd.DataFrame:
        """One row per (variant, model): transition, PPP peak (Natural Stories) and whether they coincide."""
        t = self.transitions.set_index(["variant", "model"])
        p = self.peaks[self.peaks.measure == "ns_spr"].set_index(["variant", "model"])
        rows = []
        for (v, m), tr in t.iterrows():
            pk = p.loc[(v, m)]
            rows.append({"variant": v, "model": m, "transition": tr.step, "transition_lo": tr.lo,
                         "transition_hi": tr.hi, "induction_jump": tr.jump, "transition_found": bool(tr.found),
                         "induction_last": tr["last"], "ppp_peak": pk.step, "ppp_peak_lo": pk.lo, "ppp_peak_hi": pk.hi,
                         "ppp_peak_value": pk.value, "ppp_first": pk["first"], "ppp_last": pk["last"],
                         "ppp_falls": bool(pk.falls), "coincide": coincide(tr, pk)})
        return pd.DataFrame(rows)

    def findings(self) -> list[Finding]:
        s = self.summary()
        plain = s[s.variant == "plain"].set_index("model")
        big = plain.loc[self.big]
        out = [Finding("ppp_rise_fall", "PPP rises early in training, peaks, then falls", SOURCE,
                       f"Model {self.big}: PPP {big.ppp_first:.4f} at step 0, peak {big.ppp_peak_value:.4f} "
                       f"nats/word at step {big.ppp_peak:.0f} [{big.ppp_peak_lo:.0f}, {big.ppp_peak_hi:.0f}], last "
                       f"{big.ppp_last:.4f} (GPT-3: {self.gpt3.mean:.4f} [{self.gpt3.lo:.4f}, {self.gpt3.hi:.4f}]).",
                       self.suite, rise_fall_verdict(self.ppp["plain", "ns_spr"].sel(model=self.big), big.ppp_peak))]
        n_found = int(plain.transition_found.sum())
        n_co = int(plain.coincide.sum())
        out.append(Finding(
            "ppp_peak_at_transition", "the PPP peak coincides with the induction-head phase transition", SOURCE,
            f"{n_found} of {len(plain)} models have an induction transition (jump >= {heads.MIN_JUMP}); in "
            f"{n_co} the PPP peak interval overlaps it. Model {self.big}: transition at step {big.transition:.0f} "
            f"[{big.transition_lo:.0f}, {big.transition_hi:.0f}], jump {big.induction_jump:+.2f}; PPP peak at "
            f"step {big.ppp_peak:.0f} [{big.ppp_peak_lo:.0f}, {big.ppp_peak_hi:.0f}].",
            self.suite, coincidence_verdict(bool(big.transition_found), bool(big.coincide))))
        if "copyreg" in self.variants:
            twin = s[s.variant == "copyreg"].set_index("model").loc[self.big_of["copyreg"]]
            same = plain.loc[self.big_of["copyreg"]] if self.big_of["copyreg"] in plain.index else big
            out.append(Finding(
                "copyreg_keeps_ppp", "suppressing the transition keeps PPP higher", SOURCE,
                f"Model {twin.name} trained with the copy penalty: largest induction score {twin.induction_last:.2f} "
                f"against {same.induction_last:.2f}; final PPP {twin.ppp_last:.4f} against {same.ppp_last:.4f} "
                "nats/word.",
                self.variants["copyreg"].id, copyreg_verdict(same.induction_last, twin.induction_last,
                                                             same.ppp_last, twin.ppp_last)))
        return out

    def _over_variants(self, pick) -> xr.DataArray:
        """``pick(variant)`` (a ``(model, step)`` curve) of every variant on one model axis, a twin's models
        named with their variant (``"l (copyreg)"``)."""
        parts = []
        for v in self.variants:
            da = pick(v)
            if v != "plain":
                da = da.assign_coords({schema.MODEL: [f"{m} ({v})" for m in da[schema.MODEL].values]})
            parts.append(da)
        return xr.concat(parts, dim=schema.MODEL, join="outer")

    def curves(self) -> list[Curve]:
        """Largest induction and previous-token scores, the ICL score and PPP per reading measure of every
        checkpoint of the suite and its twin, for the Timeline."""
        out = [Curve(INDUCTION, "attention probability",
                     self._over_variants(lambda v: self.heads[v]["induction"].max([schema.LAYER, schema.HEAD])),
                     description="induction score of the model's most inductive head on repeated random sequences"),
               Curve(PREV_TOKEN, "attention probability",
                     self._over_variants(lambda v: self.heads[v]["prev_token"].max([schema.LAYER, schema.HEAD])),
                     description="previous-token score of the model's strongest previous-token head"),
               Curve(ICL, "nats/token", self._over_variants(lambda v: self.icl[v]["icl"]), null=0.0,
                     description="loss late in the context minus loss early in it, on held-out stories")]
        for key, (_, rt, _, label) in PPP_MEASURES.items():
            out.append(Curve(ppp_name(key), "nats/word", self._over_variants(lambda v, k=key: self.ppp[v, k]["ppp"]),
                             null=0.0, description=f"gain in log-likelihood per word of {label} ({rt}) from "
                                                   "adding surprisal to the baseline regression"))
        return out

    def events(self) -> pd.DataFrame:
        """Transitions (induction, previous-token, ICL) and PPP peaks of every model, for the Timeline."""
        rows = []
        for table, measure, kind in ((self.transitions, INDUCTION, "transition"),
                                     (self.prev_token, PREV_TOKEN, "transition"),
                                     (self.icl_changes, ICL, "change point")):
            for r in table.itertuples():
                rows.append(_event(self, r.variant, r.model, measure, kind, r.step, r.lo, r.hi, bool(r.found)))
        for r in self.peaks.itertuples():
            last = self.ppp[r.variant, r.measure].sel(model=r.model)["ppp"].dropna(schema.STEP)[schema.STEP].values[-1]
            # A "peak" at the last checkpoint is a curve still rising: no peak yet.
            rows.append(_event(self, r.variant, r.model, ppp_name(r.measure), "peak", r.step, r.lo,
                               r.hi, bool(r.step < last)))
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def numbers(self) -> dict:
        s = self.summary()
        plain = s[s.variant == "plain"]
        big = plain.set_index("model").loc[self.big]
        ns_ppp = self.ppp["plain", "ns_spr"]
        hd = self.heads["plain"].sel(model=self.big)
        out = dict(
            suite=self.suite, n_models=int(len(plain)), n_ns_words=int(ns_ppp.attrs["n_words"]),
            n_provo_words=int(self.ppp["plain", "provo_gaze"].attrs["n_words"]),
            gpt3_ppp=float(self.gpt3.mean), gpt3_ppp_lo=float(self.gpt3.lo),
            ppp_ns_last_big=float(big.ppp_last), ppp_ns_peak_big=float(big.ppp_peak_value),
            ppp_ns_peak_step_big=float(big.ppp_peak), ppp_ns_first_big=float(big.ppp_first),
            induction_last_big=float(big.induction_last),
            induction_first_big=float(hd["induction"].dropna(schema.STEP, how="all").isel(step=0).max()),
            prev_token_last_big=float(hd["prev_token"].dropna(schema.STEP, how="all").isel(step=-1).max()),
            transition_step_big=float(big.transition), transition_lo_big=float(big.transition_lo),
            transition_hi_big=float(big.transition_hi),
            icl_last_big=float(self.icl["plain"]["icl"].sel(model=self.big).dropna(schema.STEP).values[-1]),
            n_coincide=int(plain.coincide.sum()), last_step=int(hd[schema.STEP].values[-1]),
            ppp_ns_last_big_naive=self.naive_ppp, bow_abs_diff_bits=self.bow_abs_diff,
            head_convention=str(self.params.get("head_convention")),
            ppp_exclusions=str(self.params.get("ppp_exclusions")),
        )
        out.update({f"ppp_ns_last_big_spill{k}": v for k, v in self.spillover_ppp.items()})
        out.update({f"induction_last_big_{k}": v for k, v in self.conventions.items()})
        if "copyreg" in self.variants:
            twin = s[(s.variant == "copyreg") & (s.model == self.big_of["copyreg"])].iloc[0]
            out.update(copyreg_induction_last_big=float(twin.induction_last), copyreg_ppp_last_big=float(twin.ppp_last))
        return out


def _event(study: Reading, variant: str, model: str, measure: str, kind: str, step, lo, hi, found: bool) -> dict:
    suite = study.variants[variant]
    last = suite.steps(model)[-1]
    return {"study": "reading", "measure": measure, "model": model if variant == "plain" else f"{model} ({variant})",
            "seed": int(suite.training_record().attrs.get("seed", 0)), "kind": kind,
            "step": step if found else np.nan, "step_lo": lo if found else np.nan, "step_hi": hi if found else np.nan,
            "found": found, "tokens_per_step": suite.tokens_seen(model, last) / max(last, 1)}


def choices_table(study: Reading) -> pd.DataFrame:
    """What the analysis choices change for the largest model at its last checkpoint."""
    rows = [{"choice": f"head probe: {k}" + (" (used)" if k == study.params["head_convention"] else ""),
             "value": round(v, 3), "measure": "largest induction score"} for k, v in study.conventions.items()]
    rows += [{"choice": f"self-paced spillover {k}", "value": round(v, 4), "measure": "PPP (nats/word)"}
             for k, v in study.spillover_ppp.items()]
    rows += [{"choice": "naive subword-sum surprisal", "value": round(study.naive_ppp, 4),
              "measure": "PPP (nats/word)"},
             {"choice": "word-boundary correction: mean |change|", "value": round(study.bow_abs_diff, 3),
              "measure": "surprisal (bits/word)"}]
    return pd.DataFrame(rows, columns=["choice", "measure", "value"])


# ---------------------------------------------------------------------- decision rules


def coincide(transition: pd.Series, peak: pd.Series) -> bool:
    """The PPP peak falls at the transition: a transition was found and the two intervals overlap."""
    return bool(transition["found"]) and changepoint.overlap(transition["lo"], transition["hi"], peak["lo"], peak["hi"])


def rise_fall_verdict(ppp: xr.Dataset, peak_step: float) -> str:
    """Verdict on "PPP rises, peaks, then falls" for one model's :func:`reading.ppp_over_steps` curve.

    *Rises*: PPP at the peak is above the upper fold bound of the first step's PPP. *Falls*: the
    last step's PPP is below the lower fold bound at the peak. Both: holds; rises without falling:
    does not hold at this scale (the curve is still rising or flat at the end); never rises above
    the untrained model: not measurable here.
    """
    d = ppp.dropna(schema.STEP, subset=["ppp"])
    first, at, last = d.isel(step=0), d.sel(step=int(peak_step)), d.isel(step=-1)
    rises = float(at["ppp"]) > float(first["ppp_hi"])
    falls = float(last["ppp"]) < float(at["ppp_lo"])
    if not rises:
        return "not measurable here"
    return "holds" if falls else "does not hold at this scale"


def coincidence_verdict(transition_found: bool, coincides: bool) -> str:
    """Verdict on "the PPP peak coincides with the transition" for the largest model."""
    if not transition_found:
        return "not measurable here"
    return "holds" if coincides else "contradicted"


def copyreg_verdict(induction_plain: float, induction_twin: float, ppp_plain: float, ppp_twin: float,
                    min_drop: float = heads.MIN_JUMP) -> str:
    """Verdict on "suppressing the transition keeps PPP higher": the twin's largest induction score must
    be at least ``min_drop`` lower (the penalty worked), then its final PPP must be higher."""
    if not induction_twin <= induction_plain - min_drop:
        return "not measurable here"
    return "holds" if ppp_twin > ppp_plain else "does not hold at this scale"


# ---------------------------------------------------------------------- the study


def run(suite: str, copyreg_suite: str | None = None, models: Sequence[str] | None = None,
        steps: Sequence[int] | None = None, device: str = "cpu", ns_stories: Sequence[int] | None = None,
        provo_passages: Sequence[int] | None = None, n_probe_seqs: int = 100, probe_len: int = 50,
        n_icl_windows: int | None = None, n_boot: int = 1000, head_convention: str = "aoyama_wilcox",
        ppp_exclusions: str = "aoyama_wilcox", spr_spillover: int | None = None, seed: int = 0,
        progress: bool = True) -> Reading:
    """Run the reading study on ``suite`` and its copy-regularised twin ``copyreg_suite``.

    ``copyreg_suite`` None means ``f"{suite}-copyreg"``; ``""`` skips the twin. The twin may hold
    fewer sizes than the suite (``lhp-mini-copyreg`` trains only ``l``). ``head_convention``,
    ``ppp_exclusions`` and ``spr_spillover`` (None: the paradigm's default) default to Aoyama &
    Wilcox's procedure (:mod:`lhp_core.metrics.heads`, :func:`lhp_core.metrics.reading.ppp`).
    """
    if copyreg_suite is None:
        copyreg_suite = f"{suite}-copyreg"
    variants = {"plain": ensure(suite, device=device)}
    if copyreg_suite:
        variants["copyreg"] = ensure(copyreg_suite, device=device)
    sel = {}
    for v, s in variants.items():
        sel[v] = [m for m in (models or s.models) if m in s.models]
        if not sel[v]:
            raise ValueError(
                f"none of models={models} is in {s.id} ({s.models}); add one of them or set copyreg_suite=''"
            )
    ns = reading.natural_stories_table(ns_stories)
    pv = reading.provo_table(provo_passages)
    tables = {"ns": ns, "pv": pv}
    surprisal, ppp = {}, {}
    for v, s in variants.items():
        for corpus, table in tables.items():
            surprisal[v, corpus] = reading.surprisal_over_steps(s, table, models=sel[v], steps=steps, device=device,
                                                                progress=progress)
        for key, (corpus, rt, paradigm, _) in PPP_MEASURES.items():
            ppp[v, key] = reading.ppp_over_steps(tables[corpus], surprisal[v, corpus]["surprisal"], rt,
                                                 measure=paradigm, exclusions=ppp_exclusions,
                                                 spillover=spr_spillover if paradigm == "spr" else None)
    gpt3 = reading.ppp(ns, "rt", "gpt3_surprisal", measure="spr", exclusions=ppp_exclusions, spillover=spr_spillover)
    texts = [" ".join(g["word"]) for _, g in ns.groupby("item")]  # the stories read above: held out from training
    hs, icl = {}, {}
    for v, s in variants.items():
        hs[v] = heads.head_scores_over_steps(s, sel[v], steps, n_seq=n_probe_seqs, seq_len=probe_len, seed=seed,
                                             convention=head_convention, device=device, progress=progress)
        icl[v] = heads.icl_over_steps(s, texts, sel[v], steps, n_windows=n_icl_windows, device=device,
                                      progress=progress)

    def per_variant(fn) -> pd.DataFrame:
        return pd.concat([fn(v).assign(variant=v) for v in variants], ignore_index=True)

    transitions = per_variant(lambda v: heads.transition(hs[v], "induction", n_boot=n_boot, seed=seed))
    prev = per_variant(lambda v: heads.transition(hs[v], "prev_token", n_boot=n_boot, seed=seed))
    icl_changes = per_variant(lambda v: changepoint.per_model(icl[v]["icl"], kind="mean", n_boot=n_boot, seed=seed,
                                                              min_jump=heads.MIN_ICL_JUMP))
    peaks = pd.concat([reading.ppp_peaks(ppp[v, k], n_boot=n_boot, seed=seed).assign(variant=v, measure=k)
                       for v in variants for k in PPP_MEASURES], ignore_index=True)
    big = sel["plain"][-1]
    big_of = {v: big if big in sel[v] else sel[v][-1] for v in variants}
    study = Reading(suite, variants, sel, ns, pv, surprisal, ppp, gpt3, hs, icl, transitions, prev, icl_changes, peaks,
                    big, big_of, params=dict(head_convention=head_convention, ppp_exclusions=ppp_exclusions,
                                             spr_spillover=spr_spillover))
    _comparisons(study, n_probe_seqs, probe_len, seed, device, progress)
    return study


def _comparisons(study: Reading, n_probe_seqs: int, probe_len: int, seed: int, device: str, progress: bool) -> None:
    """What the chapter reports beside the main result, for the largest model at its last checkpoint:
    the induction score under each head-probe convention, PPP at both self-paced spillovers, and
    the word-boundary correction's effect."""
    s, big = study.variants["plain"], study.big
    last = [int(study.heads["plain"].sel(model=big)["induction"].dropna(schema.STEP, how="all")[schema.STEP][-1])]
    for conv in heads.CONVENTIONS:
        ds = (study.heads["plain"] if conv == study.params["head_convention"] else
              heads.head_scores_over_steps(s, [big], last, n_seq=n_probe_seqs, seq_len=probe_len, seed=seed,
                                           convention=conv, device=device, progress=progress))
        study.conventions[conv] = float(ds["induction"].sel(model=big, step=last[0]).max())
    sp = study.surprisal["plain", "ns"].sel(model=[big]).isel(step=[-1])
    for k in (3, 4):
        r = reading.ppp_over_steps(study.ns, sp["surprisal"], "rt", spillover=k, measure="spr",
                                   exclusions=study.params["ppp_exclusions"])
        study.spillover_ppp[k] = float(r["ppp"].item())
    naive = reading.ppp_over_steps(study.ns, sp["surprisal_naive"], "rt", measure="spr",
                                   exclusions=study.params["ppp_exclusions"], spillover=study.params["spr_spillover"])
    study.naive_ppp = float(naive["ppp"].item())
    diff = (sp["surprisal"] - sp["surprisal_naive"]).squeeze()
    study.bow_abs_diff, study.bow_mean_diff = float(abs(diff).mean()), float(diff.mean())
    # Every head's attention on a short repeated sequence (the probe's first tokens, twice), for the
    # head explorer; short so the page stays small.
    probe = study.heads["plain"]["probe_ids"].sel(model=big).values[0]
    half = probe[: min(probe_len, 16)]
    model, tok = checkpoints.load(s, big, last[0], device=device)
    bos = None if study.params["head_convention"] == "aoyama_wilcox" else tok.bos_token_id
    study.attention = heads.attention_patterns(model, np.concatenate([half, half]), bos, device=device)


register("reading", run)
