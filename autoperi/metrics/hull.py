"""Self-consistent CHGNet convex hulls: each dataset's own structures plus CHGNet elemental references.

Every energy on these hulls is a CHGNet 0.3.0 single point (or a CHGNet relaxation for the elemental references),
and generated structures are scored with the same model, so E_hull is *self-consistent CHGNet*, not DFT: it says
how far a generated crystal lies above the dataset's known crystals as CHGNet sees them.

Reference entries, per dataset:
1. Every train + val + test structure (already DFT-relaxed), one CHGNet single point each, at its stored geometry.
   With a cap (`evaluation.hull_max_reference`), structures are taken in the order: each reduced formula's lowest
   DFT energy first (the only polymorph that can sit on the hull in DFT), then the next, ...; ties in random order
   (`evaluation.seed`). Rows CHGNet cannot evaluate are skipped and counted. Optionally (`relax_references`) each
   is also CHGNet-relaxed, for datasets whose geometries are far from CHGNet minima (perov_5; see `reference_hull`).
2. Elemental references for every element the dataset contains (`elemental_references`). The benchmarks mostly hold
   no elemental crystals (Perov-5 and MP-20 binary+ternary none at all), and a hull without its corners is
   undefined, so each element gets the lowest CHGNet energy among: the dataset's unary structures (step 1),
   fcc, bcc, hcp (ideal c/a), diamond and simple-cubic cells, ASE's reference crystal for the element when it builds
   one (e.g. rhombohedral As/Sb/Bi, real c/a of hcp Zn/Cd), textbook ground states where the simple cells fall far
   short (`KNOWN_STRUCTURES`: graphite, alpha-B, black P, helical-chain S/Se/Te, alpha-Ga), and for H, N, O, F, Cl,
   Br, I a diatomic molecule in a 10 Å box (H, N, O, F: only the molecule; noble gases start from van der Waals
   contact). Each candidate is scanned in volume (isotropic scaling: the only free parameter of the cubic
   prototypes; bond length for molecules) with single points, and the best candidate is then fully relaxed (FIRE,
   cell + positions, fmax 0.1 eV/Å, ≤ 150 steps) and kept if the relaxation ran without error. Simple prototypes
   miss complex ground states not listed (alpha-Mn, S8 rings, I2 crystals), so those corners may sit too high,
   which makes nearby compositions look more stable than they are; the dataset's own compounds bound the hull
   wherever they exist (`benchmarks/chgnet_stability.py` checks the references against DFT formation energies).

The hull object: a full `PhaseDiagram` over 87 elements is out of reach for qhull, and a generated composition may
fall in a chemical system that no single reference covers, so `ReferenceHull` keeps all entries and builds the
pymatgen `PhaseDiagram` of each queried chemical system lazily from the entries whose elements it contains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Lattice, Structure

from autoperi.data.preprocess import record_to_structure
from autoperi.metrics.potential import chgnet_energies, relax_structure
from autoperi.parallel import fan_out

log = logging.getLogger(__name__)

SELF_CONSISTENT_NOTE = (
    "E_hull is self-consistent CHGNet 0.3.0: generated and reference energies from the same model, not DFT"
)
MOLECULAR_ELEMENTS = ("H", "N", "O", "F", "Cl", "Br", "I")
# Atomic prototypes of these are meaningless (tiny covalent radii: compressed cells with thousands of CHGNet bonds
# per atom); only the molecule is scanned.
MOLECULE_ONLY = ("H", "N", "O", "F")
NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe", "Rn")
# Scan points below this volume per atom are skipped: CHGNet's graph (6 Å bonds, 3 Å angles) grows as 1/V and V²,
# and a 1-atom cell squeezed below ~4 Å^3 runs out of memory (seen: 18 GB) without being a plausible ground state.
MIN_SCAN_VOLUME_PER_ATOM = 4.0
PROTOTYPES = ("fcc", "bcc", "hcp", "diamond", "sc")
# Volume scan for the elemental prototypes: factors on the volume of a cell whose nearest-neighbour distance is twice
# the covalent radius (noble gases sit near the top of the range, compressed metals near the bottom).
SCAN_VOLUME_FACTORS = np.geomspace(0.5, 4.0, 19)
# Known ground-state (or near-ground-state) structures for elements whose simple prototypes fall far short:
# (space group, a, b, c, alpha, beta, gamma in Å/degrees, Wyckoff representatives). Textbook geometries; the volume
# scan and relaxation below adjust them to CHGNet. S uses Se's helical chain (fibrous S; alpha-S8 has 128 atoms).
KNOWN_STRUCTURES: dict[str, tuple[tuple[str, str, tuple, list], ...]] = {
    "C": (("graphite", "P6_3/mmc", (2.464, 2.464, 6.711, 90, 90, 120), [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25]]),),
    "B": (
        (
            "alpha-B",
            "R-3m",
            (4.908, 4.908, 12.567, 90, 90, 120),
            [[0.11886, 0.88114, 0.89133], [0.19686, 0.80314, 0.02432]],
        ),
    ),
    "P": (("black-P", "Cmce", (3.314, 10.478, 4.376, 90, 90, 90), [[0, 0.10168, 0.08056]]),),
    "S": (("chain", "P3_121", (4.366, 4.366, 4.954, 90, 90, 120), [[0.2254, 0, 1 / 3]]),),
    "Se": (("chain", "P3_121", (4.366, 4.366, 4.954, 90, 90, 120), [[0.2254, 0, 1 / 3]]),),
    "Te": (("chain", "P3_121", (4.457, 4.457, 5.929, 90, 90, 120), [[0.2636, 0, 1 / 3]]),),
    "Ga": (("alpha-Ga", "Cmce", (4.5192, 7.6586, 4.5258, 90, 90, 90), [[0, 0.1549, 0.081]]),),
}
ELEMENT_RELAX_STEPS = 150


class ReferenceHull:
    """Convex hulls of reference entries, one pymatgen `PhaseDiagram` per queried chemical system (built lazily).

    entries: PDEntry with total energies (eV), `entry_id` set. `phase_diagram(elements)` → the PhaseDiagram of all
    entries whose elements are a subset of `elements` (needs an entry for each element).
    """

    def __init__(self, entries: Sequence[PDEntry]):
        self.all_entries = list(entries)
        self._by_chemsys: dict[frozenset, list[PDEntry]] = defaultdict(list)
        for entry in self.all_entries:
            self._by_chemsys[frozenset(el.symbol for el in entry.composition.elements)].append(entry)
        self.elements = frozenset(s for key in self._by_chemsys for s in key)
        self._diagrams: dict[frozenset, PhaseDiagram] = {}

    def __len__(self) -> int:
        return len(self.all_entries)

    def phase_diagram(self, elements: Iterable[str]) -> PhaseDiagram:
        key = frozenset(elements)
        if key not in self._diagrams:
            missing = key - self.elements
            if missing:
                raise KeyError(f"no reference entries for element(s) {sorted(missing)}")
            entries = [
                e
                for k in range(1, len(key) + 1)
                for sub in combinations(sorted(key), k)
                for e in self._by_chemsys.get(frozenset(sub), ())
            ]
            self._diagrams[key] = PhaseDiagram(entries)
        return self._diagrams[key]

    def e_above_hull(self, composition: Composition, energy_per_atom: float) -> float:
        """Energy above (negative: below) this hull, eV/atom, of a phase with this composition and energy."""
        entry = PDEntry(composition, energy_per_atom * composition.num_atoms)
        pd = self.phase_diagram(el.symbol for el in composition.elements)
        _, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
        return float(e_hull)


def e_above_hull(
    phase_diagram: ReferenceHull | PhaseDiagram,
    structures: Sequence[Structure | Composition],
    energies_per_atom: Sequence[float],
    report: dict | None = None,
) -> np.ndarray:
    """E_hull per structure, eV/atom, shape [n]: energy above the hull of the same chemical system (negative when
    below it, via `get_decomp_and_e_above_hull(allow_negative=True)`). NaN where the energy is NaN or the
    composition holds an element the hull lacks; both are counted in `report` (n_outside_hull, n_nan_energy) and
    logged. With CHGNet energies this is self-consistent CHGNet, not DFT (see module docstring).
    """
    out = np.full(len(structures), math.nan)
    n_outside = n_nan = 0
    known = (
        phase_diagram.elements
        if isinstance(phase_diagram, ReferenceHull)
        else {el.symbol for el in phase_diagram.elements}
    )
    for i, (item, energy) in enumerate(zip(structures, energies_per_atom, strict=True)):
        composition = item.composition if isinstance(item, Structure) else Composition(item)
        if not {el.symbol for el in composition.elements} <= set(known):
            n_outside += 1
            continue
        if energy is None or not math.isfinite(energy):
            n_nan += 1
            continue
        if isinstance(phase_diagram, ReferenceHull):
            out[i] = phase_diagram.e_above_hull(composition, float(energy))
        else:
            entry = PDEntry(composition, float(energy) * composition.num_atoms)
            out[i] = phase_diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)[1]
    if n_outside or n_nan:
        log.warning(
            "e_above_hull: %d structure(s) with elements outside the hull, %d without energy → NaN", n_outside, n_nan
        )
    if report is not None:
        report.update(n_outside_hull=n_outside, n_nan_energy=n_nan)
    return out


def _prototype(symbol: str, kind: str, nn_distance: float) -> Structure:
    """One elemental cell with nearest-neighbour distance `nn_distance` Å (volume then scanned)."""
    from ase import Atoms
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    d = nn_distance
    if kind.startswith("known:"):
        name = kind.split(":", 1)[1]
        _, group, params, sites = next(k for k in KNOWN_STRUCTURES[symbol] if k[0] == name)
        cell = Structure.from_spacegroup(group, Lattice.from_parameters(*params), [symbol] * len(sites), sites)
        return cell.get_primitive_structure()
    if kind == "molecule":
        atoms = Atoms(symbol * 2, positions=[[0, 0, 0], [0, 0, d]], cell=[10, 10, 10], pbc=True)
    elif kind == "ase_reference":
        atoms = bulk(symbol)
    else:
        a = {"fcc": math.sqrt(2) * d, "bcc": 2 * d / math.sqrt(3), "sc": d, "diamond": 4 * d / math.sqrt(3), "hcp": d}[
            kind
        ]
        atoms = bulk(symbol, kind, a=a, c=1.633 * a) if kind == "hcp" else bulk(symbol, kind, a=a)
    return AseAtomsAdaptor.get_structure(atoms)


def _scaled(structure: Structure, kind: str, factor: float) -> Structure:
    if kind == "molecule":  # scan the bond length, keep the box
        s = structure.copy()
        z = s.cart_coords[1][2] * factor ** (1 / 3)
        s.replace(1, s.species[1], [0, 0, z], coords_are_cartesian=True)
        return s
    return Structure(structure.lattice.matrix * factor ** (1 / 3), structure.species, structure.frac_coords)


def elemental_references(symbols: Iterable[str], cache_path: Path | None = None, relax: bool = True) -> dict:
    """{symbol: {energy_per_atom, prototype, volume_per_atom, relaxed, candidates}} — CHGNet elemental references
    (protocol in the module docstring), computed once per element and cached in `cache_path` (JSON) when given."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.data.vdw import vdw_radii

    cache = json.loads(cache_path.read_text()) if cache_path is not None and cache_path.exists() else {}
    for symbol in sorted(set(symbols) - set(cache)):
        z = atomic_numbers[symbol]
        d0 = 2 * (vdw_radii[z] if symbol in NOBLE_GASES else covalent_radii[z])  # noble gases: van der Waals contact
        kinds = [] if symbol in MOLECULE_ONLY else list(PROTOTYPES) + ["ase_reference"]
        kinds += ["molecule"] if symbol in MOLECULAR_ELEMENTS else []
        kinds += [f"known:{k[0]}" for k in KNOWN_STRUCTURES.get(symbol, ())]
        bases = {}
        for kind in kinds:
            try:
                bases[kind] = _prototype(symbol, kind, d0)
            except Exception:  # ASE has no reference crystal it can build for this element
                continue
        candidates = {}
        for kind, base in bases.items():
            near_real = kind in ("ase_reference", "molecule") or kind.startswith("known:")
            factors = np.geomspace(0.6, 1.7, 13) if near_real else SCAN_VOLUME_FACTORS
            if kind != "molecule":
                factors = factors[base.volume / len(base) * factors >= MIN_SCAN_VOLUME_PER_ATOM]
            if len(factors) == 0:
                continue
            coarse = chgnet_energies([_scaled(base, kind, f) for f in factors])
            if not np.isfinite(coarse).any():
                continue
            k = int(np.nanargmin(coarse))
            lo, hi = factors[max(k - 1, 0)], factors[min(k + 1, len(factors) - 1)]
            fine_factors = np.geomspace(lo, hi, 9)
            fine_factors = fine_factors[
                (kind == "molecule") | (base.volume / len(base) * fine_factors >= MIN_SCAN_VOLUME_PER_ATOM)
            ]
            fine = chgnet_energies([_scaled(base, kind, f) for f in fine_factors])
            j = int(np.nanargmin(fine))
            candidates[kind] = (float(fine[j]), _scaled(base, kind, fine_factors[j]))
        best_kind = min(candidates, key=lambda k: candidates[k][0])
        energy, structure = candidates[best_kind]
        record = dict(
            energy_per_atom=energy,
            prototype=best_kind,
            relaxed=False,
            volume_per_atom=structure.volume / len(structure),
            candidates={k: v[0] for k, v in candidates.items()},
        )
        if relax:
            result = relax_structure(
                structure, fmax=0.1, max_steps=ELEMENT_RELAX_STEPS, relax_cell=best_kind != "molecule"
            )
            if not result["error"] and result["energy_per_atom"] < energy:
                record.update(
                    energy_per_atom=result["energy_per_atom"],
                    relaxed=True,
                    relax_converged=result["converged"],
                    relax_steps=result["n_steps"],
                    volume_per_atom=result["relaxed"].volume / len(structure),
                )
        cache[symbol] = record
        if cache_path is not None:  # after each element, so a killed build keeps what it finished
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return {s: cache[s] for s in symbols}


