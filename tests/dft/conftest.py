"""Tiny GPAW settings and crystals for the DFT tests (seconds each on one core)."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from autoperi.dft.install import gpaw_available
from autoperi.dft.protocol import Protocol

requires_gpaw = pytest.mark.skipif(
    not gpaw_available(), reason="GPAW or its PAW setups are not installed (`make gpaw` installs them)"
)

# Low cutoff and k-density: cheap, and the tests compare like with like (same protocol on both sides).
# k-density 1.9: Si primitive (a=5.43) gets a 4x4x4 mesh and its 2x1x1 supercell the equivalent 2x4x4 one.
TINY = Protocol(cutoff_ev=250.0, kpt_density=1.9, smearing_ev=0.1, maxiter=80)


def silicon(a: float = 5.43) -> Structure:
    """Diamond Si, 2-atom primitive cell (lattice constant a, Å)."""
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Si", "Si"],
                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def aluminium(a: float = 4.05) -> Structure:
    """fcc Al, 1-atom primitive cell."""
    return Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), ["Al"], [[0, 0, 0]])
