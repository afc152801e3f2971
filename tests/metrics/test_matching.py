"""Uniqueness, novelty and composition coverage on small crystals whose answers are known."""

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from autoperi.metrics.matching import MATCHER_TOLERANCES, composition_coverage, novelty, uniqueness


@pytest.fixture(scope="module")
def rocksalt():
    conventional = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    return conventional, conventional.get_primitive_structure()


@pytest.fixture(scope="module")
def cscl_type_nacl():
    return Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _shuffled_translated(structure, shift):
    order = np.random.default_rng(0).permutation(len(structure))
    return Structure(
        structure.lattice,
        [structure.species[i] for i in order],
        (structure.frac_coords[order] + shift) % 1.0,
    )


def _rotated(structure, degrees):
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    return Structure(Lattice(structure.lattice.matrix @ rotation.T), structure.species, structure.frac_coords)


@pytest.mark.parametrize("tolerances", ["cdvae", "mattergen"])
def test_two_cell_settings_are_one_structure(rocksalt, tolerances):
    assert uniqueness(list(rocksalt), tolerances) == (50.0, [0, 0])


def test_uniqueness_labels_point_at_the_first_match(rocksalt, cscl_type_nacl, silicon):
    conventional, primitive = rocksalt
    structures = [
        conventional,
        cscl_type_nacl,
        _shuffled_translated(conventional, [0.13, 0.29, 0.71]),
        silicon,
        primitive,
    ]
    percent, labels = uniqueness(structures, MATCHER_TOLERANCES["cdvae"])
    assert labels == [0, 1, 0, 3, 0]
    assert percent == pytest.approx(100 * 3 / 5)


def test_isotropic_scaling_does_not_make_a_new_structure(rocksalt):
    # StructureMatcher scales volumes (scale=True), which is why no volume-per-atom pre-filter is applied.
    conventional, _ = rocksalt
    expanded = conventional.copy()
    expanded.scale_lattice(conventional.volume * 1.3)
    assert uniqueness([conventional, expanded], "mattergen") == (50.0, [0, 0])


def test_novelty_against_a_reference(rocksalt, cscl_type_nacl, perovskite, silicon):
    conventional, primitive = rocksalt
    generated = [_rotated(primitive, 30.0), cscl_type_nacl, silicon]
    percent, matched = novelty(generated, [perovskite, conventional], "cdvae")
    assert matched == [1, -1, -1]
    assert percent == pytest.approx(100 * 2 / 3)


def test_everything_is_novel_against_other_formulas(rocksalt, perovskite):
    assert novelty(list(rocksalt), [perovskite]) == (100.0, [-1, -1])


def test_composition_coverage(nacl):
    generated = ["NaCl", Composition("Na2Cl2"), "SiO2", nacl]
    reference = ["NaCl", "KCl", "Si2O4", "Fe2O3", "ClNa"]
    # Distinct reference formulas: NaCl, KCl, SiO2, Fe2O3; generated cover NaCl and SiO2.
    assert composition_coverage(generated, reference) == pytest.approx(50.0)
    assert composition_coverage([nacl], ["KCl"]) == 0.0
    with pytest.raises(ValueError):
        composition_coverage(generated, [])