DFT_ENERGY_COLUMNS = ("formation_energy_per_atom", "heat_of_formation", "energy_per_atom")


def _reference_order(frame, cap: int | None, seed: int):
    """Row order for a capped hull: each reduced formula's lowest-DFT-energy polymorph first, random ties."""
    if cap is None or cap >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    frame = frame.assign(_tie=rng.random(len(frame)))
    column = next((c for c in DFT_ENERGY_COLUMNS if c in frame.columns), None)
    keys = [column, "_tie"] if column else ["_tie"]
    frame = frame.sort_values(keys, na_position="last")
    frame = frame.assign(_rank=frame.groupby("reduced_formula").cumcount())
    return frame.sort_values(["_rank", "_tie"]).head(cap).drop(columns=["_tie", "_rank"])


HULL_CHUNK = 500  # structures per single-point task: the unit of resume and of dask fan-out


def _chunk_energies(task: tuple[list[dict], int]) -> dict:
    """{energies: CHGNet eV/atom of processed rows, seconds: compute time} (runs on a dask worker)."""
    records, batch_size = task
    t0 = time.perf_counter()
    energies = chgnet_energies([record_to_structure(r) for r in records], batch_size=batch_size).tolist()
    return dict(energies=energies, seconds=round(time.perf_counter() - t0, 4))


