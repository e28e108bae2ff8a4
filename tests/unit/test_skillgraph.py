"""Skill-graph simulator against closed forms (binomial tails), the union bound and Chinchilla."""
from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy import stats

from lhp_core import skillgraph as sg


def test_graph_shape_and_distinct_skills() -> None:
    g = sg.SkillGraph.random(n_skills=30, n_pieces=500, k=4, seed=1)
    assert g.pieces.shape == (500, 4)
    assert all(len(set(row)) == 4 for row in g.pieces.tolist())
    assert g.incidence().sum() == 500 * 4
    assert g.degrees().sum() == 500 * 4
    # Each skill is in a piece with probability k / n_skills: degree mean within 4 SE of 500*4/30.
    deg = g.degrees()
    se = np.sqrt(500 * (4 / 30) * (1 - 4 / 30) / 30)
    assert abs(deg.mean() - 500 * 4 / 30) <= 4 * se + 1e-9


def test_deterministic_given_seed() -> None:
    a = sg.SkillGraph.random(20, 100, 3, seed=7).pieces
    b = sg.SkillGraph.random(20, 100, 3, seed=7).pieces
    assert np.array_equal(a, b)


def test_competence_hand_built_graph() -> None:
    # 3 skills, 4 pieces; skill 0 in pieces 0,1,2; skill 1 in 0,3; skill 2 in 1,2,3.
    g = sg.SkillGraph(pieces=np.array([[0, 1], [0, 2], [0, 2], [1, 2]]), n_skills=3)
    failed = np.array([True, False, False, False])
    # failed fractions: skill0 1/3, skill1 1/2, skill2 0/3.
    assert sg.competence(g, failed, beta=0.4) == pytest.approx(2 / 3)
    assert sg.competence(g, failed, beta=0.5) == pytest.approx(1.0)
    assert sg.competence(g, failed, beta=0.0) == pytest.approx(1 / 3)
    members, deg = sg.tuple_degrees(g, np.array([[0, 2], [1, 2]]))
    assert deg.tolist() == [2, 1]
    assert members[0].tolist() == [False, True, True, False]


def test_simulation_matches_binomial_tail_closed_form() -> None:
    """Mean simulated competence over replicate graphs+failures vs the degree-averaged binomial tail.

    Tolerance: 4 standard errors of the replicate mean.
    """
    n_skills, n_pieces, k, theta, beta = 40, 400, 3, 0.2, 0.25
    sims = []
    for r in range(60):
        g = sg.SkillGraph.random(n_skills, n_pieces, k, seed=r)
        failed = sg.random_failures(n_pieces, theta, seed=1000 + r, mode="bernoulli")
        sims.append(sg.competence(g, failed, beta))
    sims = np.array(sims)
    exact = sg.expected_skill_competence(n_skills, n_pieces, k, theta, beta)
    se = sims.std(ddof=1) / np.sqrt(sims.size)
    assert 0.05 < exact < 0.95  # a regime where the test can fail
    assert abs(sims.mean() - exact) <= 4 * se


def test_tuple_competence_matches_closed_form_given_degrees() -> None:
    g = sg.SkillGraph.random(12, 600, 4, seed=3)
    tuples = sg.sample_tuples(g, 2, 300, seed=5)
    _, deg = sg.tuple_degrees(g, tuples)
    assert deg.min() >= 1
    theta, beta = 0.3, 0.3
    sims = np.array([
        sg.competence(g, sg.random_failures(g.n_pieces, theta, seed=r, mode="bernoulli"), beta, kprime=2,
                      n_tuples=300, seed=5)
        for r in range(40)
    ])
    exact = sg.expected_competence(deg, theta, beta)
    se = sims.std(ddof=1) / np.sqrt(sims.size)
    assert abs(sims.mean() - exact) <= 4 * se


