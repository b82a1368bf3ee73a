"""Simulation check of Thm. 4.1 (**reconstructed**): does the training within-class variance approach
the population value like ``n_c^(-1/2)`` or faster?

Thm. 4.1 of Sakamoto & Sato (arXiv:2509.20829) bounds the gap between the population within-class
variance ``V`` of the rescaled representation and its value on the training set by a term of order
``1/sqrt(n_c)``, uniformly over networks (Thm. 4.1; our form of it, R4, is *reconstructed*: the
paper's hypotheses and constants were not recovered). A uniform bound covers the network the
training sample produced, so the gap must shrink at least at that rate for a *trained* network.
:func:`variance_gap_scaling` measures it on the Gaussian-mixture simulator of
:mod:`ncgrok.simulate.gmm`:

* for every ``n`` in ``samples_per_class`` and every seed, the network of the configuration is
  trained with ``n_train = n`` on the **same population** (the mixture is fixed by
  ``config.mixture_seed``, or ``config.seed`` when that is ``None``) and a training sample, an
  initialization and a population sample drawn from that seed's streams;
* at the final step it records

  - ``train_rnc1``: the training within-class variance in ``g~ = g / B_g`` units, i.e. the
    **biased** estimator ``(1/N) sum_c sum_i ||g~(x_i) - mu^_c||^2`` (divide by ``n_c``, not
    ``n_c - 1``; classes weighted by their training counts, equal here because the training sample
    is stratified);
  - ``population_variance``: ``V = sum_c p_c Tr Cov[g~ | c]`` (Def. 3.1) as the simulator measures
    it: exact for the linear network (``activation="identity"``), otherwise the unbiased estimate
    from ``config.n_population`` fresh points per class, with its Monte Carlo standard error
    ``population_se`` (0 for the linear network);
  - both with the **same scale** ``B_g = max_i ||g(x_i)||`` over the training set at the final step
    (the ``"sup"`` estimator, column ``feature_scale``), so the gap is in ``g~`` units;
  - ``gap = |train_rnc1 - population_variance|`` (and ``signed_gap``, train minus population);
  - for comparison, the held-out radius of Thm. 4.1 at that ``n``
    (``theory.concentration.heldout_variance_radius(n, delta=config.delta, num_classes=K)``, a
    rigorous bound at level ``1 - delta`` for a feature map that did *not* see the sample) and
    ``fresh_gap``, the same gap measured on an independent sample of ``n`` points per class (the
    same biased estimator and scale), i.e. what the gap would be if training had not seen the sample;

* the gap is averaged over seeds for each ``n`` and ``log(mean gap)`` is fitted against ``log(n)`` by
  least squares (:func:`fit_gap_slope`, t-interval on the slope). The rate of Thm. 4.1 corresponds
  to a slope of ``-1/2`` or steeper; :func:`sqrt_rate_established` is the verdict (the interval
  lies at or below ``-1/2``).

Caveats. The population value of a nonlinear network is itself a Monte Carlo estimate; once the gap
is comparable to ``population_se`` the mean gap stops falling for reasons that have nothing to do with
the training sample, which flattens the fitted slope (raise ``n_population`` or use the linear
network). Rows where the mean gap is below twice the mean ``population_se`` are flagged
(``resolved = False``). The confidence interval assumes independent Gaussian errors in
``log(mean gap)``, which is rough with few seeds.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ncgrok.files import atomic_write_text
from ncgrok.simulate.gmm import GMMConfig, GMMResult, run_gmm, single_threaded_blas
from ncgrok.simulate.plotting import pyplot, save_png
from ncgrok.theory._validation import as_count, as_scalar
from ncgrok.theory.collapse import ClassStatistics, population_within_class_variance
from ncgrok.theory.concentration import heldout_variance_radius
from ncgrok.theory.timescales import LogLogFit, fit_loglog_slope

__all__ = [
    "GAP_ROW_COLUMNS",
    "GAP_SUMMARY_COLUMNS",
    "THEORETICAL_SLOPE",
    "GapScalingResult",
    "fit_gap_slope",
    "gap_check_config",
    "gap_figure",
    "sqrt_rate_established",
    "variance_gap_scaling",
    "write_gap_csv",
]

# The rate of Thm. 4.1: the gap shrinks like n_c^(-1/2) (or faster).
THEORETICAL_SLOPE = -0.5

# Per-(n, seed) columns, in CSV order.
GAP_ROW_COLUMNS = (
    "n",
    "seed",
    "train_rnc1",
    "population_variance",
    "population_se",
    "signed_gap",
    "gap",
    "fresh_gap",
    "heldout_radius",
    "feature_scale",
    "train_loss",
    "train_error",
    "runtime_seconds",
)

# Per-n columns (averages over seeds).
GAP_SUMMARY_COLUMNS = (
    "n",
    "mean_gap",
    "std_gap",
    "mean_signed_gap",
    "mean_fresh_gap",
    "heldout_radius",
    "mean_train_rnc1",
    "mean_population_variance",
    "mean_population_se",
    "resolved",
)

# Settings that only affect measurements this check does not use; they are replaced by the cheapest
# valid values (training and the compared quantities do not depend on them). Two logged steps, the
# fewest allowed: ``GMMConfig.recorded_steps()`` is then ``[0, steps]``, which holds the final step.
_CHEAP_MEASUREMENTS = dict(num_logs=2, n_test=1, n_heldout=2, mi_outer=2, mi_inner=2)

# Points per class of the fresh sample used for ``population_se`` (and, its first n per class, for
# ``fresh_gap``).
_SE_SAMPLE = 2000

# Tag that separates the fresh-sample stream from the simulator's own streams of the same seed.
_FRESH_STREAM_TAG = 41


def gap_check_config(**overrides: Any) -> GMMConfig:
    """The :class:`GMMConfig` of ``ncgrok simulate gap`` at its defaults: the simulator's defaults
    except ``steps=1000`` and ``lr=0.05`` (so the 15 default runs take seconds, and plain GD does not
    diverge for any default seed and sample size; at ``lr=0.1`` seed 1 diverged) and
    ``n_population=50000``: the Monte Carlo error of the population variance must stay below the
    gap at ``n=400`` (with 20000 points the mean gap there fell below twice that error and the
    fitted slope was -1.96 instead of about -1.57 with 50000 or 100000 points). Keyword arguments
    override any field."""
    settings: dict[str, Any] = dict(steps=1000, lr=0.05, n_population=50000)
    settings.update(overrides)
    return GMMConfig(**settings)


@dataclass(frozen=True)
class GapScalingResult:
    """Outcome of :func:`variance_gap_scaling` (Thm. 4.1, reconstructed).

    Attributes:
        config: the configuration passed in (its ``n_train`` and ``seed`` are replaced per run).
        samples_per_class: the ``n`` values, increasing.
        seeds: the seeds.
        rows: one dict per ``(n, seed)`` run, keys :data:`GAP_ROW_COLUMNS`.
        summary: one dict per ``n``, keys :data:`GAP_SUMMARY_COLUMNS` (``std_gap`` is the sample
            standard deviation over seeds, NaN with one seed; ``mean_signed_gap`` is the mean of
            ``train_rnc1 - population_variance``, negative when training collapsed the training
            features more than the population's; ``resolved`` says whether the mean gap
            exceeds twice the mean Monte Carlo standard error of the population value).
        fit: least-squares fit of ``log(mean_gap)`` on ``log(n)``.
        fresh_fit: the same for ``mean_fresh_gap`` (an independent sample of the same size; its slope
            is expected near ``-1/2``).
        runtime_seconds: wall-clock time of all runs.
    """

    config: GMMConfig
    samples_per_class: tuple[int, ...]
    seeds: tuple[int, ...]
    rows: list[dict[str, float]]
    summary: list[dict[str, float]]
    fit: LogLogFit
    fresh_fit: LogLogFit
    runtime_seconds: float

    @property
    def slope(self) -> float:
        """Fitted exponent of ``mean gap ~ n^slope``."""
        return self.fit.slope

    @property
    def slope_ci(self) -> tuple[float, float]:
        """Two-sided ``fit.confidence`` interval of :attr:`slope` (infinite with two ``n`` values)."""
        return self.fit.slope_ci

    @property
    def rate_at_least_sqrt(self) -> bool:
        """True when the upper end of the slope's confidence interval is ``<= -1/2``: at that
        confidence the gap shrinks like ``n^(-1/2)`` or faster, as Thm. 4.1 (reconstructed) requires."""
        return sqrt_rate_established(self.fit)

    @property
    def rate_not_excluded(self) -> bool:
        """True when the lower end of the confidence interval is ``<= -1/2``: the data do not rule out
        a rate of ``n^(-1/2)`` or faster (weaker than :attr:`rate_at_least_sqrt`)."""
        return bool(self.fit.slope_ci[0] <= THEORETICAL_SLOPE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN/inf are left as floats; pass through ``ncgrok.files.json_safe``)."""
        def fit_dict(fit: LogLogFit) -> dict[str, Any]:
            return {"slope": fit.slope, "slope_ci": list(fit.slope_ci), "slope_stderr": fit.slope_stderr,
                    "intercept": fit.intercept, "num_points": fit.num_points, "confidence": fit.confidence}

        return {
            "samples_per_class": list(self.samples_per_class),
            "seeds": list(self.seeds),
            "theoretical_slope": THEORETICAL_SLOPE,
            "fit": fit_dict(self.fit),
            "rate_at_least_sqrt": self.rate_at_least_sqrt,
            "rate_not_excluded": self.rate_not_excluded,
            "fresh_fit": fit_dict(self.fresh_fit),
            "summary": self.summary,
            "rows": self.rows,
            "runtime_seconds": self.runtime_seconds,
        }


