"""Lattice ↔ (log lengths, torus angles) ↔ matrix round trip, and the primitive-cell constraints per space group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoperi.model.lattice import (
    angles_to_torus,
    constraint_hold_rates,
    constraint_kind,
    decode_lengths,
    encode_lattice,
    lattice_from_parameters,
    lattice_parameters,
    project_parameters,
    torus_to_angles,
)
from tests.model.helpers import random_rotation, raw_structures


def gram(lattice):
    return lattice @ lattice.transpose(-1, -2)


@pytest.mark.parametrize("dataset", ["perov_5", "mp20_bt"])
def test_round_trip_reproduces_the_gram_matrix(dataset):
    lattices = torch.tensor(np.stack([s.lattice.matrix for s in raw_structures(dataset, 12)]))
    lattices = lattices @ random_rotation(1).T  # any orientation
    n_atoms = torch.tensor([len(s) for s in raw_structures(dataset, 12)])
    mean, std = torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64), torch.tensor([0.5, 0.4, 0.3], dtype=torch.float64)
    code, theta = encode_lattice(lattices, n_atoms, mean, std)
    assert ((theta >= -math.pi) & (theta < math.pi)).all()
    back = lattice_from_parameters(decode_lengths(code, n_atoms, mean, std), torus_to_angles(theta))
    torch.testing.assert_close(gram(back), gram(lattices), atol=1e-9, rtol=1e-9)
    # pymatgen's lattice parameters agree with the Gram-matrix ones
    lengths, angles = lattice_parameters(lattices)
    ref = np.array([s.lattice.abc + s.lattice.angles for s in raw_structures(dataset, 12)])
    np.testing.assert_allclose(lengths.numpy(), ref[:, :3], rtol=1e-9)
    np.testing.assert_allclose(np.degrees(angles.numpy()), ref[:, 3:], atol=1e-6)


def test_torus_map_is_periodic_and_inverse():
    angles = torch.linspace(0.01, math.pi - 0.01, 50, dtype=torch.float64)
    theta = angles_to_torus(angles)
    torch.testing.assert_close(torus_to_angles(theta), angles)
    torch.testing.assert_close(torus_to_angles(theta + 2 * math.pi), angles)
    assert angles_to_torus(torch.tensor(math.pi / 2)).abs() < 1e-12  # 90° sits at θ = 0


@pytest.mark.parametrize("sg, expected_angle", [(221, 90.0), (225, 60.0), (229, 109.4712206)])
def test_cubic_condition_gives_cubic_primitive_cells(sg, expected_angle):
    g = torch.Generator().manual_seed(0)
    lengths = 3 + 2 * torch.rand(20, 3, generator=g, dtype=torch.float64)
    angles = torch.deg2rad(70 + 40 * torch.rand(20, 3, generator=g, dtype=torch.float64))
    kinds = [constraint_kind(sg)] * 20
    new_l, new_a = project_parameters(lengths, angles, kinds)
    lat_l, lat_a = lattice_parameters(lattice_from_parameters(new_l, new_a))
    torch.testing.assert_close(lat_l, lat_l[:, :1].expand(-1, 3), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(torch.rad2deg(lat_a), torch.full_like(lat_a, expected_angle), atol=1e-5, rtol=0)


def test_hexagonal_and_tetragonal_constraints():
    lengths = torch.tensor([[3.0, 3.1, 5.0], [4.0, 6.0, 6.2]], dtype=torch.float64)
    angles = torch.deg2rad(torch.tensor([[88.0, 91.0, 118.0], [117.0, 92.0, 89.0]], dtype=torch.float64))
    hl, ha = project_parameters(lengths, angles, ["hexagonal", "hexagonal"])
    assert hl[0, 0] == hl[0, 1] and hl[1, 1] == hl[1, 2]
    np.testing.assert_allclose(np.degrees(ha.numpy()), [[90, 90, 120], [120, 90, 90]], atol=1e-9)
    tl, ta = project_parameters(lengths, angles, ["tetragonal_P", "tetragonal_P"])
    assert tl[0, 0] == tl[0, 1] and tl[1, 1] == tl[1, 2]
    np.testing.assert_allclose(np.degrees(ta.numpy()), 90.0, atol=1e-9)


def test_constraints_hold_on_real_primitive_cells():
    structures = raw_structures("mp20_bt", 40)
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sgs = np.array([SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number() for s in structures])
    rates = constraint_hold_rates(np.stack([s.lattice.matrix for s in structures]), sgs, rtol=1e-3, atol_deg=0.2)
    for kind, rate in rates.items():
        if kind not in ("free", "rhombohedral"):  # Niggli cells of R lattices need not be a = b = c
            assert rate["hold_rate"] == 1.0, (kind, rate)
    assert sum(r["n"] for r in rates.values()) == len(structures)
