"""GPAW single points against an independent number (Si's PBE lattice constant) and against an equivalent route
(primitive cell vs supercell); spin detection; the install message."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pymatgen.io.ase import AseAtomsAdaptor

from autoperi.dft.protocol import Protocol, initial_magmoms, needs_spin, single_point
from tests.dft.conftest import TINY, requires_gpaw, silicon

# PBE equilibrium lattice constant of diamond Si: 5.47 Å (Haas, Tran & Blaha, PRB 79, 085104 (2009): 5.466 Å;
# LDA gives 5.40-5.41 Å, experiment 5.431 Å). A wrong functional, wrong setups or a broken stress/energy path
# moves the minimum by more than the tolerance.
SI_PBE_A0 = 5.47
A0_TOLERANCE = 0.03


@requires_gpaw
def test_si_pbe_lattice_constant_from_three_energies():
    # k-density 2.8 gives the same 6x6x6 mesh at all three lattice constants (no mesh jump between points).
    protocol = Protocol(cutoff_ev=350.0, kpt_density=2.8)
    lattice = np.array([5.37, 5.47, 5.57])
    energies, n_kpts = [], set()
    for a in lattice:
        result = single_point(AseAtomsAdaptor.get_atoms(silicon(a)), protocol)
        n_kpts.add(result["n_kpts"])
        energies.append(result["energy_per_atom"])
    assert len(n_kpts) == 1  # the same mesh at every lattice constant
    c2, c1, _ = np.polyfit(lattice, energies, 2)
    a0 = -c1 / (2 * c2)
    assert c2 > 0
    assert abs(a0 - SI_PBE_A0) < A0_TOLERANCE, a0


@requires_gpaw
def test_primitive_and_supercell_give_the_same_energy_per_atom():
    # A 2x1x1 supercell with a (2,4,4) mesh samples exactly the k-points of the primitive cell's (4,4,4) mesh, so
    # the energy per atom must agree to numerical precision; it fails if per-atom normalisation, k-point folding
    # or symmetry reduction is wrong.
    prim = AseAtomsAdaptor.get_atoms(silicon())
    sup = prim.repeat((2, 1, 1))
    e_prim = single_point(prim, TINY, kpts=(4, 4, 4))["energy_per_atom"]
    e_sup = single_point(sup, TINY, kpts=(2, 4, 4))["energy_per_atom"]
    assert abs(e_prim - e_sup) < 1e-3, (e_prim, e_sup)


def test_spin_only_with_magnetic_elements():
    assert needs_spin(["Fe", "O", "O"]) and needs_spin(["La", "Mn", "O"])
    assert not needs_spin(["Sr", "Ti", "O"]) and not needs_spin(["Na", "Cl"])
    assert initial_magmoms(["Mn", "O", "Sr"]) == [5.0, 0.5, 0.0]


def test_missing_gpaw_raises_one_clear_message(monkeypatch):
    from autoperi.dft import install

    monkeypatch.setitem(sys.modules, "gpaw", None)  # import gpaw now raises ImportError
    with pytest.raises(install.GpawMissing, match="apt-get install .*gpaw-data"):
        install.ensure_gpaw()
    assert not install.gpaw_available()


def test_cli_stops_with_install_message_when_gpaw_is_missing(monkeypatch, capsys):
    from autoperi.cli import main

    monkeypatch.setitem(sys.modules, "gpaw", None)
    assert main(["dft", "oracle", "--dataset", "perov_5"]) == 2
    err = capsys.readouterr().err
    assert "GPAW is not installed" in err and "make setup" in err


def test_standard_orientation_keeps_the_crystal():
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    from autoperi.dft.worker import standard_orientation

    a = 4.1  # perov_5 stores cubic cells as (-a, -a, a), which GPAW 26's log plot cannot draw
    cell = Structure(Lattice([[-a, 0, 0], [0, -a, 0], [0, 0, a]]), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    turned = standard_orientation(cell)
    assert np.allclose(turned.lattice.matrix, np.diag([a, a, a]))
    assert turned.volume == pytest.approx(cell.volume)
    assert StructureMatcher().fit(cell, turned)
