"""Validity metrics against hand-worked cases; composition rules checked against SMACT's own implementation."""

import itertools

import pytest
from pymatgen.core import Lattice, Structure
from smact.screening import smact_validity

from autoperi.metrics.validity import composition_validity, structure_validity, validity_rates, validity_table


def test_rocksalt_is_valid_and_cutoff_is_compared_with_the_shortest_bond(nacl):
    # Shortest Na-Cl distance in rock salt is a/2 = 2.82 Å.
    assert structure_validity(nacl)
    assert structure_validity(nacl, cutoff_angstrom=2.8)
    assert not structure_validity(nacl, cutoff_angstrom=2.85)


def test_close_pair_across_the_cell_boundary_is_invalid():
    # x = 0.02 and 0.98 in a 10 Å cell are 0.4 Å apart through the periodic image, 9.6 Å apart inside the cell.
    close = Structure(Lattice.cubic(10.0), ["C", "C"], [[0.02, 0.5, 0.5], [0.98, 0.5, 0.5]])
    apart = Structure(Lattice.cubic(10.0), ["C", "C"], [[0.0, 0.5, 0.5], [0.07, 0.5, 0.5]])  # 0.7 Å
    assert not structure_validity(close)
    assert structure_validity(apart)


def test_atom_too_close_to_its_own_image_is_invalid():
    # One atom, a = 0.45 Å: the atom's own image is 0.45 Å away; the volume 0.45 * 5 * 5 Å^3 is fine.
    thin = Structure(Lattice.orthorhombic(0.45, 5.0, 5.0), ["Cu"], [[0, 0, 0]])
    assert not structure_validity(thin)
    assert structure_validity(thin, cutoff_angstrom=0.4)


def test_volume_threshold():
    # 0.4 Å cube: 0.064 Å^3, below 0.1 Å^3 even when distances are allowed.
    tiny = Structure(Lattice.cubic(0.4), ["H"], [[0, 0, 0]])
    assert not structure_validity(tiny, cutoff_angstrom=0.01)
    assert structure_validity(tiny, cutoff_angstrom=0.01, min_volume_angstrom3=0.05)


# (composition, valid under SMACT 4's default list), reasoning with its oxidation states:
HAND_WORKED = [
    ("NaCl", True),  # Na+1 Cl-1
    ("Na2Cl2", True),  # reduced by gcd to NaCl
    ("NaCl2", False),  # Na+1 needs Cl at -1/2
    ("Fe2O3", True),  # Fe+3 O-2
    ("Fe4O6", True),  # gcd 2 -> Fe2O3
    ("Fe3O4", False),  # magnetite is mixed valence: 3q = 8 or 4 has no integer q in Fe's list
    ("SrTiO3", True),  # Sr+2 Ti+4 O-2
    ("CaO2", True),  # peroxide: Ca+2 with O-1 (O's list is -2, -1)
    ("NaO", True),  # Na+1 O-1 (Na2O2, sodium peroxide)
    ("NaO2", False),  # superoxide needs O at -1/2
    ("H2O", True),  # H+1 O-2
    ("CO2", True),  # C+4 O-2
    ("Cu", True),  # single element
    ("Ne2", True),  # single element, even without oxidation states
    ("CuZn", True),  # all metals: alloy
    ("CuZn3", True),  # all metals, no charge balance needed
    ("Fe3Al", True),  # intermetallic: all metals, valid although Fe+2/+3 and Al+3 cannot balance
    ("NeO", False),  # Ne has no oxidation states
    ("KrH2", False),  # Kr+2 2H-1 is neutral but the cation Kr (3.00) is more electronegative than H (2.20)
    ("SiH", False),  # only neutral choice is Si-1 H+1 (Si has no +1), and H (2.20) > Si (1.90) as cation
    ("OF2", False),  # O has no positive state in the default list, F only -1
]


@pytest.mark.parametrize(("formula", "expected"), HAND_WORKED)
def test_composition_validity_hand_worked(formula, expected):
    assert composition_validity(formula) is expected


def test_smact14_list_differs_where_it_has_extra_states():
    # smact14 (SMACT 2.x default, used by CDVAE) has Si+1 and O+2: SiH as Si+1 H-1, OF2 as O+2 F-1 pass Pauling.
    assert composition_validity("SiH", oxidation_state_set="smact14")
    assert composition_validity("OF2", oxidation_state_set="smact14")
    assert not composition_validity("NaCl2", oxidation_state_set="smact14")
    with pytest.raises(ValueError, match="oxidation_state_set"):
        composition_validity("NaCl", oxidation_state_set="wiki")


def test_missing_electronegativity_passes_as_in_cdvae():
    # smact14 gives Rn +2/+6 but no Pauling electronegativity: Rn+2 2F-1 is neutral, so CDVAE called it valid.
    # SMACT 4's own pauling_test returns False there instead of raising TypeError.
    assert composition_validity("RnF2", oxidation_state_set="smact14")
    assert not smact_validity("RnF2", oxidation_states_set="smact14")
    assert not composition_validity("RnF", oxidation_state_set="smact14")  # Rn+2 or +6 with one F-1


def test_agrees_with_smact_on_binaries_and_ternaries():
    # SMACT 4's smact_validity with the same list applies the same rules; no element here lacks electronegativity.
    elements = ["Na", "Cl", "O", "Fe", "H", "C", "N", "S", "Si", "Sb", "Kr", "Ti", "Cu", "Zn", "Pt"]
    formulas = [f"{a}{i}{b}{j}" for a, b in itertools.combinations(elements, 2) for i in (1, 2, 3) for j in (1, 2, 4)]
    formulas += [f"{a}{b}{c}3" for a, b, c in itertools.combinations(["Sr", "Ti", "Fe", "O", "N", "Cl"], 3)]
    ours = [composition_validity(f) for f in formulas]
    theirs = [smact_validity(f, oxidation_states_set="icsd24") for f in formulas]
    assert ours == theirs
    assert 0 < sum(ours) < len(ours)


def test_fractional_counts_are_rejected():
    with pytest.raises(ValueError, match="non-integer"):
        composition_validity("Na0.5Cl0.5")


def test_validity_table(nacl):
    overlapping = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]])  # 0.25 Å apart
    nacl2 = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]])
    table = validity_table([nacl, overlapping, nacl2])
    assert table["struct_valid"].tolist() == [True, False, True]
    assert table["comp_valid"].tolist() == [True, True, False]
    assert table["valid"].tolist() == [True, False, False]
    assert validity_rates(table) == pytest.approx({"struct_valid": 200 / 3, "comp_valid": 200 / 3, "valid": 100 / 3})


def test_many_element_compositions_are_bounded_not_enumerated():
    """A 12-element cell has > 10^6 oxidation-state assignments: counted invalid at once (CDVAE's loop would hang)."""
    import time

    from autoperi.metrics.validity import MAX_OXIDATION_ASSIGNMENTS

    formula = "LiNaKMgCaSrBaTiVCrMnFeO2"
    start = time.perf_counter()
    assert composition_validity(formula) is False
    assert time.perf_counter() - start < 1.0
    assert MAX_OXIDATION_ASSIGNMENTS >= 8**5  # five elements with eight states each are still enumerated exactly
