"""Small networks trained on a known Gaussian mixture, measured against Thm. 3.2, 3.4 and 4.1.

The point of a Gaussian mixture is that the *population* is known and can be sampled freely, so
every population quantity the theory talks about (class means and covariances of the features, the
test error, the conditional information ``I(Z;X|Y)``) can be measured as precisely as one likes and
set next to the bounds of Sakamoto & Sato (arXiv:2509.20829):

* **Thm. 3.2** (published): the Cantelli bound on the test error from class means and within-class
  variances (``theory.generalization.cantelli_bound``, plain and directional);
* **Thm. 3.4** (published): the trace and log-det bounds on ``I(Z;X|Y) = I(Z;X) - I(Z;Y)`` for the
  noisy representation ``Z = g(X) + B_g E``, ``E ~ N(0, sigma^2 I_p)``
  (``theory.information``), against the exact value (linear network) or a Monte Carlo estimate
  (:func:`conditional_information_monte_carlo`);
* **Thm. 4.1** (reconstructed): the held-out radius of ``theory.concentration`` around the held-out
  within-class variance, checked against the population variance.

Modules, one concern each:

* :mod:`~ncgrok.simulate.gmm.population`: ``K`` Gaussian classes in ``R^d``,
  ``X | Y=c ~ N(m_c, S_c)``, priors ``p_c`` (:class:`GaussianMixture`);
* :mod:`~ncgrok.simulate.gmm.network`: ``f(x) = W3 W2 phi(W1 x + b1) + b3`` with the
  representation ``g(x) = W2 phi(W1 x + b1)``, its squared loss with weight decay and the
  hand-written backward pass;
* :mod:`~ncgrok.simulate.gmm.optimizer`: full-batch GD (the update of Thm. 4.3) and AdamW, both
  with the decoupled factor ``1 - lr lambda``, as explicit state plus a step;
* :mod:`~ncgrok.simulate.gmm.config`: :class:`GMMConfig`, everything a run depends on;
* :mod:`~ncgrok.simulate.gmm.measurement`: one trajectory row per logged step (its docstring
  states the conventions of every column), the exact moments of the linear network and the Monte
  Carlo estimate of ``I(Z;X|Y)``;
* :mod:`~ncgrok.simulate.gmm.run`: :func:`run_gmm`, :class:`GMMResult`, the trajectory CSV;
* :mod:`~ncgrok.simulate.gmm.figure`: the bound figure and the committed figures.
"""
from __future__ import annotations

from ncgrok.simulate.gmm.config import GMMConfig
from ncgrok.simulate.gmm.figure import bound_figure, make_figures
from ncgrok.simulate.gmm.measurement import (
    TRAJECTORY_COLUMNS,
    InformationEstimate,
    conditional_information_monte_carlo,
    exact_linear_moments,
)
from ncgrok.simulate.gmm.network import ACTIVATIONS, Network, init_network, loss_and_gradients
from ncgrok.simulate.gmm.optimizer import OPTIMIZERS, Optimizer, OptimizerState
from ncgrok.simulate.gmm.population import GaussianMixture
from ncgrok.simulate.gmm.run import MONTE_CARLO_SE, GMMResult, run_gmm, single_threaded_blas, write_trajectory_csv

__all__ = [
    "ACTIVATIONS",
    "MONTE_CARLO_SE",
    "OPTIMIZERS",
    "TRAJECTORY_COLUMNS",
    "GaussianMixture",
    "Network",
    "GMMConfig",
    "GMMResult",
    "InformationEstimate",
    "Optimizer",
    "OptimizerState",
    "init_network",
    "loss_and_gradients",
    "exact_linear_moments",
    "conditional_information_monte_carlo",
    "run_gmm",
    "single_threaded_blas",
    "write_trajectory_csv",
    "bound_figure",
    "make_figures",
]
