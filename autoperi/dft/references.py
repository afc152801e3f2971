"""Elemental reference energies μ_el (eV/atom) with the DFT protocol's own settings, cached per element.

Reference structures (stated in every cached JSON under "structure_source"):
  - H, N, O, F, Cl: the diatomic molecule (ASE `molecule`) in a 9 × 9.5 × 10 Å box, Γ point only; O2 in its
    triplet state (spin-polarised, 2 μB), the others closed-shell. Plain PBE overbinds O2 (by ~1 eV per molecule)
    and N2, so oxide/nitride formation energies from these references are systematically less negative than
    experiment; Materials Project's fitted corrections (O: -0.687 eV/O atom, ...) are NOT applied, so comparisons
    with MP's `formation_energy_per_atom` carry that offset, and it is reported, not hidden.
  - every other element: of the candidates ASE `bulk(symbol)` (experimental lattice constant, where ASE has a
    simple reference state) and the MP-20 unary crystals of the element (PBE-relaxed; MP-20's processed table has
    no formation energies for unaries, so MP's ground-state label cannot be read off), the one with the lowest
    CHGNet energy per atom (ties within 10 meV/atom → fewest atoms); MP-20 cells above 8 atoms are not candidates
    (cost), so elements whose ground state has a large cell (Ga, P) get a higher-energy polymorph and their
    compounds' E_f is too negative by that polymorph's energy × the element's fraction.
    No re-relaxation with GPAW.
  - Elements with neither (no ASE bulk state, no MP-20 unary of <= 8 atoms) get a built-in structure
    (`FALLBACK_PHASES`): S one S8 crown ring in the molecule box, Γ only (α-S is a molecular crystal of these rings
    held by dispersion, which plain PBE barely binds); B the 12-atom α-rhombohedral cell (Decker & Kasper 1959);
    Mn fcc γ-Mn (a = 3.63 Å, spin-polarised; PBE puts the 58-atom α-Mn lower, so Mn compounds' E_f is too
    negative by that difference × the Mn fraction). Stated in each reference's structure_source, not corrected.
Cache: `<cache_dir>/<protocol.tag>/<El>.json`, so a changed protocol never reuses old numbers.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from autoperi.dft.protocol import Protocol

MOLECULES = {"H": "H2", "N": "N2", "O": "O2", "F": "F2", "Cl": "Cl2"}
MOLECULE_BOX_ANGSTROM = (9.0, 9.5, 10.0)
DEFAULT_CACHE_DIR = "reports/dft/references"
DEFAULT_UNARY_TABLE = "data/processed/mp_20.parquet"
MAX_REFERENCE_ATOMS = 8  # larger MP-20 unary cells (e.g. a 20-atom Ga) cost more than all structures using them


@functools.lru_cache(maxsize=4)
def _unaries(table_path: str):
    import pandas as pd

    path = Path(table_path)
    if not path.exists():
        return None
    table = pd.read_parquet(path)
    table = table[table["n_elements"] == 1].copy()
    table["element"] = table["elements"].map(lambda e: str(e[0]))
    return table


def molecule_reference(element: str):
    """The diatomic molecule of a gaseous element in its box (ASE Atoms, spin moments set for O2)."""
    from ase.build import molecule

    atoms = molecule(MOLECULES[element])
    atoms.set_cell(MOLECULE_BOX_ANGSTROM)
    atoms.center()
    atoms.pbc = True
    if element == "O":
        atoms.set_initial_magnetic_moments([1.0, 1.0])
    return atoms


def ring_molecule(element: str, n: int = 8, bond_angstrom: float = 2.05, angle_deg: float = 108.0):
    """A puckered (crown, D_nd) ring of n atoms with the given bond length and bond angle, in the molecule box.

    Atoms k = 0..n-1 sit at azimuth 2πk/n on a circle of radius R, alternately at ±h/2: the second-neighbour distance
    2R sin(2π/n) fixes R from the bond angle, the bond length then fixes h. S8: R = 2.35 Å, h = 0.99 Å."""
    from ase import Atoms

    second = 2 * bond_angstrom * np.sin(np.radians(angle_deg) / 2)
    radius = second / (2 * np.sin(2 * np.pi / n))
    h = np.sqrt(bond_angstrom**2 - (2 * radius * np.sin(np.pi / n)) ** 2)
    phi = 2 * np.pi * np.arange(n) / n
    positions = np.stack([radius * np.cos(phi), radius * np.sin(phi), h / 2 * (-1.0) ** np.arange(n)], axis=1)
    atoms = Atoms(f"{element}{n}", positions=positions, cell=MOLECULE_BOX_ANGSTROM, pbc=True)
    atoms.center()
    return atoms


def alpha_boron():
    """α-B: R-3m, hexagonal a = 4.9179, c = 12.5805 Å, B at 18h (0.11886, -x, 0.89133) and (0.19686, -x, 0.02432)
    (Decker & Kasper 1959); the 12-atom primitive cell."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    hexagonal = Structure.from_spacegroup("R-3m", Lattice.hexagonal(4.9179, 12.5805), ["B", "B"],
                                          [[0.11886, -0.11886, 0.89133], [0.19686, -0.19686, 0.02432]])
    return AseAtomsAdaptor.get_atoms(hexagonal.get_primitive_structure())