def test_expected_competence_equals_scipy_binomial_cdf() -> None:
    deg = np.array([1, 5, 10])
    got = sg.expected_competence(deg, 0.3, 0.2)
    # floor(0.2*d) = 0, 1, 2
    want = np.mean([stats.binom.cdf(0, 1, 0.3), stats.binom.cdf(1, 5, 0.3), stats.binom.cdf(2, 10, 0.3)])
    assert got == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="degrees must be >= 1"):
        sg.expected_competence(np.array([0, 2]), 0.1, 0.2)


def test_subset_failures_have_exact_size() -> None:
    f = sg.random_failures(1000, 0.137, seed=0)
    assert f.sum() == 137
    with pytest.raises(ValueError, match="theta"):
        sg.random_failures(10, 1.5)
    with pytest.raises(ValueError, match="unknown failure mode"):
        sg.random_failures(10, 0.1, mode="nope")


@pytest.mark.parametrize("theta", [0.02, 0.05, 0.1])
def test_union_bound_holds_for_adversarial_and_random_failures(theta: float) -> None:
    n_skills, n_pieces, k, beta = 60, 12000, 5, 0.2
    g = sg.SkillGraph.random(n_skills, n_pieces, k, seed=11)
    bound = sg.incompetence_bound(theta, k, beta, skills_per_piece=n_skills / n_pieces)
    adv = 1 - sg.competence(g, sg.adversarial_failures(g, theta, beta, seed=2), beta)
    rnd = 1 - sg.competence(g, sg.random_failures(n_pieces, theta, seed=2), beta)
    assert adv > 0  # the adversary does break skills
    assert adv <= bound and rnd <= bound
    adversarial = sg.adversarial_failures(g, theta, beta, seed=2)
    assert adversarial.sum() == round(theta * n_pieces)


def test_union_bound_monotone_and_edge_cases() -> None:
    b = [sg.incompetence_bound(t, 5, 0.3) for t in (0.01, 0.05, 0.1, 0.2)]
    assert all(x <= y for x, y in zip(b, b[1:]))
    assert sg.incompetence_bound(0.0, 5, 0.3) == 0.0
    assert sg.incompetence_bound(0.4, 5, 0.3) == 1.0  # beta <= theta: nothing guaranteed
    # More skills per piece (larger k) makes the guarantee stronger.
    assert sg.incompetence_bound(0.05, 10, 0.2) < sg.incompetence_bound(0.05, 3, 0.2)
    # At the returned alpha, the defining inequality is at its boundary.
    theta, k, beta = 0.05, 5, 0.2
    a = sg.incompetence_bound(theta, k, beta)
    q = beta * a / theta
    kl = q * np.log(q / a) + (1 - q) * np.log((1 - q) / (1 - a))
    h = -theta * np.log(theta) - (1 - theta) * np.log(1 - theta)
    assert h - k * theta * kl == pytest.approx(0.0, abs=1e-8)


def test_chinchilla_law_values_and_theta() -> None:
    n, d = 70e9, 1.4e12  # Chinchilla itself
    want = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    assert sg.chinchilla_loss(n, d) == pytest.approx(want, rel=1e-12)
    assert float(sg.chinchilla_loss(n, d)) == pytest.approx(1.937, abs=0.005)  # value quoted by Hoffmann et al.
    assert sg.chinchilla_loss(n, d, E=0.0) == pytest.approx(want - 1.69)
    th = sg.theta_from_scale(np.array([1e7, 1e9, 1e11]), 2e11, nats_per_failure=2.0)
    assert np.all(np.diff(th) < 0)
    assert th[1] == pytest.approx((406.4 / 1e9**0.34 + 410.7 / 2e11**0.28) / 2.0)
    with pytest.raises(ValueError, match="unknown scaling-law parameters"):
        sg.chinchilla_loss(1e9, 1e9, gamma=1.0)
    with pytest.raises(ValueError, match="positive"):
        sg.chinchilla_loss(0, 1e9)


