"""Brain alignment over training: alignment, detachment, realignment? (Nakagi et al. 2025).

Claim: over training, the alignment of a model's representations with human brain responses first
rises, then falls while downstream accuracy stalls, then rises again as tasks start to be solved.

:func:`run` scores every checkpoint's layers against the language network's fMRI response to the
Tuckute et al. (2024) sentences (ridge encoding, :mod:`lhp_core.metrics.brain`), fits 0, 1 and 2
breakpoints to each model's best-layer curve against log tokens seen, and computes the companions
on the same axis: held-out loss, the task battery, instruction following and a POS probe.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.data import corpora, tuckute
from lhp_core.findings import Finding
from lhp_core.measures import shared_steps, step_grid
from lhp_core.metrics import brain, changepoint, instruct, probing, tasks
from lhp_core.metrics.events import Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.studies.suite import HELD_OUT_LOSS
from lhp_core.suites import Suite
from lhp_core.train import ensure

SOURCE = "Nakagi et al. 2025"
#: The measures this study follows over training (names of its curves and of the events on them).
BRAIN_SCORE = "brain score, best layer"
FOLLOWING = "instruction following"
POS_SELECTIVITY = "POS probe selectivity, best layer"


@dataclass
class Brain:
    """Everything the brain chapter shows; see :func:`run`."""

    suite: Suite
    models: list[str]
    table: pd.DataFrame
    reducer: str
    scores: xr.Dataset
    scores_other: xr.Dataset
    best: xr.Dataset
    segmentations: dict
    tasks: xr.Dataset
    following: xr.Dataset
    probe: xr.Dataset
    params: dict = field(default_factory=dict)

    @property
    def big(self) -> str:
        return self.models[-1]

    def final_step(self, model: str) -> int:
        return int(self.best["r"].sel(model=model).dropna(schema.STEP)[schema.STEP].values[-1])

    def phase_table(self) -> pd.DataFrame:
        """Per model: criteria's choices, the 2-breakpoint fit's phases and breakpoints (tokens seen)."""
        rows = []
        for m, seg in self.segmentations.items():
            sm = seg.summary()
            rows.append({"model": m, "BIC picks": sm["k_bic"], "LOO picks": sm["k_loo"],
                         "2-break phases": sm["phases_2break"],
                         "break 1 (tokens)": f"{10 ** sm['break1']:.3g} "
                                             f"[{10 ** sm['break1_lo']:.3g}, {10 ** sm['break1_hi']:.3g}]",
                         "break 2 (tokens)": f"{10 ** sm['break2']:.3g} "
                                             f"[{10 ** sm['break2_lo']:.3g}, {10 ** sm['break2_hi']:.3g}]",
                         "three phases": sm["three_phases"]})
        return pd.DataFrame(rows)

    def companions(self) -> pd.DataFrame:
        """Long table ``model, step, tokens_seen, measure, value`` of every curve on the shared axis (``measure``:
        the curve's label, name and units)."""
        brain_score, following, selectivity = self.curves()
        rec = self.suite.training_record()
        order = [Curve(HELD_OUT_LOSS, "nats/token", rec["val_loss"].sel(model=self.models)),
                 Curve("task battery: mean accuracy", "accuracy", self.tasks["accuracy"].mean(schema.TASK)),
                 following,
                 Curve("POS probe accuracy, best layer", "share of words", self.probe["accuracy"].max(schema.LAYER)),
                 selectivity, brain_score]
        keep = [schema.MODEL, schema.STEP, schema.TOKENS_SEEN, "measure", "value"]
        return pd.concat([c.frame().assign(measure=c.label)[keep] for c in order], ignore_index=True)

    def findings(self) -> list[Finding]:
        n3 = sum(s.three_phases for s in self.segmentations.values())
        seg = self.segmentations[self.big]
        sm = seg.summary()
        fin = self.final_step(self.big)
        r, lo, hi = (float(self.best[v].sel(model=self.big, step=fin)) for v in ("r", "r_lo", "r_hi"))
        null = float(self.scores["null_q95"].sel(model=self.big, step=fin).max())
        out = [Finding(
            "brain_three_phases", "brain alignment rises, falls, then rises again over training", SOURCE,
            f"Three phases supported in {n3} of {len(self.models)} models. Model {self.big}: "
            f"BIC picks {sm['k_bic']} and leave-one-out {sm['k_loo']} breakpoint(s); "
            f"the 2-breakpoint fit reads {sm['phases_2break']}.",
            self.suite.id, three_phase_verdict(n3, len(self.models), r > null)),
            Finding("brain_alignment_above_chance", "trained language models predict language-network responses",
                    "Tuckute et al. 2024",
                    f"Model {self.big}, final checkpoint: r = {r:.3f} [{lo:.3f}, {hi:.3f}] (best layer), permutation "
                    f"null 95th percentile {null:.3f}; untrained "
                    f"{float(self.best['r'].sel(model=self.big).dropna(schema.STEP)[0]):.3f}.",
                    self.suite.id, "holds" if lo > null else "does not hold at this scale")]
        return out

    def curves(self) -> list[Curve]:
        """The best layer's brain score, instruction following and the best layer's POS probe selectivity of
        every checkpoint, for the Timeline."""
        return [Curve(BRAIN_SCORE, "Pearson r", self.best["r"], null=float(self.scores["null_q95"].max()),
                      description="ridge encoding of the language network's fMRI response, the best layer's r "
                                  "(null: the largest permutation 95th percentile)"),
                Curve(FOLLOWING, "share of prompts", self.following["instruction_following"],
                      description="share of instruction prompts the model's continuation follows"),
                Curve(POS_SELECTIVITY, "share of words", self.probe["selectivity"].max(schema.LAYER), null=0.0,
                      description="POS probe accuracy minus control-task accuracy, the best layer's")]

    def events(self) -> pd.DataFrame:
        """Phase boundaries of the brain curve and change points of the companions, for the Timeline."""
        rows = []
        for m, seg in self.segmentations.items():
            sm = seg.summary()
            chosen = seg.k_bic == 2 and seg.k_loo == 2
            for i in (1, 2):
                bounds = [self.step_at(m, 10 ** sm[f"break{i}{s}"]) for s in ("", "_lo", "_hi")]
                rows.append(self._event(m, BRAIN_SCORE, f"phase boundary {i}", *bounds, chosen))
        for measure, curve in ((FOLLOWING, self.following["instruction_following"]),
                               (POS_SELECTIVITY, self.probe["selectivity"].max(schema.LAYER))):
            for r in changepoint.per_model(curve, kind="mean", n_boot=self.params.get("n_boot", 200)).itertuples():
                rows.append(self._event(r.model, measure, "change point", r.step, r.lo, r.hi,
                                        bool(np.isfinite(r.step) and abs(r.jump) >= 0.05)))
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def step_at(self, model: str, tokens: float) -> float:
        last = self.suite.steps(model)[-1]
        return float(tokens) / (self.suite.tokens_seen(model, last) / last)

    def _event(self, model, measure, kind, step, lo, hi, found) -> dict:
        last = self.suite.steps(model)[-1]
        return {"study": "brain", "measure": measure, "model": model,
                "seed": int(self.suite.training_record().attrs.get("seed", 0)), "kind": kind,
                "step": step if found else np.nan, "step_lo": min(lo, step) if found else np.nan,
                "step_hi": max(hi, step) if found else np.nan, "found": bool(found),
                "tokens_per_step": self.suite.tokens_seen(model, last) / last}

    def numbers(self) -> dict:
        out = dict(n_sentences=len(self.table), n_steps=int(self.best.sizes[schema.STEP]), n_models=len(self.models),
                   reducer=self.reducer, n_three_phase=int(sum(s.three_phases for s in self.segmentations.values())))
        for m in self.models:
            fin = self.final_step(m)
            b = self.best.sel(model=m)
            layer = int(b["best_layer"].sel(step=fin))
            curve = b["r"].dropna(schema.STEP)
            out.update({
                f"r_final_{m}": float(b["r"].sel(step=fin)), f"r_final_lo_{m}": float(b["r_lo"].sel(step=fin)),
                f"r_final_hi_{m}": float(b["r_hi"].sel(step=fin)), f"r_peak_{m}": float(curve.max()),
                f"r_init_{m}": float(curve.sel(step=0)) if 0 in curve[schema.STEP].values else float("nan"),
                f"null95_{m}": float(self.scores["null_q95"].sel(model=m, step=fin).max()),
                f"r_transfer_{m}": float(self.scores["r_transfer"].sel(model=m, step=fin, layer=layer)),
                f"r_final_other_{m}": float(brain.best_layer_curve(self.scores_other)["r"].sel(model=m, step=fin)),
                f"k_bic_{m}": self.segmentations[m].k_bic, f"k_loo_{m}": self.segmentations[m].k_loo,
                f"phases_{m}": self.segmentations[m].fits[2].phases,
            })
        last_probe = self.probe[schema.STEP].values[-1]
        acc = self.probe["accuracy"].max(schema.LAYER)
        out.update(
            follow_final_max=float(self.following["instruction_following"].isel(step=-1).max()),
            probe_acc_final=float(acc.sel(step=last_probe).max()),
            probe_majority=float(self.probe["majority"].max(schema.LAYER).mean()),
            probe_acc_first=float(acc.isel(step=0).max()),
            task_acc_final=float(self.tasks["accuracy"].mean(schema.TASK).isel(step=-1).max()),
        )
        return out


def three_phase_verdict(n_three: int, n_models: int, above_chance: bool) -> str:
    """Verdict on "rises, falls, rises": holds when most models show three phases (both criteria pick
    two breakpoints, segments rise/fall/rise); not measurable when the largest model never rises above
    the permutation null; otherwise does not hold at this scale."""
    if not above_chance:
        return "not measurable here"
    return "holds" if n_three > n_models / 2 else "does not hold at this scale"


def run(suite: str, models: Sequence[str] | None = None, steps: Sequence[int] | None = None, device: str = "cpu",
        n_sentences: int | None = 2000, reducer: str = "stimulus_last", n_boot: int = 1000, n_permutations: int = 50,
        n_seg_boot: int = 200, n_probe_sentences: int = 100, n_probe_steps: int = 4, n_prompts: int = 25,
        n_task_items: int = 100, n_task_steps: int = 16, seed: int = 0, progress: bool = True) -> Brain:
    """Run the brain study on ``suite`` (see the module docstring); sizes as in the chapter's parameters."""
    s = ensure(suite, device=device)
    grid = step_grid(s, models, steps)
    models = list(grid)
    table = brain.stratified_subset(tuckute.load(), n_sentences, seed=seed)
    scores = brain.brain_scores_over_steps(s, table, reducer, models, steps, null_steps="last", n_boot=n_boot,
                                           n_permutations=n_permutations, seed=seed, device=device, progress=progress)
    other = "stimulus_mean" if reducer == "stimulus_last" else "stimulus_last"
    scores_other = brain.brain_scores_over_steps(s, table, other, models, steps, n_boot=50, n_permutations=0,
                                                 seed=seed, device=device, progress=False)
    best = brain.best_layer_curve(scores).assign_coords({schema.TOKENS_SEEN: scores[schema.TOKENS_SEEN]})
    segs = brain.phases(best, n_boot=n_seg_boot, seed=seed)
    # The same checkpoints as the emergence chapter (same rule, same sizes): its cached scores are reused.
    task_ds = tasks.task_battery_over_steps(s, models, shared_steps(s, models, steps, n_task_steps),
                                            n_items=n_task_items, seed=seed, device=device, progress=progress)
    vocab = instruct.corpus_vocabulary(corpora.documents("inaugural"), n_words=300)
    prompts = instruct.build_prompts(vocab, n_per_template=n_prompts, seed=seed)
    follow = instruct.instruction_following_over_steps(s, prompts, models, steps, device=device, progress=progress)
    probe = probing.pos_probe_over_steps(s, corpora.brown_tagged_sentences(), n_sentences=n_probe_sentences,
                                         models=models, steps=shared_steps(s, models, steps, n_probe_steps),
                                         seed=seed, device=device, progress=progress)
    return Brain(s, models, table, reducer, scores, scores_other, best, segs, task_ds, follow, probe,
                 params=dict(n_boot=min(n_boot, 500), seed=seed))


register("brain", run)
