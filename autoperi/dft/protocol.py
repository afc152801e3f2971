"""The one GPAW protocol of the DFT stage, the in-process calculations, and the convergence test that chose it.

Plane-wave PAW (GPAW), PBE, Fermi-Dirac smearing, Monkhorst-Pack k-points from a density in points per Å⁻¹
(GPAW's `kpts={'density': d}`: ≥ d·|b_i| points along reciprocal vector b_i, |b_i| including 2π, Γ-centred),
spin-polarised with ferromagnetic initial moments whenever a magnetic element is present. Everything here runs
in the calling process; `autoperi.dft.runner` puts each calculation in its own subprocess so a time limit can
kill it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Initial magnetic moments (μB per atom) for elements whose compounds are commonly magnetic; a calculation is
# spin-polarised when any of them is present (others start at 0 but may polarise). High-spin starting guesses,
# as in Materials Project's default MAGMOM for 3d ions; 4f elements start at their Hund's-rule spin.
INITIAL_MAGMOMS: dict[str, float] = {
    "Ti": 1.0, "V": 3.0, "Cr": 3.0, "Mn": 5.0, "Fe": 4.0, "Co": 3.0, "Ni": 2.0, "Cu": 1.0,
    "Mo": 2.0, "Ru": 2.0, "Rh": 1.0, "Os": 2.0, "Ir": 1.0,
    "Ce": 1.0, "Pr": 2.0, "Nd": 3.0, "Pm": 4.0, "Sm": 5.0, "Eu": 7.0, "Gd": 7.0,
    "Tb": 6.0, "Dy": 5.0, "Ho": 4.0, "Er": 3.0, "Tm": 2.0, "Yb": 1.0,
    "O": 0.5,  # only used in spin-polarised runs (e.g. the O2 triplet); never triggers spin on its own
}
TRIGGERS_SPIN = frozenset(INITIAL_MAGMOMS) - {"O", "Ti", "Cu", "Mo", "Ru", "Rh", "Os", "Ir"}


@dataclass(frozen=True)
class Protocol:
    """GPAW settings; `tag` names the cache folder of elemental references computed with them."""

    cutoff_ev: float = 500.0
    kpt_density: float = 3.0  # k-points per Å⁻¹ (GPAW 'density')
    smearing_ev: float = 0.1  # Fermi-Dirac width; GPAW's reported energy is extrapolated to zero width
    xc: str = "PBE"
    maxiter: int = 120  # SCF iterations before the structure counts as scf_not_converged
    energy_tol_ev: float = 5e-4  # SCF convergence: total energy change per valence electron (GPAW 'energy')

    @property
    def tag(self) -> str:
        return f"{self.xc}_pw{self.cutoff_ev:g}_k{self.kpt_density:g}_fd{self.smearing_ev:g}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def needs_spin(symbols: Sequence[str]) -> bool:
    return any(s in TRIGGERS_SPIN for s in symbols)


def initial_magmoms(symbols: Sequence[str]) -> list[float]:
    return [INITIAL_MAGMOMS.get(s, 0.0) for s in symbols]


def make_calculator(protocol: Protocol, spin: bool, txt: str | None = None, gamma_only: bool = False,
                    kpts: tuple[int, int, int] | None = None):
    """A GPAW calculator with the protocol's settings (k-points Γ only for molecules in a box; an explicit
    Γ-centred `kpts` mesh overrides the density, for tests that need equivalent meshes)."""
    from gpaw import GPAW, PW

    from autoperi.dft.install import ensure_gpaw

    ensure_gpaw()
    return GPAW(
        mode=PW(protocol.cutoff_ev),
        xc=protocol.xc,
        kpts=(1, 1, 1) if gamma_only else {"size": kpts, "gamma": True} if kpts else
        {"density": protocol.kpt_density, "gamma": True},
        occupations={"name": "fermi-dirac", "width": protocol.smearing_ev},
        spinpol=spin,
        maxiter=protocol.maxiter,
        convergence={"energy": protocol.energy_tol_ev},
        symmetry={"point_group": True, "time_reversal": True},
        txt=txt,
    )


def single_point(atoms, protocol: Protocol, txt: str | None = None, gamma_only: bool = False,
                 force_spin: bool | None = None, kpts: tuple[int, int, int] | None = None) -> dict:
    """GPAW total energy of `atoms` (ASE Atoms, modified: calc attached). Raises on SCF failure.

    Returns energy_ev (total, eV), energy_per_atom, magmom (total, μB), n_kpts (irreducible), n_scf, wall_s.
    """
    symbols = atoms.get_chemical_symbols()
    spin = needs_spin(symbols) if force_spin is None else force_spin
    if spin and not np.any(atoms.get_initial_magnetic_moments()):
        atoms.set_initial_magnetic_moments(initial_magmoms(symbols))
    elif not spin:
        atoms.set_initial_magnetic_moments(None)
    start = time.perf_counter()
    atoms.calc = make_calculator(protocol, spin, txt=txt, gamma_only=gamma_only, kpts=kpts)
    energy = float(atoms.get_potential_energy())
    calc = atoms.calc
    return {
        "energy_ev": energy,
        "energy_per_atom": energy / len(atoms),
        "magmom": float(calc.get_magnetic_moment()) if spin else 0.0,
        "spin": spin,
        "n_kpts": int(len(calc.get_ibz_k_points())),
        "n_scf": int(calc.get_number_of_iterations() or 0),
        "wall_s": time.perf_counter() - start,
    }


def convergence_test(
    structures: Sequence[tuple[str, object]],
    cutoffs_ev: Sequence[float] = (400, 500, 600),
    kpt_densities: Sequence[float] = (2.0, 3.0, 4.0),
    base: Protocol | None = None,
    out_path: str | Path | None = None,
    with_references: bool = True,
    reference_cache: str | Path = "reports/dft/references",
    on_row=None,
) -> dict:
    """Total energy per atom (and formation energy per atom) against cutoff at fixed k-density, and against
    k-density at fixed cutoff, for a few (name, pymatgen Structure) pairs.

    The cutoff scan uses `base.kpt_density`, the k-point scan `base.cutoff_ev`. With `with_references`, the
    elements' reference energies are computed at every setting too, so the formation energy's convergence (which
    benefits from error cancellation) is shown next to the total energy's. Errors are relative to the largest
    setting. Writes JSON to `out_path` when given and returns the same dict.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.dft.install import ensure_gpaw
    from autoperi.dft.references import choose_reference_structures

    base = base or Protocol()
    version = ensure_gpaw()
    settings = [("cutoff_ev", c) for c in cutoffs_ev] + [("kpt_density", k) for k in kpt_densities]
    rows, seen = [], {}
    elements = {el for _, s in structures for el in s.composition.get_el_amt_dict()}
    refs = choose_reference_structures(elements) if with_references else {}
    for name, structure in structures:
        composition = structure.composition.get_el_amt_dict()
        for key, value in settings:
            protocol = dataclasses.replace(base, **{key: float(value)})
            atoms = AseAtomsAdaptor.get_atoms(structure)
            row = {"structure": name, "formula": structure.composition.reduced_formula, "scan": key,
                   "value": float(value), "n_atoms": len(structure)}
            if (name, protocol) not in seen:  # the base setting appears in both scans: compute it once
                seen[(name, protocol)] = single_point(atoms, protocol)
            row.update(seen[(name, protocol)])
            if with_references:
                mu = {el: _reference_waiting(el, protocol, refs[el], reference_cache) for el in composition}
                total_mu = sum(n * mu[el] for el, n in composition.items())
                row["formation_energy_per_atom"] = (row["energy_ev"] - total_mu) / len(structure)
            rows.append(row)
            if on_row is not None:  # e.g. write what is done so far (a long test loses nothing when stopped)
                on_row(row)
    add_convergence_errors(rows)
    result = {"gpaw_version": version, "base_protocol": base.as_dict(), "rows": rows}
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(result, indent=1))
    return result


