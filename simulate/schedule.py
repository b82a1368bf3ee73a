"""The steps at which the toy simulators record a trajectory row.

Both simulators (:mod:`ncgrok.simulate.ufm` and :mod:`ncgrok.simulate.gmm`) record at step 0 and then
either every ``k`` steps or at roughly log-spaced steps up to the last one. These are *simulation*
grids; the logging schedule of the paper's real-network runs (dense early steps, then every
few hundred) is :func:`ncgrok.empirical.engine.log_schedule`, a different thing.
"""
from __future__ import annotations

import numpy as np

from ncgrok.theory._validation import as_count

__all__ = ["evenly_spaced_steps", "log_spaced_steps"]


def log_spaced_steps(steps: int, count: int) -> np.ndarray:
    """Step 0 and ``count`` log-spaced steps in ``[1, steps]``, rounded to integers.

    The positive steps are ``round(geomspace(1, steps, count))`` (just ``steps`` when ``count == 1``);
    rounding merges neighbours at small steps, so there are at most ``count + 1`` distinct steps.
    Always starts at 0 and ends at ``steps``; increasing int64.
    """
    steps = as_count("steps", steps, minimum=1)
    count = as_count("count", count, minimum=1)
    positive = np.round(np.geomspace(1, steps, count)) if count > 1 else np.array([steps])
    return np.unique(np.concatenate([[0], positive.astype(np.int64), [steps]])).astype(np.int64)


def evenly_spaced_steps(steps: int, every: int) -> np.ndarray:
    """``0, every, 2 every, ...`` up to ``steps``, and ``steps`` itself; increasing int64."""
    steps = as_count("steps", steps, minimum=1)
    every = as_count("every", every, minimum=1)
    return np.unique(np.concatenate([np.arange(0, steps + 1, every), [steps]])).astype(np.int64)
