"""Checkpoint schedules: which training steps a suite saves.

Pythia saves step 0, ten log-spaced steps (1, 2, 4, ..., 512) and then every 1000 steps up
to 143000: 154 checkpoints. Our own suites use the same shape (log-spaced, then evenly
spaced) scaled down to a few hundred or thousand steps.
"""
from __future__ import annotations

import numpy as np

PYTHIA_TOKENS_PER_STEP = 2_097_152  # 1024 sequences x 2048 tokens
PYTHIA_FINAL_STEP = 143_000


def pythia_steps() -> list[int]:
    """The 154 steps at which every Pythia model was saved.

    Returns
    -------
    list of int
        ``[0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000]``.
    """
    return log_then_even(PYTHIA_FINAL_STEP, every=1000)


def log_then_even(total: int, every: int) -> list[int]:
    """Step 0, powers of two below ``every``, then every ``every`` steps up to ``total``.

    Parameters
    ----------
    total
        Last training step (always included, even if not a multiple of ``every``).
    every
        Spacing of the evenly spaced part; the log-spaced part stops below it.

    Returns
    -------
    list of int
        Sorted unique steps, e.g. ``log_then_even(64, 16) == [0, 1, 2, 4, 8, 16, 32, 48, 64]``.
    """
    if total < 1 or every < 1:
        raise ValueError(f"total and every must be >= 1 (got total={total}, every={every})")
    if every > total:
        raise ValueError(f"every={every} exceeds total={total}; choose every <= total")
    steps = {0, total}
    p = 1
    while p < every and p <= total:
        steps.add(p)
        p *= 2
    steps.update(range(every, total + 1, every))
    return sorted(steps)


def log_then_even_n(total: int, n_even: int) -> list[int]:
    """Like :func:`log_then_even` with ``n_even`` evenly spaced checkpoints after the log part.

    ``every = total // n_even``; the schedule always ends at ``total``.
    """
    if n_even < 1 or n_even > total:
        raise ValueError(f"n_even must be in [1, total={total}], got {n_even}")
    return log_then_even(total, max(1, total // n_even))


def spread(steps: list[int], n: int) -> list[int]:
    """At most ``n`` of ``steps``, evenly spaced by index, first and last included.

    The chapters that subsample checkpoints use this one rule, so they pick the same steps
    and share per-checkpoint caches (e.g. the task battery of the emergence and brain chapters).

    Parameters
    ----------
    steps : sorted checkpoint steps
    n : how many to keep (>= 1)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    steps = sorted(int(s) for s in steps)
    if len(steps) <= n:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, n)).astype(int))
    return [steps[int(i)] for i in idx]
