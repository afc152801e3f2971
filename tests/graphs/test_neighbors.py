"""The neighbour list against pymatgen on real crystals of every dataset, and against brute force on odd cells."""

import itertools

import numpy as np
import pandas as pd
import pytest

from autoperi.data.readers import structure_from_cif_block
from autoperi.graphs.neighbors import min_pair_distance, neighbor_list
from tests.conftest import skewed_cells

CUTOFF = 8.0
# (raw file, rows sampled): every dataset of the registry is represented; 280 structures in all.
SAMPLES = [
    ("perov_5/test.csv", 35),
    ("carbon_24/test.csv", 35),
    ("mp_20_biternary/test.csv.gz", 35),
    ("mp_20/train_cifs.csv.gz", 35),
    ("wbm/val.csv.gz", 35),
    ("mpts_52/val.csv.gz", 35),
    ("perovskite_ml/cifs_oqmd.csv", 35),
    ("perovskite_ml/cifs_mp.csv", 35),
]


def _as_set(i, j, shifts, dist):
    return {(int(a), int(b), *map(int, s)): float(d) for a, b, s, d in zip(i, j, shifts, dist, strict=True)}


def _pymatgen_pairs(structure, cutoff):
    i, j, images, dist = structure.get_neighbor_list(cutoff)
    return _as_set(i, j, np.rint(images).astype(int), dist)


def _ours(structure, cutoff):
    edge_index, shifts, dist = neighbor_list(structure.frac_coords, structure.lattice.matrix, cutoff)
    return _as_set(edge_index[0], edge_index[1], shifts, dist)


def _brute_force(structure, cutoff, image_range=None):
    lattice = structure.lattice.matrix
    if image_range is None:  # enough images for any cell: |n_k| <= cutoff * |b_k| + 1
        recip = np.linalg.norm(np.linalg.inv(lattice).T, axis=1)
        image_range = [range(-int(np.ceil(cutoff * r)) - 1, int(np.ceil(cutoff * r)) + 2) for r in recip]
    cart = structure.cart_coords
    out = {}
    for shift in itertools.product(*image_range):
        vec = cart[None, :, :] + np.asarray(shift) @ lattice - cart[:, None, :]
        dist = np.linalg.norm(vec, axis=-1)
        for a, b in zip(*np.nonzero(dist <= cutoff), strict=True):
            if a == b and not any(shift):
                continue
            out[(int(a), int(b), *shift)] = float(dist[a, b])
    return out


def _real_structures(raw_dir):
    for path, n in SAMPLES:
        table = pd.read_csv(raw_dir / path, nrows=400, index_col=False)
        for cif in table["cif"].sample(n, random_state=1):
            yield path, structure_from_cif_block(cif)


def test_matches_pymatgen_on_real_structures(raw_dir):
    checked = 0
    for path, structure in _real_structures(raw_dir):
        ref, ours = _pymatgen_pairs(structure, CUTOFF), _ours(structure, CUTOFF)
        assert ref.keys() == ours.keys(), f"{path} {structure.composition}: pair sets differ"
        assert max(abs(ref[k] - ours[k]) for k in ref) < 1e-6
        checked += 1
    assert checked >= 200


@pytest.mark.parametrize("structure", skewed_cells(), ids=lambda s: s.composition.reduced_formula)
def test_exact_on_small_and_skewed_cells(structure):
    ref = _brute_force(structure, CUTOFF)
    ours = _ours(structure, CUTOFF)
    assert ours.keys() == ref.keys()
    assert max(abs(ref[k] - ours[k]) for k in ref) < 1e-6
    assert ours.keys() == _pymatgen_pairs(structure, CUTOFF).keys()


def test_fixed_image_range_misses_neighbours_in_small_cells():
    tiny = skewed_cells()[0]  # a = 1.5 Å: an 8 Å sphere reaches 5+ images along a
    narrow = _brute_force(tiny, CUTOFF, image_range=[range(-1, 2)] * 3)
    exact = _ours(tiny, CUTOFF)
    assert set(narrow) < set(exact)
    assert len(exact) > 3 * len(narrow)