def _samples_per_class(value: Any) -> tuple[int, ...]:
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"samples_per_class must be a sequence of sample sizes, got {value!r}") from None
    counts = [as_count("samples_per_class", item, minimum=2) for item in items]
    if len(set(counts)) < 2:
        raise ValueError(
            f"samples_per_class needs at least 2 distinct sample sizes to fit a slope, got {counts}")
    if len(set(counts)) != len(counts):
        raise ValueError(f"samples_per_class must not repeat a sample size, got {counts}")
    return tuple(sorted(counts))


def _seeds(value: Any) -> tuple[int, ...]:
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"seeds must be a sequence of seeds (whole numbers >= 0), got {value!r}") from None
    if not items:
        raise ValueError("seeds must hold at least one seed")
    seeds = [as_count("seeds", item, minimum=0) for item in items]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (a repeated seed repeats the same run), got {seeds}")
    return tuple(seeds)


def _fresh_measurements(result: GMMResult, n: int, seed: int) -> tuple[float, float]:
    """``(fresh_gap, population_se)`` for a finished run (see the module docstring).

    The fresh sample (``max(n, 2000)`` points per class, its own stream) gives the per-class spread of
    ``||g~(x) - mu_c||^2``, hence the Monte Carlo standard error ``sd_c / sqrt(n_population)`` of the
    population value (prior-weighted, delta method, 0 for the exact linear case); its first ``n``
    points per class give the biased within-class variance of an independent sample of size ``n``.
    """
    config, mixture, network = result.config, result.mixture, result.network
    scale = float(result.trajectory["feature_scale"][-1])
    population = float(result.trajectory["population_variance"][-1])
    rng = np.random.default_rng([_FRESH_STREAM_TAG, seed, n])
    size = max(n, _SE_SAMPLE)
    features = [network.features(mixture.sample_class(c, size, rng)) / scale for c in range(mixture.num_classes)]
    head = np.concatenate([f[:n] for f in features])
    labels = np.repeat(np.arange(mixture.num_classes), n)
    stats = ClassStatistics.from_features(head, labels, num_classes=mixture.num_classes, covariance=False)
    fresh = population_within_class_variance(stats, scale=1.0, priors=mixture.priors, unbiased=False)
    if network.is_linear:
        se = 0.0
    else:
        spreads = np.array([np.sum((f - f.mean(axis=0)) ** 2, axis=1).std(ddof=1) for f in features])
        se = float(math.sqrt(float(np.sum(mixture.priors**2 * spreads**2)) / config.n_population))
    return abs(fresh - population), se


