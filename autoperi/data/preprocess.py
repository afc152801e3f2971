"""One crystal → one standardised record: spglib primitive cell, Niggli reduction, checks, descriptors.

Records are plain dicts of numbers and lists so they travel between worker processes and into Parquet.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import moyopy
import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure
from tqdm.auto import tqdm

from autoperi.data.readers import Limits, RefusedInput, check_structure, structure_from_cif_block
from autoperi.graphs.neighbors import min_pair_distance

# moyopy logs a warning per cell about symmetry operations it leaves out of the input basis; noise for us.
logging.getLogger("moyo").setLevel(logging.ERROR)

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 amu / Å^3 in g/cm^3

CRYSTAL_SYSTEMS = (
    (2, "triclinic"),
    (15, "monoclinic"),
    (74, "orthorhombic"),
    (142, "tetragonal"),
    (167, "trigonal"),
    (194, "hexagonal"),
    (230, "cubic"),
)


def crystal_system(space_group_number: int) -> str:
    for upper, name in CRYSTAL_SYSTEMS:
        if space_group_number <= upper:
            return name
    raise ValueError(f"space group {space_group_number} outside 1..230")


def standardize(structure: Structure, symprec: float) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Standard primitive cell (symmetrised within `symprec`), Niggli-reduced.

    Returns (lattice [3, 3] rows in Å, wrapped fractional coordinates [n, 3], atomic numbers [n], SG number).
    Symmetry comes from moyopy, the Rust successor of spglib by the same maintainers: same space groups and
    standardisation conventions, 7.8x faster on 500 MP-20 cells (benchmarks/preprocess.py measures both).
    Where no symmetry is found the input cell is kept and the space group recorded as 1.
    """
    basis = structure.lattice.matrix
    frac = structure.frac_coords
    numbers = [site.specie.Z for site in structure]
    number = 1
    try:
        dataset = moyopy.MoyoDataset(
            moyopy.Cell(basis=basis.tolist(), positions=frac.tolist(), numbers=numbers), symprec=symprec
        )
        number = int(dataset.number)
        prim = dataset.prim_std_cell
        basis, frac, numbers = np.asarray(prim.basis), np.asarray(prim.positions), list(prim.numbers)
    except Exception:  # moyopy raises where the tolerance search fails; the input cell is still a valid crystal
        pass
    niggli = Lattice(basis).get_niggli_reduced_lattice().matrix
    frac = ((frac @ basis) @ np.linalg.inv(niggli)) % 1.0
    frac[frac >= 1.0] = 0.0  # -1e-17 % 1.0 rounds to exactly 1.0
    return niggli, frac, numbers, number


def structure_record(structure: Structure, limits: Limits, symprec: float, timings: dict | None = None) -> dict:
    """Checked, standardised record of one crystal (RefusedInput if it fails a check).

    `timings`, when given, accumulates seconds spent in `symmetry_s` and `checks_s`.
    """
    timings = timings if timings is not None else defaultdict(float)
    t0 = time.perf_counter()
    check_structure(structure, limits)
    if len(structure) > 8 * limits.max_atoms:  # too large even for a primitive reduction to rescue
        raise RefusedInput("too_many_atoms", f"{len(structure)} atoms in the given cell")
    t1 = time.perf_counter()
    lattice, frac, numbers, sg = standardize(structure, symprec)
    t2 = time.perf_counter()
    timings["symmetry_s"] += t2 - t1
    if len(numbers) > limits.max_atoms:
        raise RefusedInput("too_many_atoms", f"{len(numbers)} atoms in the primitive cell > {limits.max_atoms}")
    dmin = min_pair_distance(frac, lattice, limits.min_distance_angstrom)
    timings["checks_s"] += (t1 - t0) + (time.perf_counter() - t2)
    if dmin < limits.min_distance_angstrom:
        raise RefusedInput("atoms_too_close", f"{dmin:.3f} Å < {limits.min_distance_angstrom} Å (images included)")
    comp = Composition(Counter(Element.from_Z(z).symbol for z in numbers))
    volume = float(abs(np.linalg.det(lattice)))
    return {
        "formula": comp.formula.replace(" ", ""),
        "reduced_formula": comp.reduced_formula,
        "elements": sorted(el.symbol for el in comp.elements),
        "n_atoms": len(numbers),
        "n_elements": len(comp.elements),
        "spacegroup": sg,
        "crystal_system": crystal_system(sg),
        "volume": volume,
        "volume_per_atom": volume / len(numbers),
        "density": float(comp.weight) * AMU_PER_A3_TO_G_PER_CM3 / volume,
        "lattice": lattice.reshape(-1).tolist(),
        "atomic_numbers": [int(z) for z in numbers],
        "frac_coords": frac.reshape(-1).tolist(),
    }


def record_to_structure(record) -> Structure:
    """Inverse of `structure_record` for the geometry: a processed row → pymatgen Structure."""
    lattice = np.asarray(record["lattice"], dtype=float).reshape(3, 3)
    frac = np.asarray(record["frac_coords"], dtype=float).reshape(-1, 3)
    return Structure(Lattice(lattice), list(record["atomic_numbers"]), frac)


def _process_chunk(args):
    items, limits, symprec = args
    records, refused, timings = [], [], defaultdict(float)
    for key, cif in items:
        try:
            t0 = time.perf_counter()
            structure = structure_from_cif_block(cif) if isinstance(cif, str) else cif
            timings["parse_s"] += time.perf_counter() - t0
            records.append((key, structure_record(structure, limits, symprec, timings)))
        except RefusedInput as exc:
            refused.append((key, exc.reason, exc.detail))
        except Exception as exc:  # anything else a broken input can trigger is still a refusal, never a crash
            refused.append((key, "malformed", f"{type(exc).__name__}: {exc}"[:200]))
    return records, refused, dict(timings)


def process_items(items, limits: Limits, symprec: float, workers: int = 1, desc: str = "structures", chunk=200):
    """[(key, CIF text or Structure)] → (records [(key, dict)], refused [(key, reason, detail)], timings).

    Work is spread over `workers` processes in chunks; order of the input is kept.
    """
    chunks = [(items[k : k + chunk], limits, symprec) for k in range(0, len(items), chunk)]
    records, refused, timings = [], [], defaultdict(float)
    parallel = workers > 1 and len(chunks) > 1
    with ProcessPoolExecutor(max_workers=workers) if parallel else nullcontext() as pool:
        results = pool.map(_process_chunk, chunks) if parallel else map(_process_chunk, chunks)
        with tqdm(total=len(items), desc=desc, unit="cryst", leave=False, mininterval=2) as bar:
            for (done, bad, t), c in zip(results, chunks, strict=True):
                records += done
                refused += bad
                for k, v in t.items():
                    timings[k] += v
                bar.update(len(c[0]))
    return records, refused, dict(timings)
