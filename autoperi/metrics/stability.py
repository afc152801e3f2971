"""Stability of generated crystals with CHGNet: relaxation success, RMSD to the relaxed cell, E_hull, S.U.N.

The study's "relaxation failures" claim is first measured with the ML potential CHGNet 0.3.0 (`potential.py`), against
a self-consistent CHGNet hull of each dataset's own structures (`hull.py`). Every stability number is therefore
*self-consistent CHGNet, not DFT*: generated and reference energies come from the same model.

The evaluation calls exactly these names (re-exported here):
  load_chgnet, chgnet_energies, chgnet_embeddings   (potential.py)
  reference_hull, e_above_hull                      (hull.py)
  relax_structures, stability_summary               (here)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from autoperi.metrics.hull import SELF_CONSISTENT_NOTE, ReferenceHull, e_above_hull, reference_hull
from autoperi.metrics.matching import MATCHER_TOLERANCES
from autoperi.metrics.potential import chgnet_embeddings, chgnet_energies, load_chgnet, relax_structure
from autoperi.parallel import fan_out

__all__ = [
    "SELF_CONSISTENT_NOTE",
    "ReferenceHull",
    "chgnet_embeddings",
    "chgnet_energies",
    "e_above_hull",
    "load_chgnet",
    "reference_hull",
    "relax_structures",
    "relaxation_rmsd",
    "stability_summary",
]

RELAX_COLUMNS = (
    "converged",
    "n_steps",
    "energy_per_atom",
    "initial_energy_per_atom",
    "rmsd_angstrom",
    "rmsd_normalized",
    "error",
    "relaxed_cif",
    "wall_s",
    "cache_key",
)
# Tolerance on E_hull ≤ 0.0: a reference structure on the hull comes back as ±1e-12 eV/atom from qhull.
ON_HULL_TOLERANCE_EV = 1e-8


def relaxation_rmsd(generated: Structure, relaxed: Structure) -> tuple[float, float]:
    """(RMSD in Å, RMSD normalised) from the generated to the relaxed crystal; (NaN, NaN) when they do not match.

    pymatgen's `StructureMatcher.get_rms_dist` (CDVAE tolerances ltol 0.3, stol 0.5, angle 10°) first scales both
    cells to a common volume (geometric mean of the two) and returns the site RMS displacement divided by
    (V/n)^(1/3) of that common cell. Multiplying back by (sqrt(V_gen · V_relaxed) / n)^(1/3) gives Å: the
    displacement of sites after the isotropic volume change is taken out (a pure expansion scores 0).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    result = StructureMatcher(**MATCHER_TOLERANCES["cdvae"]).get_rms_dist(generated, relaxed)
    if result is None:
        return math.nan, math.nan
    normalised = float(result[0])
    length = (math.sqrt(generated.volume * relaxed.volume) / len(generated)) ** (1 / 3)
    return normalised * length, normalised


def structure_key(structure: Structure, fmax: float, max_steps: int) -> str:
    """Content hash of a relaxation task: geometry (rounded to 1e-6), species, settings and model."""
    payload = dict(
        lattice=np.round(structure.lattice.matrix, 6).tolist(),
        species=[site.species_string for site in structure],
        frac=np.round(structure.frac_coords % 1.0, 6).tolist(),
        fmax=fmax,
        max_steps=max_steps,
        model="chgnet-0.3.0",
    )
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _relax_task(task: tuple[Structure, float, int]) -> dict:
    """One relaxation → one JSON-able row (runs on a dask worker)."""
    structure, fmax, max_steps = task
    t0 = time.perf_counter()
    result = relax_structure(structure, fmax=fmax, max_steps=max_steps)
    relaxed = result.pop("relaxed")
    rmsd, rmsd_norm = math.nan, math.nan
    if relaxed is not None and not result["error"]:
        try:
            rmsd, rmsd_norm = relaxation_rmsd(structure, relaxed)
        except Exception as exc:  # matcher failures on odd cells are recorded, not raised
            result["error"] = f"rmsd: {type(exc).__name__}: {exc}"[:300]
    result.update(
        rmsd_angstrom=rmsd,
        rmsd_normalized=rmsd_norm,
        relaxed_cif=relaxed.to(fmt="cif") if relaxed is not None else "",
        wall_s=round(time.perf_counter() - t0, 3),
    )
    return result


def _write_atomic(path: Path, row: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(row, allow_nan=True) + "\n")
    tmp.replace(path)