def _read_chunk(path: Path) -> dict:
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else dict(energies=data, seconds=None)  # early builds saved bare lists


def reference_single_points(
    params, dataset: str, batch_size: int = 64, client=None, desc: str | None = None
) -> tuple[list[dict], list[float], dict]:
    """(processed rows in hull order, CHGNet single points eV/atom, timing info) of the dataset's references.

    Chunks of `HULL_CHUNK` rows are one dask task each and are saved under `<dataset>/single_points/` as they
    finish; saved chunks are read back instead of recomputed.
    """
    from autoperi.data.registry import load_processed

    folder = params.path(params.evaluation.references_dir) / dataset
    frame = load_processed(params, [dataset])[dataset]
    n_rows = len(frame)
    frame = _reference_order(frame, params.evaluation.hull_max_reference, params.evaluation.seed)
    records = frame[["id", "lattice", "atomic_numbers", "frac_coords"]].to_dict("records")
    chunk_dir = folder / "single_points"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    chunks = [records[i : i + HULL_CHUNK] for i in range(0, len(records), HULL_CHUNK)]
    names = [
        f"{k:04d}_" + hashlib.sha256(json.dumps([str(r["id"]) for r in c]).encode()).hexdigest()[:16] + ".json"
        for k, c in enumerate(chunks)
    ]
    done = {k: _read_chunk(chunk_dir / n) for k, n in enumerate(names) if (chunk_dir / n).exists()}
    todo = [k for k in range(len(chunks)) if k not in done]

    def store(i: int, result: dict) -> None:
        done[todo[i]] = result
        (chunk_dir / names[todo[i]]).write_text(json.dumps(result) + "\n")

    t_sp = time.perf_counter()
    fan_out(_chunk_energies, [(chunks[k], batch_size) for k in todo], client, desc=desc, on_result=store)
    t_single = time.perf_counter() - t_sp
    energies = [e for k in range(len(chunks)) for e in done[k]["energies"]]
    n_computed = sum(len(chunks[k]) for k in todo)
    seconds = [done[k]["seconds"] for k in range(len(chunks))]
    info = dict(
        n_dataset_rows=n_rows,
        # compute time of every chunk, whichever run made it (None where an early build did not record it)
        single_points_s_all_chunks=round(sum(seconds), 3) if None not in seconds else None,
        single_points_s=round(t_single, 3),
        n_single_points_this_run=n_computed,
        single_points_per_s=round(n_computed / t_single, 2) if n_computed else None,
    )
    return records, energies, info


