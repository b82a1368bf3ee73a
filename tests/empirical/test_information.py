"""Tests for empirical/information/: k-NN entropy, compressed MI, nHSIC and the autoencoder cache.

Entropy and MI estimates are compared with Gaussian / uniform closed forms; nHSIC with a slow loop
implementation of the spec's literal formula (``K~ = K H``) written here. Every random draw has a
fixed seed; each tolerance says why it is safe.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma, polygamma

from ncgrok.empirical.information import (
    AutoencoderConfig,
    CompressedMutualInformation,
    InputAutoencoder,
    KNNEntropy,
    NormalizedHSIC,
    fit_or_load,
    whiten,
)

N = 10_000


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """The torch problems here are tiny (100 x 100 solves, a 16-unit autoencoder): intra-op threads only
    add synchronisation, which on a loaded 2-core machine costs 10-100x. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def gaussian_entropy(covariance: np.ndarray) -> float:
    dim = covariance.shape[0]
    return 0.5 * (dim * math.log(2 * math.pi * math.e) + np.linalg.slogdet(covariance)[1])


def correlated_pair(dim: int, rho: float, count: int, seed: int):
    """Z ~ N(0, I_d), X = rho Z + sqrt(1 - rho^2) E: joint covariance [[I, rho I], [rho I, I]]."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((count, dim))
    x = rho * z + math.sqrt(1 - rho**2) * rng.standard_normal((count, dim))
    joint = np.block([[np.eye(dim), rho * np.eye(dim)], [rho * np.eye(dim), np.eye(dim)]])
    exact = -0.5 * (np.linalg.slogdet(joint)[1])  # det Sigma_Z = det Sigma_X = 1
    return z, x, exact


# ---------------------------------------------------------------------------------------------
# Kozachenko-Leonenko entropy


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_knn_entropy_of_gaussians(dim):
    # Tolerance 0.1 nats. At N = 1e4, k = 5 the estimator's standard deviation is about
    # sqrt((psi'(5) + d/2) / N) <= 0.016 nats for d <= 4, and its bias, measured over 10 seeds with
    # random covariances, is at most 0.05 nats (d = 4, where it is largest); 0.1 leaves > 3 sd.
    rng = np.random.default_rng(100 + dim)
    mixing = rng.standard_normal((dim, dim))
    covariance = mixing @ mixing.T + 0.5 * np.eye(dim)
    sample = rng.multivariate_normal(np.zeros(dim), covariance, size=N)
    standard_deviation = math.sqrt((polygamma(1, 5) + dim / 2) / N)
    assert standard_deviation < 0.02
    assert KNNEntropy(k=5)(sample) == pytest.approx(gaussian_entropy(covariance), abs=0.1)


@pytest.mark.parametrize("dim, tolerance", [(1, 0.03), (2, 0.05), (3, 0.12)])
def test_knn_entropy_of_uniform_cube(dim, tolerance):
    # Uniform on [0, 2]^d: h = d log 2. Near the faces the k-NN ball sticks out of the support, which
    # biases the estimate upwards by O(N^(-1/d)): measured over 10 seeds at N = 1e4 the bias is
    # < 0.001, 0.015 and 0.075 nats for d = 1, 2, 3 with sd < 0.01; the tolerances are above those.
    sample = np.random.default_rng(200 + dim).uniform(0.0, 2.0, size=(N, dim))
    assert KNNEntropy(k=5)(sample) == pytest.approx(dim * math.log(2.0), abs=tolerance)


def test_knn_entropy_formula_on_a_hand_checkable_sample():
    # Points 0, 1, ..., 9 on a line, k = 2: the 2nd-neighbour distance is 2 for the end points 0 and 9
    # and 1 for every other point, so h = psi(10) - psi(2) + log 2 + (2/10) log 2 (c_1 = 2).
    points = np.arange(10, dtype=float)
    expected = digamma(10) - digamma(2) + math.log(2.0) + 0.2 * math.log(2.0)
    assert KNNEntropy(k=2)(points) == pytest.approx(expected, rel=1e-12)
    # 2-d: the unit-ball volume is pi; a 3 x 3 grid with spacing 1 and k = 1 has eps_i = 1.
    grid = np.array([(i, j) for i in range(3) for j in range(3)], dtype=float)
    assert KNNEntropy(k=1)(grid) == pytest.approx(digamma(9) - digamma(1) + math.log(math.pi), rel=1e-12)


def test_knn_entropy_duplicates_rule():
    rng = np.random.default_rng(5)
    sample = rng.standard_normal((500, 2))
    # Fewer than k copies of a point: nothing changes (the k-th neighbour is at distance > 0).
    few = np.concatenate([sample, sample[:3], sample[:3]])
    assert np.isfinite(KNNEntropy(k=5, duplicates="raise")(few))
    many = np.concatenate([sample] + [sample[:10]] * 5)  # 10 points with 5 extra copies each
    with pytest.raises(ValueError, match="duplicates"):
        KNNEntropy(k=5, duplicates="raise")(many)
    jittered = KNNEntropy(k=5, duplicates="jitter")(many)
    assert np.isfinite(jittered)
    # The duplicated atoms pull the estimate far down (towards -inf), never up.
    assert jittered < KNNEntropy(k=5)(sample) - 1.0
    # Deterministic: same seed, same value.
    assert KNNEntropy(k=5, duplicates="jitter")(many) == jittered


def test_knn_entropy_validation_names_the_argument():
    with pytest.raises(ValueError, match="x needs more than k = 5"):
        KNNEntropy(k=5)(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="x contains NaN"):
        KNNEntropy()(np.array([[0.0], [np.nan]] * 10))
    with pytest.raises(ValueError, match="x must have"):
        KNNEntropy()(np.zeros((10, 2, 2)))
    with pytest.raises(ValueError, match="k must be"):
        KNNEntropy(k=0)
    with pytest.raises(ValueError, match="duplicates"):
        KNNEntropy(duplicates="ignore")


# ---------------------------------------------------------------------------------------------
# Compressed mutual information


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_mi_of_correlated_gaussians(dim, rho):
    # I = -1/2 log det [[I, rho I], [rho I, I]] = -(d/2) log(1 - rho^2). Tolerance 0.1 nats: over
    # 5 seeds at N = 1e4 the error of h(Z) + h(X) - h(Z,X) is at most 0.085 nats (rho = 0.9, d = 3,
    # bias -0.066, sd 0.013) and at most 0.051 otherwise.
    z, x, exact = correlated_pair(dim, rho, N, seed=10 * dim + int(10 * rho))
    assert CompressedMutualInformation(latent_dim=4, k=5).mi(z, x) == pytest.approx(exact, abs=0.1)


@pytest.mark.parametrize("rho, tolerance", [(0.5, 0.1), (0.9, 0.45)])
def test_mi_of_correlated_gaussians_in_four_dimensions(rho, tolerance):
    # d = 4 (an 8-dimensional joint). rho = 0.5: I = 0.575, error <= 0.06 over 5 seeds. rho = 0.9:
    # I = 3.32 and the 3H k-NN estimator is known to underestimate strongly dependent pairs: measured
    # bias -0.35 nats (10%), sd 0.016 over 5 seeds, hence the 0.45 tolerance (not a precision claim).
    z, x, exact = correlated_pair(4, rho, N, seed=int(100 * rho))
    estimate = CompressedMutualInformation(latent_dim=4, k=5).mi(z, x)
    assert estimate == pytest.approx(exact, abs=tolerance)
    assert estimate <= exact + 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mi_of_independent_data_is_near_zero(seed):
    # True I = 0. Independent 2-d Gaussians at N = 1e4: over 10 seeds the estimate is 0.030 +- 0.008
    # (max 0.042), the bias of the 4-d joint entropy not fully cancelling; tolerance 0.07 (5 sd).
    rng = np.random.default_rng(300 + seed)
    z = rng.standard_normal((N, 2))
    x = rng.standard_normal((N, 2))
    assert abs(CompressedMutualInformation().mi(z, x)) < 0.07


def test_mi_of_independent_gaussian_and_uniform_is_near_zero():
    # With a uniform X the boundary bias of h(X) and h(Z,X) does not cancel exactly: over 10 seeds the
    # estimate is -0.068 +- 0.010 (max |.| 0.081); tolerance 0.12.
    rng = np.random.default_rng(310)
    z = rng.standard_normal((N, 2))
    x = rng.uniform(-1, 1, size=(N, 2))
    assert abs(CompressedMutualInformation().mi(z, x)) < 0.12


def test_mi_invariant_to_invertible_affine_maps():
    # Whitening with the Euclidean k-NN metric: an invertible affine map of Z (or X) changes the
    # whitened data only by a rotation, so the estimate is identical up to rounding.
    z, x, _ = correlated_pair(2, 0.7, 4_000, seed=9)
    rng = np.random.default_rng(10)
    a = rng.standard_normal((2, 2)) + 2 * np.eye(2)
    b = rng.standard_normal((2, 2)) * 5
    estimator = CompressedMutualInformation()
    reference = estimator.mi(z, x)
    assert estimator.mi(z @ a.T + 3.0, x) == pytest.approx(reference, abs=1e-8)
    assert estimator.mi(z, x @ b.T - 7.0) == pytest.approx(reference, abs=1e-8)
    labels = (z[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    assert estimator.mi_with_labels(z @ a.T + 3.0, labels) == pytest.approx(
        estimator.mi_with_labels(z, labels), abs=1e-8
    )


def test_mi_with_labels_of_separated_mixture_is_label_entropy():
    # Four Gaussian classes in 3-d with means 40 sd apart: no k-NN ball crosses a class, so every
    # eps_i is the same in h(Z) and in h(Z | Y=y) and the estimate reduces *exactly* to
    # psi(N) - sum_y p_y psi(N_y) = H(Y) + O(K / N) (psi(n) = log n - 1/(2n) + ...), with H(Y) the
    # entropy of the empirical class frequencies.
    rng = np.random.default_rng(11)
    priors = np.array([0.1, 0.2, 0.3, 0.4])
    labels = rng.choice(4, size=8_000, p=priors)
    means = 40.0 * np.eye(4)[:, :3]
    z = means[labels] + rng.standard_normal((8_000, 3))
    counts = np.bincount(labels)
    frequencies = counts / labels.size
    label_entropy = -float(np.sum(frequencies * np.log(frequencies)))
    estimator = CompressedMutualInformation()
    estimate = estimator.mi_with_labels(z, labels)
    assert estimate == pytest.approx(digamma(labels.size) - np.sum(frequencies * digamma(counts)), abs=1e-9)
    assert estimate == pytest.approx(label_entropy, abs=1e-3)
    # Shuffled labels carry no information about Z: over 8 seeds 0.021 +- 0.008 (max 0.035).
    assert abs(estimator.mi_with_labels(z, rng.permutation(labels))) < 0.06
    both = estimator.estimate(z, z[:, :2], labels)
    assert both.i_zy == pytest.approx(estimator.mi_with_labels(z, labels), rel=1e-12)
    assert both.conditional == pytest.approx(both.i_zx - both.i_zy, rel=1e-12)
    assert all(type(value) is float for value in (both.i_zx, both.i_zy, both.conditional))


def test_representation_is_pca_compressed_and_whitened():
    rng = np.random.default_rng(12)
    scales = np.array([10, 8, 6, 4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    z = rng.standard_normal((3_000, 10)) * scales
    compressed = CompressedMutualInformation(latent_dim=4).compress_representation(z)
    assert compressed.shape == (3_000, 4)
    np.testing.assert_allclose(np.cov(compressed, rowvar=False), np.eye(4), atol=1e-10)
    # The kept directions are the four large-variance coordinates.
    correlation = np.corrcoef(np.concatenate([compressed, z], axis=1), rowvar=False)[:4, 4:]
    assert np.all(np.abs(correlation[:, :4]).max(axis=0) > 0.99)
    # A numerically constant column is dropped, a constant array is refused.
    padded = np.concatenate([z[:, :2], np.ones((3_000, 1))], axis=1)
    assert whiten(padded).shape == (3_000, 2)
    with pytest.raises(ValueError, match="z is constant"):
        CompressedMutualInformation().compress_representation(np.ones((100, 3)))


def test_compressed_mi_validation_names_the_argument():
    rng = np.random.default_rng(13)
    z = rng.standard_normal((200, 3))
    estimator = CompressedMutualInformation()
    with pytest.raises(ValueError, match="x has 10 columns, more than latent_dim"):
        estimator.mi(z, rng.standard_normal((200, 10)))
    with pytest.raises(ValueError, match="z and x"):
        estimator.mi(z, rng.standard_normal((150, 2)))
    with pytest.raises(ValueError, match="y: every class needs more than k"):
        estimator.mi_with_labels(z, np.r_[np.zeros(197), np.ones(3)])
    with pytest.raises(ValueError, match="y must be"):
        estimator.mi_with_labels(z, np.zeros(10))
    with pytest.raises(ValueError, match="z contains NaN"):
        estimator.mi_with_labels(np.full((200, 3), np.nan), np.zeros(200))


# ---------------------------------------------------------------------------------------------
# nHSIC


def reference_nhsic(a, b, *, sigma=5.0, eps=1e-5, kernel_a="gaussian", kernel_b="gaussian"):
    """The spec's formula with plain loops: K~ = K H (Gram matrix times the centering matrix)."""

    def gram(values, kernel):
        values = np.asarray(values, dtype=float)
        m = values.shape[0]
        matrix = np.zeros((m, m))
        if values.ndim == 1:  # labels, linear kernel on one-hot rows
            for i in range(m):
                for j in range(m):
                    matrix[i, j] = 1.0 if values[i] == values[j] else 0.0
            return matrix
        dim = values.shape[1]
        for i in range(m):
            for j in range(m):
                if kernel == "linear":
                    matrix[i, j] = sum(values[i, d] * values[j, d] for d in range(dim))
                else:
                    squared = sum((values[i, d] - values[j, d]) ** 2 for d in range(dim))
                    matrix[i, j] = math.exp(-squared / (2 * sigma**2 * dim))
        return matrix

    m = len(a)
    centering = np.eye(m) - np.ones((m, m)) / m
    resolvents = []
    for values, kernel in ((a, kernel_a), (b, kernel_b)):
        centred = gram(values, kernel) @ centering
        resolvents.append(centred @ np.linalg.inv(centred + eps * m * np.eye(m)))
    r_a, r_b = resolvents
    return sum(r_a[i, j] * r_b[j, i] for i in range(m) for j in range(m))