def relax_structures(
    structures: Sequence[Structure],
    fmax: float = 0.1,
    max_steps: int = 500,
    client=None,
    cache_dir: str | Path | None = None,
    desc: str | None = "CHGNet relax",
) -> pd.DataFrame:
    """CHGNet relaxation (FIRE, cell + positions, `potential.relax_structure`) of each structure; one row per
    input, in order, with columns:
      converged        bool: max force ≤ fmax eV/Å within max_steps and no failed check
      n_steps          FIRE steps taken
      energy_per_atom  final CHGNet energy, eV/atom (self-consistent CHGNet, not DFT)
      initial_energy_per_atom  CHGNet energy of the submitted structure, eV/atom
      rmsd_angstrom    generated → relaxed RMS displacement, Å (`relaxation_rmsd`; NaN when no match)
      rmsd_normalized  the same divided by (V/n)^(1/3), pymatgen's own unit
      error            '' or why the relaxation failed (exception, non-finite, exploded, collapsed); never raised
      relaxed_cif      the relaxed crystal as CIF text ('' if none)
      wall_s, cache_key
    One dask task per structure through `autoperi.parallel.fan_out` (`client=None` runs serially). With
    `cache_dir`, each result is written as `<cache_dir>/<cache_key>.json` as soon as it finishes, and structures
    whose file exists are not relaxed again, so a killed run resumes where it stopped.
    """
    structures = list(structures)
    keys = [structure_key(s, fmax, max_steps) for s in structures]
    rows: dict[str, dict] = {}
    folder = Path(cache_dir) if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for key in set(keys):
            path = folder / f"{key}.json"
            if path.exists():
                try:
                    rows[key] = json.loads(path.read_text())
                except json.JSONDecodeError:  # a file cut short by a kill: relax again
                    path.unlink()
    todo = list(dict.fromkeys(k for k in keys if k not in rows))
    first = {k: i for i, k in reversed(list(enumerate(keys)))}

    def store(i: int, row: dict) -> None:
        row["cache_key"] = todo[i]
        rows[todo[i]] = row
        if folder is not None:
            _write_atomic(folder / f"{todo[i]}.json", row)

    fan_out(_relax_task, [(structures[first[k]], fmax, max_steps) for k in todo], client, desc=desc, on_result=store)
    table = pd.DataFrame([{**rows[k], "cache_key": k} for k in keys], columns=list(RELAX_COLUMNS))
    table["converged"] = table["converged"].astype(bool)
    table["n_steps"] = table["n_steps"].astype(int)
    table["error"] = table["error"].fillna("").astype(str)
    return table


def stability_summary(table: pd.DataFrame, unique: Sequence[bool], novel: Sequence[bool], n_submitted: int) -> dict:
    """Stability metrics (percent, 0–100), all over `n_submitted` = structures submitted to the stability check.

    `table` has one row per relaxed structure with `converged` (bool) and `e_hull` (eV/atom, self-consistent
    CHGNet hull); `unique`, `novel` are bools aligned with its rows. Submitted structures absent from `table`
    (e.g. refused before relaxation) and failed relaxations count against the model, as in MatterGen.
      n_relaxed     rows of `table` (relaxations attempted)
      relax_success converged relaxations / n_submitted
      rmsd_mean     mean `rmsd_angstrom` (Å) over converged rows with a match; None if none (or no column)
      stable_0_1    converged ∧ E_hull ≤ 0.1 eV/atom, / n_submitted
      stable_0_0    converged ∧ E_hull ≤ 0.0 eV/atom (within 1e-8), / n_submitted
      sun           S.U.N. (MatterGen): converged ∧ E_hull ≤ 0.1 ∧ unique ∧ novel, / n_submitted
    NaN E_hull (element outside the hull) never counts as stable.
    """
    if n_submitted <= 0:
        raise ValueError("stability_summary: n_submitted must be positive")
    if len(table) > n_submitted:
        raise ValueError(f"stability_summary: {len(table)} rows but only {n_submitted} structures submitted")
    unique, novel = np.asarray(unique, dtype=bool), np.asarray(novel, dtype=bool)
    if not len(unique) == len(novel) == len(table):
        raise ValueError("stability_summary: unique/novel must align with the table rows")
    converged = table["converged"].to_numpy(dtype=bool)
    e_hull = table["e_hull"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        stable_01 = converged & (e_hull <= 0.1)
        stable_00 = converged & (e_hull <= ON_HULL_TOLERANCE_EV)
    rmsd_mean = None
    if "rmsd_angstrom" in table:
        rmsd = table["rmsd_angstrom"].to_numpy(dtype=float)[converged]
        rmsd = rmsd[np.isfinite(rmsd)]
        rmsd_mean = float(rmsd.mean()) if rmsd.size else None

    def pct(mask):
        return 100.0 * float(np.count_nonzero(mask)) / n_submitted

    return dict(
        n_relaxed=int(len(table)),
        relax_success=pct(converged),
        rmsd_mean=rmsd_mean,
        stable_0_1=pct(stable_01),
        stable_0_0=pct(stable_00),
        sun=pct(stable_01 & unique & novel),
    )