def variance_gap_scaling(
    config: GMMConfig | None = None,
    *,
    samples_per_class: Sequence[int] = (25, 50, 100, 200, 400),
    seeds: Sequence[int] = (0, 1, 2),
    progress: Callable[[dict[str, float]], None] | None = None,
) -> GapScalingResult:
    """Measure how the training-vs-population gap of the within-class variance shrinks with ``n``.

    Simulation check of Thm. 4.1 (**reconstructed**; see the module docstring for every quantity):
    for each ``n`` in ``samples_per_class`` and each seed, :func:`ncgrok.simulate.gmm.run_gmm` trains the
    network of ``config`` with ``n_train=n`` and ``seed=seed`` on the same population (``mixture_seed``
    pinned to the configuration's mixture); at the final step the gap ``|train RNC1 - V|`` between
    the biased training within-class variance and the population within-class variance, both in
    ``g / B_g`` units with ``B_g`` the largest training feature norm, is recorded with the held-out
    radius at ``n`` and the gap of an independent sample of the same size. The per-``n`` mean gap is
    fitted as ``mean gap ~ n^slope``; Thm. 4.1 corresponds to ``slope <= -1/2``.

    Measurement-only settings (``num_logs``, ``n_test``, ``n_heldout``, ``mi_outer``, ``mi_inner``)
    are replaced by the cheapest valid values: neither training nor the compared quantities depend on
    them. ``config`` defaults to :func:`gap_check_config`.

    Args:
        config: the network, population and training (``n_train`` and ``seed`` are overridden).
        samples_per_class: training samples per class, at least two distinct values ``>= 2``.
        seeds: at least one seed (distinct whole numbers ``>= 0``).
        progress: called with each ``(n, seed)`` row (keys :data:`GAP_ROW_COLUMNS`) as it finishes.

    Assumes uniform class priors: the training sample is stratified (``n`` points per class), so the
    training value weights classes equally and would not converge to a prior-weighted ``V`` otherwise.

    Raises:
        ValueError: bad arguments, non-uniform priors, or a run that failed (e.g. diverged; the
            message names ``n`` and the seed).
    """
    config = gap_check_config() if config is None else config
    if not isinstance(config, GMMConfig):
        raise ValueError(f"config must be a GMMConfig, got {type(config).__name__}")
    sizes = _samples_per_class(samples_per_class)
    seeds = _seeds(seeds)
    priors = config.mixture().priors
    if not np.allclose(priors, 1.0 / config.num_classes, rtol=0, atol=1e-12):
        raise ValueError(
            f"config.priors must be uniform for this check (the stratified training sample weights classes "
            f"equally, so its variance does not estimate a prior-weighted V), got {priors.tolist()}")
    mixture_seed = config.seed if config.mixture_seed is None else config.mixture_seed
    base = dataclasses.replace(config, mixture_seed=mixture_seed, **_CHEAP_MEASUREMENTS)

    start = time.perf_counter()
    rows: list[dict[str, float]] = []
    for n in sizes:
        radius = heldout_variance_radius(n, delta=config.delta, num_classes=config.num_classes)
        for seed in seeds:
            run_config = dataclasses.replace(base, n_train=n, seed=seed)
            try:
                result = run_gmm(run_config)
            except ValueError as error:
                raise ValueError(f"the run with n_train={n}, seed={seed} failed ({error}); "
                                 f"if training diverged, lower the learning rate") from None
            final = result.summary["final"]
            if int(final["step"]) != config.steps:
                raise RuntimeError(f"run ended at step {final['step']}, expected {config.steps}")
            with single_threaded_blas():
                fresh_gap, population_se = _fresh_measurements(result, n, seed)
            train, population = float(final["train_rnc1"]), float(final["population_variance"])
            row = {
                "n": n,
                "seed": seed,
                "train_rnc1": train,
                "population_variance": population,
                "population_se": population_se,
                "signed_gap": train - population,
                "gap": abs(train - population),
                "fresh_gap": fresh_gap,
                "heldout_radius": radius,
                "feature_scale": float(final["feature_scale"]),
                "train_loss": float(final["train_loss"]),
                "train_error": float(final["train_error"]),
                "runtime_seconds": float(result.summary["runtime_seconds"]),
            }
            rows.append(row)
            if progress is not None:
                progress(dict(row))

    summary = []
    for n in sizes:
        group = [row for row in rows if row["n"] == n]
        column = lambda name: np.array([row[name] for row in group])  # noqa: E731
        gaps = column("gap")
        mean_gap, mean_se = float(gaps.mean()), float(column("population_se").mean())
        summary.append({
            "n": n,
            "mean_gap": mean_gap,
            "std_gap": float(gaps.std(ddof=1)) if len(gaps) > 1 else float("nan"),
            "mean_signed_gap": float(column("signed_gap").mean()),
            "mean_fresh_gap": float(column("fresh_gap").mean()),
            "heldout_radius": group[0]["heldout_radius"],
            "mean_train_rnc1": float(column("train_rnc1").mean()),
            "mean_population_variance": float(column("population_variance").mean()),
            "mean_population_se": mean_se,
            "resolved": bool(mean_gap > 2.0 * mean_se),
        })
    fit = fit_gap_slope([entry["n"] for entry in summary], [entry["mean_gap"] for entry in summary])
    fresh_fit = fit_gap_slope([entry["n"] for entry in summary], [entry["mean_fresh_gap"] for entry in summary],
                              what="mean fresh-sample gap")
    return GapScalingResult(config=config, samples_per_class=sizes, seeds=seeds, rows=rows, summary=summary,
                            fit=fit, fresh_fit=fresh_fit, runtime_seconds=time.perf_counter() - start)


