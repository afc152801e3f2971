"""Space group -> family / system / lattice system against hand-worked cases and pymatgen's space-group tables."""

from __future__ import annotations

import pytest
from pymatgen.symmetry.groups import SpaceGroup

from autoperi.model.symmetry import (
    CRYSTAL_FAMILIES,
    LATTICE_SYSTEMS,
    crystal_system_of_spacegroup,
    family_of_spacegroup,
    lattice_system_index_of_spacegroup,
    lattice_system_of_spacegroup,
)


@pytest.mark.parametrize(
    ("sg", "system", "family", "lattice"),
    [
        (1, "triclinic", "triclinic", "triclinic"),  # P1
        (14, "monoclinic", "monoclinic", "monoclinic"),  # P2_1/c
        (62, "orthorhombic", "orthorhombic", "orthorhombic"),  # Pnma
        (139, "tetragonal", "tetragonal", "tetragonal"),  # I4/mmm
        (164, "trigonal", "hexagonal", "hexagonal"),  # P-3m1: trigonal, hexagonal lattice
        (166, "trigonal", "hexagonal", "rhombohedral"),  # R-3m
        (194, "hexagonal", "hexagonal", "hexagonal"),  # P6_3/mmc
        (221, "cubic", "cubic", "cubic"),  # Pm-3m, the perovskite group
        (225, "cubic", "cubic", "cubic"),  # Fm-3m
    ],
)
def test_hand_worked_groups(sg, system, family, lattice):
    assert crystal_system_of_spacegroup(sg) == system
    assert CRYSTAL_FAMILIES[family_of_spacegroup(sg)] == family
    assert lattice_system_of_spacegroup(sg) == lattice
    assert LATTICE_SYSTEMS[lattice_system_index_of_spacegroup(sg)] == lattice


def test_all_groups_match_pymatgen():
    for sg in range(1, 231):
        group = SpaceGroup.from_int_number(sg)
        assert crystal_system_of_spacegroup(sg) == group.crystal_system, sg
        rhombohedral = group.symbol.startswith("R")
        assert (lattice_system_of_spacegroup(sg) == "rhombohedral") == rhombohedral, sg
    assert sorted({family_of_spacegroup(sg) for sg in range(1, 231)}) == list(range(6))
    assert sorted({lattice_system_index_of_spacegroup(sg) for sg in range(1, 231)}) == list(range(7))


@pytest.mark.parametrize("bad", [0, 231, -5, 12.5])
def test_out_of_range_refused(bad):
    with pytest.raises(ValueError, match="1..230"):
        family_of_spacegroup(bad)
