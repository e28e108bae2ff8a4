"""Emergence: downstream performance as a function of pre-training loss (Du et al. 2024).

Claims: (1) checkpoints with the same pre-training loss perform the same on downstream tasks whatever
their size; (2) some tasks sit at chance until the loss falls below a threshold, and the threshold
persists under continuous metrics. :func:`run` tests both on the suite (the offline task battery at
its held-out loss) and on Pythia's published evaluations (8 sizes, at LAMBADA log-perplexity).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.data import pythia_evals
from lhp_core.findings import Finding
from lhp_core.measures import shared_steps
from lhp_core.metrics import emergence as em
from lhp_core.metrics import tasks as T
from lhp_core.metrics.events import Curve, event_table
from lhp_core.studies.contributions import register
from lhp_core.suites import Suite
from lhp_core.train import ensure

SOURCE = "Du et al. 2024"
#: The Timeline's curve of the battery's mean probability of the correct option.
PROB_CORRECT = "task battery: mean probability of the correct option"


def task_name(task: str) -> str:
    """The Timeline's name of a battery task's accuracy curve and of its threshold events."""
    return f"task: {task}"


@dataclass
class Emergence:
    """Everything the emergence chapter shows; see :func:`run`."""

    suite: Suite
    models: list[str]
    steps: list[int]
    n_items: int
    battery: xr.Dataset
    tidy: pd.DataFrame  # model, step, task, metrics..., loss
    long: pd.DataFrame  # model, step, task, loss, metric, value
    ours_collapse: pd.DataFrame
    ours_thresholds: pd.DataFrame
    ours_thresholds_prob: pd.DataFrame
    pythia: pd.DataFrame  # model, step, task, value, stderr, loss
    pythia_collapse: pd.DataFrame
    pythia_thresholds: pd.DataFrame
    pythia_sizes: list[str]
    params: dict = field(default_factory=dict)

    @property
    def chance(self) -> pd.Series:
        return self.battery["chance"].to_series()

    def persists(self) -> pd.DataFrame:
        """Tasks whose ``prob_correct`` threshold falls inside the accuracy threshold's interval."""
        both = self.ours_thresholds.merge(self.ours_thresholds_prob, on="task", suffixes=("_acc", "_prob"))
        both["persists"] = (both["tau_prob"] >= both["tau_lo_acc"]) & (both["tau_prob"] <= both["tau_hi_acc"])
        return both

    def pythia_summary(self) -> pd.DataFrame:
        """Per Pythia task: collapse R² and threshold with interval, rounded for the page."""
        s = self.pythia_collapse.merge(self.pythia_thresholds, on="task")
        return s[["task", "r2_shared", "r2_per_size", "r2_leave_one_size_out", "tau", "tau_lo", "tau_hi",
                  "emergent"]].round(3)

    def learned_collapse(self) -> pd.DataFrame:
        """Pythia's collapse per task, for the tasks the models learn (best accuracy above the chance band):
        at chance the accuracy is noise, and no curve of loss, shared or per size, explains noise."""
        thr = self.pythia_thresholds.set_index("task")
        learned = [t for t in self.pythia_collapse.task if t in thr.index
                   and thr.loc[t, "best"] > thr.loc[t, "chance"] + thr.loc[t, "band"]]
        return self.pythia_collapse[self.pythia_collapse.task.isin(learned)]

    def findings(self) -> list[Finding]:
        pc = self.pythia_collapse
        lc = self.learned_collapse()
        close = int(((lc.r2_per_size - lc.r2_shared) <= COLLAPSE_TOLERANCE).sum())
        acc = self.ours_collapse[self.ours_collapse.metric == "accuracy"]
        emergent = ", ".join(self.pythia_thresholds.loc[self.pythia_thresholds.emergent, "task"]) or "none"
        win = self.pythia_thresholds.set_index("task")
        w = win.loc["winogrande"] if "winogrande" in win.index else None
        per = self.persists()
        return [
            Finding("loss_collapse", "equal pre-training loss gives equal downstream performance across sizes", SOURCE,
                    f"Pythia, {len(self.pythia_sizes)} sizes: for {close} of the {len(lc)} tasks the models learn, one "
                    f"curve of LAMBADA loss explains within {COLLAPSE_TOLERANCE} of the R² of one curve per size "
                    f"(median R² {lc.r2_shared.median():.3f} shared, {lc.r2_per_size.median():.3f} per size, "
                    f"{lc.r2_leave_one_size_out.median():.3f} on a size left out); over all {len(pc)} tasks, mean "
                    f"{pc.r2_shared.mean():.3f} against {pc.r2_per_size.mean():.3f}. Our suite: "
                    f"{acc.r2_shared.mean():.2f} shared vs {acc.r2_per_size.mean():.2f} per size.",
                    "Pythia (published evaluations)", collapse_verdict(lc)),
            Finding("threshold_emergence", "some tasks sit at chance until the loss falls below a threshold", SOURCE,
                    f"Pythia: emergent tasks {emergent}"
                    + (f"; Winogrande's threshold at ln-perplexity {w.tau:.2f} [{w.tau_lo:.2f}, {w.tau_hi:.2f}]"
                       if w is not None else "") + f". Our suite: {int(self.ours_thresholds.emergent.sum())} of "
                    f"{len(self.ours_thresholds)} battery tasks emergent.",
                    "Pythia (published evaluations)", "holds" if self.pythia_thresholds.emergent.any() else
                    "does not hold at this scale"),
            Finding("threshold_persists", "the threshold persists under a continuous metric", SOURCE,
                    f"Our suite: the probability-of-correct threshold falls inside the accuracy threshold's 95 % "
                    f"interval for {int(per.persists.sum())} of {len(per)} tasks.",
                    self.suite.id, persist_verdict(int(per.persists.sum()), len(per),
                                                   int(self.ours_thresholds.emergent.sum()))),
        ]

    def curves(self) -> list[Curve]:
        """Each battery task's accuracy (null: its chance level) and the battery's mean probability of the
        correct option at every scored checkpoint, for the Timeline."""
        b = self.battery
        out = [Curve(task_name(str(t)), "accuracy", b["accuracy"].sel({schema.TASK: t}, drop=True),
                     null=float(b["chance"].sel({schema.TASK: t})),
                     description=f"accuracy on the {t} task of the offline battery (null: chance)")
               for t in b[schema.TASK].values]
        out.append(Curve(PROB_CORRECT, "probability", b["prob_correct"].mean(schema.TASK),
                         description="probability the model gives the correct option, mean over the battery's tasks"))
        return out

    def events(self) -> pd.DataFrame:
        """Each battery task's threshold as the step each model's held-out loss reaches it, for the Timeline."""
        rec = self.suite.training_record()
        rows = []
        for r in self.ours_thresholds.itertuples():
            for m in self.models:
                curve = rec["val_loss"].sel(model=m)
                steps, loss = curve[schema.STEP].values, curve.values
                at = [em.loss_to_step(steps, loss, v) for v in (r.tau, r.tau_hi, r.tau_lo)]
                found = bool(r.emergent and np.isfinite(at[0]))
                last = self.suite.steps(m)[-1]
                rows.append({"study": "emergence", "measure": task_name(r.task), "model": m,
                             "seed": int(rec.attrs.get("seed", 0)), "kind": "loss threshold",
                             "step": at[0] if found else np.nan,
                             "step_lo": np.nanmin([at[0], at[1]]) if found else np.nan,
                             "step_hi": np.nanmax([at[0], at[2]]) if found else np.nan, "found": found,
                             "tokens_per_step": self.suite.tokens_seen(m, last) / last})
        if not rows:
            return event_table(pd.DataFrame(columns=["study", "measure", "model", "seed", "kind", "step", "step_lo",
                                                     "step_hi", "found"]), 1.0)
        frame = pd.DataFrame(rows)
        return event_table(frame.drop(columns="tokens_per_step"), frame["tokens_per_step"].to_numpy())

    def pythia_events(self) -> pd.DataFrame:
        """Pythia's emergent-task thresholds as the step each size's LAMBADA loss reaches them."""
        lam = self.pythia.drop_duplicates(["model", "step"])[["model", "step", "loss"]]
        rows = []
        for r in self.pythia_thresholds[self.pythia_thresholds.emergent].itertuples():
            for m in self.pythia_sizes:
                c = lam[lam.model == m].sort_values("step")
                at = [em.loss_to_step(c.step, c.loss, v) for v in (r.tau, r.tau_hi, r.tau_lo)]
                found = bool(np.isfinite(at[0]))
                rows.append({"study": "emergence (Pythia evals)", "measure": task_name(r.task), "model": m,
                             "seed": pythia_evals.STANDARD_SEED, "kind": "loss threshold",
                             "step": at[0] if found else np.nan,
                             "step_lo": np.nanmin([at[0], at[1]]) if found else np.nan,
                             "step_hi": np.nanmax([at[0], at[2]]) if found else np.nan, "found": found})
        cols = ["study", "measure", "model", "seed", "kind", "step", "step_lo", "step_hi", "found"]
        return event_table(pd.DataFrame(rows, columns=cols), pythia_evals.TOKENS_PER_STEP)

    def numbers(self) -> dict:
        acc = self.ours_collapse[self.ours_collapse.metric == "accuracy"]
        final = self.tidy[self.tidy.step == max(self.steps)]

        def get(df, task, col):
            d = df[df["task"] == task]
            return float(d[col].iloc[0]) if len(d) else float("nan")

        out = dict(
            n_models=len(self.models), n_steps=len(self.steps), n_items=self.n_items,
            ours_r2_shared=float(acc.r2_shared.mean()) if len(acc) else float("nan"),
            ours_r2_per_size=float(acc.r2_per_size.mean()) if len(acc) else float("nan"),
            ours_r2_loo=float(acc.r2_leave_one_size_out.mean()) if len(acc) else float("nan"),
            ours_n_emergent=int(self.ours_thresholds.emergent.sum()),
            ours_n_threshold_persists=int(self.persists().persists.sum()), ours_n_tasks=int(len(self.ours_thresholds)),
            ours_final_agreement=float(final.loc[final.task == "agreement", "accuracy"].mean()),
            ours_final_copy=float(final.loc[final.task == "copy", "accuracy"].mean()),
            pythia_n_sizes=len(self.pythia_sizes),
            pythia_r2_shared=float(self.pythia_collapse.r2_shared.mean()),
            pythia_r2_per_size=float(self.pythia_collapse.r2_per_size.mean()),
            pythia_r2_loo=float(self.pythia_collapse.r2_leave_one_size_out.mean()),
            pythia_n_emergent=int(self.pythia_thresholds.emergent.sum()),
            pythia_emergent=", ".join(self.pythia_thresholds.loc[self.pythia_thresholds.emergent, "task"]) or "none",
        )
        for t in em.PYTHIA_CHANCE:
            out[f"pythia_tau_{t}"] = get(self.pythia_thresholds, t, "tau")
            out[f"pythia_r2_shared_{t}"] = get(self.pythia_collapse, t, "r2_shared")
        return out


