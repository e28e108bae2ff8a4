"""The causal test of the reading chapter: ablate the heads that mark the transition, at every checkpoint.

Claim (Aoyama & Wilcox 2025, who ablate heads of trained Pythia checkpoints): the heads that form in
the induction transition are what costs PPP after it, so ablating them after the transition brings
PPP back toward its level before the transition, more than ablating as many other heads does; and
they carry in-context learning.

:func:`run` takes the largest model (or ``ablation_models``) at ``ablation_steps`` checkpoints spread
over training, selects heads by a named rule (:data:`lhp_core.metrics.ablation.RULES`), and measures
PPP on Natural Stories and the ICL score with the selected heads ablated, with matched random heads
ablated (``ablation_draws`` draws: the control) and with their whole layers ablated (the upper
bound) (:func:`lhp_core.metrics.ablation.ablation_over_steps`). The transition comes from the head
scores of every checkpoint (:func:`lhp_core.metrics.heads.transition`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.findings import Finding
from lhp_core.measures import shared_steps
from lhp_core.metrics import ablation as abl
from lhp_core.metrics import heads, reading
from lhp_core.metrics.events import POOLED, Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite, get_suite

SOURCE = "Aoyama & Wilcox 2025"
#: Curve names (the event's ``measure`` is the ICL one).
ICL_COST = "ICL cost of ablating the selected heads"
PPP_CHANGE = "PPP change from ablating the selected heads"


@dataclass
class Ablation:
    """What the ablation arm of the reading chapter shows; see :func:`run`."""

    suite: Suite
    models: list[str]
    data: xr.Dataset  # ablation_over_steps: (model, step, condition, ...)
    ppp: xr.Dataset  # ppp_by_condition: (model, step, condition)
    transitions: pd.DataFrame  # heads.transition on every checkpoint
    params: dict = field(default_factory=dict)

    @property
    def random_conditions(self) -> list[str]:
        return [c for c in self.data[schema.CONDITION].values.tolist() if c.startswith("random")]

    def effects(self) -> pd.DataFrame:
        """Per (model, step): each measure's change from clean for the selected heads, the whole layer,
        and the random draws (mean, min and max over draws).

        Columns ``model, step, tokens_seen, measure`` (``"icl"``: ICL cost, nats/token, ablated minus
        clean ICL score, positive = ablation hurts in-context learning; ``"ppp"``: PPP change,
        nats/word), ``selected``, ``layer``, ``random_mean``, ``random_lo``, ``random_hi``, ``clean``.
        """
        rnd = self.random_conditions
        rows = []
        for name, var in (("icl", self.data["icl"]), ("ppp", self.ppp["ppp"])):
            diff = var - var.sel({schema.CONDITION: abl.CLEAN})
            for m in self.models:
                d = diff.sel({schema.MODEL: m})
                for t in d[schema.STEP].values:
                    at = d.sel({schema.STEP: t})
                    if not np.isfinite(float(at.sel({schema.CONDITION: abl.SELECTED}))):
                        continue
                    r = at.sel({schema.CONDITION: rnd}).values
                    rows.append({"model": m, "step": int(t),
                                 "tokens_seen": float(self.data[schema.TOKENS_SEEN].sel({schema.MODEL: m,
                                                                                           schema.STEP: t})),
                                 "measure": name, "selected": float(at.sel({schema.CONDITION: abl.SELECTED})),
                                 "layer": float(at.sel({schema.CONDITION: abl.LAYER})), "random_mean": float(r.mean()),
                                 "random_lo": float(r.min()), "random_hi": float(r.max()),
                                 "clean": float(var.sel({schema.MODEL: m, schema.STEP: t,
                                                         schema.CONDITION: abl.CLEAN}))})
        return pd.DataFrame(rows, columns=["model", "step", "tokens_seen", "measure", "selected", "layer",
                                           "random_mean", "random_lo", "random_hi", "clean"])

    def icl_onsets(self) -> pd.DataFrame:
        """Per model: the first step from which ablating the selected heads costs more ICL than every
        random draw at every later step (:func:`icl_onset`)."""
        e = self.effects()
        rows = []
        for m in self.models:
            d = e[(e.model == m) & (e.measure == "icl")].sort_values("step")
            rows.append({"model": m, **icl_onset(d.step.to_numpy(), d.selected.to_numpy(), d.random_hi.to_numpy())})
        return pd.DataFrame(rows, columns=["model", "step", "lo", "hi", "found"])

    def restoration(self, model: str) -> dict:
        """The numbers of the PPP finding for one model (see :func:`restoration_verdict`)."""
        tr = self.transitions.set_index("model").loc[model]
        e = self.effects()
        p = e[(e.model == model) & (e.measure == "ppp")].sort_values("step")
        out = {"transition_found": bool(tr.found), "transition": float(tr.step), "transition_lo": float(tr.lo),
               "transition_hi": float(tr.hi)}
        pre = p[p.step < tr.lo] if tr.found else p.iloc[:0]
        post = p[p.step >= tr.hi] if tr.found else p.iloc[:0]
        if len(pre) and len(post):
            last = post.iloc[-1]
            out.update(step=int(last.step), ppp_pre=float(pre.iloc[-1].clean), ppp_clean=float(last.clean),
                       change_selected=float(last.selected), change_random_lo=float(last.random_lo),
                       change_random_hi=float(last.random_hi), change_layer=float(last.layer),
                       toward_pre=bool(np.sign(last.selected) == np.sign(pre.iloc[-1].clean - last.clean)))
        return out

    # ------------------------------------------------------------------ the study protocol
    def curves(self) -> list[Curve]:
        """ICL cost and PPP change of ablating the selected heads, per (model, step)."""
        clean = {schema.CONDITION: abl.CLEAN}
        sel = {schema.CONDITION: abl.SELECTED}
        icl = self.data["icl"].sel(sel) - self.data["icl"].sel(clean)
        ppp = self.ppp["ppp"].sel(sel) - self.ppp["ppp"].sel(clean)
        return [Curve(ICL_COST, "nats/token", icl.drop_vars(schema.CONDITION, errors="ignore"), 0.0,
                      "ICL score with the selected heads ablated minus the clean ICL score (positive: ablation "
                      "hurts in-context learning)"),
                Curve(PPP_CHANGE, "nats/word", ppp.drop_vars(schema.CONDITION, errors="ignore"), 0.0,
                      "PPP (Natural Stories self-paced reading) with the selected heads ablated minus clean PPP")]

    def events(self) -> pd.DataFrame:
        """The step from which ablating the selected heads costs more ICL than matched random heads."""
        rows = []
        for r in self.icl_onsets().itertuples():
            last = self.suite.steps(r.model)[-1]
            rows.append({"study": "ablation", "measure": ICL_COST, "model": r.model, "seed": POOLED,
                         "kind": "onset", "step": r.step, "step_lo": r.lo, "step_hi": r.hi, "found": bool(r.found),
                         "tokens_per_step": self.suite.tokens_seen(r.model, last) / max(last, 1)})
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def findings(self) -> list[Finding]:
        m = self.models[-1]
        r = self.restoration(m)
        n = len(self.random_conditions)
        if "change_selected" in r:
            measured = (f"Model {m}: PPP {r['ppp_pre']:.4f} nats/word before the transition (step "
                        f"{r['transition']:.0f} [{r['transition_lo']:.0f}, {r['transition_hi']:.0f}]), "
                        f"{r['ppp_clean']:.4f} at step {r['step']}; ablating the selected heads there changes it "
                        f"by {r['change_selected']:+.4f}, {n} matched random head sets by "
                        f"[{r['change_random_lo']:+.4f}, {r['change_random_hi']:+.4f}], the whole layers by "
                        f"{r['change_layer']:+.4f}; the change points "
                        f"{'toward' if r['toward_pre'] else 'away from'} the pre-transition level.")
        elif r["transition_found"]:
            measured = (f"Model {m}: the transition (step {r['transition']:.0f}) leaves no ablated checkpoint "
                        "before or after it; add steps.")
        else:
            measured = f"Model {m}: no induction transition (jump >= {heads.MIN_JUMP})."
        on = self.icl_onsets().set_index("model").loc[m]
        icl_text = (f"from step {on.step:.0f} [{on.lo:.0f}, {on.hi:.0f}]" if on.found
                    else "at no step up to the last")
        e = self.effects()
        last = e[(e.model == m) & (e.measure == "icl")].sort_values("step").iloc[-1]
        return [
            Finding("ablation_restores_ppp", "ablating the induction heads after the transition raises PPP, "
                    "more than ablating matched random heads", SOURCE, measured, self.suite.id,
                    restoration_verdict(r)),
            Finding("ablation_costs_icl", "the induction heads carry in-context learning: ablating them costs more "
                    "ICL than ablating matched random heads", "Olsson et al. 2022",
                    f"Model {m}: the selected heads cost more ICL than every one of {n} random draws {icl_text}; "
                    f"at step {last.step} the ICL cost is {last.selected:+.3f} nats/token against "
                    f"[{last.random_lo:+.3f}, {last.random_hi:+.3f}] for random heads.",
                    self.suite.id, icl_verdict(bool(on.found), r["transition_found"], last.selected,
                                               last.random_lo)),
        ]

    def numbers(self) -> dict:
        m = self.models[-1]
        r = self.restoration(m)
        on = self.icl_onsets().set_index("model").loc[m]
        e = self.effects()
        last = e[(e.model == m) & (e.measure == "icl")].sort_values("step").iloc[-1]
        out = {"ablation_model": m, "ablation_n_steps": int(self.data.sizes[schema.STEP]),
               "ablation_n_draws": len(self.random_conditions), "ablation_mode": str(self.params.get("mode")),
               "ablation_icl_cost_last": float(last.selected),
               "ablation_icl_cost_random_hi_last": float(last.random_hi),
               "ablation_icl_onset_found": bool(on.found),
               "ablation_n_heads_last": int(self.data["n_ablated"].sel({schema.MODEL: m,
                                                                        schema.CONDITION: abl.SELECTED})
                                            .dropna(schema.STEP).values[-1])}
        if on.found:  # a step only where there is one: a record holds finite numbers
            out["ablation_icl_onset_step"] = float(on.step)
        out.update({f"ablation_ppp_{k}": v for k, v in r.items() if isinstance(v, float) and k.startswith("change")})
        if "toward_pre" in r:
            out["ablation_ppp_toward_pre"] = int(r["toward_pre"])
        return out


def icl_onset(steps: np.ndarray, selected: np.ndarray, random_hi: np.ndarray) -> dict:
    """First step from which ``selected > random_hi`` holds at that and every later step.

    The interval is the grid's resolution: from the checkpoint before (where it did not yet hold
    throughout) to the step itself. ``found`` False (NaN steps) when it does not hold at the last step.
    """
    above = np.asarray(selected) > np.asarray(random_hi)
    if not len(above) or not above[-1]:
        return {"step": np.nan, "lo": np.nan, "hi": np.nan, "found": False}
    i = len(above) - 1
    while i > 0 and above[i - 1]:
        i -= 1
    return {"step": float(steps[i]), "lo": float(steps[max(i - 1, 0)]), "hi": float(steps[i]), "found": True}


def icl_verdict(onset_found: bool, transition_found: bool, cost_last: float, random_lo_last: float) -> str:
    """"Ablating the induction heads costs more ICL than matched random heads": an onset (:func:`icl_onset`)
    holds it; without one, a last-step cost below every random draw's contradicts it once there is a
    transition; otherwise it does not hold at this scale (or, without a transition, is not measurable)."""
    if onset_found:
        return "holds"
    if not transition_found:
        return "not measurable here"
    return "contradicted" if cost_last < random_lo_last else "does not hold at this scale"


def restoration_verdict(r: dict) -> str:
    """"Ablating the induction heads after the transition raises PPP, more than matched random heads" (the
    direction Aoyama & Wilcox report: the heads make surprisal less humanlike). With a transition and
    ablated checkpoints on both sides of it, the selected heads' PPP change at the last checkpoint must be
    positive and above every random draw's (holds); negative and below every draw's contradicts it; in
    between it does not hold at this scale. Whether the change points toward the pre-transition PPP is
    reported beside the verdict (:meth:`Ablation.restoration`), since PPP need not fall after the transition."""
    if "change_selected" not in r:
        return "not measurable here"
    sel = r["change_selected"]
    if sel > 0 and sel > r["change_random_hi"]:
        return "holds"
    if sel < 0 and sel < r["change_random_lo"]:
        return "contradicted"
    return "does not hold at this scale"


def run(suite: str | Suite, models: Sequence[str] | None = None, steps: Sequence[int] | None = None,
        device: str = "cpu", ns_stories: Sequence[int] | None = None, n_probe_seqs: int = 100, probe_len: int = 50,
        n_icl_windows: int | None = None, n_boot: int = 1000, head_convention: str = "aoyama_wilcox",
        ppp_exclusions: str = "aoyama_wilcox", spr_spillover: int | None = None, seed: int = 0,
        ablation_models: Sequence[str] | None = None, ablation_steps: int | None = 8, ablation_rule: str = "induction",
        ablation_k: int = 2, ablation_threshold: float = 0.3, ablation_draws: int = 3, ablation_mode: str = "zero",
        ablation_patterns: bool = False, progress: bool = True) -> Ablation:
    """Run the ablation arm of the reading chapter on ``suite`` (checkpoints and ``tokens_seen`` only).

    ``ablation_models`` None: the suite's largest selected model; ``ablation_steps`` checkpoints
    spread over its schedule (None: all). The other parameters are the reading chapter's (same
    head probe and ICL windows, so the head scores come from its cache).
    """
    s = get_suite(suite)
    pool = [s.resolve_model(m) for m in (models or s.models)]
    chosen = [s.resolve_model(m) for m in ablation_models] if ablation_models else pool[-1:]
    grid = shared_steps(s, chosen, steps, n=ablation_steps)
    ns = reading.natural_stories_table(ns_stories)
    texts = [" ".join(g["word"]) for _, g in ns.groupby("item")]
    data = abl.ablation_over_steps(s, ns, texts, chosen, grid, rule=ablation_rule, k=ablation_k,
                                   threshold=ablation_threshold, n_draws=ablation_draws, mode=ablation_mode,
                                   preserve_patterns=ablation_patterns, n_windows=n_icl_windows, n_seq=n_probe_seqs,
                                   seq_len=probe_len, seed=seed, head_convention=head_convention, device=device,
                                   progress=progress)
    ppp = abl.ppp_by_condition(ns, data, "rt", measure="spr", exclusions=ppp_exclusions, spillover=spr_spillover)
    scores = heads.head_scores_over_steps(s, chosen, steps, n_seq=n_probe_seqs, seq_len=probe_len, seed=seed,
                                          convention=head_convention, device=device, progress=progress)
    transitions = heads.transition(scores, "induction", n_boot=n_boot, seed=seed)
    return Ablation(s, chosen, data, ppp, transitions,
                    params=dict(rule=ablation_rule, k=ablation_k, threshold=ablation_threshold,
                                draws=ablation_draws, mode=ablation_mode, patterns=ablation_patterns))


register("ablation", run, chapter="reading")
