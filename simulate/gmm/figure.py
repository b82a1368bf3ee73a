"""The bound figure of a Gaussian-mixture run, and the committed figures.

Regenerate the committed figures ``figures/gmm_bounds.png`` (default run) and
``figures/gmm_linear_bounds.png`` (the same with ``activation="identity"``) with
``ncgrok simulate figures`` (which calls :func:`make_figures`), or one of them with, e.g.::

    ncgrok simulate gmm --activation identity --out runs/gmm_linear --figure figures/gmm_linear_bounds.png

(``python -m ncgrok.cli.simulate_gmm`` takes the same options.)
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ncgrok.simulate.gmm.config import GMMConfig
from ncgrok.simulate.gmm.run import GMMResult, run_gmm
from ncgrok.simulate.plotting import pyplot, save_png

__all__ = ["bound_figure", "make_figures"]


def bound_figure(result: GMMResult, path: Any) -> str:
    """Three panels against training step (log axis), saved atomically as PNG at ``path``:

    1. test error (with a 2-SE band) vs the Cantelli bound of Thm. 3.2, plain and directional;
    2. the IB bounds of Thm. 3.4 (trace, log-det) vs ``I(Z;X|Y)`` (exact for a linear network, and the
       Monte Carlo estimate with its 2-SE band and its lower companion);
    3. training RNC1 vs the population within-class variance, with the held-out estimate and its
       Thm. 4.1 radius as a band (clipped at the bottom of the log axis).

    Uses matplotlib's Agg backend (imported here, so importing this module stays light).
    """
    plt = pyplot()

    t = result.trajectory
    x = t["step"] + 1.0
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)

    ax = axes[0]
    ax.plot(x, t["cantelli_bound"], color="C3", label="Cantelli bound (Thm. 3.2)")
    ax.plot(x, t["cantelli_directional"], color="C3", linestyle="--", label="directional variant")
    ax.plot(x, t["test_error"], color="C0", label="test error")
    ax.fill_between(x, t["test_error"] - 2 * t["test_error_se"], t["test_error"] + 2 * t["test_error_se"],
                    color="C0", alpha=0.25, linewidth=0)
    ax.plot(x, t["train_error"], color="C0", linestyle=":", label="train error")
    ax.set_ylim(0.0, max(1.05, float(np.nanmax(t["cantelli_bound"])) * 1.05))
    ax.set_title("error vs Thm. 3.2 (published)")
    ax.set_ylabel("probability")

    ax = axes[1]
    ax.plot(x, t["ib_trace"], color="C3", label="trace bound V/(2σ²)")
    ax.plot(x, t["ib_logdet"], color="C1", label="log-det bound")
    ax.plot(x, t["mi_estimate"], color="C0", label="MC estimate (biased up)")
    ax.fill_between(x, t["mi_estimate"] - 2 * t["mi_se"], t["mi_estimate"] + 2 * t["mi_se"],
                    color="C0", alpha=0.25, linewidth=0)
    ax.plot(x, t["mi_lower"], color="C0", linestyle=":", label="MC lower (biased down)")
    if np.all(np.isfinite(t["mi_exact"])):
        ax.plot(x, t["mi_exact"], color="k", linestyle="--", label="exact (linear net)")
    ax.set_yscale("log")
    ax.set_title(f"I(Z;X|Y) vs Thm. 3.4 (published), σ={result.config.sigma:g}")
    ax.set_ylabel("nats")

    ax = axes[2]
    positive = np.concatenate([t["train_rnc1"], t["population_variance"], t["heldout_variance"]])
    floor = 0.3 * float(np.nanmin(positive[positive > 0])) if np.any(positive > 0) else 1e-6
    ax.fill_between(x, np.maximum(t["heldout_variance"] - t["heldout_radius"], floor),
                    t["heldout_variance"] + t["heldout_radius"], color="C2", alpha=0.2, linewidth=0,
                    label=f"held-out ± radius (Thm. 4.1, δ={result.config.delta:g})")
    ax.plot(x, t["heldout_variance"], color="C2", linestyle=":", label="held-out variance")
    ax.plot(x, t["population_variance"], color="k", label="population variance V")
    ax.plot(x, t["train_rnc1"], color="C4", label="train RNC1 (sup scale)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_title("within-class variance of g/B_g vs Thm. 4.1 (reconstr.)")

    for ax in axes:
        ax.title.set_fontsize(10)
        ax.set_xscale("log")
        ax.set_xlabel("step + 1")
        ax.legend(fontsize=7, loc="best")
    config = result.config
    figure.suptitle(
        f"Gaussian mixture K={config.num_classes}, d={config.input_dim}, p={config.feature_dim}, "
        f"{config.activation}, {config.optimizer} lr={config.lr:g} λ={config.weight_decay:g}, "
        f"n={config.n_train}/class", fontsize=10)

    return os.fspath(save_png(figure, path, dpi=110))


def make_figures(out_dir: Any = "figures", *, progress: Callable[[str], None] | None = None) -> list[str]:
    """Regenerate the committed Gaussian-mixture figures in ``out_dir``: ``gmm_bounds.png`` (default
    :class:`GMMConfig`, smooth leaky-ReLU network) and ``gmm_linear_bounds.png`` (the same with
    ``activation="identity"``, where ``I(Z;X|Y)`` is exact). Returns the paths written."""
    report = progress or (lambda message: None)
    written = []
    for name, config in (("gmm_bounds.png", GMMConfig()), ("gmm_linear_bounds.png", GMMConfig(activation="identity"))):
        report(f"Gaussian-mixture run ({config.activation}) for {name}")
        written.append(bound_figure(run_gmm(config), os.path.join(os.fspath(out_dir), name)))
    return written