#: A shared curve of loss "explains the same" as one per size when its R² is at most this much lower.
COLLAPSE_TOLERANCE = 0.05


def collapse_verdict(learned: pd.DataFrame, tolerance: float = COLLAPSE_TOLERANCE, share: float = 0.75) -> str:
    """Holds when, for at least ``share`` of the learned tasks (:meth:`Emergence.learned_collapse`), one shared
    curve of loss explains within ``tolerance`` of the R² of one curve per size; contradicted otherwise; not
    measurable without a learned task."""
    if learned.empty:
        return "not measurable here"
    close = (learned.r2_per_size - learned.r2_shared) <= tolerance
    return "holds" if close.mean() >= share else "contradicted"


def persist_verdict(n_persist: int, n_tasks: int, n_emergent: int) -> str:
    """The persistence claim is about emergent tasks: without one it cannot be tested here."""
    if n_emergent == 0 or n_tasks == 0:
        return "not measurable here"
    return "holds" if n_persist >= n_tasks / 2 else "does not hold at this scale"


def run(suite: str, models: Sequence[str] | None = None, steps: Sequence[int] | None = None, device: str = "cpu",
        n_items: int = 100, max_steps: int = 16, n_boot: int = 200, seed: int = 0, pythia_shots: int = 0,
        progress: bool = True) -> Emergence:
    """Run the emergence study on ``suite`` and on Pythia's published evaluations."""
    s = ensure(suite, device=device)
    models = list(models or s.models)
    steps = shared_steps(s, models, steps, max_steps)
    battery = T.task_battery_over_steps(s, models, steps, n_items=n_items, seed=seed, device=device, progress=progress)
    tidy = em.loss_table(
        battery.drop_vars(["chance", "checkpoint_id", schema.TOKENS_SEEN]).to_dataframe().reset_index(),
        s.training_record(),
    )
    long = tidy.melt(id_vars=["model", "step", "task", "loss"], value_vars=list(T.METRICS), var_name="metric")
    chance = battery["chance"].to_series()
    band = lambda t, c: em.item_band(c, n_items)  # noqa: E731
    ours_collapse = em.collapse_table(long, list(chance.index), list(T.METRICS))
    thr = em.threshold_table(tidy, chance, band, value="accuracy", n_boot=n_boot, seed=seed)
    thr_prob = em.threshold_table(tidy, chance, band, value="prob_correct", n_boot=n_boot, seed=seed)
    ev = pythia_evals.load("main")
    ev = pd.concat([ev, em.mean_task(ev, "hendrycksTest-", "mmlu")], ignore_index=True)
    pt = em.pythia_loss_table(ev, shots=pythia_shots, deduped=False)
    pt = pt[(pt["step"] > 0) & pt["task"].isin(em.PYTHIA_CHANCE)].assign(metric="acc")
    sizes = sorted(pt["model"].unique(), key=pythia_evals.nominal_params)
    pythia_thr = em.threshold_table(pt, em.PYTHIA_CHANCE,
                                    lambda t, c: 2 * float(pt.loc[pt["task"] == t, "stderr"].median()),
                                    n_boot=n_boot, seed=seed)
    pythia_collapse = em.collapse_table(pt, list(em.PYTHIA_CHANCE), ["acc"])
    return Emergence(s, models, steps, n_items, battery, tidy, long, ours_collapse, thr, thr_prob, pt,
                     pythia_collapse, pythia_thr, sizes, params=dict(seed=seed))


register("emergence", run)