def test_edges_are_grouped_by_centre_and_exclude_only_the_self_pair(nacl):
    edge_index, shifts, dist = neighbor_list(nacl.frac_coords, nacl.lattice.matrix, 6.0)
    assert np.all(np.diff(edge_index[0]) >= 0)
    assert shifts.dtype == np.int64 and np.all(dist > 0)
    # an atom's own periodic images at one lattice constant are neighbours
    assert any(i == j and d == pytest.approx(5.64) for i, j, d in zip(*edge_index, dist, strict=True))


def test_min_distance_sees_periodic_images():
    from pymatgen.core import Lattice, Structure

    # 0.4 Å apart only across the cell boundary: x = 0.02 and x = 0.98 in a 5 Å cell
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.02, 0, 0], [0.94, 0, 0]])
    assert min_pair_distance(s.frac_coords, s.lattice.matrix) == pytest.approx(0.4)
    s2 = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.0, 0, 0], [0.5, 0, 0]])
    assert min_pair_distance(s2.frac_coords, s2.lattice.matrix) == float("inf")


def _sheared(structure, mapping):
    """The same crystal in the basis mapping @ lattice (an integer matrix of det 1): a badly skewed cell."""
    from pymatgen.core import Lattice, Structure

    lattice = Lattice(np.asarray(mapping) @ structure.lattice.matrix)
    return Structure(lattice, structure.species, structure.cart_coords, coords_are_cartesian=True, to_unit_cell=True)


def test_skewed_cell_is_searched_in_its_reduced_basis_with_images_in_the_given_one(nacl):
    from autoperi.graphs import neighbors

    skewed = _sheared(nacl, [[1, 0, 0], [7, 1, 0], [5, 9, 1]])
    assert neighbors._image_count(skewed.lattice.matrix, 6.0) > neighbors._REDUCE_ABOVE_IMAGES  # takes that path
    i, j, images, dist = skewed.get_neighbor_list(6.0)
    edge_index, shifts, ours = neighbor_list(skewed.frac_coords, skewed.lattice.matrix, 6.0)
    expected = _as_set(i, j, np.rint(images).astype(int), dist)
    got = _as_set(edge_index[0], edge_index[1], shifts, ours)
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()))
    assert min_pair_distance(skewed.frac_coords, skewed.lattice.matrix, 3.0) == pytest.approx(5.64 / 2)


def test_flat_generated_cell_returns_its_shortest_pair_quickly():
    import time

    from pymatgen.core import Lattice, Structure

    # a Carbon-24 sample the model emitted: 4 atoms in 0.0032 Å^3, plane spacings down to 3e-4 Å; the plain
    # cell-list search of 0.5 Å needed ~1e9 images and did not return in 10 minutes
    lattice = Lattice([[2.79236126, 0, 0], [0.52272737, 2.85256076, 0], [4.06081152, 0.59138453, 4.07938e-4]])
    frac = [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.35, 0.8, 0.5], [0.9, 0.45, 0.05]]
    start = time.perf_counter()
    shortest = min_pair_distance(np.array(frac), lattice.matrix, 0.5)
    assert time.perf_counter() - start < 5.0
    reference = Structure(lattice, ["C"] * 4, frac).get_reduced_structure("LLL")
    assert shortest == pytest.approx(reference.get_neighbor_list(0.5)[3].min())
    assert shortest < 0.5


def test_cell_too_degenerate_to_search_is_refused_with_its_numbers():
    with pytest.raises(ValueError, match=r"too degenerate.*volume 8e-12"):
        neighbor_list(np.zeros((1, 3)), np.eye(3) * 2e-4, 4.0)
    with pytest.raises(ValueError, match="singular lattice"):
        min_pair_distance(np.zeros((2, 3)), np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]))
