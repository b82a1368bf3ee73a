"""Statistics that respect how a sweep is replicated: lambda levels with seeds as replicates.

A law in the weight decay ``lambda`` is tested on *levels*; the seeds of one level are replicates,
not independent points of the law. Onsets can be **right-censored** (the rise had not finished, or
not started, by the last logged step: the value is only known to exceed a bound).

* :func:`pair_scores` compares two possibly censored values: 1 when the second is certainly the
  smaller, 0 when certainly the larger, 1/2 for ties and for pairs censoring leaves undecided
  (Gehan's scoring; without censoring it is the usual Mann-Whitney count with ties as 1/2).
* :func:`jonckheere_terpstra`: the Jonckheere-Terpstra trend test over ordered levels on those
  scores, ``J = sum over level pairs i < j, u in level i, v in level j of score(v below u)`` for a
  decreasing trend. Its null distribution is the permutation distribution of the level labels
  (exchangeable runs): **exact** by enumerating every assignment when there are at most
  ``exact_limit`` of them, otherwise **Monte Carlo** with ``permutations`` (10,000) random assignments
  and the valid p-value ``(1 + #{J* >= J}) / (permutations + 1)``.
* :func:`censored_median`: the Kaplan-Meier median of a level (censored values enter as lower
  bounds); ``None`` when censoring leaves it undefined (half or more of the mass is beyond the
  bounds). Without censoring it equals ``numpy.median``.
* :func:`bootstrap_levels`: a percentile bootstrap that resamples replicates *within* each level
  (level sizes fixed). A resample whose statistic is undefined (e.g. a censored median) is put at
  ``-inf`` for the lower end and ``+inf`` for the upper end, so the interval is conservative and
  becomes infinite when too many resamples are undefined.

Replicates that are identical copies (the same curves twice) must be merged before calling these
(``ledger.replicates.sweep_levels`` does): the bootstrap then gives exactly the interval of the
de-duplicated data.

**No interval from an unreplicated level.** A level with a single replicate (after copies are merged)
gives back that one replicate in every resample, so its part of the statistic never varies: the
interval leaves out that level's seed-to-seed spread (too narrow; zero width when every level is so),
a certainty the data do not have. An interval is therefore made only when every level entering the
statistic has at least :data:`MIN_REPLICATES` (2) distinct replicates: :func:`unreplicated_levels`
names the others, and :func:`bootstrap_levels` refuses them (``ValueError``) rather than return a
degenerate interval. The ledger's claims report that case as ``inconclusive`` with the point
statistic and no interval (``ledger.verdicts``). The rule holds as well for statistics pooled over
levels (a mean or a slope over weight decays): the resampling unit is still the seed within a level,
and a one-run level is a fixed point in every resample. A test whose null distribution comes from
elsewhere (the Jonckheere-Terpstra permutation of level labels across all runs) needs no within-level
replicate and is not affected.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "Censored",
    "pair_scores",
    "TrendTest",
    "jonckheere_terpstra",
    "trend_concordance",
    "concordance_of_members",
    "censored_median",
    "BootstrapInterval",
    "MIN_REPLICATES",
    "unreplicated_levels",
    "bootstrap_levels",
    "ReplicateTable",
    "loglog_level_slope",
    "rank_correlation",
    "pooled_level_median",
]


@dataclass(frozen=True)
class Censored:
    """Values of one level: ``values[i]`` is exact, or a lower bound when ``censored[i]``."""

    values: np.ndarray
    censored: np.ndarray

    @classmethod
    def of(cls, values: Any, censored: Any = None) -> "Censored":
        values = np.asarray(values, dtype=float).reshape(-1)
        flags = np.zeros(values.size, bool) if censored is None else np.asarray(censored, dtype=bool).reshape(-1)
        if flags.shape != values.shape:
            raise ValueError(f"censored ({flags.size} flags) must pair with values ({values.size})")
        if not np.all(np.isfinite(values)):
            raise ValueError("values must be finite (a censored value is its finite lower bound)")
        return cls(values, flags)

    def take(self, index: np.ndarray) -> "Censored":
        return Censored(self.values[index], self.censored[index])

    @property
    def size(self) -> int:
        return int(self.values.size)


def _joined(levels: Sequence[Censored]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.concatenate([level.values for level in levels])
    censored = np.concatenate([level.censored for level in levels])
    labels = np.concatenate([np.full(level.size, i) for i, level in enumerate(levels)])
    return values, censored, labels


def pair_scores(values: Any, censored: Any = None) -> np.ndarray:
    """``S[u, v]``: 1 if value ``v`` is certainly below value ``u``, 0 if certainly above, else 1/2.

    A censored value ``c`` means "greater than ``c``"; an exact ``v <= c`` is then certainly below it.
    """
    data = Censored.of(values, censored)
    u = data.values[:, None]
    v = data.values[None, :]
    cu, cv = data.censored[:, None], data.censored[None, :]
    below = (~cv) & (((~cu) & (v < u)) | (cu & (v <= u)))
    above = (~cu) & (((~cv) & (v > u)) | (cv & (v >= u)))
    return np.where(below, 1.0, np.where(above, 0.0, 0.5))


@dataclass(frozen=True)
class TrendTest:
    """A one-sided Jonckheere-Terpstra test.

    ``statistic`` is ``J``; ``concordance = 2 J / pairs - 1`` in ``[-1, 1]`` (1: every run of a larger
    level is below every run of a smaller one, for ``alternative="decreasing"``); ``p_value`` is
    ``P(J* >= J)`` under the permutation null and ``p_value_opposite`` is ``P(J* <= J)``, the p-value
    of the opposite alternative (its statistic is ``pairs - J`` because each pair's two scores sum
    to 1); ``method`` is ``"exact"`` or ``"monte-carlo"``;
    ``assignments`` is the number of distinct label assignments (the exact null's support size).
    """

    statistic: float
    concordance: float
    pairs: int
    p_value: float
    p_value_opposite: float
    method: str
    assignments: int
    alternative: str


def _assignment_count(sizes: Sequence[int]) -> int:
    count, remaining = 1, sum(sizes)
    for size in sizes:
        count *= math.comb(remaining, size)
        remaining -= size
    return count


def _all_assignments(sizes: Sequence[int]) -> np.ndarray:
    """Every distinct vector of level labels with the given level sizes, one per row."""
    total = sum(sizes)
    rows = []

    def fill(labels: np.ndarray, free: tuple[int, ...], level: int) -> None:
        if level == len(sizes) - 1:
            labels = labels.copy()
            labels[list(free)] = level
            rows.append(labels)
            return
        for chosen in itertools.combinations(free, sizes[level]):
            labels[list(chosen)] = level
            rest = tuple(i for i in free if i not in chosen)
            fill(labels, rest, level + 1)

    fill(np.zeros(total, dtype=np.int64), tuple(range(total)), 0)
    return np.array(rows)


def _statistics(scores: np.ndarray, labels: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``J`` for each row of ``labels``: sum of ``scores[u, v]`` over pairs with label u < label v."""
    out = np.empty(labels.shape[0])
    flat = scores.ravel()
    for start in range(0, labels.shape[0], chunk):
        block = labels[start : start + chunk]
        earlier = (block[:, :, None] < block[:, None, :]).reshape(block.shape[0], -1)
        out[start : start + chunk] = earlier.astype(np.float64) @ flat
    return out


def _trend_scores(levels: Sequence[Censored], alternative: str) -> tuple[np.ndarray, np.ndarray, int]:
    values, censored, labels = _joined(levels)
    scores = pair_scores(values, censored)
    if alternative == "increasing":
        scores = scores.T
    sizes = [level.size for level in levels]
    return scores, labels, sum(a * b for a, b in itertools.combinations(sizes, 2))


def trend_concordance(levels: Sequence[Censored], *, alternative: str = "decreasing") -> float | None:
    """``2 J / pairs - 1`` of :func:`jonckheere_terpstra` without its null (``None`` with fewer than two
    non-empty levels): the effect size of the trend, 1 for a perfect one, 0 for none."""
    levels = [level for level in levels if level.size]
    if len(levels) < 2:
        return None
    scores, labels, pairs = _trend_scores(levels, alternative)
    return 2.0 * float(_statistics(scores, labels[None, :])[0]) / pairs - 1.0


def concordance_of_members(scores: np.ndarray, members: Sequence[np.ndarray]) -> float:
    """:func:`trend_concordance` of the levels ``members`` (index arrays into ``scores``, the
    :func:`pair_scores` of all runs, ascending levels): fast for bootstrap resamples of runs."""
    index = np.concatenate(members)
    labels = np.repeat(np.arange(len(members)), [m.size for m in members])
    pairs = sum(a.size * b.size for a, b in itertools.combinations(members, 2))
    return 2.0 * float(_statistics(scores[np.ix_(index, index)], labels[None, :])[0]) / pairs - 1.0


def jonckheere_terpstra(
    levels: Sequence[Censored],
    *,
    alternative: str = "decreasing",
    exact_limit: int = 20_000,
    permutations: int = 10_000,
    seed: int = 0,
) -> TrendTest:
    """Jonckheere-Terpstra test that values decrease (or increase) along ``levels`` (ascending order).

    ``levels`` are :class:`Censored` value sets, one per level, in increasing order of the level
    (e.g. ascending weight decay). Needs at least two non-empty levels.
    """
    if alternative not in ("decreasing", "increasing"):
        raise ValueError(f"alternative must be 'decreasing' or 'increasing', got {alternative!r}")
    levels = [level for level in levels if level.size]
    if len(levels) < 2:
        raise ValueError("the trend test needs at least two non-empty levels")
    scores, labels, pairs = _trend_scores(levels, alternative)
    observed = float(_statistics(scores, labels[None, :])[0])
    sizes = [level.size for level in levels]
    count = _assignment_count(sizes)
    tolerance = 1e-9 * max(1.0, pairs)
    if count <= exact_limit:
        null = _statistics(scores, _all_assignments(sizes))
        p_value = float(np.mean(null >= observed - tolerance))
        p_opposite = float(np.mean(null <= observed + tolerance))
        method = "exact"
    else:
        rng = np.random.default_rng(seed)
        null = _statistics(scores, rng.permuted(np.tile(labels, (permutations, 1)), axis=1))
        p_value = float((1 + np.sum(null >= observed - tolerance)) / (permutations + 1))
        p_opposite = float((1 + np.sum(null <= observed + tolerance)) / (permutations + 1))
        method = "monte-carlo"
    return TrendTest(observed, 2.0 * observed / pairs - 1.0, pairs, p_value, p_opposite, method, count, alternative)


def censored_median(level: Censored) -> float | None:
    """Kaplan-Meier median of one level; ``None`` when censoring leaves it undefined.

    At each distinct exact value ``t`` the survival drops by the factor ``1 - d/n`` (``d`` exact values
    at ``t``, ``n`` values ``>= t``; a value censored at ``t`` is still at risk at ``t``). The median is
    the first ``t`` where survival falls below 1/2; where it lands exactly on 1/2, the midpoint of
    ``t`` and the next exact value (``None`` if there is none). Without censoring: ``numpy.median``.
    """
    # plain Python: levels hold a handful of seeds, and this runs once per level per bootstrap resample
    pairs = sorted(zip(level.values.tolist(), level.censored.tolist()))  # exact before censored at a tie
    at_risk, survival, index = len(pairs), 1.0, 0
    while index < len(pairs):
        t, deaths, leaving = pairs[index][0], 0, 0
        while index < len(pairs) and pairs[index][0] == t:
            deaths += not pairs[index][1]
            leaving += 1
            index += 1
        if deaths:
            survival *= 1.0 - deaths / at_risk
            if survival < 0.5 - 1e-12:
                return float(t)
            if abs(survival - 0.5) <= 1e-12:
                later = [value for value, censored in pairs[index:] if not censored]
                return float(0.5 * (t + later[0])) if later else None
        at_risk -= leaving
    return None


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile interval ``(low, high)`` at ``confidence`` from ``resamples`` within-level resamples,
    of which ``undefined`` had no value (counted at the unfavourable end, see the module docstring)."""

    low: float
    high: float
    confidence: float
    resamples: int
    undefined: int


MIN_REPLICATES = 2


def unreplicated_levels(levels: Sequence[Any]) -> tuple[int, ...]:
    """Positions of the ``levels`` (objects with ``size``) with fewer than :data:`MIN_REPLICATES`
    replicates: resampling within such a level cannot vary it, so no interval is made (module docstring)."""
    return tuple(i for i, level in enumerate(levels) if level.size < MIN_REPLICATES)


def bootstrap_levels(
    levels: Sequence[Any],
    statistic: Callable[[list[Any]], float | None],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile interval of ``statistic(levels)`` resampling replicates within each level.

    ``levels`` are objects with ``size`` and ``take(index_array)`` (e.g. :class:`Censored`, or
    :class:`ReplicateTable`); each resample draws ``size`` replicates with replacement from every
    level independently. ``statistic`` returns a number, or ``None``/NaN when undefined. Every level
    needs at least :data:`MIN_REPLICATES` replicates (check :func:`unreplicated_levels` first): a
    ``ValueError`` otherwise, never a zero-width interval.
    """
    single = unreplicated_levels(levels)
    if single:
        raise ValueError(
            f"levels: level(s) at position(s) {', '.join(map(str, single))} have fewer than {MIN_REPLICATES} "
            "replicates, so resampling within them gives no interval; leave the interval out for such data "
            "(see unreplicated_levels)"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, level.size, (resamples, level.size)) for level in levels]
    values = np.empty(resamples)
    for b in range(resamples):
        drawn = [level.take(draw[b]) for level, draw in zip(levels, draws)]
        value = statistic(drawn)
        values[b] = math.nan if value is None else float(value)
    undefined = np.isnan(values)
    alpha = 1.0 - confidence
    low = float(np.quantile(np.where(undefined, -np.inf, values), alpha / 2, method="lower"))
    high = float(np.quantile(np.where(undefined, np.inf, values), 1 - alpha / 2, method="higher"))
    return BootstrapInterval(low, high, confidence, resamples, int(undefined.sum()))


