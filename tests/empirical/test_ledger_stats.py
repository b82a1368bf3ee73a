"""ledger.stats against closed forms and brute force: JT null, Kaplan-Meier median, level bootstrap."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ncgrok.empirical.ledger.stats import (
    Censored,
    bootstrap_levels,
    censored_median,
    jonckheere_terpstra,
    loglog_level_slope,
    pair_scores,
    pooled_level_median,
    rank_correlation,
    trend_concordance,
    unreplicated_levels,
)


def gaussian_binomial(n: int, k: int) -> np.ndarray:
    """Coefficients of the q-binomial [n choose k]_q, by [n,k] = [n-1,k-1] + q^k [n-1,k]."""
    if k < 0 or k > n:
        return np.zeros(1)
    if k == 0 or k == n:
        return np.ones(1)
    a, b = gaussian_binomial(n - 1, k - 1), gaussian_binomial(n - 1, k)
    out = np.zeros(max(a.size, b.size + k))
    out[: a.size] += a
    out[k : k + b.size] += b
    return out


def q_multinomial(sizes) -> np.ndarray:
    """Null distribution (counts) of the number of inversions of a multiset permutation: the
    Jonckheere-Terpstra statistic without ties."""
    out, remaining = np.ones(1), sum(sizes)
    for size in sizes:
        out = np.convolve(out, gaussian_binomial(remaining, size))
        remaining -= size
    return out


def naive_j(groups):
    """J for a decreasing trend with ties as 1/2, by a double loop over level pairs."""
    total = 0.0
    for i, j in itertools.combinations(range(len(groups)), 2):
        for a in groups[i]:
            for b in groups[j]:
                total += 1.0 if b < a else 0.5 if b == a else 0.0
    return total


def test_pair_scores_hand_values_with_censoring():
    # values 1, 3 exact; 2 censored (> 2)
    scores = pair_scores([1.0, 3.0, 2.0], [False, False, True])
    assert scores[1, 0] == 1.0 and scores[0, 1] == 0.0  # 1 < 3
    assert scores[2, 0] == 1.0 and scores[0, 2] == 0.0  # 1 < (>2)
    assert scores[1, 2] == 0.5 and scores[2, 1] == 0.5  # 3 vs (>2): undecided
    assert pair_scores([2.0, 2.0])[0, 1] == 0.5
    assert pair_scores([2.0, 2.0], [True, False])[0, 1] == 1.0  # 2 < (>2)


@pytest.mark.parametrize("sizes", [(2, 3, 2), (3, 3), (1, 2, 2, 2)])
def test_exact_jt_p_values_match_the_q_multinomial_closed_form(sizes):
    counts = q_multinomial(sizes)
    assert counts.sum() == math.factorial(sum(sizes)) / math.prod(math.factorial(s) for s in sizes)
    rng = np.random.default_rng(sum(sizes))
    for _ in range(6):
        values = rng.permutation(sum(sizes)).astype(float)
        groups = np.split(values, np.cumsum(sizes)[:-1])
        test = jonckheere_terpstra([Censored.of(g) for g in groups])
        j = naive_j(groups)
        assert test.method == "exact" and test.statistic == j
        assert test.p_value == pytest.approx(counts[int(j):].sum() / counts.sum(), rel=1e-12)
        assert test.concordance == pytest.approx(2 * j / test.pairs - 1)


def test_exact_jt_with_ties_and_censoring_matches_brute_force_permutations():
    values = np.array([3.0, 3.0, 1.0, 2.0, 2.0, 5.0])
    censored = np.array([False, True, False, False, True, False])
    sizes = (2, 2, 2)
    labels = np.repeat(np.arange(3), sizes)
    scores = pair_scores(values, censored)
    observed = sum(scores[u, v] for u in range(6) for v in range(6) if labels[u] < labels[v])
    null = [sum(scores[u, v] for u in range(6) for v in range(6) if perm[u] < perm[v])
            for perm in itertools.permutations(labels)]  # 720 orderings, each assignment 8 times
    expected = np.mean(np.array(null) >= observed - 1e-12)
    levels = [Censored.of(values[labels == i], censored[labels == i]) for i in range(3)]
    test = jonckheere_terpstra(levels)
    assert test.statistic == observed and test.p_value == pytest.approx(expected, rel=1e-12)
    increasing = jonckheere_terpstra(levels, alternative="increasing")
    assert increasing.statistic == pytest.approx(test.pairs - observed)


def test_monte_carlo_jt_agrees_with_exact():
    """Sizes (3, 3, 3): 1680 assignments, exact p known; the Monte Carlo p from 10000 permutations has
    standard error sqrt(p(1-p)/10000) <= 0.005: we accept 4 standard errors (fixed seed)."""
    rng = np.random.default_rng(5)
    levels = [Censored.of(rng.normal(-0.4 * i, 1.0, 3).round(1)) for i in range(3)]
    exact = jonckheere_terpstra(levels)
    sampled = jonckheere_terpstra(levels, exact_limit=0, seed=1)
    assert exact.method == "exact" and sampled.method == "monte-carlo"
    se = math.sqrt(exact.p_value * (1 - exact.p_value) / 10_000)
    assert abs(sampled.p_value - exact.p_value) <= 4 * se + 1 / 10_001
    assert 0.01 < exact.p_value < 0.99  # a p-value in the bulk, where the comparison has power


def test_jt_detects_a_planted_trend_in_the_right_direction_only():
    levels = [Censored.of([50.0 - 10 * i + s for s in (0.1, 0.2, 0.3, 0.4)]) for i in range(4)]
    assert jonckheere_terpstra(levels).p_value < 1e-3
    assert jonckheere_terpstra(levels, alternative="increasing").p_value > 0.99
    assert trend_concordance(levels) == 1.0
    with pytest.raises(ValueError, match="two non-empty levels"):
        jonckheere_terpstra(levels[:1])


@pytest.mark.parametrize("values", [[4.0, 1.0, 3.0], [1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 1.0, 2.0, 9.0, 3.0]])
def test_censored_median_without_censoring_is_the_median(values):
    assert censored_median(Censored.of(values)) == pytest.approx(np.median(values))


def test_censored_median_hand_values():
    # 1, 3, 4 exact, 2 censored: S(1) = 3/4, S(3) = 3/4 * 1/2 = 3/8 < 1/2 -> 3 (the plain median is 2.5)
    assert censored_median(Censored.of([1.0, 2.0, 3.0, 4.0], [False, True, False, False])) == 3.0
    # half or more censored beyond every event: undefined
    assert censored_median(Censored.of([1.0, 2.0, 3.0, 4.0], [False, True, True, True])) is None
    # censored above every exact value with a majority exact: the ordinary median of the exact-or-inf values
    assert censored_median(Censored.of([1.0, 2.0, 3.0, 9.0, 9.0], [False, False, False, True, True])) == 3.0
    assert pooled_level_median([Censored.of([1.0, 3.0]), Censored.of([5.0])]) == pytest.approx(3.5)


def test_bootstrap_resamples_within_levels_and_counts_undefined():
    levels = [Censored.of([1.0, 2.0, 3.0]), Censored.of([10.0, 12.0])]
    # a resample's difference of level means lies between 10 - 3 and 12 - 1, whatever is drawn
    result = bootstrap_levels(levels, lambda drawn: drawn[1].values.mean() - drawn[0].values.mean(), resamples=500)
    assert 7.0 <= result.low < result.high <= 11.0 and result.undefined == 0
    undefined = bootstrap_levels(levels, lambda drawn: None, resamples=50)
    assert (undefined.low, undefined.high, undefined.undefined) == (-math.inf, math.inf, 50)


def test_bootstrap_refuses_a_level_with_a_single_replicate():
    """Resampling one replicate gives it back every time: with one run per level the interval would have
    zero width. Such levels are named and refused rather than given an interval."""
    one, two, three = Censored.of([5.0]), Censored.of([1.0, 2.0]), Censored.of([1.0, 2.0, 3.0])
    assert unreplicated_levels([three, one, two, one]) == (1, 3)
    assert unreplicated_levels([three, two]) == ()
    mean = lambda drawn: float(np.mean([level.values.mean() for level in drawn]))  # noqa: E731
    with pytest.raises(ValueError, match=r"levels: level\(s\) at position\(s\) 1 have fewer than 2 replicates"):
        bootstrap_levels([three, one], mean, resamples=10)
    with pytest.raises(ValueError, match="position"):
        bootstrap_levels([one, one], mean, resamples=10)
    replicated = bootstrap_levels([three, two], mean, resamples=200)
    assert replicated.low < replicated.high


def test_copied_replicates_shrink_a_naive_bootstrap():
    """Why the ledger merges identical copies: five copies of every seed make the level-mean bootstrap
    interval about sqrt(5) narrower although no information was added (seeded; the ratio of widths is
    2.24 in expectation, we accept > 1.8)."""
    rng = np.random.default_rng(2)
    level = rng.normal(0.0, 1.0, 5)
    stat = lambda drawn: float(drawn[0].values.mean())  # noqa: E731
    once = bootstrap_levels([Censored.of(level)], stat, resamples=4000, seed=3)
    copied = bootstrap_levels([Censored.of(np.repeat(level, 5))], stat, resamples=4000, seed=3)
    assert (once.high - once.low) / (copied.high - copied.low) > 1.8


def test_loglog_level_slope():
    decays = np.array([1e-3, 1e-2, 1e-1])
    assert loglog_level_slope(decays, 5.0 / decays) == pytest.approx(-1.0)
    assert loglog_level_slope(decays, [1.0, None, 2.0]) is None
    assert loglog_level_slope(decays, [1.0, 0.0, 2.0]) is None


def test_rank_correlation_matches_scipy_spearman_with_ties():
    from scipy import stats

    rng = np.random.default_rng(8)
    a = rng.integers(0, 5, 30).astype(float)
    b = a + rng.integers(0, 3, 30)
    b[3] = np.nan
    keep = np.isfinite(b)
    assert rank_correlation(a, b) == pytest.approx(stats.spearmanr(a[keep], b[keep]).statistic, rel=1e-12)
    assert rank_correlation([1.0, 2.0, 3.0], [3.0, 3.0, 3.0]) is None


def test_opposite_p_value_is_the_increasing_test():
    rng = np.random.default_rng(9)
    levels = [Censored.of(rng.normal(0.3 * i, 1.0, 3).round(1), rng.random(3) < 0.3) for i in range(3)]
    down, up = jonckheere_terpstra(levels), jonckheere_terpstra(levels, alternative="increasing")
    assert down.p_value_opposite == pytest.approx(up.p_value, rel=1e-12)
    assert up.p_value_opposite == pytest.approx(down.p_value, rel=1e-12)
