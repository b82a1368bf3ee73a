"""The float32 engine still produces the trajectory it produced before the speed work (issue 6).

``data/reference_trajectory.json`` holds every metric column of 3 runs of the paper's MLP at the
34 logged steps of a 60-step run, written by ``reference_trajectory.py`` with the engine of commit
fa173f9 (before the performance changes). On that machine the current engine reproduces it bit for
bit, with 1 or 2 threads.

Tolerance: relative 1e-5 on every real-valued column, accuracies within one example. Re-running the
trajectory with torch's elementwise and reduction kernels switched to their scalar versions
(``ATEN_CPU_CAPABILITY=default``, i.e. a different summation order, as on another CPU) moved no
column by more than 5.3e-7 relative, so 1e-5 leaves a 19x margin for other hardware; a changed
result is caught: scaling every weight decay by 1.001 already moves train_loss by 2.2e-5 relative,
and another batch order, loss scale or update rule moves it by far more.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

_spec = importlib.util.spec_from_file_location("reference_trajectory", Path(__file__).with_name("reference_trajectory.py"))
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

ACCURACY_SAMPLES = {"train_acc": reference.TRAIN_SIZE, "test_acc": reference.TEST_SIZE}


@pytest.fixture(scope="module")
def trajectories():
    stored = json.loads(reference.REFERENCE_FILE.read_text())["trajectory"]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # tiny per-example work; avoids OpenMP stalls on a shared machine
        current = reference.compute_trajectory()
    finally:
        torch.set_num_threads(threads)
    return stored, current


def test_same_logged_steps(trajectories):
    stored, current = trajectories
    assert current["step"] == stored["step"]
    assert set(stored) - {"step"} <= set(current), "a stored column is no longer measured"


def test_every_column_matches_the_stored_trajectory(trajectories):
    stored, current = trajectories
    for column, values in stored.items():
        if column == "step":
            continue
        want, got = np.array(values, dtype=float), np.array(current[column], dtype=float)
        assert got.shape == want.shape, column
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=column)
        finite = ~np.isnan(want)
        if column in ACCURACY_SAMPLES:
            atol = 1.0 / ACCURACY_SAMPLES[column] + 1e-12
            np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=atol, err_msg=column)
        else:
            np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=0, err_msg=column)


def test_trajectory_actually_moves(trajectories):
    """Guard against a vacuous comparison: training changes every run's loss and RNC1 a lot."""
    stored, _ = trajectories
    loss, rnc1 = np.array(stored["train_loss"]), np.array(stored["rnc1"])
    assert np.all(loss[-1] < 0.01 * loss[0])
    assert np.all(np.abs(rnc1[-1] - rnc1[0]) > 1e-3)
