"""Flow-matching coordinate decoder: periodic geodesic path, translation invariance (periodic), permutation
equivariance, lattice-vector invariance."""

from __future__ import annotations

import math

import pytest
import torch

from autoperi.model.coordinates import CoordinateDecoder, interpolate, pair_by_species, wrap
from tests.model.helpers import random_rotation, randomize


def test_interpolation_is_the_periodic_geodesic():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(50, 3, generator=g, dtype=torch.float64), torch.rand(50, 3, generator=g, dtype=torch.float64)
    xt, velocity = interpolate(x0, x1, torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(wrap(xt - x1), torch.zeros_like(xt), atol=1e-12)  # t = 1 lands on x1 (mod 1)
    # brute force: the shortest of the displacements x1 - x0 + k, k in {-1, 0, 1}, per coordinate
    shifts = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    candidates = (x1 - x0).unsqueeze(-1) + shifts
    brute = candidates.gather(-1, candidates.abs().argmin(-1, keepdim=True)).squeeze(-1)
    assert torch.allclose(velocity, brute, atol=1e-12)
    assert velocity.abs().max() <= 0.5
    xh, _ = interpolate(x0, x1, torch.tensor(0.5, dtype=torch.float64))
    assert ((xh >= 0) & (xh < 1)).all()


@pytest.fixture(scope="module")
def decoder_inputs():
    torch.manual_seed(0)
    dec = CoordinateDecoder(hidden_dim=16, latent_dim=4, cond_dim=4, n_layers=2, n_freq=2).double()
    randomize(dec, seed=1)
    b, n = 3, 6
    g = torch.Generator().manual_seed(2)
    x = torch.rand(b, n, 3, generator=g, dtype=torch.float64)
    species = torch.randint(1, 90, (b, n), generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[2, 4:] = False  # a padded crystal
    lattice = torch.eye(3, dtype=torch.float64) * 4 + torch.rand(b, 3, 3, generator=g, dtype=torch.float64)
    z = torch.randn(b, 4, generator=g, dtype=torch.float64)
    cond = torch.randn(b, 4, generator=g, dtype=torch.float64)
    t = torch.rand(b, generator=g, dtype=torch.float64)
    return dec, (x, t, species, mask, lattice, z, cond)


def test_velocity_is_translation_invariant_and_periodic(decoder_inputs):
    dec, (x, t, species, mask, lattice, z, cond) = decoder_inputs
    v, bonds = dec(x, t, species, mask, lattice, z, cond)
    assert v.abs().max() > 1e-3
    shift = torch.tensor([0.31, -0.27, 0.66], dtype=torch.float64)
    v2, bonds2 = dec(torch.remainder(x + shift, 1.0), t, species, mask, lattice, z, cond)
    torch.testing.assert_close(v2, v, atol=1e-9, rtol=1e-9)  # outputs x + v shift with the inputs
    torch.testing.assert_close(bonds2, bonds, atol=1e-9, rtol=1e-9)
    integer = torch.randint(-2, 3, x.shape, generator=torch.Generator().manual_seed(3)).double()
    v3, _ = dec(x + integer, t, species, mask, lattice, z, cond)
    torch.testing.assert_close(v3, v, atol=1e-9, rtol=1e-9)


def test_velocity_is_permutation_equivariant(decoder_inputs):
    dec, (x, t, species, mask, lattice, z, cond) = decoder_inputs
    v, bonds = dec(x, t, species, mask, lattice, z, cond)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    perm_rows = torch.stack([perm, perm, torch.tensor([1, 3, 0, 2, 4, 5])])  # keep padding at the end of crystal 2
    xs = torch.stack([x[b, perm_rows[b]] for b in range(3)])
    ss = torch.stack([species[b, perm_rows[b]] for b in range(3)])
    v2, bonds2 = dec(xs, t, ss, mask, lattice, z, cond)
    for b in range(3):
        p = perm_rows[b]
        torch.testing.assert_close(v2[b], v[b, p], atol=1e-9, rtol=1e-9)
        m = mask[b, p]
        torch.testing.assert_close(bonds2[b][m][:, m], bonds[b, p][:, p][m][:, m], atol=1e-9, rtol=1e-9)


def test_velocity_is_rotation_invariant_and_sees_the_lattice(decoder_inputs):
    dec, (x, t, species, mask, lattice, z, cond) = decoder_inputs
    v, _ = dec(x, t, species, mask, lattice, z, cond)
    v2, _ = dec(x, t, species, mask, lattice @ random_rotation(4).T, z, cond)
    torch.testing.assert_close(v2, v, atol=1e-9, rtol=1e-9)
    v3, _ = dec(x, t, species, mask, lattice * 1.2, z, cond)
    assert (v3 - v).abs().max() > 1e-6


def test_velocity_of_a_padded_crystal_equals_its_unpadded_velocity(decoder_inputs):
    """Sampling integrates crystals of one atom count unpadded: that is exact only if padding changes nothing."""
    dec, (x, t, species, mask, lattice, z, cond) = decoder_inputs
    v, bonds = dec(x, t, species, mask, lattice, z, cond)
    n = int(mask[2].sum())
    alone, alone_bonds = dec(x[2:, :n], t[2:], species[2:, :n], mask[2:, :n], lattice[2:], z[2:], cond[2:])
    torch.testing.assert_close(alone[0], v[2, :n], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(alone_bonds[0], bonds[2, :n, :n], atol=1e-10, rtol=1e-10)
    assert v[2, n:].abs().max() == 0  # padded slots get no velocity


def test_velocity_and_loss_ignore_a_common_translation(decoder_inputs):
    from autoperi.losses.vae import flow_matching_loss

    dec, (x, t, species, mask, lattice, z, cond) = decoder_inputs
    v, _ = dec(x, t, species, mask, lattice, z, cond)
    maskf = mask.double()
    # the output has no net drift over each crystal's atoms, and padding stays zero
    torch.testing.assert_close((v * maskf.unsqueeze(-1)).sum(1), torch.zeros(3, 3, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    assert v[2, 4:].abs().max() == 0
    target = torch.randn(v.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.3
    shifted = target + torch.tensor([[[0.2, -0.1, 0.05]], [[0.0, 0.3, 0.0]], [[-0.4, 0.0, 0.1]]], dtype=torch.float64)
    base = flow_matching_loss(v, target, maskf)
    torch.testing.assert_close(flow_matching_loss(v, shifted, maskf), base, atol=1e-12, rtol=0)
    # a non-uniform change of the target does change the loss
    assert abs(flow_matching_loss(v, target + 0.1 * torch.arange(6.0, dtype=torch.float64).view(1, 6, 1), maskf)
               - base) > 1e-4


def test_species_pairing_is_the_cheapest_same_element_assignment():
    """Against brute force over every same-element permutation: 2 crystals (one padded), a skewed cell."""
    import itertools

    torch.manual_seed(3)
    species = torch.tensor([[8, 8, 8, 22, 56, 8], [14, 14, 14, 6, 0, 0]])
    mask = species > 0
    lattice = torch.stack([torch.tensor([[4.0, 0.0, 0.0], [1.2, 3.5, 0.0], [0.3, 0.4, 5.0]]),
                           torch.diag(torch.tensor([3.0, 6.0, 4.5]))])
    x0, x1 = torch.rand(2, 6, 3), torch.rand(2, 6, 3)
    paired = pair_by_species(x0, x1, species, mask, lattice)

    def cost(b, x):
        d = wrap(x1[b] - x[b]) @ lattice[b]
        return float((d.pow(2).sum(-1) * mask[b]).sum())

    for b in range(2):
        slots = {int(z): [i for i in range(6) if mask[b, i] and species[b, i] == z] for z in species[b].unique() if z}
        best = math.inf
        for perms in itertools.product(*(itertools.permutations(s) for s in slots.values())):
            order = list(range(6))
            for s, p in zip(slots.values(), perms, strict=True):
                for i, j in zip(s, p, strict=True):
                    order[i] = j
            best = min(best, cost(b, x0[:, order]))
        assert cost(b, paired) == pytest.approx(best, rel=1e-6)
        assert cost(b, paired) <= cost(b, x0) + 1e-9
        # a permutation within each element: the same multiset of points per element, padding untouched
        for z, s in slots.items():
            assert sorted(map(tuple, paired[b, s].tolist())) == sorted(map(tuple, x0[b, s].tolist())), z
        torch.testing.assert_close(paired[b, ~mask[b]], x0[b, ~mask[b]])


class ConstantVelocity(CoordinateDecoder):
    """A decoder whose field is one constant velocity: Euler integration then has a closed form."""

    velocity = torch.tensor([0.013, -0.021, 0.034], dtype=torch.float64)

    def forward(self, x, t, species, mask, lattice, z, cond_emb, with_bonds=True):
        return self.velocity.expand_as(x).clone(), None


@pytest.mark.parametrize("anneal, factor", [(0.0, 1.0), (3.0, 86 / 49)])
def test_integration_moves_by_the_annealed_velocity_integral(anneal, factor):
    # x_K = x_0 + Σ_k dt·min(1 + s·k·dt, K − k)·v (mod 1), K = 7 Euler steps of size dt = 1/7; with s = 3 the
    # scales are 1, 10/7, 13/7, 16/7, 19/7, then capped at 2 and 1 (no step past the predicted endpoint): 86/49
    dec, steps = ConstantVelocity(hidden_dim=8, latent_dim=2, cond_dim=2, n_layers=1, n_freq=1), 7
    mask = torch.ones(2, 4, dtype=torch.bool)
    lattice = torch.eye(3, dtype=torch.float64).expand(2, 3, 3) * 5
    x0 = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = dec.integrate(torch.ones(2, 4, dtype=torch.long), mask, lattice, torch.zeros(2, 2), torch.zeros(2, 2), steps,
                      torch.Generator().manual_seed(5), anneal=anneal)
    expected = x0 + factor * ConstantVelocity.velocity
    torch.testing.assert_close(wrap(x - expected), torch.zeros_like(x), atol=1e-12, rtol=0)