def gamma_manganese():
    from ase.build import bulk

    return bulk("Mn", "fcc", a=3.63)


# element → (builder, structure_source, molecule?) for elements with no ASE bulk state and no small MP-20 cell
FALLBACK_PHASES = {
    "S": (lambda: ring_molecule("S", 8), f"S8 crown ring in a {MOLECULE_BOX_ANGSTROM} Å box, Γ only (no small "
          "solid cell; α-S is a molecular crystal of S8 rings)", True),
    "B": (alpha_boron, "α-B, 12-atom rhombohedral cell (Decker & Kasper 1959 coordinates)", False),
    "Mn": (gamma_manganese, "fcc γ-Mn, a = 3.63 Å (α-Mn's 58-atom cell is too costly; PBE puts it lower)", False),
}


def candidate_phases(element: str, unary_table: str | Path = DEFAULT_UNARY_TABLE) -> list[tuple[object, str]]:
    """(ASE Atoms, description) of the element's candidate solid phases: ASE `bulk(el)` (experimental lattice
    constant) when ASE knows a simple reference state, and every MP-20 unary crystal of the element."""
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.data.preprocess import record_to_structure
    from autoperi.dft.worker import standard_orientation

    out = []
    try:
        out.append((bulk(element), f"ASE bulk('{element}') (experimental lattice constant)"))
    except (ValueError, KeyError, NotImplementedError, TypeError, RuntimeError):  # no simple ASE state
        pass
    table = _unaries(str(unary_table))
    if table is not None:
        rows = table[(table["element"] == element) & (table["n_atoms"] <= MAX_REFERENCE_ATOMS)]
        for _, row in rows.iterrows():
            atoms = AseAtomsAdaptor.get_atoms(standard_orientation(record_to_structure(row)))
            out.append((atoms, f"MP-20 {row['id']} (space group {row['spacegroup']}, {row['n_atoms']} atoms)"))
    return out