def reference_hull(
    params,
    dataset: str,
    force: bool = False,
    batch_size: int = 64,
    client=None,
    desc: str | None = "CHGNet hull",
    relax_references: bool = False,
) -> ReferenceHull:
    """The CHGNet reference hull of `dataset` (module docstring), built once and cached.

    Cache: `<references_dir>/<dataset>/hull.json` (entries: id, composition, energy [eV, total], energy_per_atom),
    `hull_meta.json` (sizes, build time, cap, skipped rows, note); elemental references shared across datasets in
    `<references_dir>/chgnet_elements.json`. A second call only reads the JSON (`force=True` rebuilds). Single
    points run in chunks of `HULL_CHUNK` structures (one dask task each on `client`), each chunk saved under
    `<dataset>/single_points/` as it finishes, so an interrupted build resumes. The cache is rebuilt when the cap or
    `relax_references` differ from the cached build.

    `relax_references=True` also relaxes every reference with CHGNet (`relax_structures`, the same protocol as the
    generated structures, cached per structure under `<dataset>/relaxations/`) and uses min(single point, relaxed
    energy). Needed where the dataset's geometries are not near CHGNet minima: measured relaxation energies were
    ≤ 0.01 eV/atom for 6 mp20_bt rows (MP, PBE like CHGNet's training data) but 0–0.76 eV/atom for 6 perov_5
    rows (Castelli et al.'s cubic perovskites), so a single-point perov_5 hull sits too high and flatters relaxed
    generated crystals. Costs a relaxation per reference: use it with a cap.
    """
    folder = params.path(params.evaluation.references_dir) / dataset
    hull_file, meta_file = folder / "hull.json", folder / "hull_meta.json"
    cap = params.evaluation.hull_max_reference
    if hull_file.exists() and meta_file.exists() and not force:
        meta = json.loads(meta_file.read_text())
        if meta.get("hull_max_reference") == cap and meta.get("relaxed_references", False) == relax_references:
            return ReferenceHull([_entry(r) for r in json.loads(hull_file.read_text())])

    t0 = time.perf_counter()
    records, energies, sp_info = reference_single_points(params, dataset, batch_size, client, desc)
    structures = [record_to_structure(r) for r in records]
    relax_info = {}
    if relax_references:
        from autoperi.metrics.stability import relax_structures

        table = relax_structures(
            structures,
            fmax=params.evaluation.relax_fmax_ev_per_angstrom,
            max_steps=params.evaluation.relax_max_steps,
            client=client,
            cache_dir=folder / "relaxations",
            desc=desc and f"{desc} relax",
        )
        relaxed = np.where(table.error == "", table.energy_per_atom.to_numpy(dtype=float), np.nan)
        single = np.asarray(energies, dtype=float)
        drop = single - relaxed
        energies = np.fmin(single, relaxed).tolist()
        relax_info = dict(
            n_relax_ok=int(np.isfinite(relaxed).sum()),
            n_relax_converged=int(table.converged.sum()),
            relaxation_energy_median=float(np.nanmedian(drop)) if np.isfinite(drop).any() else None,
            relaxation_energy_p90=float(np.nanpercentile(drop, 90)) if np.isfinite(drop).any() else None,
        )
    rows, skipped = [], []
    for row, structure, energy in zip(records, structures, energies, strict=True):
        if not math.isfinite(energy):
            skipped.append(str(row["id"]))
            continue
        rows.append(
            dict(
                id=f"{dataset}:{row['id']}",
                composition=structure.composition.formula,
                energy=float(energy) * len(structure),
                energy_per_atom=float(energy),
            )
        )
    elements = sorted({el.symbol for s in structures for el in s.composition.elements})
    t_el = time.perf_counter()
    refs = elemental_references(elements, params.path(params.evaluation.references_dir) / "chgnet_elements.json")
    t_elements = time.perf_counter() - t_el
    for symbol, ref in refs.items():
        rows.append(
            dict(
                id=f"element:{symbol}:{ref['prototype']}",
                composition=symbol,
                energy=ref["energy_per_atom"],
                energy_per_atom=ref["energy_per_atom"],
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    hull_file.write_text(json.dumps(rows) + "\n")
    meta = dict(
        dataset=dataset,
        n_entries=len(rows),
        n_dataset_entries=len(rows) - len(refs),
        n_elemental_entries=len(refs),
        n_skipped=len(skipped),
        skipped_ids=skipped[:1000],
        hull_max_reference=cap,
        relaxed_references=relax_references,
        **relax_info,
        build_s=round(time.perf_counter() - t0, 1),
        **sp_info,
        elemental_s=round(t_elements, 1),
        model="CHGNet 0.3.0",
        note=SELF_CONSISTENT_NOTE,
    )
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return ReferenceHull([_entry(r) for r in rows])


def _entry(row: dict) -> PDEntry:
    return PDEntry(Composition(row["composition"]), row["energy"], name=row["id"], attribute=row["id"])
