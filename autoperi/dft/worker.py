"""One GPAW calculation in its own process: `python -m autoperi.dft.worker TASK.json RESULT.json`.

The runner starts this as a subprocess (so a wall-time limit can kill GPAW, which never returns to Python while
it iterates). The task JSON says what to do (kind: structure | reference); the result JSON always gets written
unless the process is killed, with status "ok" or "failed" and a reason (scf_not_converged, gpaw_error:<msg>).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path


def normalize_reason(reason: str) -> str:
    """Short failure reasons: a missing PAW dataset becomes no_paw_setup:<El> (Debian's gpaw-data 0.9.20000 has
    no lanthanides, actinides or Tc)."""
    match = re.search(r'Could not find required PAW dataset file "([A-Z][a-z]?)\.', reason)
    return f"no_paw_setup:{match.group(1)}" if match else reason


def _failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "ReferenceBusy":
        return "busy"
    if "ConvergenceError" in name:  # gpaw.KohnShamConvergenceError and relatives
        return "scf_not_converged"
    return normalize_reason(f"gpaw_error:{name}: {exc}"[:300])


def standard_orientation(structure):
    """The same crystal with a along x and b in the xy plane (right-handed; a left-handed cell becomes its mirror
    image, which has the same energy without spin-orbit coupling). GPAW 26 fails on some cells with negative
    diagonal lattice vectors (perov_5's (-a, -a, a) cells: 'negative dimensions' in its log's atom plot)."""
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.from_parameters(*structure.lattice.parameters)
    return Structure(lattice, structure.species, structure.frac_coords, site_properties=structure.site_properties)


def run_structure(task: dict) -> dict:
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.dft.protocol import Protocol, single_point

    protocol = Protocol(**task["protocol"])
    structure = standard_orientation(Structure.from_dict(task["structure"]))
    atoms = AseAtomsAdaptor.get_atoms(structure)
    for key in list(atoms.arrays):
        if key not in ("numbers", "positions"):
            del atoms.arrays[key]
    result = single_point(atoms, protocol, txt=task.get("txt"))
    if task.get("relax"):
        result.update(gpaw_relax(atoms, task["relax_fmax"], task["relax_steps"]))
    return result


def gpaw_relax(atoms, fmax: float, steps: int) -> dict:
    """Positions + cell with ASE's FrechetCellFilter + BFGS on the attached GPAW calculator; never raises."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    start = time.perf_counter()
    e0 = float(atoms.get_potential_energy())
    out = {"relax_fmax": fmax, "relax_steps_limit": steps}
    try:
        optimizer = BFGS(FrechetCellFilter(atoms), logfile=None)
        converged = bool(optimizer.run(fmax=fmax, steps=steps))
        e1 = float(atoms.get_potential_energy())
        out.update(relax_converged=converged, relax_n_steps=int(optimizer.nsteps),
                   relax_energy_drop_per_atom=(e0 - e1) / len(atoms), relax_error="")
    except Exception as exc:  # an SCF failure during relaxation is a failed relaxation, not a crash
        out.update(relax_converged=False, relax_n_steps=-1, relax_energy_drop_per_atom=math.nan,
                   relax_error=_failure_reason(exc))
    out["relax_wall_s"] = time.perf_counter() - start
    return out


def run_reference(task: dict) -> dict:
    from ase import Atoms

    from autoperi.dft.protocol import Protocol
    from autoperi.dft.references import reference_energy

    a = task["atoms"]
    atoms = Atoms(numbers=a["numbers"], positions=a["positions"], cell=a["cell"], pbc=True,
                  magmoms=a.get("magmoms"))
    return reference_energy(task["element"], Protocol(**task["protocol"]), atoms, task["structure_source"],
                            task["molecule"], cache_dir=task["cache_dir"])


def main(task_path: str, result_path: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    task = json.loads(Path(task_path).read_text())
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        result = (run_reference if task["kind"] == "reference" else run_structure)(task)
        result["status"] = "ok"
        result["reason"] = ""
    except Exception as exc:
        result = {"status": "failed", "reason": _failure_reason(exc), "traceback": traceback.format_exc()[-2000:]}
    result["worker_wall_s"] = time.perf_counter() - start
    result["cpu_s"] = time.process_time() - cpu_start  # one thread: the cost on one core, whatever the load
    result["process_cpu_s"] = time.process_time()  # including Python/GPAW imports
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result, default=float))
    tmp.replace(result_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
