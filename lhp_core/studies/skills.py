"""A theory of skill emergence, simulated (Arora & Goyal 2023).

Text is a random bipartite graph of skills and text pieces, each piece needing ``k`` skills; a model
with excess cross-entropy fails a fraction θ of the pieces, and is competent on a skill (a k'-tuple of
skills) when at most β of the pieces using it (all of them) fail. :func:`run` simulates competence
against θ under random and skill-caused failures, checks the simulation against the binomial closed
form and the theory's union bound under a greedy adversary, and turns θ into model scale through the
Chinchilla loss fit.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lhp_core import skillgraph as sg
from lhp_core.findings import Finding

SOURCE = "Arora & Goyal 2023"


@dataclass
class Skills:
    """Everything the skills chapter shows; see :func:`run`."""

    grid: pd.DataFrame  # mode, k, kprime, theta, competence, expected
    k_mid: int
    theta_lv: dict[int, float]
    bound: pd.DataFrame  # theta, incompetent, who
    scale: pd.DataFrame  # c, kprime, N, theta, competence, slingshot
    n_lv: dict[int, float]
    params: dict = field(default_factory=dict)

    @property
    def gap_random(self) -> pd.Series:
        rnd = self.grid[self.grid["mode"] == "random"]
        return (rnd["competence"] - rnd["expected"]).abs()

    @property
    def bound_violation(self) -> float:
        piv = self.bound.pivot(index="theta", columns="who", values="incompetent")
        return float((piv["adversarial failures"] - piv["union bound α(θ)"]).max())

    @property
    def sling_at_n_lv(self) -> float:
        kp = max(self.n_lv)
        c_mid = self.params["c_mid"]
        sc = self.scale[(self.scale["c"] == c_mid) & (self.scale["kprime"] == kp)]
        if not np.isfinite(self.n_lv[kp]):
            return float("nan")
        return float(sc[sc["N"] >= self.n_lv[kp]]["slingshot"].iloc[0])

    def findings(self) -> list[Finding]:
        t = self.theta_lv
        ratio = t[1] / t[2]
        return [
            Finding("skills_pairs_need_half_theta", "competence on pairs of skills needs about half the failure "
                    "fraction that single skills tolerate", SOURCE,
                    f"Simulated, k = {self.k_mid}: {self.params['level']:.0%} of single skills competent up to θ = "
                    f"{t[1]:.3f}, of pairs up to {t[2]:.3f} (ratio {ratio:.2f}; the corollary predicts about 2).",
                    "simulation", "holds" if 1.5 <= ratio <= 2.5 else "contradicted"),
            Finding("skills_union_bound", "the union bound caps the incompetent fraction for every failure set",
                    SOURCE, f"A greedy adversary's largest excess over the bound α(θ): {self.bound_violation:+.3f}.",
                    "simulation", "holds" if self.bound_violation <= 0 else "contradicted"),
        ]

    def numbers(self) -> dict:
        t, n = self.theta_lv, self.n_lv
        p = self.params
        return dict(
            max_gap_random=float(self.gap_random.max()), mean_gap_random=float(self.gap_random.mean()),
            level=p["level"],
            theta_lv_k1=t[1], theta_lv_k2=t[2], theta_lv_k4=t.get(4, float("nan")), theta_ratio_1_2=t[1] / t[2],
            n_lv_k1=n[1], n_lv_k2=n[2], n_lv_ratio_2_1=n[2] / n[1], bound_violation=self.bound_violation,
            slingshot_at_n_lv=self.sling_at_n_lv, slingshot_kprime=max(n), k=self.k_mid, beta=p["beta"],
            n_skills=p["n_skills"], n_pieces=p["n_pieces"],
        )


def run(n_skills: int = 200, n_pieces: int = 20000, ks: Sequence[int] = (2, 4, 6, 8),
        kprimes: Sequence[int] = (1, 2, 4), n_theta: int = 25, beta: float = 0.5, level: float = 0.9,
        n_tuples: int = 800, n_reps: int = 5, nats_per_failure: Sequence[float] = (0.5, 1.0, 2.0),
        world_skills: int = 10000, tokens_per_piece: int = 1000, seed: int = 0) -> Skills:
    """Simulate the skill graph (sizes as in the chapter's parameters)."""
    ks, kprimes, nats_per_failure = list(ks), list(kprimes), list(nats_per_failure)
    thetas = np.linspace(0.01, 0.6, n_theta)
    grid = pd.concat([sg.competence_grid(n_skills, n_pieces, ks, kprimes, thetas, beta, seed=seed, n_tuples=n_tuples,
                                         mode=mode, n_reps=n_reps) for mode in ("random", "skills")], ignore_index=True)
    k_mid = ks[min(2, len(ks) - 1)]
    sk = grid[(grid["mode"] == "skills") & (grid["k"] == k_mid)]
    theta_lv = {kp: sg.crossing(sk[sk.kprime == kp]["theta"].to_numpy(), sk[sk.kprime == kp]["competence"].to_numpy(),
                                level) for kp in kprimes if kp <= k_mid}
    g = sg.SkillGraph.random(n_skills, n_pieces, k_mid, seed=seed)
    rows = []
    for th in thetas[thetas < beta]:
        rows += [{"theta": th,
                  "incompetent": 1 - sg.competence(g, sg.adversarial_failures(g, float(th), beta, seed=seed), beta),
                  "who": "adversarial failures"},
                 {"theta": th,
                  "incompetent": 1 - sg.competence(g, sg.random_failures(n_pieces, float(th), seed=seed), beta),
                  "who": "random failures"},
                 {"theta": th, "incompetent": sg.incompetence_bound(float(th), k_mid, beta,
                                                                    skills_per_piece=n_skills / n_pieces),
                  "who": "union bound α(θ)"}]
    N = np.geomspace(1e7, 1e14, 351)
    scale_rows = []
    for c in nats_per_failure:
        th = sg.theta_from_scale(N, 20 * N, nats_per_failure=c)
        for kp in theta_lv:
            d = sk[sk["kprime"] == kp].sort_values("theta")
            comp = np.interp(th, d["theta"], d["competence"], left=d["competence"].iloc[0], right=0.0)
            for n_, t_, c_ in zip(N, th, comp):
                scale_rows.append({"c": c, "kprime": kp, "N": n_, "theta": t_, "competence": c_,
                                   "slingshot": sg.slingshot_factor(c_, world_skills, kp, k_mid, 20 * n_,
                                                                    tokens_per_piece)})
    scale = pd.DataFrame(scale_rows)
    c_mid = nats_per_failure[len(nats_per_failure) // 2]
    sc = scale[scale["c"] == c_mid]
    n_lv = {kp: sg.crossing(sc[sc.kprime == kp]["N"].to_numpy(), sc[sc.kprime == kp]["competence"].to_numpy(), level,
                            falling=False) for kp in theta_lv}
    return Skills(grid, k_mid, theta_lv, pd.DataFrame(rows), scale, n_lv,
                  params=dict(level=level, beta=beta, n_skills=n_skills, n_pieces=n_pieces, c_mid=c_mid, ks=ks,
                              nats_per_failure=nats_per_failure))
