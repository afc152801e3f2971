"""benchmarks/local_geometry.py: bond lengths in covalent-radius units and coordination, on hand-worked cells."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from benchmarks.local_geometry import local_geometry, of


def test_diamond_has_four_bonds_of_its_textbook_length():
    a = 3.567  # Å; C-C = a * sqrt(3) / 4 = 1.5445 Å, ASE's covalent radius of C is 0.76 Å
    fcc = Lattice(np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) * a / 2)
    diamond = Structure(fcc, ["C", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    out = local_geometry(diamond.atomic_numbers, diamond.frac_coords, diamond.lattice.matrix)
    assert out["n_atoms"] == 2 and out["coordination"] == 4.0
    assert out["nn_ratio_median"] == pytest.approx(a * np.sqrt(3) / 4 / 1.52, abs=1e-4)
    assert out["nn_ratio_min"] == pytest.approx(out["nn_ratio_median"])


def test_squeezed_pair_and_bond_factor():
    # Two C atoms 1.216 Å apart (0.8 covalent units) along a in a 6 Å box: each has one neighbour, itself aside.
    cell = Structure(Lattice.cubic(6.0), ["C", "C"], [[0, 0, 0], [1.216 / 6.0, 0, 0]])
    out = local_geometry(cell.atomic_numbers, cell.frac_coords, cell.lattice.matrix)
    assert out["nn_ratio_median"] == pytest.approx(0.8) and out["coordination"] == 1.0
    assert local_geometry(cell.atomic_numbers, cell.frac_coords, cell.lattice.matrix, bond_factor=0.7)[
        "coordination"] == 0.0
    collapsed = Structure(Lattice([[3, 0, 0], [0, 3, 0], [2.9999, 0.0001, 1e-4]]), ["C"], [[0, 0, 0]])
    assert len(of([cell, None, collapsed], bond_factor=1.2)) == 1  # refused and invalid cells are skipped