def add_convergence_errors(rows: list[dict]) -> list[dict]:
    """Set d_energy_per_atom_mev / d_formation_mev of each row: the difference to the largest value of the same
    (structure, scan), meV/atom."""
    for row in rows:
        same = [r for r in rows if r["structure"] == row["structure"] and r["scan"] == row["scan"]]
        last = max(same, key=lambda r: r["value"])
        row["d_energy_per_atom_mev"] = 1000 * (row["energy_per_atom"] - last["energy_per_atom"])
        if "formation_energy_per_atom" in row and "formation_energy_per_atom" in last:
            row["d_formation_mev"] = 1000 * (row["formation_energy_per_atom"] - last["formation_energy_per_atom"])
    return rows


def _reference_waiting(element: str, protocol: Protocol, chosen: dict, cache_dir, poll_s: float = 10.0) -> float:
    """μ_el (eV/atom) computed here, or read from the cache once another run that holds its lock has written it."""
    from autoperi.dft.references import ReferenceBusy, reference_energy

    while True:
        try:
            return reference_energy(element, protocol, chosen["atoms"].copy(), chosen["structure_source"],
                                    chosen["molecule"], cache_dir=cache_dir)["energy_per_atom"]
        except ReferenceBusy:
            time.sleep(poll_s)


def converged_setting(result: dict, scan: str, tol_total_mev: float = 5.0, tol_formation_mev: float = 15.0) -> float:
    """Smallest value of `scan` from which every later value stays within the tolerances (|ΔE/atom| ≤
    tol_total_mev and |ΔE_f/atom| ≤ tol_formation_mev of the largest setting) for every structure."""
    rows = [r for r in result["rows"] if r["scan"] == scan]
    values = sorted({r["value"] for r in rows})
    for value in values:
        ok = all(
            abs(r["d_energy_per_atom_mev"]) <= tol_total_mev
            and abs(r.get("d_formation_mev", 0.0)) <= tol_formation_mev
            for r in rows if r["value"] >= value
        )
        if ok:
            return value
    return math.nan