def fit_gap_slope(sizes: Sequence[int], gaps: Sequence[float], *, what: str = "mean gap") -> LogLogFit:
    """``log(gap) = slope log(n) + intercept`` by least squares, with a t-interval on the slope
    (:func:`theory.timescales.fit_loglog_slope`); ``what`` names the gaps in the error raised when
    one of them is not positive."""
    for n, gap in zip(sizes, gaps):
        if not gap > 0.0:
            raise ValueError(f"the {what} at n={n} is {gap:g}; a log-log fit needs positive values")
    return fit_loglog_slope(sizes, gaps)


def sqrt_rate_established(fit: LogLogFit, *, tolerance: float = 0.0) -> bool:
    """The verdict of this check on a fitted gap: does the gap shrink like ``n^(-1/2)`` or faster
    (Thm. 4.1, reconstructed)?

    True when the whole confidence interval of the slope lies at or below ``-1/2 + tolerance``
    (its upper end ``slope + t * stderr``), i.e. the data establish the rate at the fit's
    confidence; a gap shrinking more slowly, or too noisy to tell, gives False. ``tolerance``
    (>= 0) loosens the threshold; the reported verdict (:attr:`GapScalingResult.rate_at_least_sqrt`)
    uses 0.
    """
    tolerance = as_scalar("tolerance", tolerance, nonnegative=True)
    return bool(fit.slope_ci[1] <= THEORETICAL_SLOPE + tolerance)