def test_nhsic_matches_slow_reference_of_the_literal_formula():
    # K H and H K H give the same trace (module docstring); agreement to 1e-8 relative checks that
    # claim and the batched Cholesky implementation at once.
    rng = np.random.default_rng(20)
    a = rng.standard_normal((30, 3)) * 4
    b = a[:, :2] ** 2 + rng.standard_normal((30, 2))
    labels = rng.integers(0, 4, size=30)
    assert NormalizedHSIC()(a, b) == pytest.approx(reference_nhsic(a, b), rel=1e-8)
    assert NormalizedHSIC(sigma=1.3, eps=1e-3)(a, b) == pytest.approx(
        reference_nhsic(a, b, sigma=1.3, eps=1e-3), rel=1e-8
    )
    assert NormalizedHSIC(kernel_y="linear")(a, labels) == pytest.approx(
        reference_nhsic(a, labels, kernel_b="linear"), rel=1e-8
    )
    assert NormalizedHSIC(kernel_x="linear", kernel_y="linear")(a, b) == pytest.approx(
        reference_nhsic(a, b, kernel_a="linear", kernel_b="linear"), rel=1e-8
    )


def test_nhsic_symmetry_permutation_and_torch_input():
    rng = np.random.default_rng(21)
    a = rng.standard_normal((100, 5))
    b = np.tanh(a[:, :3]) + 0.5 * rng.standard_normal((100, 3))
    hsic = NormalizedHSIC()
    value = hsic(a, b)
    assert hsic(b, a) == pytest.approx(value, rel=1e-10)
    order = rng.permutation(100)
    assert hsic(a[order], b[order]) == pytest.approx(value, rel=1e-10)
    assert hsic(torch.tensor(a, dtype=torch.float32), torch.tensor(b)) == pytest.approx(value, rel=1e-5)
    # One-hot rows with the linear kernel are the same as integer labels.
    labels = rng.integers(0, 10, size=100)
    linear = NormalizedHSIC(kernel_y="linear")
    assert linear(a, np.eye(10)[labels]) == pytest.approx(linear(a, labels), rel=1e-10)


