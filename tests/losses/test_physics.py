"""Physics loss terms: the PBC radial distribution against brute force over periodic images, its gradients and
invariances, the RDF loss and the formation-energy penalty."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.special import erf

from autoperi.losses.physics import (
    formation_energy_penalty,
    radial_distribution,
    rdf_bin_centres,
    rdf_loss,
)
from tests.conftest import skewed_cells


def _brute_force_distances(frac: np.ndarray, lattice: np.ndarray, r_max: float) -> np.ndarray:
    """Every ordered pair distance 0 < d <= r_max by an explicit loop over a sufficient box of images."""
    # images beyond r_max / (plane spacing) + 1 along an axis cannot come within r_max of the home cell
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice).T, axis=1)
    reach = np.ceil(r_max / spacing).astype(int) + 1
    cart = frac @ lattice
    out = []
    for image in itertools.product(*(range(-k, k + 1) for k in reach)):
        shifted = cart + np.asarray(image) @ lattice
        d = np.linalg.norm(shifted[None, :, :] - cart[:, None, :], axis=-1).ravel()
        out.append(d[(d > 1e-10) & (d <= r_max)])
    return np.concatenate(out)


def _ideal_counts(n_atoms: int, volume: float, edges: np.ndarray) -> np.ndarray:
    return n_atoms**2 / volume * (4 * math.pi / 3) * (edges[1:] ** 3 - edges[:-1] ** 3)


def brute_force_histogram_rdf(structure: Structure, r_max: float, n_bins: int) -> np.ndarray:
    edges = np.linspace(0, r_max, n_bins + 1)
    d = _brute_force_distances(structure.frac_coords, structure.lattice.matrix, r_max)
    assert np.abs(d[:, None] - edges[None, :]).min() > 1e-5, "a pair sits on a bin edge: the test is ill-posed"
    counts, _ = np.histogram(d, edges)
    return counts / _ideal_counts(len(structure), structure.volume, edges)


def brute_force_smoothed_rdf(structure: Structure, r_max: float, n_bins: int, sigma: float) -> np.ndarray:
    edges = np.linspace(0, r_max, n_bins + 1)
    d = _brute_force_distances(structure.frac_coords, structure.lattice.matrix, r_max + 10 * sigma)
    cdf = erf((edges[None, :] - d[:, None]) / (sigma * math.sqrt(2)))
    counts = 0.5 * (cdf[:, 1:] - cdf[:, :-1]).sum(axis=0)
    return counts / _ideal_counts(len(structure), structure.volume, edges)


def _batch(structures, dtype=torch.float64):
    frac = torch.tensor(np.concatenate([s.frac_coords for s in structures]), dtype=dtype)
    lattice = torch.tensor(np.stack([s.lattice.matrix for s in structures]), dtype=dtype)
    batch = torch.repeat_interleave(torch.arange(len(structures)), torch.tensor([len(s) for s in structures]))
    return frac, lattice, batch


def _test_cells(nacl, silicon, perovskite):
    rng = np.random.default_rng(1)
    rattled = Structure(perovskite.lattice, perovskite.species, perovskite.frac_coords + rng.normal(0, 0.02, (5, 3)))
    return [nacl, silicon, rattled, *skewed_cells()[:5]]


def test_rdf_matches_brute_force_histogram_with_sharp_gaussians(nacl, silicon, perovskite):
    cells = _test_cells(nacl, silicon, perovskite)
    r_max, n_bins = 5.13, 37  # no pair distance on a bin edge (np.histogram counts r = r_max, a Gaussian half)
    got = radial_distribution(*_batch(cells), r_max, n_bins, sigma_angstrom=1e-7).numpy()
    for b, s in enumerate(cells):
        want = brute_force_histogram_rdf(s, r_max, n_bins)
        assert want.sum() > 0
        np.testing.assert_allclose(got[b], want, rtol=1e-6, atol=1e-6, err_msg=f"cell {b}: {s.lattice.abc}")


def test_rdf_matches_brute_force_smoothed_sum(nacl, silicon, perovskite):
    cells = _test_cells(nacl, silicon, perovskite)
    r_max, n_bins, sigma = 6.0, 40, 0.15
    got = radial_distribution(*_batch(cells), r_max, n_bins, sigma).numpy()
    for b, s in enumerate(cells):
        np.testing.assert_allclose(got[b], brute_force_smoothed_rdf(s, r_max, n_bins, sigma), rtol=1e-8, atol=1e-8)


def test_rdf_of_fcc_first_shell_and_ideal_gas_limit():
    """Hand-worked: fcc Cu (a = 3.61 Å) has 12 neighbours at a/√2; g averaged far out tends to 1."""
    a = 3.61
    fcc = Structure(Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    r_max, n_bins = 12.0, 240
    g = radial_distribution(*_batch([fcc]), r_max, n_bins, sigma_angstrom=1e-4)[0].numpy()
    edges = np.linspace(0, r_max, n_bins + 1)
    shell = 4 * math.pi / 3 * (edges[1:] ** 3 - edges[:-1] ** 3)
    counts = g * shell * 4 / fcc.volume  # pairs per atom in each bin
    first = np.searchsorted(edges, a / math.sqrt(2)) - 1
    assert counts[first] == pytest.approx(12.0, abs=1e-9)
    assert counts[:first].sum() == pytest.approx(0.0, abs=1e-12)
    # number of neighbours within r → ρ 4/3 π r³ for large r: the normalisation is per number density
    within = counts.sum()
    assert within / (4 / fcc.volume * 4 * math.pi / 3 * r_max**3) == pytest.approx(1.0, abs=0.05)


def test_rdf_gradcheck_in_frac_coords_and_lattice():
    s = skewed_cells()[2]  # small skewed 3-atom cell
    frac, lattice, batch = _batch([s])
    frac.requires_grad_(True)
    lattice.requires_grad_(True)

    def g_of(f, lat):
        return radial_distribution(f, lat, batch, r_max_angstrom=3.5, n_bins=12, sigma_angstrom=0.3)

    assert torch.autograd.gradcheck(g_of, (frac, lattice), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_rdf_invariant_to_rotation_and_lattice_vector_shifts(nacl, perovskite):
    cells = [nacl, skewed_cells()[2], perovskite]
    frac, lattice, batch = _batch(cells)
    reference = radial_distribution(frac, lattice, batch, 6.0, 50, 0.1)
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = torch.tensor(q * np.sign(np.linalg.det(q)))  # proper rotation
    rotated = radial_distribution(frac, lattice @ rotation.T, batch, 6.0, 50, 0.1)
    shifted = radial_distribution(frac + torch.from_numpy(rng.integers(-3, 4, frac.shape)).double(), lattice,
                                  batch, 6.0, 50, 0.1)
    torch.testing.assert_close(rotated, reference, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(shifted, reference, atol=1e-10, rtol=1e-10)


def test_rdf_loss_is_zero_for_equal_inputs_and_weighted_mean_otherwise():
    a = torch.zeros(2, 4)
    b = torch.tensor([[1.0, 0, 0, 0], [0, 0, 2.0, 0]])
    assert rdf_loss(a, a).item() == 0.0
    assert rdf_loss(a, b).item() == pytest.approx((1 + 4) / 8)
    w = torch.tensor([1.0, 0, 0, 0])
    assert rdf_loss(a, b, w).item() == pytest.approx(0.5)  # only bin 0 counts: (1 + 0) / 2 structures
    with pytest.raises(ValueError, match="shapes differ"):
        rdf_loss(a, b[:, :3])
    np.testing.assert_allclose(rdf_bin_centres(1.0, 4), [0.125, 0.375, 0.625, 0.875])


def test_formation_energy_penalty_shape_and_gradient():
    e = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    penalty = formation_energy_penalty(e, threshold=0.0, softness=0.1)
    assert penalty.ndim == 0
    want = (0.1 * math.log1p(math.exp(-20)) + 0.1 * math.log(2) + 0.1 * math.log1p(math.exp(30))) / 3
    assert penalty.item() == pytest.approx(want, rel=1e-6)
    penalty.backward()
    np.testing.assert_allclose(e.grad.numpy(), np.array([1 / (1 + math.exp(20)), 0.5, 1 / (1 + math.exp(-30))]) / 3,
                               rtol=1e-5)
