"""Distribution metrics against closed forms and hand-computed values."""

import numpy as np
import pytest
from scipy.linalg import sqrtm

import autoperi.metrics.distributions as distributions
from autoperi.metrics.distributions import (
    density_and_nelements,
    frechet_distance,
    lattice_property_matrix,
    wasserstein_property,
)

AMU_G = 1.66053906660e-24  # g per atomic mass unit


def test_wasserstein_of_a_shift_is_the_shift():
    assert wasserstein_property([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]) == pytest.approx(5.0)


def test_wasserstein_hand_computed_and_drops_nan():
    # F(t) - G(t) is 1/2 on [0, 1) and -1/2 on [1, 2): area 1.
    assert wasserstein_property([0.0, 2.0, np.nan], [1.0, 1.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wasserstein_property([np.nan], [1.0])


def test_density_and_nelements(nacl, perovskite):
    table = density_and_nelements([nacl, perovskite])
    nacl_density = 4 * (22.98976928 + 35.453) * AMU_G / (5.64e-8) ** 3
    srtio3_density = (87.62 + 47.867 + 3 * 15.9994) * AMU_G / (3.905e-8) ** 3
    assert table["density"].tolist() == pytest.approx([nacl_density, srtio3_density], rel=1e-4)
    assert table["n_elements"].tolist() == [2, 3]


def test_frechet_1d_closed_form():
    # x: mean 1, sample variance 2; y: mean 5, sample variance 4 (ddof = 1).
    x, y = np.array([0.0, 2.0]), np.array([3.0, 5.0, 7.0])
    assert frechet_distance(x, y) == pytest.approx((1 - 5) ** 2 + (np.sqrt(2) - 2) ** 2)
    assert frechet_distance(y, x) == pytest.approx(frechet_distance(x, y))


def _diagonal_cloud(centre, s1, s2):
    # Points centre +- (s1, 0), centre +- (0, s2): mean centre, covariance diag(2 s1^2 / 3, 2 s2^2 / 3), ddof = 1.
    offsets = np.array([[s1, 0], [-s1, 0], [0, s2], [0, -s2]])
    return np.asarray(centre) + offsets


def test_frechet_diagonal_covariances():
    x, y = _diagonal_cloud([0, 0], 1.0, 3.0), _diagonal_cloud([1, 2], 2.0, 0.5)
    var_x, var_y = np.array([1.0, 9.0]) * 2 / 3, np.array([4.0, 0.25]) * 2 / 3
    expected = 1**2 + 2**2 + np.sum((np.sqrt(var_x) - np.sqrt(var_y)) ** 2)
    assert frechet_distance(x, y) == pytest.approx(expected)


def test_frechet_full_covariance_matches_eigenvalue_form():
    # Tr((S1 S2)^(1/2)) is the sum of square roots of the (non-negative) eigenvalues of S1 S2.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0.2, 0, 2]])
    y = rng.normal(size=(300, 3)) @ np.array([[2, 0, 0], [0.4, 1, 0], [0, 0.7, 0.5]]) + 1.0
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    tr_sqrt = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).real))
    expected = np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-8)


def test_frechet_of_a_set_with_itself_is_zero_even_when_singular():
    rng = np.random.default_rng(2)
    full = rng.normal(size=(200, 5))
    rank_deficient = np.c_[rng.normal(size=(50, 2)), np.zeros(50)]  # constant column: singular covariance
    assert frechet_distance(full, full) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(rank_deficient, rank_deficient) == pytest.approx(0.0, abs=1e-9)


def test_frechet_falls_back_to_eps_regularised_sqrtm(monkeypatch):
    calls = []

    def flaky_sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else sqrtm(matrix)

    monkeypatch.setattr(distributions, "sqrtm", flaky_sqrtm)
    x, y = np.array([0.0, 2.0]), np.array([3.0, 5.0, 7.0])  # variances 2 and 4
    eps = 0.5
    expected = 16 + 2 + 4 - 2 * np.sqrt((2 + eps) * (4 + eps))
    assert frechet_distance(x, y, eps=eps) == pytest.approx(expected)
    assert len(calls) == 2


def test_frechet_rejects_bad_shapes():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((1, 2)), np.zeros((5, 2)))


def test_lattice_property_matrix(nacl, silicon):
    matrix = lattice_property_matrix([nacl, silicon])
    assert matrix.shape == (2, 7)
    assert matrix[0] == pytest.approx([5.64, 5.64, 5.64, 90, 90, 90, 5.64**3 / 8])
    # Primitive fcc cell, a = 3.867 Å and 60 degree angles: V = a^3 / sqrt(2), 2 atoms.
    assert matrix[1] == pytest.approx([3.867, 3.867, 3.867, 60, 60, 60, 3.867**3 / np.sqrt(2) / 2])
    with_energy = lattice_property_matrix([nacl, silicon], formation_energies=[-2.1, 0.0])
    assert with_energy.shape == (2, 8)
    assert with_energy[:, 0].tolist() == [-2.1, 0.0]
    assert with_energy[:, 1:] == pytest.approx(matrix)
    with pytest.raises(ValueError):
        lattice_property_matrix([nacl], formation_energies=[1.0, 2.0])