def test_nhsic_identical_and_independent_variables():
    rng = np.random.default_rng(22)
    m = 100
    a = rng.standard_normal((m, 2))
    b = rng.standard_normal((m, 2))
    hsic = NormalizedHSIC()
    self_value = hsic(a, a)
    assert self_value == pytest.approx(reference_nhsic(a, a), rel=1e-8)  # Tr(R_A^2)
    # A copy with tiny noise: nearly the A = B value.
    assert hsic(a, a + 1e-4 * rng.standard_normal((m, 2))) == pytest.approx(self_value, rel=1e-3)
    # Independent data: averaging over random pairings of the rows gives, exactly,
    # E_pi Tr(R_A P R_B P^T) = Tr(R_A) Tr(R_B) / (m - 1) for centred R (rows summing to 0).
    # Tr R = sum l / (l + eps m) over the eigenvalues l of H K H.
    def trace_r(values):
        gram = np.exp(-((values[:, None, :] - values[None, :, :]) ** 2).sum(-1) / (2 * 25.0 * values.shape[1]))
        centring = np.eye(m) - 1.0 / m
        eigenvalues = np.clip(np.linalg.eigvalsh(centring @ gram @ centring), 0, None)
        return float(np.sum(eigenvalues / (eigenvalues + 1e-5 * m)))

    null = trace_r(a) * trace_r(b) / (m - 1)
    shuffled = [hsic(a, b[rng.permutation(m)]) for _ in range(100)]
    # Tolerance 10%: the sd of a single permuted value is ~0.24 x its mean here, so the mean of 100
    # has a relative sd of ~2.4% (4 sd).
    assert np.mean(shuffled) == pytest.approx(null, rel=0.1)
    assert null < 0.2 * self_value
    assert hsic(a, b) < 0.3 * self_value