def choose_reference_structures(elements, unary_table: str | Path = DEFAULT_UNARY_TABLE) -> dict[str, dict]:
    """element → {"atoms": ASE Atoms, "structure_source": str, "molecule": bool}.

    Gases (H, N, O, F, Cl) → the molecule in a box. Solids → the candidate phase (ASE bulk or MP-20 unary) with
    the lowest CHGNet energy per atom (CHGNet is fitted to MP's PBE, so it ranks polymorphs as PBE roughly
    would); candidates within 10 meV/atom of the lowest → the one with fewest atoms (cheaper). Elements with no
    candidate are left out (their structures then fail with reference_failed:<El>).
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    chosen, pending = {}, {}
    for el in sorted(set(elements)):
        if el in MOLECULES:
            chosen[el] = {"atoms": molecule_reference(el), "molecule": True,
                          "structure_source": f"molecule {MOLECULES[el]} in a {MOLECULE_BOX_ANGSTROM} Å box, Γ only"}
        else:
            candidates = candidate_phases(el, unary_table)
            if candidates:
                pending[el] = candidates
    flat = [(el, atoms, source) for el, cands in pending.items() for atoms, source in cands]
    try:
        from autoperi.metrics.potential import chgnet_energies

        energies = chgnet_energies([AseAtomsAdaptor.get_structure(a) for _, a, _ in flat]) if flat else []
    except ImportError:
        energies = [float(len(a)) for _, a, _ in flat]  # no CHGNet: fewest atoms (ASE bulk listed first)
    for el in sorted(set(elements) - set(chosen) - set(pending)):
        if el in FALLBACK_PHASES:
            build, source, molecule = FALLBACK_PHASES[el]
            chosen[el] = {"atoms": build(), "molecule": molecule, "structure_source": source}
    for el in pending:
        rows = [(e, len(a), a, s) for (e_el, a, s), e in zip(flat, energies, strict=True) if e_el == el and e == e]
        if not rows:
            continue
        best = min(r[0] for r in rows)
        e, _, atoms, source = min((r for r in rows if r[0] <= best + 0.010), key=lambda r: r[1])
        chosen[el] = {"atoms": atoms, "molecule": False,
                      "structure_source": f"{source}; lowest CHGNet energy of {len(rows)} candidates"}
    return chosen


def cache_path(element: str, protocol: Protocol, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    return Path(cache_dir) / protocol.tag / f"{element}.json"


def cached_reference(element: str, protocol: Protocol, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> dict | None:
    path = cache_path(element, protocol, cache_dir)
    return json.loads(path.read_text()) if path.exists() else None


def reference_energy(element: str, protocol: Protocol, atoms, structure_source: str, molecule: bool,
                     cache_dir: str | Path = DEFAULT_CACHE_DIR) -> dict:
    """μ_el in this process (cached): dict with element, energy_per_atom (eV), structure_source, protocol, timing.

    Raises if GPAW fails (the runner calls this through a subprocess with a time limit and records failures).
    """
    from autoperi.dft.protocol import single_point

    cached = cached_reference(element, protocol, cache_dir)
    if cached is not None and cached.get("status") == "ok":
        return cached
    lock = _take_lock(cache_path(element, protocol, cache_dir).with_suffix(".lock"))
    try:
        result = single_point(atoms, protocol, gamma_only=molecule, force_spin=True if element == "O" else None)
        record = {"element": element, "status": "ok", "structure_source": structure_source, "n_atoms": len(atoms),
                  "cell": np.asarray(atoms.cell).tolist(), "positions": atoms.get_positions().tolist(),
                  "numbers": atoms.numbers.tolist(), "protocol": protocol.as_dict(), **result}
        write_reference(record, protocol, cache_dir)
    finally:
        lock.unlink(missing_ok=True)
    return record


class ReferenceBusy(RuntimeError):
    """Another live process is computing this element's reference right now (runs share the cache)."""


def _take_lock(lock: Path) -> Path:
    """Create `lock` holding our pid; raise ReferenceBusy if a live process holds it (a dead holder's is taken)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            holder = int(lock.read_text() or 0)
            os.kill(holder, 0)
        except (ValueError, ProcessLookupError, FileNotFoundError):
            lock.unlink(missing_ok=True)  # stale: its process is gone (a killed run)
            return _take_lock(lock)
        except PermissionError:
            pass
        raise ReferenceBusy(f"{lock.stem} is being computed by process {holder}") from None
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return lock


def write_reference(record: dict, protocol: Protocol, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> None:
    path = cache_path(record["element"], protocol, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def reference_atoms(record: dict):
    """The ASE Atoms a cached reference was computed on (for CHGNet energies of the same structures)."""
    from ase import Atoms

    return Atoms(numbers=record["numbers"], positions=record["positions"], cell=record["cell"], pbc=True)


def formation_energy_per_atom(total_energy_ev: float, composition: dict[str, float], mu: dict[str, float]) -> float:
    """(E_total - Σ_el n_el μ_el) / Σ n_el, eV/atom; `composition` = element → count in the cell."""
    n_atoms = sum(composition.values())
    return (total_energy_ev - sum(n * mu[el] for el, n in composition.items())) / n_atoms
