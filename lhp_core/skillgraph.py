"""Simulator of the random skill–text graph of Arora & Goyal (2023).

"A Theory for Emergence of Complex Skills and Skills Acquisition in Language Models"
models language as a random bipartite graph: skills on one side, text pieces on the
other, each piece needing ``k`` skills drawn at random. A model whose excess
cross-entropy is ``δ`` fails a fraction ``θ`` of the pieces (cloze questions). It is
*competent* on a skill when at most a fraction ``β`` of the pieces that use the skill
fail, and competent on a ``k'``-tuple of skills when at most ``β`` of the pieces that use
*all* of the tuple's skills fail.

This module provides

* :class:`SkillGraph` – the random graph (pieces × k skill ids);
* failure sets: :func:`random_failures` (a uniformly random θ-fraction, or independent
  Bernoulli(θ) failures) and :func:`adversarial_failures` (failures concentrated on as few
  skills as possible, the worst case the theory must cover);
* :func:`competence` – fraction of skills / k'-tuples that are competent;
* closed forms to check the simulation: :func:`expected_competence` (binomial tail per
  tuple, independent failures) and :func:`expected_skill_competence` (the same averaged
  over the random degree of a skill);
* :func:`incompetence_bound` – the first-moment (union + Chernoff) bound on the fraction
  of incompetent skills that holds for *every* failure set of size θ, of the same form as
  the paper's emergence theorem (derivation in its docstring);
* the scaling law :func:`chinchilla_loss` (Hoffmann et al. 2022) and :func:`theta_from_scale`
  mapping model size ``N`` and data ``D`` to ``θ``, and :func:`slingshot_factor`.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from lhp_core.progress import bar

# Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", eq. 10 / Approach 3:
# L(N, D) = E + A / N**alpha + B / D**beta, fitted on the Chinchilla runs (nats/token).
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


@dataclass(frozen=True)
class SkillGraph:
    """A random bipartite skill–text graph.

    Attributes
    ----------
    pieces
        ``int`` array of shape ``(n_pieces, k)``: the skill ids each text piece needs
        (``k`` distinct skills per piece, drawn uniformly).
    n_skills
        Number of skills.
    """

    pieces: np.ndarray
    n_skills: int

    @property
    def n_pieces(self) -> int:
        return int(self.pieces.shape[0])

    @property
    def k(self) -> int:
        return int(self.pieces.shape[1])

    @classmethod
    def random(cls, n_skills: int, n_pieces: int, k: int, seed: int = 0) -> SkillGraph:
        """Draw a graph: every piece needs ``k`` distinct skills chosen uniformly at random."""
        if not 1 <= k <= n_skills:
            raise ValueError(f"k={k} skills per piece must be between 1 and n_skills={n_skills}")
        if n_pieces < 1:
            raise ValueError(f"n_pieces must be positive, got {n_pieces}")
        rng = np.random.default_rng(seed)
        # argsort of uniform noise gives a uniformly random k-subset per row without a Python loop.
        pieces = np.argsort(rng.random((n_pieces, n_skills)), axis=1)[:, :k]
        return cls(pieces=np.sort(pieces, axis=1).astype(np.int64), n_skills=n_skills)

    def incidence(self) -> np.ndarray:
        """Boolean ``(n_pieces, n_skills)`` matrix: piece ``t`` needs skill ``s``."""
        inc = np.zeros((self.n_pieces, self.n_skills), dtype=bool)
        np.put_along_axis(inc, self.pieces, True, axis=1)
        return inc

    def degrees(self) -> np.ndarray:
        """Number of pieces per skill, shape ``(n_skills,)``."""
        return np.bincount(self.pieces.ravel(), minlength=self.n_skills)


def _check_theta(theta: float) -> None:
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta (fraction of failed pieces) must be in [0, 1], got {theta}")


def random_failures(n_pieces: int, theta: float, seed: int = 0, mode: str = "subset") -> np.ndarray:
    """Failed pieces when failures are unrelated to skills.

    Parameters
    ----------
    mode
        ``"subset"``: exactly ``round(θ · n_pieces)`` pieces fail, chosen uniformly (the
        paper's failure set ``Y`` of measure θ). ``"bernoulli"``: each piece fails
        independently with probability θ (what the binomial closed forms assume).

    Returns
    -------
    Boolean array of shape ``(n_pieces,)``.
    """
    _check_theta(theta)
    rng = np.random.default_rng(seed)
    if mode == "bernoulli":
        return rng.random(n_pieces) < theta
    if mode == "subset":
        failed = np.zeros(n_pieces, dtype=bool)
        failed[rng.choice(n_pieces, size=int(round(theta * n_pieces)), replace=False)] = True
        return failed
    raise ValueError(f"unknown failure mode {mode!r}; use 'subset' or 'bernoulli'")


def skill_failures(graph: SkillGraph, theta: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Failures caused by missing skills: each skill is missing with probability ``q`` and a
    piece fails when it needs a missing skill.

    ``q = 1 − (1 − θ)^(1/k)`` makes the expected fraction of failed pieces exactly θ. Here a
    k'-tuple is usable only if all its skills are present, so competence on k'-tuples falls
    roughly like ``(1 − q)^k'`` and the same competence on k'-tuples needs about θ/k' –
    the scaling of the paper's corollary ("halving the excess loss doubles k'").

    Returns
    -------
    failed
        Boolean ``(n_pieces,)``.
    missing
        Boolean ``(n_skills,)``.
    """
    _check_theta(theta)
    rng = np.random.default_rng(seed)
    q = 1.0 - (1.0 - theta) ** (1.0 / graph.k)
    missing = rng.random(graph.n_skills) < q
    return missing[graph.pieces].any(axis=1), missing


def adversarial_failures(graph: SkillGraph, theta: float, beta: float, seed: int = 0) -> np.ndarray:
    """A failure set of size ``θ · n_pieces`` chosen to make many skills incompetent.

    Greedy: visit skills in random order and fail just over a fraction ``β`` of each one's
    pieces (the cheapest way to break a skill), until the budget is spent. The emergence
    theorem bounds the damage of *any* failure set, so this is the case that tests it.
    """
    _check_theta(theta)
    rng = np.random.default_rng(seed)
    budget = int(round(theta * graph.n_pieces))
    failed = np.zeros(graph.n_pieces, dtype=bool)
    inc = graph.incidence()
    for s in rng.permutation(graph.n_skills):
        if budget <= 0:
            break
        rows = np.flatnonzero(inc[:, s])
        need = int(np.floor(beta * rows.size)) + 1 - int(failed[rows].sum())
        fresh = rows[~failed[rows]]
        if need <= 0 or need > fresh.size:
            continue
        take = fresh[: min(need, budget)]
        failed[take] = True
        budget -= take.size
    if budget > 0:
        failed[rng.choice(np.flatnonzero(~failed), size=budget, replace=False)] = True
    return failed


def tuple_degrees(graph: SkillGraph, tuples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pieces using all skills of each tuple.

    Parameters
    ----------
    tuples
        ``int`` array ``(n_tuples, k')`` of skill ids.

    Returns
    -------
    members
        Boolean ``(n_tuples, n_pieces)``: piece uses every skill of the tuple.
    degree
        ``(n_tuples,)`` number of such pieces.
    """
    inc = graph.incidence()
    members = np.ones((tuples.shape[0], graph.n_pieces), dtype=bool)
    for j in range(tuples.shape[1]):
        members &= inc[:, tuples[:, j]].T
    return members, members.sum(axis=1)


def sample_tuples(graph: SkillGraph, kprime: int, n_tuples: int, seed: int = 0) -> np.ndarray:
    """``n_tuples`` k'-tuples of skills, each drawn from a random piece (so each has ≥ 1 piece).

    Drawing through pieces weights a tuple by how often text uses it, as the paper's
    measure over k'-tuples does. For ``k' = 1`` use all skills instead (see :func:`competence`).

    Returns
    -------
    ``int`` array ``(n_tuples, k')``.
    """
    if not 1 <= kprime <= graph.k:
        raise ValueError(f"k'={kprime} must be between 1 and the skills per piece k={graph.k}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, graph.n_pieces, size=n_tuples)
    cols = np.argsort(rng.random((n_tuples, graph.k)), axis=1)[:, :kprime]
    return np.sort(np.take_along_axis(graph.pieces[rows], cols, axis=1), axis=1)


def competence(
    graph: SkillGraph, failed: np.ndarray, beta: float, kprime: int = 1, n_tuples: int = 2000, seed: int = 0
) -> float:
    """Fraction of skills (``k' = 1``) or k'-tuples on which the model is competent.

    Competent = at most a fraction ``β`` of the pieces using the skill (tuple) fail.
    Skills that no piece uses are left out. For ``k' > 1`` the fraction is over
    ``n_tuples`` tuples drawn by :func:`sample_tuples` with the same ``seed``.
    """
    failed = np.asarray(failed, dtype=bool)
    if failed.shape != (graph.n_pieces,):
        raise ValueError(f"failed must have shape ({graph.n_pieces},) (one flag per piece), got {failed.shape}")
    if kprime == 1:
        deg = graph.degrees()
        bad = np.bincount(graph.pieces[failed].ravel(), minlength=graph.n_skills)
        used = deg > 0
        return float(np.mean(bad[used] <= beta * deg[used]))
    tuples = sample_tuples(graph, kprime, n_tuples, seed)
    members, deg = tuple_degrees(graph, tuples)
    bad = (members & failed[None, :]).sum(axis=1)
    return float(np.mean(bad <= beta * deg))


def expected_competence(degrees: np.ndarray, theta: float, beta: float) -> float:
    """Closed form of :func:`competence` under independent Bernoulli(θ) failures.

    A skill/tuple with ``d`` pieces is competent iff ``Binomial(d, θ) ≤ ⌊β d⌋``, so the
    expected competent fraction is the mean of that binomial CDF over the given degrees.

    Parameters
    ----------
    degrees
        ``(n,)`` positive piece counts of the skills or tuples.
    """
    d = np.asarray(degrees)
    if np.any(d < 1):
        raise ValueError("degrees must be >= 1; leave out skills that no piece uses")
    return float(np.mean(stats.binom.cdf(np.floor(beta * d + 1e-12), d, theta)))


def expected_skill_competence(n_skills: int, n_pieces: int, k: int, theta: float, beta: float) -> float:
    """Expected competent fraction of skills over random graphs *and* Bernoulli failures.

    A skill's degree is ``Binomial(n_pieces, k / n_skills)``; conditioning on degree ≥ 1
    (unused skills are left out, as in :func:`competence`) and averaging the binomial tail
    of :func:`expected_competence` gives a number that depends on no simulation at all.
    """
    p = k / n_skills
    d = np.arange(1, n_pieces + 1)
    w = stats.binom.pmf(d, n_pieces, p)
    tail = stats.binom.cdf(np.floor(beta * d + 1e-12), d, theta)
    return float(np.sum(w * tail) / np.sum(w))


def _entropy(x: float) -> float:
    return float(special.entr(x) + special.entr(1.0 - x))


def incompetence_bound(theta: float, k: int, beta: float, skills_per_piece: float = 0.0) -> float:
    """Largest fraction α of skills that a failure set of measure θ can make incompetent.

    First-moment argument, the same shape as the emergence theorem of Arora & Goyal:
    take a set ``Z`` of ``α N_s`` skills and a set ``Y`` of ``θ N_t`` pieces. If every skill
    in ``Z`` has more than a fraction ``β`` of its (≈ ``k N_t / N_s``) edges in ``Y``, the
    ``k θ N_t`` edges leaving ``Y`` put at least ``β α k N_t`` endpoints in ``Z``. Each endpoint
    lands in ``Z`` with probability α, so by Chernoff this has probability at most
    ``exp(-k θ N_t · KL(βα/θ ‖ α))``. A union bound over the ``exp(N_t H(θ))`` sets ``Y`` and
    ``exp(N_s H(α))`` sets ``Z`` shows that with high probability *no* such pair exists when

        H(θ) + (N_s / N_t) H(α) − k θ KL(βα/θ ‖ α) < 0.

    The bound returned is the smallest α ∈ (0, θ/β) for which this holds (1.0 when none
    does; it needs β > θ). It ignores fluctuations of skill degrees around ``k N_t/N_s``,
    so it is asymptotic in the graph size.

    Parameters
    ----------
    skills_per_piece
        ``N_s / N_t``; the paper's regime is ``N_t ≫ N_s`` (0).
    """
    _check_theta(theta)
    if theta <= 0:
        return 0.0
    if beta <= theta:
        return 1.0

    def excess(alpha: float) -> float:
        q = beta * alpha / theta
        kl = q * np.log(q / alpha) + (1 - q) * np.log((1 - q) / (1 - alpha)) if q < 1 else np.log(1 / alpha)
        return _entropy(theta) + skills_per_piece * _entropy(alpha) - k * theta * kl

    hi = min(theta / beta, 1.0) * (1 - 1e-9)
    grid = np.geomspace(1e-12, hi, 400)
    vals = np.array([excess(a) for a in grid])
    ok = np.flatnonzero(vals < 0)
    if ok.size == 0:
        return 1.0
    i = ok[0]
    if i == 0:
        return float(grid[0])
    return float(optimize.brentq(excess, grid[i - 1], grid[i]))


def chinchilla_loss(n_params: np.ndarray | float, n_tokens: np.ndarray | float, **law: float) -> np.ndarray:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` in nats/token.

    Defaults are Hoffmann et al. (2022)'s fitted values (:data:`CHINCHILLA`); pass any of
    ``E, A, B, alpha, beta`` to change them.
    """
    unknown = set(law) - set(CHINCHILLA)
    if unknown:
        raise ValueError(f"unknown scaling-law parameters {sorted(unknown)}; valid: {sorted(CHINCHILLA)}")
    p = {**CHINCHILLA, **law}
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(n_tokens, dtype=float)
    if np.any(n <= 0) or np.any(d <= 0):
        raise ValueError("model size N and training tokens D must be positive")
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def theta_from_scale(
    n_params: np.ndarray | float, n_tokens: np.ndarray | float, nats_per_failure: float = 1.0, **law: float
) -> np.ndarray:
    """Fraction of failed pieces θ implied by scale.

    The paper links excess cross-entropy ``δ = L − E`` to cloze errors: a model that fails a
    fraction θ of pieces pays at least a fixed excess per failed piece, so θ ≤ δ / c. We use
    θ = min(1, δ / c) with ``c = nats_per_failure`` (the theory leaves c free; changing it
    only rescales the scale axis).
    """
    if nats_per_failure <= 0:
        raise ValueError("nats_per_failure must be positive")
    p = {**CHINCHILLA, **law}
    excess = chinchilla_loss(n_params, n_tokens, **law) - p["E"]
    return np.minimum(1.0, excess / nats_per_failure)


def slingshot_factor(
    competent_fraction: float, n_skills: int, kprime: int, k: int, n_tokens: float, tokens_per_piece: float
) -> float:
    """Competent k'-tuples per k'-tuple that the training text could have shown.

    Training on ``D`` tokens shows at most ``D / tokens_per_piece`` pieces, each combining
    ``C(k, k')`` k'-tuples; the model is competent on ``competent_fraction · C(N_s, k')``
    tuples. A factor above 1 is competence on combinations never seen in training, which
    is what the paper calls slingshot generalisation.
    """
    seen = min(comb(n_skills, kprime), n_tokens / tokens_per_piece * comb(k, kprime))
    if seen <= 0:
        raise ValueError("the training text shows no tuple: n_tokens and tokens_per_piece must be positive")
    return float(competent_fraction * comb(n_skills, kprime) / seen)


def crossing(x: np.ndarray, y: np.ndarray, level: float, falling: bool = True) -> float:
    """First ``x`` (in increasing order) where ``y`` crosses ``level``, linearly interpolated.

    ``falling=True``: first point with ``y < level`` after a point with ``y ≥ level`` (the
    largest θ at which most skills are still competent); ``False``: first rise to ``≥ level``.
    NaN if ``y`` never crosses. Robust to non-monotone (simulated) curves.
    """
    order = np.argsort(x)
    x, y = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    s = (y - level) if falling else (level - y)
    for i in range(1, x.size):
        if s[i - 1] >= 0 > s[i]:
            return float(x[i - 1] + (x[i] - x[i - 1]) * s[i - 1] / (s[i - 1] - s[i]))
    return float("nan")


def competence_grid(
    n_skills: int,
    n_pieces: int,
    ks: list[int],
    kprimes: list[int],
    thetas: np.ndarray,
    beta: float,
    seed: int = 0,
    n_tuples: int = 1000,
    mode: str = "random",
    n_reps: int = 1,
) -> pd.DataFrame:
    """Simulated competence for every (k, k', θ): a tidy table for sliders in the book.

    Parameters
    ----------
    mode
        ``"random"``: independent Bernoulli(θ) piece failures; ``"skills"``: failures
        caused by missing skills (:func:`skill_failures`).
    n_reps
        Independent failure draws averaged per θ (the graph is fixed).

    Returns
    -------
    DataFrame with columns ``mode, k, kprime, theta, competence, expected`` (the binomial
    closed form for the same tuples under independent failures), one row per combination
    with ``k' ≤ k``.
    """
    if mode not in ("random", "skills"):
        raise ValueError(f"unknown failure mode {mode!r}; use 'random' or 'skills'")
    if n_reps < 1:
        raise ValueError(f"n_reps must be positive, got {n_reps}")
    rows = []
    for k in bar(ks, desc="skill graphs", disable=None):
        graph = SkillGraph.random(n_skills, n_pieces, k, seed=seed)
        for kp in [kp for kp in kprimes if kp <= k]:
            # Membership is fixed per graph: failures only change which members count as bad,
            # so competence for every draw is one sparse-free matrix-vector product.
            if kp == 1:
                members = graph.incidence().T
            else:
                members, _ = tuple_degrees(graph, sample_tuples(graph, kp, n_tuples, seed))
            deg = members.sum(axis=1)
            members, deg = members[deg > 0], deg[deg > 0]
            m = members.astype(np.float32)
            for i, theta in enumerate(thetas):
                comp = []
                for r in range(n_reps):
                    draw = seed + 1000 * r + i
                    if mode == "random":
                        failed = random_failures(graph.n_pieces, float(theta), seed=draw, mode="bernoulli")
                    else:
                        failed, _ = skill_failures(graph, float(theta), seed=draw)
                    bad = m @ failed.astype(np.float32)
                    comp.append(float(np.mean(bad <= beta * deg)))
                rows.append(
                    {
                        "mode": mode,
                        "k": k,
                        "kprime": kp,
                        "theta": float(theta),
                        "competence": float(np.mean(comp)),
                        "expected": expected_competence(deg, float(theta), beta),
                    }
                )
    return pd.DataFrame(rows)
