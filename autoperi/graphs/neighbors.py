"""The one periodic neighbour list of the project.

It wraps pymatgen's compiled cell-list search (`find_points_in_spheres`, the routine behind
`Structure.get_neighbor_list`), which is exact for any cell: it enumerates every periodic image that can lie within
the cutoff, unlike a fixed image range n in {-1, 0, 1}^3, which misses neighbours in small or skewed cells.
`benchmarks/preprocess.py` keeps the measurement against vesin (slower here, and it drops pairs at exactly r).
A generated cell can be nearly flat (plane spacings of 1e-4 Å), where that enumeration runs for hours; such cells
are searched in their LLL-reduced basis, and a cell still needing too many images is refused with a clear error.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice
from pymatgen.optimization.neighbors import find_points_in_spheres

_PBC = np.ones(3, dtype=np.int64)
_REDUCE_ABOVE_IMAGES = 10_000  # ordinary cells need a few hundred images at 8 Å; only skewed or flat ones get here
MAX_IMAGES = 2_000_000  # at 1.9e6 (4 atoms, 0.013 x 0.013 x 3 Å, 4 Å): 8.6 M pairs in 5 s; no crystal comes near
_KEPLER_DENSITY = np.pi / np.sqrt(18.0)  # densest packing of equal spheres (Hales)


def _image_count(lattice: np.ndarray, cutoff_angstrom: float) -> float:
    """Periodic images a cell-list search enumerates: (2 ceil(cutoff / plane spacing) + 1) per axis."""
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice).T, axis=1)
    return float(np.prod(2 * np.ceil(cutoff_angstrom / spacing) + 1))


def neighbor_list(
    frac_coords: np.ndarray, lattice: np.ndarray, cutoff_angstrom: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j, image) with |r_j + image @ L - r_i| <= cutoff, self-pair at zero image excluded.

    frac_coords: [n_atoms, 3]; lattice: [3, 3], rows are lattice vectors (Å).
    Returns edge_index [2, n_edges] (row 0 = centre i, ascending; row 1 = neighbour j), integer image shifts
    [n_edges, 3] and distances [n_edges] (Å). The order within one centre is the cell-list order: deterministic
    for a given input, not sorted (sorting cost more than the search itself).
    """
    lattice = np.ascontiguousarray(lattice, dtype=float)
    cart = np.ascontiguousarray(np.asarray(frac_coords, dtype=float) @ lattice)
    if abs(np.linalg.det(lattice)) < 1e-12:
        raise ValueError(f"singular lattice (volume {np.linalg.det(lattice):.3g} Å^3): no periodic neighbour list")
    search_lattice, to_original = lattice, None
    if _image_count(lattice, cutoff_angstrom) > _REDUCE_ABOVE_IMAGES:
        reduced = Lattice(lattice)
        search_lattice, to_original = np.ascontiguousarray(reduced.lll_matrix), reduced.lll_mapping
        images = _image_count(search_lattice, cutoff_angstrom)
        if images > MAX_IMAGES:
            raise ValueError(
                f"cell too degenerate for a {cutoff_angstrom} Å neighbour search: volume "
                f"{abs(np.linalg.det(lattice)):.3g} Å^3, LLL-reduced lengths "
                f"{np.round(np.linalg.norm(search_lattice, axis=1), 4).tolist()} Å would need {images:.2g} periodic "
                f"images (limit {MAX_IMAGES:.0e}); check that the lattice is physical"
            )
    i, j, shifts, dist = find_points_in_spheres(cart, cart, float(cutoff_angstrom), _PBC, search_lattice, tol=1e-8)
    shifts = np.rint(shifts).astype(np.int64)  # integer image offsets, returned as floats
    if to_original is not None:  # image n in the reduced basis is n @ M in the original one (reduced = M @ lattice)
        shifts = shifts @ np.rint(to_original).astype(np.int64)
    keep = (i != j) | (dist > 1e-8)
    return np.stack([i[keep], j[keep]]).astype(np.int64), shifts[keep], dist[keep]


def min_pair_distance(frac_coords: np.ndarray, lattice: np.ndarray, probe_angstrom: float = 0.5) -> float:
    """Shortest interatomic distance, periodic images included (an atom and its own image count).

    Returns +inf when no pair is closer than `probe_angstrom`, which is all a validity check needs. A cell too dense
    for any pair to be that far apart is searched only up to the packing bound, which holds the shortest pair.
    """
    n_atoms = len(frac_coords)
    volume = abs(float(np.linalg.det(np.asarray(lattice, dtype=float))))
    packing_bound = (6.0 * _KEPLER_DENSITY * volume / (np.pi * max(n_atoms, 1))) ** (1.0 / 3.0)
    probe_angstrom = min(probe_angstrom, packing_bound * (1.0 + 1e-9) + 1e-12)
    _, _, dist = neighbor_list(frac_coords, lattice, probe_angstrom)
    return float(dist.min()) if dist.size else float("inf")
