"""Checkpoint schedules against the published Pythia schedule and hand-computed cases."""
from __future__ import annotations

import pytest

from lhp_core.schedule import PYTHIA_TOKENS_PER_STEP, log_then_even, log_then_even_n, pythia_steps


def test_pythia_schedule_is_the_published_154_steps() -> None:
    steps = pythia_steps()
    assert len(steps) == 154
    assert steps[:12] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert steps[11:] == list(range(1000, 143_001, 1000))
    assert PYTHIA_TOKENS_PER_STEP == 1024 * 2048
    assert steps[-1] * PYTHIA_TOKENS_PER_STEP == 299_892_736_000  # "300B tokens"


def test_log_then_even_hand_cases() -> None:
    assert log_then_even(64, 16) == [0, 1, 2, 4, 8, 16, 32, 48, 64]
    assert log_then_even(50, 16) == [0, 1, 2, 4, 8, 16, 32, 48, 50]  # the last step is always saved
    assert log_then_even(1, 1) == [0, 1]
    assert log_then_even_n(24, 3) == [0, 1, 2, 4, 8, 16, 24]


def test_schedule_is_sorted_unique_and_counts_match() -> None:
    for total, every in [(100, 7), (1000, 64), (800, 50)]:
        s = log_then_even(total, every)
        assert s == sorted(set(s)) and s[0] == 0 and s[-1] == total
        n_log = len([p for p in (2**k for k in range(20)) if p < every])
        assert len(s) == 1 + n_log + total // every + (total % every != 0)


@pytest.mark.parametrize("total,every", [(0, 1), (10, 0), (10, 11)])
def test_bad_schedule_arguments_raise(total: int, every: int) -> None:
    with pytest.raises(ValueError, match="every|total"):
        log_then_even(total, every)


def test_spread_keeps_ends_and_spaces_evenly() -> None:
    from lhp_core.schedule import spread

    assert spread([0, 1, 2, 4, 8], 10) == [0, 1, 2, 4, 8]
    assert spread([0, 1, 2, 4, 8], 3) == [0, 2, 8]
    assert spread(list(range(0, 300, 10)), 4) == [0, 100, 190, 290]  # indices 0, 9.67->10, 19.33->19, 29
    assert spread([5, 3, 1], 1) == [1]
    with pytest.raises(ValueError, match="n must be >= 1"):
        spread([1, 2], 0)
