"""The documented ``metrics.csv`` schema: every column ncgrok writes, what it means, which are required.

This is what ``ncgrok verify`` and ``ncgrok forecast`` accept from other code: a ``metrics.csv`` with a
``step`` column first, the required columns, and any of the others (unknown columns are kept and
ignored). ``empirical.runs`` reads and writes the file; this module only says what is in it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["MetricColumn", "METRICS_SCHEMA", "REQUIRED_METRICS", "METRICS_SCHEMA_TEXT", "header_problems"]


@dataclass(frozen=True)
class MetricColumn:
    name: str
    meaning: str
    required: bool = False


_TRAIN = "on the training set"
METRICS_SCHEMA: tuple[MetricColumn, ...] = (
    MetricColumn("step", "optimizer steps completed when the row was measured (integer, strictly increasing)", True),
    MetricColumn("train_loss", "squared error to the one-hot target, summed over outputs, mean over training examples "
                 "(--loss cross-entropy: the softmax cross-entropy, mean over training examples)"),
    MetricColumn("train_acc", "training accuracy, a fraction in [0, 1]", True),
    MetricColumn("test_loss", "as train_loss, on the test set"),
    MetricColumn("test_acc", "test accuracy, a fraction in [0, 1]", True),
    MetricColumn("test_size", "number of test examples behind test_acc and the pair errors (their sample size)"),
    MetricColumn("nc1", f"Tr Sigma_W / Tr Sigma_B of the last hidden layer's features {_TRAIN}"),
    MetricColumn("nc1_pinv", f"Tr(Sigma_W Sigma_B^+) / K {_TRAIN}"),
    MetricColumn("rnc1", f"Tr Sigma_W / (mean feature norm)^2 {_TRAIN} (the paper's plotted RNC1)", True),
    MetricColumn("rnc1_sup", f"Tr Sigma_W / (largest feature norm B_g)^2 {_TRAIN} (the theory's RNC1)"),
    MetricColumn("nc2", "sigma_max / sigma_min of the matrix of uncentred class means"),
    MetricColumn("etf_deviation", "relative distance of the centred class means' Gram matrix from the simplex ETF's"),
    MetricColumn("within_var", f"Tr Sigma_W, unscaled, {_TRAIN}"),
    MetricColumn("between_var", f"Tr Sigma_B, unscaled, {_TRAIN}"),
    MetricColumn("feature_norm_mean", f"mean feature norm {_TRAIN}"),
    MetricColumn("feature_norm_max", f"largest feature norm B_g {_TRAIN}"),
    MetricColumn("heldout_within_var", "unbiased population within-class variance (Def. 3.1) from held-out training "
                 "images, over the training mean norm squared (NaN without a held-out sample)"),
    MetricColumn("heldout_within_var_sup", "the same over B^2, B the largest feature norm of training and held-out data "
                 "(not on rnc1_sup's scale)"),
    MetricColumn("heldout_within_var_clip", "held-out population within-class variance on rnc1_sup's scale B (the "
                 "training set's largest feature norm), each held-out feature clipped to norm B"),
    MetricColumn("heldout_frac_above_scale", "fraction of held-out features whose norm exceeds B (clipped above)"),
    MetricColumn("heldout_radius", "Thm. 4.1 radius of heldout_within_var_clip (features of norm <= 1) at the sweep's delta"),
    MetricColumn("heldout_nc1", "Tr Sigma_W / Tr Sigma_B of the held-out features"),
    MetricColumn("cantelli_bound", "Thm. 3.2 bound on the test error from held-out class statistics (vs 1 - test_acc); "
                 "vacuous when >= 1"),
    MetricColumn("cantelli_bound_clipped", "Thm. 3.2 with each class's inner sum capped at 1"),
    MetricColumn("cantelli_bound_directional_clipped", "Thm. 3.2 with the directional variance u^T C_c u, capped per class"),
    MetricColumn("cantelli_pair_term", "the largest two-class Cantelli term (c, k), <= 1"),
    MetricColumn("cantelli_pair_term_directional", "the directional two-class term of the same pair"),
    MetricColumn("cantelli_pair_error", "that pair's measured error P(z_k >= z_c | Y = c) on the test set"),
    MetricColumn("cantelli_pair_count", "number of class-c test examples behind cantelli_pair_error"),
    MetricColumn("weight_norm", "Frobenius norm of all parameters"),
    MetricColumn("last_layer_norm", "norm of the last layer's weight and bias"),
    MetricColumn("imbalance_norm", "||W_L^T W_L - W_{L-1} W_{L-1}^T||_F of the last two linear layers (Thm. 4.3)"),
    MetricColumn("population_within_var", "modular data sets: the exact population within-class variance (Def. 3.1) "
                 "over every pair, plain class means and variances, exact priors 1/p, on rnc1's scale (the training "
                 "set's mean feature norm)"),
    MetricColumn("population_within_var_sup", "modular data sets: the same on rnc1_sup's scale B_g (the training "
                 "set's largest feature norm), unclipped"),
    MetricColumn("population_acc", "modular data sets: accuracy over every pair of the population"),
    MetricColumn("nhsic_zx", "--measure-ib: normalised HSIC between features Z and inputs X"),
    MetricColumn("nhsic_zy", "--measure-ib: normalised HSIC between features Z and labels Y"),
    MetricColumn("mi_zx", "--measure-ib: compressed mutual information I(Z;X), nats (the paper's three-entropy route)"),
    MetricColumn("mi_zy", "--measure-ib: compressed mutual information I(Z;Y), nats"),
    MetricColumn("mi_zx_ksg", "--measure-ib: I(Z;X) on the same codes by the KSG estimator, nats"),
    MetricColumn("mi_zy_ksg", "--measure-ib: I(Z;Y) on the same codes by Ross's mixed estimator, nats"),
    MetricColumn("ib_bound_trace", "--measure-ib: Thm. 3.4 trace bound on I(Z;X|Y), nats"),
    MetricColumn("ib_bound_logdet", "--measure-ib: Thm. 3.4 log-det bound on I(Z;X|Y), nats"),
)
REQUIRED_METRICS = tuple(column.name for column in METRICS_SCHEMA if column.required)
METRICS_SCHEMA_TEXT = (
    "metrics.csv: comma-separated, a header line then one line per logged step, every line ending in a "
    "newline; 'step' is the first column; numbers as Python writes them ('nan', 'inf' allowed). Required "
    f"columns: {', '.join(REQUIRED_METRICS)}; the others are optional, and unknown columns are kept and ignored."
)


def header_problems(header: Sequence[str]) -> list[str]:
    """What makes ``header`` an invalid ``metrics.csv`` header (empty when it is valid)."""
    problems = []
    if not header or header[0] != "step":
        problems.append("the first column must be 'step'")
    missing = [name for name in REQUIRED_METRICS if name not in header]
    if missing:
        problems.append(f"required columns {missing} are missing")
    repeated = sorted({name for name in header if list(header).count(name) > 1})
    if repeated:
        problems.append(f"columns {repeated} appear more than once")
    return problems