def test_nhsic_of_labels_with_themselves_is_number_of_classes_minus_one():
    # H K H for K_ij = 1[y_i = y_j] has K - 1 eigenvalues of order m / K >> eps m, the rest 0:
    # Tr(R_Y^2) = K - 1 up to O(eps K^2) (relative 1e-3 is ample).
    labels = np.repeat(np.arange(10), 10)
    linear = NormalizedHSIC(kernel_x="linear", kernel_y="linear")
    assert linear(labels, labels) == pytest.approx(9.0, rel=1e-3)


def test_nhsic_estimate_batches():
    rng = np.random.default_rng(23)
    a = rng.standard_normal((1_050, 4))
    b = a[:, :2] + rng.standard_normal((1_050, 2))
    hsic = NormalizedHSIC()
    values = hsic.batch_values(a, b, batch_size=100, passes=3, seed=5)
    assert values.shape == (3, 10)  # 50 samples of each pass are left out
    # The batches are the permutations of numpy.random.default_rng(seed).
    generator = np.random.default_rng(5)
    order = generator.permutation(1_050)[:1_000].reshape(10, 100)
    assert values[0, 3] == pytest.approx(hsic(a[order[3]], b[order[3]]), rel=1e-10)
    order = generator.permutation(1_050)[:1_000].reshape(10, 100)
    assert values[1, 7] == pytest.approx(hsic(a[order[7]], b[order[7]]), rel=1e-10)
    assert hsic.estimate(a, b, batch_size=100, passes=3, seed=5) == pytest.approx(values.mean(), rel=1e-12)
    # Chunking does not change anything.
    np.testing.assert_allclose(hsic.batch_values(a, b, seed=5, chunk=3), values, rtol=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        hsic.estimate(a[:50], b[:50])
    with pytest.raises(ValueError, match="same number of samples"):
        hsic(a[:10], b[:11])
    with pytest.raises(ValueError, match="kernel_y"):
        NormalizedHSIC(kernel_y="rbf")
    with pytest.raises(ValueError, match="sigma"):
        NormalizedHSIC(sigma=0)
    with pytest.raises(ValueError, match="integer class labels"):
        NormalizedHSIC(kernel_y="linear")(a[:10], np.linspace(0, 1, 10))


# ---------------------------------------------------------------------------------------------
# Input autoencoder cache


SMALL = AutoencoderConfig(latent_dim=2, hidden=(16,), epochs=3, batch_size=64, lr=3e-3, seed=0)


def test_autoencoder_cache_loads_without_training(tmp_path, monkeypatch):
    rng = np.random.default_rng(30)
    codes = rng.standard_normal((400, 2))
    x = np.tanh(codes @ rng.standard_normal((2, 12)))  # 12-d data on a 2-d manifold
    first = fit_or_load(x, tmp_path, SMALL)
    assert first.from_cache is False
    assert len(first.train_losses) == 3 and first.train_losses[-1] < first.train_losses[0]
    path = InputAutoencoder.cache_path(x, tmp_path, SMALL)
    assert path.exists()
    stamp = path.stat().st_mtime_ns

    def no_training(self, data):
        raise AssertionError("fit_or_load trained although a cached model exists")

    monkeypatch.setattr(InputAutoencoder, "fit", no_training)
    second = InputAutoencoder.fit_or_load(x, tmp_path, SMALL)
    assert second.from_cache is True
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.encode(x), first.encode(x))
    assert second.train_losses == pytest.approx(first.train_losses)
    monkeypatch.undo()

    # Any changed hyperparameter, or other data, trains (and caches) a new model.
    other = AutoencoderConfig(latent_dim=2, hidden=(16,), epochs=3, batch_size=64, lr=3e-3, seed=1)
    third = fit_or_load(x, tmp_path, other)
    assert third.from_cache is False
    assert InputAutoencoder.cache_path(x, tmp_path, other) != path
    fourth = fit_or_load(x[:300], tmp_path, SMALL)
    assert fourth.from_cache is False
    assert len(list(tmp_path.glob("autoencoder-*.pt"))) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_autoencoder_training_is_deterministic_and_feeds_compressed_mi(tmp_path):
    rng = np.random.default_rng(31)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    one = fit_or_load(x, tmp_path / "one", SMALL)
    two = fit_or_load(x, tmp_path / "two", SMALL)
    np.testing.assert_array_equal(one.encode(x), two.encode(x))
    assert one.encode(x).shape == (300, 2)
    # Global torch RNG state is not consumed by building/training the cached model.
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    fit_or_load(x, tmp_path / "three", SMALL)
    assert torch.equal(torch.rand(1), expected)
    estimator = CompressedMutualInformation(latent_dim=2, encoder=one)
    z = x[:, :3] + 0.1 * rng.standard_normal((300, 3))
    assert np.isfinite(estimator.mi(z, x))
    with pytest.raises(ValueError, match="expects 8"):
        one.encode(np.zeros((5, 9)))


def test_compressed_information_ksg_route_on_known_gaussian_and_collapsed_labels():
    """estimator='ksg': KSG for I(Z;X) and Ross for I(Z;Y) inside the compressed pipeline."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3000, 2))
    codes = z + rng.standard_normal((3000, 2))  # I = 2 * (1/2) log 2 = log 2
    estimator = CompressedMutualInformation(latent_dim=4, estimator="ksg")
    assert estimator.mi(z, codes) == pytest.approx(math.log(2), abs=0.06)
    labels = rng.integers(0, 5, 3000)
    collapsed = np.eye(5)[labels] * 20 + 0.01 * rng.standard_normal((3000, 5))
    counts = np.bincount(labels) / 3000
    assert estimator.mi_with_labels(collapsed, labels) == pytest.approx(-np.sum(counts * np.log(counts)), abs=0.01)
    with pytest.raises(ValueError, match="estimator"):
        CompressedMutualInformation(estimator="nope")
