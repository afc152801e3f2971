"""Space group -> crystal family / crystal system / lattice system, the symmetry labels the flow is conditioned on.

Three classifications of the 230 space groups (International Tables for Crystallography, vol. A, ch. 2.1):
- crystal family (6, IUCr): triclinic, monoclinic, orthorhombic, tetragonal, hexagonal (trigonal + hexagonal
  systems, space groups 143-194), cubic -> `family_of_spacegroup` gives the index 0..5 into CRYSTAL_FAMILIES;
- crystal system (7): the family with hexagonal split into trigonal (143-167) and hexagonal (168-194) ->
  `crystal_system_of_spacegroup`, the same function the data stage uses (`autoperi.data.preprocess.crystal_system`);
- lattice system (7): as the crystal system, except that the trigonal groups split by Bravais lattice: the seven
  R groups have a rhombohedral lattice (primitive cell a = b = c, alpha = beta = gamma), the other trigonal groups
  a hexagonal one (a = b, gamma = 120 deg). This, not the crystal system, fixes the shape of a primitive cell, which
  is what a lattice decoder has to respect -> `lattice_system_of_spacegroup`, index into LATTICE_SYSTEMS.
"""

from __future__ import annotations

CRYSTAL_FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
LATTICE_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "rhombohedral", "hexagonal", "cubic")
RHOMBOHEDRAL_SPACEGROUPS = frozenset({146, 148, 155, 160, 161, 166, 167})  # R3, R-3, R32, R3m, R3c, R-3m, R-3c


def _checked(sg: int) -> int:
    if not 1 <= int(sg) <= 230 or int(sg) != sg:
        raise ValueError(f"space group number must be an integer in 1..230, got {sg!r}")
    return int(sg)


def crystal_system_of_spacegroup(sg: int) -> str:
    """One of triclinic, monoclinic, orthorhombic, tetragonal, trigonal, hexagonal, cubic."""
    from autoperi.data.preprocess import crystal_system  # lazy: that module pulls in moyopy and pymatgen

    return crystal_system(_checked(sg))


def family_of_spacegroup(sg: int) -> int:
    """Crystal family index 0..5 into CRYSTAL_FAMILIES (trigonal and hexagonal groups are both family 4)."""
    system = crystal_system_of_spacegroup(sg)
    return CRYSTAL_FAMILIES.index("hexagonal" if system == "trigonal" else system)


def lattice_system_of_spacegroup(sg: int) -> str:
    """One of LATTICE_SYSTEMS: the crystal system with trigonal split into rhombohedral (R groups) and hexagonal."""
    system = crystal_system_of_spacegroup(sg)
    if system == "trigonal":
        return "rhombohedral" if _checked(sg) in RHOMBOHEDRAL_SPACEGROUPS else "hexagonal"
    return system


def lattice_system_index_of_spacegroup(sg: int) -> int:
    """Index 0..6 into LATTICE_SYSTEMS (a 7-class condition for the flow that determines the primitive cell shape)."""
    return LATTICE_SYSTEMS.index(lattice_system_of_spacegroup(sg))
