"""Pythia as it actually developed: published per-checkpoint measurements through the library's measures.

The book's own suite is small, so most phenomena of the studies cannot appear in it. Three published
sets of per-checkpoint Pythia measurements carry the claims at the scale they were made:

* behavioural phases (Michaelov, Levy & Bergen 2025): how each checkpoint's word probabilities
  correlate with 1- to 5-gram statistics of the Pile and with contextual semantic similarity, for every
  Pythia size (14m-12b; 14m-410m with ten runs each);
* grammar acquisition: BLiMP accuracy of Pythia-160m on 67 paradigms, ten runs (PolyPythias);
* inverse scaling over pre-training (Michaelov & Bergen 2023): accuracy on the Inverse Scaling Prize tasks
  and TruthfulQA, 8 sizes x 8 checkpoints.

:func:`run` locates the events (:mod:`lhp_core.metrics.ngram_phases`, :mod:`~lhp_core.metrics.acquisition`,
:mod:`~lhp_core.metrics.inverse_scaling`) with intervals over runs where there are runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from lhp_core import schema
from lhp_core.data import pythia_behavioral_phases, pythia_blimp, pythia_evals, pythia_inverse_scaling
from lhp_core.findings import Finding
from lhp_core.metrics import acquisition, inverse_scaling, ngram_phases
from lhp_core.metrics.events import POOLED

SUITE = "Pythia (published measurements)"
#: A fold range of pooled peak steps across sizes at most this counts as "the same number of tokens".
SAME_TOKENS_FOLD = 4.0


@dataclass
class Published:
    """Everything the published-Pythia chapter shows; see :func:`run`."""

    corr: pd.DataFrame
    peaks: xr.Dataset
    consistency: xr.Dataset
    semantic: xr.Dataset
    blimp: pd.DataFrame
    acq: xr.Dataset
    acq_phenomena: xr.Dataset
    order: acquisition.OrderConsistency
    isp: pd.DataFrame
    trends: xr.Dataset
    n_boot: int
    seed: int

    def ngram_table(self) -> pd.DataFrame:
        """Per size: pooled peak step of each n-gram order with its interval over runs (``-`` = no peak yet)."""
        p = self.peaks
        rows = []
        for m in p["model"].values:
            row = {"model": m, "runs": int(p["n_seeds"].sel(model=m))}
            for n in p[schema.NGRAM].values:
                q = p.sel(model=m, ngram=n)
                row[f"{n}-gram"] = (f"{q.pooled_step.item():.0f} [{q.pooled_lo.item():.0f}, {q.pooled_hi.item():.0f}]"
                                    if bool(q.pooled_interior) else "-")
            rows.append(row)
        return pd.DataFrame(rows)

    def acquisition_table(self) -> pd.DataFrame:
        """Per BLiMP phenomenon: seeds that acquired it and the median (range) acquisition step, in order."""
        a = self.acq_phenomena
        t = pd.DataFrame({"phenomenon": a[schema.TASK].values, "seeds": a["n_acquired"].values.astype(int),
                          "median step": a["median_step"].values, "first": a["first_step"].values,
                          "last": a["last_step"].values})
        return t.sort_values(["median step", "phenomenon"], na_position="last").reset_index(drop=True)

    def decline_table(self) -> pd.DataFrame:
        """Tasks whose accuracy falls with training (Holm-adjusted), per size, with the peak step."""
        t = self.trends
        rows = []
        for task in t[schema.TASK].values:
            d = t.sel(task=task)
            sig = d["p_holm"].values < 0.05
            falls = d["declines"].values.astype(bool) & sig
            rows.append({"task": str(d["task_name"].item()),
                         "sizes declining (Holm)": int(falls.sum()), "sizes declining (uncorrected)":
                         int(d["declines"].values.astype(bool).sum()),
                         "mean slope per decade": round(float(np.nanmean(d["slope"].values)), 3)})
        return pd.DataFrame(rows).sort_values("sizes declining (Holm)", ascending=False).reset_index(drop=True)

    def peak_fold(self) -> dict[int, float]:
        """Per n-gram order: latest over earliest pooled peak step across the sizes whose pooled correlation
        peaks before the end of training (a plateau at the last step is no peak)."""
        p = self.peaks
        out = {}
        for n in p[schema.NGRAM].values:
            q = p.sel(ngram=n)
            steps = q["pooled_step"].where(q["pooled_interior"].astype(bool)).dropna("model").values
            out[int(n)] = float(steps.max() / steps.min()) if len(steps) >= 2 else float("nan")
        return out

    def findings(self) -> list[Finding]:
        p = self.peaks
        runs = p["in_order"].notnull()
        n_runs = int(runs.sum())
        in_order = int((p["in_order"] == 1).sum())
        one_before_five = int(((p["peak_step"].sel(ngram=1) <= p["peak_step"].sel(ngram=5)) & runs).sum())
        folds = self.peak_fold()
        trends = self.trends
        holm = (trends["declines"].astype(bool) & (trends["p_holm"] < 0.05))
        n_holm, n_pairs = int(holm.sum()), int(trends["declines"].notnull().sum())
        tasks_holm = sorted({str(t) for t in trends["task_name"].where(holm).values.ravel() if isinstance(t, str)})
        return [
            Finding("ngram_peaks_in_order", "word probabilities follow n-gram statistics of increasing order in turn: "
                    "the correlation with each order peaks after the lower ones", "Michaelov, Levy & Bergen 2025",
                    f"The 1-gram correlation peaks no later than the 5-gram one in {one_before_five} of {n_runs} runs "
                    f"(10 sizes, 55 runs); peaks never go backwards in n in {in_order} of {n_runs}.",
                    SUITE, "holds" if in_order >= 0.8 * n_runs else "contradicted"),
            Finding("ngram_peaks_same_tokens", "the phases fall at the same number of tokens whatever the model size",
                    "Michaelov, Levy & Bergen 2025",
                    "Latest over earliest pooled peak step across the sizes whose correlation peaks within training: "
                    + ", ".join(f"{n}-gram {f:.0f}x" for n, f in folds.items())
                    + f"; Kruskal-Wallis over the seeded sizes rejects one peak step for every n (largest p "
                    f"{float(self.consistency['kruskal_p'].max()):.3f}).",
                    SUITE, "holds" if max(folds.values()) <= SAME_TOKENS_FOLD else "contradicted"),
            Finding("blimp_order_consistent",
                    "grammatical phenomena are learnt in the same order in every training run",
                    "van der Wal et al. 2025 (PolyPythias)",
                    f"Pythia-160m, {self.acq.sizes['seed']} runs, {self.order.n_units} BLiMP paradigms: mean pairwise "
                    f"Spearman rho of acquisition orders {self.order.mean_rho:.3f} (label-shuffle null max "
                    f"{float(self.order.null.max()):.2f}, p = {self.order.p_value:.4f}).",
                    SUITE, "holds" if self.order.p_value < 0.05 and self.order.mean_rho > 0.5 else "contradicted"),
            Finding("inverse_scaling_in_training", "some tasks get worse as pre-training goes on",
                    "Michaelov & Bergen 2023",
                    f"{n_holm} of {n_pairs} (size, task) pairs fall significantly with training after Holm correction"
                    + (f" ({', '.join(tasks_holm)})" if tasks_holm else "") + ".",
                    SUITE, "holds" if n_holm > 0 else "does not hold at this scale"),
        ]

    def events(self) -> pd.DataFrame:
        """Pooled events (seed -1) of the three data sets, for the Timeline's Pythia band."""
        ev = [ngram_phases.events(self.corr, n_boot=self.n_boot, seed=self.seed),
              acquisition.events(self.blimp, level="phenomenon"), inverse_scaling.events(self.isp)]
        out = pd.concat(ev, ignore_index=True)
        return out[out["seed"] == POOLED].reset_index(drop=True)

    def numbers(self) -> dict:
        p = self.peaks
        out = {"n_sizes": int(p.sizes["model"]), "n_runs": int(p["in_order"].notnull().sum()),
               "n_runs_in_order": int((p["in_order"] == 1).sum()),
               "n_runs_1gram_before_5gram": int(((p["peak_step"].sel(ngram=1) <= p["peak_step"].sel(ngram=5))
                                                 & p["in_order"].notnull()).sum()),
               "blimp_order_rho": self.order.mean_rho, "blimp_order_p": self.order.p_value,
               "blimp_n_paradigms": int(self.acq.sizes[schema.TASK]), "blimp_n_seeds": int(self.acq.sizes["seed"]),
               "blimp_acquired_all_seeds": int((self.acq["n_acquired"] == self.acq.sizes["seed"]).sum()),
               "blimp_never_acquired": int((self.acq["n_acquired"] == 0).sum()),
               "isp_n_declines": int(self.trends["declines"].astype(bool).sum()),
               "isp_n_declines_holm": int((self.trends["declines"].astype(bool)
                                           & (self.trends["p_holm"] < 0.05)).sum())}
        for m in p["model"].values:
            for n in p[schema.NGRAM].values:
                q = p.sel(model=m, ngram=n)
                out[f"ngram{n}_peak_{m}"] = float(q["pooled_step"]) if bool(q["pooled_interior"]) else -1.0
        for n, fold in self.peak_fold().items():
            out[f"ngram{n}_fold_range"] = fold
        for m in self.semantic["model"].values:
            out[f"semantic_slope_{m}"] = float(self.semantic["mean_slope"].sel(model=m))
        return out


def run(n_boot: int = 1000, n_perm: int = 10000, seed: int = 0) -> Published:
    """Load the three published data sets and run the analyses (no model is run)."""
    corr = pythia_behavioral_phases.correlations()
    pk = ngram_phases.peaks(corr, n_boot=n_boot, seed=seed)
    blimp = pythia_blimp.load()
    acq = acquisition.acquisition(blimp)
    isp = pythia_inverse_scaling.load()
    return Published(corr, pk, ngram_phases.size_consistency(pk), ngram_phases.semantic_trend(corr), blimp, acq,
                     acquisition.acquisition(blimp, level="phenomenon"),
                     acquisition.order_consistency(acq, n_perm=n_perm, seed=seed), isp,
                     inverse_scaling.trends(isp, pythia_evals.load("main")), n_boot, seed)
