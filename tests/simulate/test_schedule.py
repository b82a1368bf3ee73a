"""Tests for simulate/schedule.py and the recorded steps of both simulators' configurations.

Expected grids are worked out by hand from the definition (``round(geomspace(1, steps, count))``,
e.g. ``10^(0, 1/4, 1/2, 3/4, 1) = 1, 1.78, 3.16, 5.62, 10``), not taken from the code.
"""
from __future__ import annotations

import numpy as np
import pytest

from ncgrok.simulate.gmm import GMMConfig
from ncgrok.simulate.schedule import evenly_spaced_steps, log_spaced_steps
from ncgrok.simulate.ufm import UFMConfig


@pytest.mark.parametrize(
    "steps, count, expected",
    [
        (1000, 4, [0, 1, 10, 100, 1000]),
        (10, 5, [0, 1, 2, 3, 6, 10]),
        (3, 6, [0, 1, 2, 3]),        # 1, 1.25, 1.55, 1.93, 2.41, 3: rounding merges neighbours
        (500, 1, [0, 500]),          # one positive step: the last
        (1, 3, [0, 1]),
    ],
)
def test_log_spaced_steps_by_hand(steps, count, expected):
    grid = log_spaced_steps(steps, count)
    assert grid.dtype == np.int64
    np.testing.assert_array_equal(grid, expected)


@pytest.mark.parametrize(
    "steps, every, expected",
    [(10, 4, [0, 4, 8, 10]), (12, 4, [0, 4, 8, 12]), (3, 5, [0, 3]), (2, 1, [0, 1, 2])],
)
def test_evenly_spaced_steps_by_hand(steps, every, expected):
    grid = evenly_spaced_steps(steps, every)
    assert grid.dtype == np.int64
    np.testing.assert_array_equal(grid, expected)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: log_spaced_steps(0, 5), "steps"),
        (lambda: log_spaced_steps(10, 0), "count"),
        (lambda: evenly_spaced_steps(10, 0), "every"),
        (lambda: evenly_spaced_steps(-1, 2), "steps"),
    ],
)
def test_bad_arguments_name_themselves(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_ufm_records_evenly_or_log_spaced():
    np.testing.assert_array_equal(UFMConfig(steps=10, log_every=4).recorded_steps(), [0, 4, 8, 10])
    np.testing.assert_array_equal(UFMConfig(steps=1000, log_points=4).recorded_steps(), [0, 1, 10, 100, 1000])


def test_gmm_records_at_most_num_logs_steps_including_both_ends():
    np.testing.assert_array_equal(GMMConfig(steps=1000, num_logs=5).recorded_steps(), [0, 1, 10, 100, 1000])
    np.testing.assert_array_equal(GMMConfig(steps=1000, num_logs=2).recorded_steps(), [0, 1000])
    np.testing.assert_array_equal(GMMConfig(steps=1000, num_logs=3).recorded_steps(), [0, 1, 1000])
    for steps, num_logs in ((3000, 20), (500, 5), (7, 20)):
        grid = GMMConfig(steps=steps, num_logs=num_logs).recorded_steps()
        assert grid[0] == 0 and grid[-1] == steps and np.all(np.diff(grid) > 0) and len(grid) <= num_logs
