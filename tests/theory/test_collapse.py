"""Collapse measures against hand-computable cases and an independent direct implementation."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncgrok.theory.collapse import (
    COLLAPSE_MEASURES,
    ClassStatistics,
    between_class_covariance,
    between_class_variance,
    class_covariances,
    class_variances,
    collapse_measures,
    etf_deviation,
    feature_scale,
    nc1,
    nc1_pinv,
    nc2,
    population_within_class_variance,
    rnc1,
    simplex_etf_gram,
    within_class_covariance,
    within_class_variance,
)


def direct_measures(features, labels, num_classes):
    """Slow textbook computation on the whole array (loops, no sufficient statistics)."""
    n, p = features.shape
    global_mean = features.mean(axis=0)
    sigma_w = np.zeros((p, p))
    sigma_b = np.zeros((p, p))
    means = []
    for c in range(num_classes):
        block = features[labels == c]
        mean = block.mean(axis=0)
        means.append(mean)
        for row in block:
            sigma_w += np.outer(row - mean, row - mean) / n
        sigma_b += len(block) / n * np.outer(mean - global_mean, mean - global_mean)
    norms = np.linalg.norm(features, axis=1)
    singular = np.linalg.svd(np.array(means), compute_uv=False)
    return {
        "within": np.trace(sigma_w),
        "between": np.trace(sigma_b),
        "sigma_w": sigma_w,
        "sigma_b": sigma_b,
        "nc1": np.trace(sigma_w) / np.trace(sigma_b),
        "nc1_pinv": np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / num_classes,
        "rnc1_mean": np.trace(sigma_w) / norms.mean() ** 2,
        "rnc1_sup": np.trace(sigma_w) / norms.max() ** 2,
        "nc2": singular[0] / singular[-1],
    }


def random_sample(seed, n=200, p=6, num_classes=4):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
    means = rng.normal(size=(num_classes, p)) * 3
    features = means[labels] + rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    return features, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_direct_computation(seed):
    features, labels = random_sample(seed)
    stats = ClassStatistics.from_features(features, labels, num_classes=4)
    want = direct_measures(features, labels, 4)
    assert within_class_variance(stats) == pytest.approx(want["within"], rel=1e-12)
    assert between_class_variance(stats) == pytest.approx(want["between"], rel=1e-12)
    np.testing.assert_allclose(within_class_covariance(stats), want["sigma_w"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(between_class_covariance(stats), want["sigma_b"], rtol=1e-11, atol=1e-12)
    assert nc1(stats) == pytest.approx(want["nc1"], rel=1e-11)
    assert nc1_pinv(stats) == pytest.approx(want["nc1_pinv"], rel=1e-8)
    assert rnc1(stats, scale="mean") == pytest.approx(want["rnc1_mean"], rel=1e-12)
    assert rnc1(stats, scale="sup") == pytest.approx(want["rnc1_sup"], rel=1e-12)
    assert nc2(stats) == pytest.approx(want["nc2"], rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 199), max_size=6))
def test_streaming_over_random_splits_equals_one_pass(seed, cuts):
    features, labels = random_sample(seed)
    whole = ClassStatistics.from_features(features, labels, num_classes=4)
    order = np.random.default_rng(seed + 1).permutation(len(labels))
    pieces = np.split(order, sorted(set(cuts)))
    streamed = ClassStatistics.empty(4, features.shape[1])
    for piece in pieces:
        streamed = streamed.update(features[piece], labels[piece])
    np.testing.assert_allclose(streamed.counts, whole.counts)
    np.testing.assert_allclose(streamed.sums, whole.sums, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(streamed.scatter, whole.scatter, rtol=1e-10)
    np.testing.assert_allclose(streamed.scatter_matrix, whole.scatter_matrix, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(streamed.norm_max, whole.norm_max)
    for key, value in collapse_measures(whole).items():
        assert collapse_measures(streamed)[key] == pytest.approx(value, rel=1e-9), key


def etf_vectors(num_classes, dim, length):
    """Rows: a simplex ETF of ``num_classes`` vectors of norm ``length`` in ``R^dim`` (dim >= K)."""
    centred = np.eye(num_classes) - 1.0 / num_classes
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(dim, dim)))
    return length * centred @ rotation[:num_classes]


def test_exact_simplex_etf_gives_zero_nc1_and_known_nc2():
    num_classes, dim, length, offset_norm = 4, 7, 3.0, 2.0
    etf = etf_vectors(num_classes, dim, length)
    # A global-mean offset orthogonal to the ETF's span makes the uncentred means full rank.
    offset = np.linalg.svd(etf)[2][-1] * offset_norm
    features = np.repeat(etf + offset, 5, axis=0)
    labels = np.repeat(np.arange(num_classes), 5)
    stats = ClassStatistics.from_features(features, labels, num_classes=num_classes)
    # Zero up to the rounding of sums / n_c.
    assert within_class_variance(stats) == pytest.approx(0.0, abs=1e-28)
    assert nc1(stats) == pytest.approx(0.0, abs=1e-28)
    assert nc1_pinv(stats) == pytest.approx(0.0, abs=1e-28)
    assert etf_deviation(stats) == pytest.approx(0.0, abs=1e-12)
    # M M^T = (length^2 K/(K-1)) (I - 11^T/K) + offset^2 11^T: singular values
    # length sqrt(K/(K-1)) (K-1 times) and offset sqrt(K).
    expected = [length * np.sqrt(num_classes / (num_classes - 1)), offset_norm * np.sqrt(num_classes)]
    assert nc2(stats) == pytest.approx(max(expected) / min(expected), rel=1e-12)


def test_etf_deviation_detects_non_etf_and_gram_is_simplex():
    gram = simplex_etf_gram(3)
    np.testing.assert_allclose(gram, [[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]])
    # Centring three orthonormal class means gives a simplex ETF ...
    stats = ClassStatistics.from_features(np.eye(3), [0, 1, 2], num_classes=3)
    assert etf_deviation(stats) == pytest.approx(0.0, abs=1e-12)
    # ... while three means with a right angle between centred directions do not.
    stats = ClassStatistics.from_features(np.array([[1.0, 0], [0, 1.0], [1.0, 1.0]]), [0, 1, 2], num_classes=3)
    assert etf_deviation(stats) > 0.1


def test_isotropic_design_gives_known_trace_and_covariance():
    # Class c holds mu_c +- s e_j for every axis j: each point deviates by exactly s, so V_c = s^2
    # and C_c = (s^2 / p) I.
    s, dim = 0.25, 5
    means = np.array([[10.0, 0, 0, 0, 0], [0, -10.0, 0, 0, 0]])
    rows, labels = [], []
    for c, mean in enumerate(means):
        for j in range(dim):
            for sign in (1.0, -1.0):
                rows.append(mean + sign * s * np.eye(dim)[j])
                labels.append(c)
    stats = ClassStatistics.from_features(np.array(rows), np.array(labels), num_classes=2)
    np.testing.assert_allclose(class_variances(stats), [s**2, s**2], rtol=1e-14)
    np.testing.assert_allclose(class_covariances(stats), np.stack([np.eye(dim) * s**2 / dim] * 2), atol=1e-15)
    assert within_class_variance(stats) == pytest.approx(s**2, rel=1e-14)
    # Global mean (5, -5, 0..): each class mean deviates by (5, 5) up to sign, so Tr Sigma_B = 50
    # and Sigma_B = 50 v v^T with v = (e_1 + e_2)/sqrt 2.
    assert between_class_variance(stats) == pytest.approx(50.0, rel=1e-14)
    assert nc1(stats) == pytest.approx(s**2 / 50.0, rel=1e-13)
    # Sigma_B^+ = v v^T / 50 and v^T Sigma_W v = s^2/p; Papyan's form divides by K = 2.
    assert nc1_pinv(stats) == pytest.approx((s**2 / dim) / 50.0 / 2, rel=1e-12)
    # unbiased variances divide by n_c - 1 = 2p - 1
    np.testing.assert_allclose(class_variances(stats, unbiased=True), [s**2 * 2 * dim / (2 * dim - 1)] * 2)


def test_hand_case_two_classes_pinv_and_scales():
    # K=2 in R^2: means (+-1, 0), within-class covariance diag(a, b) from a +-sqrt design.
    a, b = 0.09, 0.04
    rows, labels = [], []
    for c, centre in enumerate([(1.0, 0.0), (-1.0, 0.0)]):
        for dx, dy in [(np.sqrt(2 * a), 0), (-np.sqrt(2 * a), 0), (0, np.sqrt(2 * b)), (0, -np.sqrt(2 * b))]:
            rows.append((centre[0] + dx, centre[1] + dy))
            labels.append(c)
    stats = ClassStatistics.from_features(np.array(rows), np.array(labels), num_classes=2)
    assert within_class_variance(stats) == pytest.approx(a + b, rel=1e-13)
    assert nc1(stats) == pytest.approx(a + b, rel=1e-13)  # Tr Sigma_B = 1
    assert nc1_pinv(stats) == pytest.approx(a / 2, rel=1e-12)
    norms = np.linalg.norm(np.array(rows), axis=1)
    assert feature_scale(stats, estimator="sup") == pytest.approx(norms.max())
    assert feature_scale(stats, estimator="mean") == pytest.approx(norms.mean())


def test_raw_moments_route_agrees():
    features, labels = random_sample(3)
    direct = ClassStatistics.from_features(features, labels, num_classes=4)
    onehot = np.eye(4)[labels]
    raw = ClassStatistics.from_raw_moments(
        counts=onehot.sum(0),
        sums=onehot.T @ features,
        squared_norm_sums=onehot.T @ (features**2).sum(1),
        norm_sums=onehot.T @ np.linalg.norm(features, axis=1),
        norm_max=[np.linalg.norm(features[labels == c], axis=1).max() for c in range(4)],
        outer_sums=np.einsum("nk,np,nq->kpq", onehot, features, features),
    )
    for key, value in collapse_measures(direct).items():
        assert collapse_measures(raw)[key] == pytest.approx(value, rel=1e-9), key


def test_centred_statistics_survive_late_phase_scales():
    # Mean norm 1e6, within-class variance 1e-6: E||h||^2 - ||E h||^2 would lose everything in
    # float64, the centred merge must not.
    s = 1e-3
    offsets = np.array([[s, 0], [-s, 0], [0, s], [0, -s]])
    features = np.concatenate([offsets + [1e6, 0], offsets + [0, 1e6]])
    labels = np.repeat([0, 1], 4)
    stats = ClassStatistics.from_features(features[:3], labels[:3], num_classes=2)
    stats = stats.update(features[3:], labels[3:])
    np.testing.assert_allclose(class_variances(stats), [s**2, s**2], rtol=1e-6)


def test_population_variance_with_priors_and_unbiased():
    features, labels = random_sample(4)
    stats = ClassStatistics.from_features(features, labels, num_classes=4)
    priors = np.array([0.1, 0.2, 0.3, 0.4])
    want = sum(
        priors[c] * np.sum((features[labels == c] - features[labels == c].mean(0)) ** 2) / ((labels == c).sum() - 1)
        for c in range(4)
    ) / 2.0**2
    got = population_within_class_variance(stats, scale=2.0, priors=priors, unbiased=True)
    assert got == pytest.approx(want, rel=1e-12)
    assert population_within_class_variance(stats, scale=feature_scale(stats, estimator="mean")) == pytest.approx(
        rnc1(stats, scale="mean"), rel=1e-12
    )


def test_collapse_measures_keys_are_the_declared_columns():
    features, labels = random_sample(6)
    assert tuple(collapse_measures(ClassStatistics.from_features(features, labels, num_classes=4))) == COLLAPSE_MEASURES


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    features, labels = random_sample(5)
    from_numpy = ClassStatistics.from_features(features, labels, num_classes=4)
    from_torch = ClassStatistics.from_features(torch.tensor(features), torch.tensor(labels), num_classes=4)
    assert nc1(from_torch) == pytest.approx(nc1(from_numpy), rel=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ClassStatistics.from_features(np.ones((4, 3)), [0, 1, 2], num_classes=3), "labels"),
        (lambda: ClassStatistics.from_features(np.ones((3, 3)), [0, 1, 3], num_classes=3), "labels must lie"),
        (lambda: ClassStatistics.from_features(np.full((3, 3), np.nan), [0, 1, 2], num_classes=3), "NaN"),
        (lambda: ClassStatistics.from_features(np.ones(3), [0, 1, 2], num_classes=3), "features"),
        (lambda: ClassStatistics.from_features(np.ones((3, 3)), [0.5, 1, 2], num_classes=3), "integers"),
        (lambda: nc2(ClassStatistics.from_features(np.eye(3)[:, :2], [0, 1, 2], num_classes=3)), "K <= p"),
        (lambda: nc1(ClassStatistics.from_features(np.eye(3), [0, 1, 1], num_classes=3)), "classes \\[0\\]|\\[2\\]"),
        (lambda: feature_scale(ClassStatistics.empty(2, 3), estimator="sup"), "no samples"),
        (lambda: feature_scale(ClassStatistics.from_features(np.eye(2), [0, 1], num_classes=2), estimator="max"), "estimator"),
        (lambda: nc1_pinv(ClassStatistics.from_features(np.eye(2), [0, 1], num_classes=2, covariance=False)), "covariance=True"),
        (lambda: ClassStatistics.empty(2, 3).merge(ClassStatistics.empty(2, 4)), "cannot merge"),
        (lambda: population_within_class_variance(ClassStatistics.from_features(np.eye(2), [0, 1], num_classes=2), scale=-1), "scale"),
        (lambda: ClassStatistics.from_raw_moments(counts=[1, 1], sums=np.ones((2, 2)), squared_norm_sums=[-1, 1],
                                                  norm_sums=[1, 1], norm_max=[1, 1]), "squared_norm_sums"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