def test_slingshot_factor_counts() -> None:
    # 1000 skills, pairs: C(1000,2)=499500; training shows 1e6/100 = 1e4 pieces * C(4,2)=6 -> 6e4 pairs.
    f = sg.slingshot_factor(0.5, 1000, 2, 4, 1e6, 100)
    assert f == pytest.approx(0.5 * comb(1000, 2) / 6e4)
    # When training covers every tuple, the factor is just the competent fraction.
    assert sg.slingshot_factor(0.9, 10, 2, 4, 1e9, 10) == pytest.approx(0.9)


def test_competence_grid_table() -> None:
    df = sg.competence_grid(30, 300, ks=[2, 4], kprimes=[1, 2, 4], thetas=np.array([0.05, 0.3]), beta=0.2,
                            n_tuples=100)
    assert set(df.columns) == {"mode", "k", "kprime", "theta", "competence", "expected"}
    assert len(df) == (2 + 3) * 2  # k=2 has k'=1,2; k=4 has k'=1,2,4
    # competence falls with theta for every (k, k')
    for _, grp in df.groupby(["k", "kprime"]):
        assert grp.sort_values("theta")["expected"].is_monotonic_decreasing


def test_skill_failures_rate_and_missing_skills_are_incompetent() -> None:
    """Failed fraction has expectation θ (4 SE over replicates); a missing skill is never competent."""
    g = sg.SkillGraph.random(50, 2000, 4, seed=0)
    theta = 0.3
    fr = []
    for r in range(80):
        failed, missing = sg.skill_failures(g, theta, seed=r)
        assert np.all(failed == missing[g.pieces].any(axis=1))
        used = g.degrees() > 0
        assert sg.competence(g, failed, beta=0.5) <= 1 - missing[used].mean() + 1e-12
        fr.append(failed.mean())
    fr = np.array(fr)
    assert abs(fr.mean() - theta) <= 4 * fr.std(ddof=1) / np.sqrt(fr.size)


def test_skill_failures_make_tuples_harder_than_single_skills() -> None:
    df = sg.competence_grid(40, 3000, ks=[6], kprimes=[1, 2, 4], thetas=np.array([0.2]), beta=0.6, mode="skills",
                            n_tuples=400)
    c = df.set_index("kprime")["competence"]
    assert c[1] > c[2] > c[4]
    with pytest.raises(ValueError, match="unknown failure mode"):
        sg.competence_grid(10, 10, [2], [1], np.array([0.1]), 0.1, mode="x")


def test_crossing_interpolates_first_crossing() -> None:
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    y = np.array([1.0, 0.95, 0.85, 0.92, 0.5])  # non-monotone: the first fall below 0.9 counts
    assert sg.crossing(x, y, 0.9) == pytest.approx(0.1 + 0.1 * 0.05 / 0.10)
    assert np.isnan(sg.crossing(x, np.ones(5), 0.9))
    assert sg.crossing(x, 1 - y, 0.1, falling=False) == pytest.approx(0.1 + 0.1 * 0.05 / 0.10)


def test_competence_grid_agrees_with_competence_function() -> None:
    """The grid's matrix-product shortcut equals competence() on the same draw."""
    g = sg.SkillGraph.random(30, 500, 4, seed=0)
    df = sg.competence_grid(30, 500, ks=[4], kprimes=[1, 2], thetas=np.array([0.1, 0.4]), beta=0.3, n_tuples=150)
    for kp in (1, 2):
        for i, th in enumerate((0.1, 0.4)):
            failed = sg.random_failures(500, th, seed=i, mode="bernoulli")
            want = sg.competence(g, failed, 0.3, kprime=kp, n_tuples=150, seed=0)
            got = df[(df.kprime == kp) & (df.theta == th)]["competence"].item()
            assert got == pytest.approx(want, abs=1e-12)
    avg = sg.competence_grid(30, 500, ks=[4], kprimes=[1], thetas=np.array([0.3]), beta=0.3, n_reps=20)
    assert abs(avg["competence"].item() - avg["expected"].item()) < 0.1
