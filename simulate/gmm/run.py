"""A Gaussian-mixture run: train the network on fixed samples and measure a row at each logged step.

:func:`run_gmm` draws every sample once, trains with full-batch GD or AdamW
(:mod:`ncgrok.simulate.gmm.optimizer`) and calls :func:`ncgrok.simulate.gmm.measurement.measure` at
the steps of :meth:`GMMConfig.recorded_steps`; :class:`GMMResult` holds the trajectory and a summary
of which bound held at every logged step; :func:`write_trajectory_csv` is the one writer of the
trajectory CSV.
"""
from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ncgrok.files import atomic_write_text
from ncgrok.simulate.gmm.config import GMMConfig
from ncgrok.simulate.gmm.measurement import TRAJECTORY_COLUMNS, draw_samples, measure
from ncgrok.simulate.gmm.network import Network, init_network, loss_and_gradients
from ncgrok.simulate.gmm.optimizer import Optimizer
from ncgrok.simulate.gmm.population import GaussianMixture

__all__ = [
    "MONTE_CARLO_SE",
    "GMMResult",
    "run_gmm",
    "single_threaded_blas",
    "write_trajectory_csv",
]

# Tolerance (in standard errors) used when a bound is compared with a Monte Carlo truth.
MONTE_CARLO_SE = 4.0


def single_threaded_blas() -> threadpool_limits:
    """A context manager that limits the BLAS libraries loaded in this process (numpy's OpenBLAS
    among them) to one thread for the block, then restores the previous setting.

    Every product in these runs is tall and thin (``N x 8 @ 8 x 32`` and the like), where OpenBLAS's
    threads only add synchronisation; on a loaded 2-core machine that made products ~15x slower
    (measured). Through ``threadpoolctl``; without a recognisable BLAS it does nothing.
    """
    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class GMMResult:
    """A Gaussian-mixture run.

    Attributes:
        config: the :class:`GMMConfig`.
        mixture: the population.
        trajectory: column name -> array over logged steps (columns :data:`TRAJECTORY_COLUMNS`).
        summary: final-step values, whether each bound held at every logged step, run time.
        network: the trained network (final step).
        initial_network: the network at step 0.
    """

    config: GMMConfig
    mixture: GaussianMixture
    trajectory: dict[str, np.ndarray]
    summary: dict[str, Any]
    network: Network
    initial_network: Network

    @property
    def steps(self) -> np.ndarray:
        return self.trajectory["step"]

    def rows(self) -> list[dict[str, float]]:
        """The trajectory as one dict per logged step."""
        return [{name: _plain(self.trajectory[name][i]) for name in TRAJECTORY_COLUMNS}
                for i in range(len(self.steps))]


def _summarize(config: GMMConfig, trajectory: dict[str, np.ndarray], runtime: float) -> dict[str, Any]:
    t = trajectory
    final = {name: _plain(t[name][-1]) for name in TRAJECTORY_COLUMNS}
    linear = config.activation == "identity"
    information_truth = t["mi_exact"] if linear else t["mi_estimate"]
    information_slack = 1e-9 * np.maximum(1.0, np.abs(information_truth)) if linear else MONTE_CARLO_SE * t["mi_se"]
    held = {
        # R1: bound >= measured test error, raw and with the Monte Carlo allowance.
        "cantelli_bound": bool(np.all(t["cantelli_bound"] >= t["test_error"])),
        "cantelli_directional": bool(np.all(t["cantelli_directional"] >= t["test_error"])),
        "cantelli_bound_within_mc": bool(np.all(t["cantelli_bound"] >= t["test_error"] - MONTE_CARLO_SE * t["test_error_se"])),
        # R2: bounds >= I(Z;X|Y) (exact for the linear network, MC estimate - 4 SE otherwise).
        "ib_logdet": bool(np.all(t["ib_logdet"] >= information_truth - information_slack)),
        "ib_trace": bool(np.all(t["ib_trace"] >= information_truth - information_slack)),
        # R4: every class's population variance inside the held-out radius.
        "heldout_radius": bool(np.all(t["heldout_covered"] == 1.0)),
    }
    return {
        "final": final,
        "held_at_every_step": held,
        "information_truth": "exact (linear network)" if linear else "monte carlo estimate",
        "monte_carlo_tolerance_se": MONTE_CARLO_SE,
        "logged_steps": int(len(t["step"])),
        "runtime_seconds": runtime,
    }


def run_gmm(config: GMMConfig | None = None, *, progress: Callable[[int, dict[str, float]], None] | None = None) -> GMMResult:
    """Train the network of ``config`` on its Gaussian mixture and measure the bounds along the way.

    Samples (training set, test set, population sample, held-out set, information-estimate points)
    are drawn once from independent streams of ``config.seed`` and kept fixed, so the curves are
    smooth in time. ``progress(step, row)`` is called after each logged step. Returns a
    :class:`GMMResult` (every column is described in :mod:`ncgrok.simulate.gmm.measurement`).
    """
    config = GMMConfig() if config is None else config
    if not isinstance(config, GMMConfig):
        raise ValueError(f"config must be a GMMConfig, got {type(config).__name__}")
    with single_threaded_blas():
        return _run(config, progress)


def _run(config: GMMConfig, progress: Callable[[int, dict[str, float]], None] | None) -> GMMResult:
    start = time.perf_counter()
    mixture = config.mixture()
    init_stream, *sample_streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(6)]
    samples = draw_samples(config, mixture, sample_streams)
    network = init_network(config.input_dim, config.hidden_dim, config.feature_dim, config.num_classes,
                           activation=config.activation, leaky_slope=config.leaky_slope,
                           sharpness=config.sharpness, init_scale=config.init_scale, seed=init_stream)
    initial_network = network.copy()
    optimizer = Optimizer(kind=config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
                          betas=config.adam_betas, eps=config.adam_eps)
    optimizer_state = optimizer.init(network)
    input_bound = float(np.sqrt(np.einsum("ij,ij->i", samples.train_x, samples.train_x)).max())
    rows = []
    step = 0
    for target in config.recorded_steps():
        while step < target:
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                loss, grads = loss_and_gradients(network, samples.train_x, samples.train_targets)
            if not np.isfinite(loss):
                raise ValueError(
                    f"training diverged (non-finite loss) at step {step} with lr={config.lr:g}; "
                    "lower lr or init_scale"
                )
            network, optimizer_state = optimizer.step(network, grads, optimizer_state)
            step += 1
        row = {"step": float(step), **measure(network, config, mixture, samples, input_bound)}
        rows.append(row)
        if progress is not None:
            progress(step, row)
    trajectory = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in TRAJECTORY_COLUMNS}
    summary = _summarize(config, trajectory, time.perf_counter() - start)
    return GMMResult(config=config, mixture=mixture, trajectory=trajectory, summary=summary,
                     network=network, initial_network=initial_network)


def _plain(value: Any) -> Any:
    """A JSON/CSV-friendly Python scalar (NaN stays float NaN here; JSON writers map it to null)."""
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_trajectory_csv(result: GMMResult, path: Any) -> str:
    """Write the trajectory (one row per logged step, columns :data:`TRAJECTORY_COLUMNS`; the csv
    module's excel dialect, so lines end in CRLF) atomically: to a temporary file in the same
    directory, then ``os.replace``. Returns the path."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(TRAJECTORY_COLUMNS)
    for row in result.rows():
        writer.writerow([int(row[name]) if name == "step" else repr(float(row[name]))
                         for name in TRAJECTORY_COLUMNS])
    path = os.fspath(path)
    atomic_write_text(path, buffer.getvalue())
    return path