@dataclass(frozen=True)
class ReplicateTable:
    """Replicates of one level as the rows of an array (e.g. indices of runs), for :func:`bootstrap_levels`."""

    rows: np.ndarray

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    def take(self, index: np.ndarray) -> "ReplicateTable":
        return ReplicateTable(self.rows[index])


def loglog_level_slope(decays: Sequence[float], medians: Sequence[float | None]) -> float | None:
    """OLS slope of ``log(median)`` on ``log(decay)`` over levels; ``None`` if a median is undefined or
    ``<= 0`` or fewer than two distinct decays remain."""
    if any(m is None or not m > 0 for m in medians) or len(set(decays)) < 2:
        return None
    x, y = np.log(np.asarray(decays, float)), np.log(np.asarray(medians, float))
    x = x - x.mean()
    return float(np.dot(x, y - y.mean()) / np.dot(x, x))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def rank_correlation(a: Any, b: Any) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks) of two curves over their jointly finite
    entries; ``None`` when fewer than three remain or either is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return None
    ra, rb = _average_ranks(a[keep]), _average_ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(np.dot(ra, rb) / np.sqrt(np.dot(ra, ra) * np.dot(rb, rb)))


def pooled_level_median(levels: Sequence[Censored]) -> float | None:
    """Mean over levels of each level's :func:`censored_median` (levels weigh equally, seeds are nested
    in them); ``None`` when there is no level or a level's median is undefined."""
    medians = [censored_median(level) for level in levels]
    if not medians or any(m is None for m in medians):
        return None
    return float(np.mean(medians))

