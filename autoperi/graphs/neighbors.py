"""The one periodic neighbour list of the project.

It wraps pymatgen's compiled cell-list search (`find_points_in_spheres`, the routine behind
`Structure.get_neighbor_list`), which is exact for any cell: it enumerates every periodic image that can lie within
the cutoff, unlike a fixed image range n in {-1, 0, 1}^3, which misses neighbours in small or skewed cells.
`benchmarks/preprocess.py` keeps the measurement against vesin (slower here, and it drops pairs at exactly r).
"""

from __future__ import annotations

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

_PBC = np.ones(3, dtype=np.int64)


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
    i, j, shifts, dist = find_points_in_spheres(cart, cart, float(cutoff_angstrom), _PBC, lattice, tol=1e-8)
    shifts = np.rint(shifts).astype(np.int64)  # integer image offsets, returned as floats
    keep = (i != j) | (dist > 1e-8)
    return np.stack([i[keep], j[keep]]).astype(np.int64), shifts[keep], dist[keep]


def min_pair_distance(frac_coords: np.ndarray, lattice: np.ndarray, probe_angstrom: float = 0.5) -> float:
    """Shortest interatomic distance, periodic images included (an atom and its own image count).

    Returns +inf when no pair is closer than `probe_angstrom`, which is all a validity check needs.
    """
    _, _, dist = neighbor_list(frac_coords, lattice, probe_angstrom)
    return float(dist.min()) if dist.size else float("inf")