# =============================================================================== output
def write_gap_csv(result: GapScalingResult, path: Any) -> str:
    """Write one row per ``(n, seed)`` run (columns :data:`GAP_ROW_COLUMNS`; the csv module's excel
    dialect, so lines end in CRLF) atomically through :func:`ncgrok.files.atomic_write_text`.
    Returns the path."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(GAP_ROW_COLUMNS)
    for row in result.rows:
        writer.writerow([int(row[name]) if name in ("n", "seed") else repr(float(row[name]))
                         for name in GAP_ROW_COLUMNS])
    path = os.fspath(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def gap_figure(result: GapScalingResult, path: Any) -> str:
    """Log-log plot of the gap against ``n`` (per-seed points, per-``n`` means, the fitted power law
    and a reference ``n^(-1/2)`` line through the first mean), with the fresh-sample gap, the
    held-out radius of Thm. 4.1 and twice the Monte Carlo error of the population value for
    comparison; saved atomically as PNG at ``path`` (matplotlib's Agg backend). Returns the path."""
    import matplotlib.ticker

    plt = pyplot()

    sizes = np.array([entry["n"] for entry in result.summary], dtype=np.float64)
    means = np.array([entry["mean_gap"] for entry in result.summary])
    fit = result.fit
    figure, ax = plt.subplots(figsize=(9.0, 4.6), constrained_layout=True)
    points = [(row["n"], row["gap"]) for row in result.rows if row["gap"] > 0]
    if points:
        ax.scatter(*zip(*points), s=12, color="C0", alpha=0.35, linewidth=0, label="gap, one seed")
    ax.plot(sizes, means, "o-", color="C0", label=f"mean gap over {len(result.seeds)} seed(s)")
    grid = np.geomspace(sizes[0], sizes[-1], 50)
    low, high = fit.slope_ci
    ax.plot(grid, math.exp(fit.intercept) * grid**fit.slope, color="C3",
            label=f"fit: slope {fit.slope:+.2f} ({fit.confidence:.0%} CI {low:+.2f} .. {high:+.2f})")
    ax.plot(grid, means[0] * (grid / sizes[0]) ** THEORETICAL_SLOPE, color="k", linestyle="--",
            label="reference n^(-1/2)")
    fresh = np.array([entry["mean_fresh_gap"] for entry in result.summary])
    if np.all(fresh > 0):
        ax.plot(sizes, fresh, "s:", color="0.5", markersize=4, label="mean gap of a fresh sample of size n")
    ax.plot(sizes, [entry["heldout_radius"] for entry in result.summary], color="C2", linestyle="-.",
            label=f"held-out radius (Thm. 4.1, δ={result.config.delta:g})")
    floor = 2.0 * np.array([entry["mean_population_se"] for entry in result.summary])
    if np.all(floor > 0):
        ax.plot(sizes, floor, color="C1", linestyle=":", label="2 × Monte Carlo s.e. of V")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(int(n)) for n in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training samples per class n")
    ax.set_ylabel("|train RNC1 − V|  (units of g / B_g)")
    config = result.config
    ax.set_title(f"Thm. 4.1 (reconstructed): training vs population within-class variance\n"
                 f"K={config.num_classes}, d={config.input_dim}, p={config.feature_dim}, {config.activation}, "
                 f"{config.optimizer} lr={config.lr:g} λ={config.weight_decay:g}, {config.steps} steps",
                 fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return os.fspath(save_png(figure, path, dpi=110))
