"""The DFT stage: one GPAW task per structure (a subprocess under a wall-time limit), fanned out with dask, written
per structure as it finishes, resumable, and summarised.

Layout under `<out_dir>/<dataset>/`:
  <source>/structures/<name>.json   one record per structure (single point) and <name>__relax.json (relaxation)
  <source>/structures.csv           all records so far, rewritten as each one arrives
  <source>.json                     the summary (`summarize`)
A record is final once written: a resumed run skips every name with a record of the same structure, failures
included (a failure counts against the structure; it is not retried). A record of another structure under the same
name (the input file changed since) is moved to `<source>/structures/stale/` and the structure is run again.
Failure reasons: too_large, scf_not_converged, timeout,
gpaw_error:<msg>, reference_failed:<El> (the structure converged but an element's reference did not).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from autoperi.dft.protocol import Protocol
from autoperi.dft.worker import normalize_reason

CSV_COLUMNS = ["name", "kind", "formula", "n_atoms", "status", "reason", "energy_ev", "energy_per_atom", "spin",
               "magmom", "n_kpts", "n_scf", "wall_s", "cpu_s", "database_ef", "relax_converged", "relax_n_steps",
               "relax_energy_drop_per_atom", "relax_error", "relax_wall_s"]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(name))[:120]


def _die_with_parent() -> None:  # Linux: the GPAW child dies with the process that started it (a killed run)
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_task(task: dict) -> dict:
    """Run one worker task (`autoperi.dft.worker`) in a subprocess, killed after task['timeout_s'] seconds.

    Never raises for a calculation's failure: returns {'status': 'failed', 'reason': ...} instead.
    """
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(task.get("threads", 1)),
           "OPENBLAS_NUM_THREADS": str(task.get("threads", 1))}
    with tempfile.TemporaryDirectory(prefix="autoperi_dft_") as tmp:
        task_path, result_path = Path(tmp) / "task.json", Path(tmp) / "result.json"
        task_path.write_text(json.dumps(task))
        proc = subprocess.Popen([sys.executable, "-m", "autoperi.dft.worker", str(task_path), str(result_path)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=_die_with_parent)
        try:
            _, stderr = proc.communicate(timeout=task["timeout_s"])
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            result = {"status": "failed", "reason": "timeout"}
        else:
            if result_path.exists():
                result = json.loads(result_path.read_text())
            else:
                tail = (stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
                result = {"status": "failed", "reason": f"gpaw_error:worker exited {proc.returncode} {tail[0]}"[:300]}
    result.setdefault("wall_s", time.perf_counter() - start)
    result["task_wall_s"] = time.perf_counter() - start
    return result


def structure_tasks(
    structures: Sequence[tuple[str, object]], protocol: Protocol, timeout_s: float, max_atoms: int,
    relax_names: Sequence[str] = (), relax_inputs: dict | None = None, relax_fmax: float = 0.05,
    relax_steps: int = 30,
) -> list[dict]:
    """Worker tasks: a single point per structure, and a relaxation for each name in `relax_names` (starting
    from relax_inputs[name], e.g. the CHGNet-relaxed structure, when given)."""
    tasks = []
    for name, structure in structures:
        plain = _plain_dict(structure)
        base = {"kind": "structure", "protocol": protocol.as_dict(), "timeout_s": timeout_s,
                "formula": structure.composition.reduced_formula, "n_atoms": len(structure),
                "input_key": structure_key(plain)}  # what resuming checks a record against
        tasks.append({**base, "name": name, "structure": plain, "relax": False})
        if name in relax_names:
            start = (relax_inputs or {}).get(name, structure)
            tasks.append({**base, "name": f"{name}__relax", "structure": _plain_dict(start), "relax": True,
                          "input": plain, "relax_fmax": relax_fmax, "relax_steps": relax_steps,
                          "n_atoms": len(start)})
    for task in tasks:
        task["too_large"] = task["n_atoms"] > max_atoms
    return tasks


def _plain_dict(structure) -> dict:
    """Structure.as_dict() through pymatgen's JSON encoder: properties read from extxyz (numpy ints and arrays)
    become plain JSON values, so the task file can be written."""
    return json.loads(structure.to_json())


def _structure_or_skip(task: dict) -> dict:
    if task["too_large"]:
        return {"status": "failed", "reason": "too_large", "wall_s": 0.0}
    return run_task(task)


def _reference_task(task: dict) -> dict:
    return run_task(task)


def ensure_references(
    elements: Sequence[str], protocol: Protocol, cache_dir: Path, unary_table: Path | None, timeout_s: float,
    client=None,
) -> dict[str, dict]:
    """Reference records (cached per element; missing ones computed, one task each). Failed ones come back with
    status 'failed' and are not cached, so a later run tries them again."""
    from autoperi.dft.references import cached_reference, choose_reference_structures
    from autoperi.parallel import fan_out

    records = {el: cached_reference(el, protocol, cache_dir) for el in sorted(set(elements))}
    missing = [el for el, rec in records.items() if rec is None or rec.get("status") != "ok"]
    chosen = choose_reference_structures(missing, unary_table) if missing else {}
    for el in missing:
        if el not in chosen:
            records[el] = {"element": el, "status": "failed", "reason": "no_reference_structure"}
    missing = [el for el in missing if el in chosen]
    tasks = []
    for el in missing:
        atoms = chosen[el]["atoms"]
        tasks.append({"kind": "reference", "element": el, "protocol": protocol.as_dict(), "timeout_s": timeout_s,
                      "cache_dir": str(cache_dir), "structure_source": chosen[el]["structure_source"],
                      "molecule": chosen[el]["molecule"],
                      "atoms": {"numbers": atoms.numbers.tolist(), "positions": atoms.get_positions().tolist(),
                                "cell": np.asarray(atoms.cell).tolist(),
                                "magmoms": atoms.get_initial_magnetic_moments().tolist()}})
    while tasks:  # elements another run is computing right now ('busy') are asked again after the rest
        results = fan_out(_reference_task, tasks, client, desc="DFT references")
        busy = []
        for task, result in zip(tasks, results, strict=True):
            el = task["element"]
            records[el] = result if result.get("status") == "ok" else {"element": el, **result}
            if result.get("reason") == "busy":
                busy.append(task)
        if busy:
            time.sleep(10)
        tasks = busy
    return records


def structure_key(structure: dict) -> str:
    """sha256 of a structure dict's physical content (species, lattice and fractional coordinates to 1e-6; not the
    dict's bookkeeping keys, which differ between pymatgen versions): identifies what a record was computed for."""
    import hashlib

    from pymatgen.core import Structure

    s = Structure.from_dict(structure)
    # round, then wrap (0.9999999 and 0 are one position) and add 0.0 (no -0.0)
    content = [[site.specie.Z for site in s], (np.round(s.lattice.matrix, 6) + 0.0).tolist(),
               (np.mod(np.round(s.frac_coords, 6), 1.0) + 0.0).tolist()]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _record_input_key(records_dir: Path, record: dict) -> str | None:
    """The input structure a record was computed for. Records written before `input_key` existed: a single
    point's own structure; a relaxation's (which starts from the CHGNet-relaxed input) that of its single point."""
    if "input_key" in record:
        return record["input_key"]
    # an old relaxation whose single point is gone cannot be checked: it is set aside and rerun (safe, costs time)
    structure = _record_input(records_dir, record)
    return structure_key(structure) if structure is not None else None


# Two machines' BLAS kernels round differently: the same seeded sampling run elsewhere moves atoms by ~1e-5 Å
# (measured: ≤ 2.6e-5 Å over 1,000 Perov-5 samples), which flips the 1e-6 rounding of `structure_key`.
SAME_INPUT_TOLERANCE_ANGSTROM = 1e-4


def same_input(a: dict, b: dict, tol: float = SAME_INPUT_TOLERANCE_ANGSTROM) -> bool:
    """Whether two structure dicts are one crystal up to float noise: the same species in the same order, lattice
    vectors and (minimum-image) Cartesian positions within `tol` Å."""
    from pymatgen.core import Structure

    sa, sb = Structure.from_dict(a), Structure.from_dict(b)
    if [site.specie.Z for site in sa] != [site.specie.Z for site in sb]:
        return False
    if np.abs(sa.lattice.matrix - sb.lattice.matrix).max() > tol:
        return False
    delta = sa.frac_coords - sb.frac_coords
    delta -= np.round(delta)
    return len(sa) == 0 or float(np.linalg.norm(delta @ sa.lattice.matrix, axis=1).max()) <= tol


def _record_input(records_dir: Path, record: dict) -> dict | None:
    """The input structure a record was computed for, as a structure dict: a single point's own structure, a
    relaxation's through its single point."""
    if record.get("kind") != "relax":
        return record.get("structure")
    single = records_dir / f"{safe_name(record['name'].removesuffix('__relax'))}.json"
    return json.loads(single.read_text()).get("structure") if single.exists() else None


def is_finished(records_dir: Path, task: dict) -> bool:
    """Whether `task` has its record: one computed for the task's input structure, to float noise
    (SAME_INPUT_TOLERANCE_ANGSTROM). A record computed for another input structure under the task's name is moved to
    `stale/` (kept, never mixed into this run's results) and the task counts as not finished."""
    path = records_dir / f"{safe_name(task['name'])}.json"
    if not path.exists():
        return False
    record = json.loads(path.read_text())
    if _record_input_key(records_dir, record) == task["input_key"]:
        return True
    recorded = _record_input(records_dir, record)
    if recorded is not None and same_input(recorded, task.get("input", task["structure"])):
        return True
    stale = records_dir / "stale"
    stale.mkdir(exist_ok=True)
    target = stale / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.json"  # earlier stale copies are kept too
    path.replace(target)
    print(f"{path}: computed for another structure under this name (the input changed); moved to {target}, "
          "running it again", flush=True)
    return False


def run_structures(tasks: list[dict], folder: Path, client=None, database_ef: dict | None = None,
                   csv_tasks: list[dict] | None = None) -> list[dict]:
    """Run the tasks whose record does not exist yet; write each record (JSON + the CSV of `csv_tasks`, default
    `tasks`) as it finishes. Returns all records of `tasks` (old and new)."""
    csv_tasks = tasks if csv_tasks is None else csv_tasks
    from autoperi.parallel import fan_out

    records_dir = folder / "structures"
    records_dir.mkdir(parents=True, exist_ok=True)
    todo = [t for t in tasks if not is_finished(records_dir, t)]

    def on_result(i: int, result: dict) -> None:
        task = todo[i]
        record = {"name": task["name"], "kind": "relax" if task["relax"] else "single_point",
                  "formula": task["formula"], "n_atoms": task["n_atoms"],
                  "database_ef": (database_ef or {}).get(task["name"].removesuffix("__relax"), math.nan),
                  **{k: v for k, v in result.items() if k != "traceback"},
                  "traceback": result.get("traceback", ""), "structure": task["structure"],
                  "input_key": task["input_key"]}
        path = records_dir / f"{safe_name(task['name'])}.json"
        path.with_suffix(".tmp").write_text(json.dumps(record, default=float))
        path.with_suffix(".tmp").replace(path)
        write_csv(folder, csv_tasks)

    fan_out(_structure_or_skip, todo, client, desc=f"DFT {folder.name}" if todo else None, on_result=on_result)
    write_csv(folder, csv_tasks)
    return load_records(folder, tasks)


def task_elements(task: dict) -> set[str]:
    return {site["species"][0]["element"] for site in task["structure"]["sites"]}


def run_greedy(
    tasks: list[dict], folder: Path, protocol: Protocol, cache_dir: Path, unary_table: Path | None,
    timeout_s: float, client=None, database_ef: dict | None = None, batch: int = 1,
) -> dict[str, dict]:
    """References and structures interleaved, so finished formation energies arrive early: run every task whose
    elements all have a reference (or a failed one); when none is ready, compute the missing references of the
    `batch` tasks that miss the fewest. Returns the reference records of all elements of `tasks`."""
    from autoperi.dft.references import cached_reference

    records_dir = folder / "structures"
    pending = [t for t in tasks if not is_finished(records_dir, t)]
    references: dict[str, dict] = {}

    def status(el: str) -> str | None:
        if el in references:
            return references[el].get("status")
        rec = cached_reference(el, protocol, cache_dir)
        return rec.get("status") if rec else None

    while pending:
        ready = [t for t in pending if t["too_large"] or all(status(el) is not None for el in task_elements(t))]
        if ready:
            run_structures(ready, folder, client, database_ef, csv_tasks=tasks)
            pending = [t for t in pending if t not in ready]
            continue
        pending.sort(key=lambda t: (sum(status(el) is None for el in task_elements(t)), t["n_atoms"]))
        need = sorted({el for t in pending[:batch] for el in task_elements(t) if status(el) is None})
        references.update(ensure_references(need, protocol, cache_dir, unary_table, timeout_s, client))
    write_csv(folder, tasks)
    elements = sorted({el for t in tasks for el in task_elements(t)})
    ran = {el for t in tasks if not t["too_large"] for el in task_elements(t)}
    missing = [el for el in sorted(ran) if status(el) is None]  # e.g. a reference added after its structures ran
    if missing:
        references.update(ensure_references(missing, protocol, cache_dir, unary_table, timeout_s, client))
    out = {}
    for el in elements:
        out[el] = references.get(el) or cached_reference(el, protocol, cache_dir) or {
            "element": el, "status": "failed", "reason": "not computed"}
    return out


def load_records(folder: Path, tasks: list[dict] | None = None) -> list[dict]:
    paths = sorted((folder / "structures").glob("*.json"))
    if tasks is not None:
        wanted = {safe_name(t["name"]) for t in tasks}
        paths = [p for p in paths if p.stem in wanted]
    return [json.loads(p.read_text()) for p in paths]


def write_csv(folder: Path, tasks: list[dict] | None = None) -> Path:
    records = load_records(folder, tasks)
    table = pd.DataFrame([{c: r.get(c) for c in CSV_COLUMNS} for r in records], columns=CSV_COLUMNS)
    path = folder / "structures.csv"
    table.to_csv(path.with_suffix(".tmp"), index=False)
    path.with_suffix(".tmp").replace(path)
    return path


def _mae_r2(pred: np.ndarray, ref: np.ndarray) -> tuple[float | None, float | None, int]:
    ok = np.isfinite(pred) & np.isfinite(ref)
    if ok.sum() == 0:
        return None, None, 0
    err = pred[ok] - ref[ok]
    ss_tot = float(((ref[ok] - ref[ok].mean()) ** 2).sum())
    r2 = 1 - float((err**2).sum()) / ss_tot if ok.sum() > 1 and ss_tot > 0 else None
    return float(np.abs(err).mean()), r2, int(ok.sum())


def _spearman(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """Rank correlation: whether DFT orders structures as the other source does, whatever its reference energies."""
    from scipy.stats import spearmanr

    ok = np.isfinite(pred) & np.isfinite(ref)
    if ok.sum() < 3 or np.ptp(pred[ok]) == 0 or np.ptp(ref[ok]) == 0:
        return None
    return float(spearmanr(pred[ok], ref[ok]).statistic)


def formation_energies(records: list[dict], references: dict[str, dict]) -> pd.DataFrame:
    """One row per single-point record: DFT formation energy (eV/atom) or the reason it is missing."""
    from pymatgen.core import Structure

    from autoperi.dft.references import formation_energy_per_atom

    rows = []
    for rec in records:
        if rec["kind"] != "single_point":
            continue
        structure = Structure.from_dict(rec["structure"])
        composition = structure.composition.get_el_amt_dict()
        row = {"name": rec["name"], "formula": rec["formula"], "n_atoms": rec["n_atoms"], "status": rec["status"],
               "reason": normalize_reason(rec.get("reason", "") or ""), "database_ef": rec.get("database_ef", math.nan),
               "dft_ef": math.nan, "wall_s": rec.get("wall_s", math.nan), "cpu_s": rec.get("cpu_s", math.nan),
               "spin": rec.get("spin")}
        if rec["status"] == "ok":
            bad = [el for el in composition if references.get(el, {}).get("status") != "ok"]
            if bad:
                why = normalize_reason(references.get(bad[0], {}).get("reason", "") or "")
                row["status"], row["reason"] = "failed", f"reference_failed:{bad[0]}" + (
                    f" ({why})" if why.startswith("no_paw_setup") else "")
            else:
                mu = {el: references[el]["energy_per_atom"] for el in composition}
                row["dft_ef"] = formation_energy_per_atom(rec["energy_ev"], composition, mu)
        rows.append(row)
    return pd.DataFrame(rows)


def chgnet_formation_energies(table: pd.DataFrame, records: list[dict], references: dict[str, dict]) -> np.ndarray:
    """CHGNet E_f (eV/atom) = CHGNet energy/atom − Σ x_el μ_el^CHGNet, μ from the SAME reference structures as
    the GPAW references. NaN where CHGNet or a reference is unavailable."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.dft.references import reference_atoms

    try:
        from autoperi.metrics.potential import chgnet_energies
    except ImportError:
        return np.full(len(table), math.nan)
    by_name = {r["name"]: r for r in records}
    structures = [Structure.from_dict(by_name[n]["structure"]) for n in table["name"]]
    elements = sorted({el for s in structures for el in s.composition.get_el_amt_dict()})
    ok_refs = [el for el in elements if references.get(el, {}).get("status") == "ok"]
    ref_structures = [AseAtomsAdaptor.get_structure(reference_atoms(references[el])) for el in ok_refs]
    energies = chgnet_energies(structures + ref_structures) if structures else np.zeros(0)
    mu = dict(zip(ok_refs, energies[len(structures):], strict=True))
    out = np.full(len(structures), math.nan)
    for i, s in enumerate(structures):
        comp = s.composition.get_el_amt_dict()
        if all(el in mu for el in comp):
            out[i] = energies[i] - sum(n * mu[el] for el, n in comp.items()) / sum(comp.values())
    return out


def surrogate_unit(checkpoint_path: Path) -> str:
    """The surrogate's target unit as its training wrote it (`<checkpoint>.json` → config.target_unit)."""
    meta = Path(checkpoint_path).with_suffix(".json")
    if not meta.exists():
        return "eV/atom (assumed)"
    return str(json.loads(meta.read_text()).get("config", {}).get("target_unit", "eV/atom (assumed)"))


def surrogate_formation_energies(structures: list, checkpoint_path: Path | None) -> np.ndarray | None:
    """The project's surrogate E_f (eV/atom), or None when the surrogate module or its checkpoint is absent. A
    surrogate trained on a per-cell target (its unit names a cell) is divided by the number of atoms."""
    if checkpoint_path is None or not Path(checkpoint_path).exists():
        return None
    try:
        from autoperi.model.surrogate import predict_formation_energy
    except ImportError:
        return None
    values = np.asarray(predict_formation_energy(structures, checkpoint_path), dtype=float)
    if "cell" in surrogate_unit(checkpoint_path):
        values = values / np.array([len(s) for s in structures], dtype=float)
    return values


def summarize(
    folder: Path, tasks: list[dict], references: dict[str, dict], protocol: Protocol, gpaw_version: str,
    wall_s: float, surrogate_checkpoint: Path | None = None, with_chgnet: bool = True, extra: dict | None = None,
    database_ef: dict | None = None,
) -> dict:
    """The stage's numbers for one (dataset, source); also writes `formation_energies.csv` next to the records.
    `database_ef` (name → eV/atom), when given, replaces the value each record stored when it ran."""
    from pymatgen.core import Structure

    records = load_records(folder, tasks)
    table = formation_energies(records, references)
    if database_ef and len(table):
        table["database_ef"] = [database_ef.get(name, math.nan) for name in table["name"]]
    by_name = {r["name"]: r for r in records}
    if len(table):
        table["chgnet_ef"] = chgnet_formation_energies(table, records, references) if with_chgnet else math.nan
        structures = [Structure.from_dict(by_name[n]["structure"]) for n in table["name"]]
        surrogate = surrogate_formation_energies(structures, surrogate_checkpoint)
        table["surrogate_ef"] = surrogate if surrogate is not None else math.nan
    table.to_csv(folder / "formation_energies.csv", index=False)
    relax = [r for r in records if r["kind"] == "relax"]
    n_single = sum(1 for t in tasks if not t["relax"])
    converged = table[table["status"] == "ok"] if len(table) else table
    failed = table[table["status"] != "ok"] if len(table) else table
    summary = {
        "n_submitted": n_single,
        "n_finished": int(len(table)),
        "n_scf_converged": int(sum(1 for r in records if r["kind"] == "single_point" and r["status"] == "ok")),
        "n_with_formation_energy": int(len(converged)),
        "n_failed": {str(k): int(v) for k, v in failed["reason"].value_counts().items()} if len(failed) else {},
    }
    for key, column in [("surrogate", "surrogate_ef"), ("chgnet", "chgnet_ef"), ("database", "database_ef")]:
        if len(table):
            mae, r2, n = _mae_r2(table["dft_ef"].to_numpy(float), table[column].to_numpy(float))
            rho = _spearman(table["dft_ef"].to_numpy(float), table[column].to_numpy(float))
        else:
            mae, r2, n, rho = None, None, 0, None
        summary[f"ef_mae_vs_{key}"], summary[f"ef_r2_vs_{key}"], summary[f"ef_n_vs_{key}"] = mae, r2, n
        summary[f"ef_spearman_vs_{key}"] = rho
    done_relax = [r for r in relax if r["status"] == "ok"]
    if surrogate_checkpoint is not None and Path(surrogate_checkpoint).exists():
        summary["surrogate_unit"] = surrogate_unit(surrogate_checkpoint)
    summary["n_relaxed"] = len(relax)
    summary["relax_success"] = (sum(bool(r.get("relax_converged")) for r in relax) / len(relax)) if relax else None
    drops = [r["relax_energy_drop_per_atom"] for r in done_relax if r.get("relax_converged")]
    summary["relax_energy_drop_per_atom_mean"] = float(np.mean(drops)) if drops else None
    if relax:
        summary["relax_failures"] = {r["name"]: r.get("relax_error") or r.get("reason") or "step_limit"
                                     for r in relax if not r.get("relax_converged")}
    ran = [r for r in records if r["status"] == "ok" and r["kind"] == "single_point"]
    setups = sorted({el for r in ran for el in Structure.from_dict(r["structure"]).composition.get_el_amt_dict()})
    from autoperi.dft.install import find_setup_dir

    summary["protocol"] = {"code": f"GPAW {gpaw_version}", **protocol.as_dict(), "mode": "plane waves (PW)",
                           "setups": f"PAW {protocol.xc} setups from {find_setup_dir()}", "elements": setups}
    summary["largest_cell_ran"] = max((r["n_atoms"] for r in ran), default=None)
    times = pd.DataFrame([{"n_atoms": r["n_atoms"], "wall_s": r.get("wall_s", math.nan),
                           "cpu_s": r.get("cpu_s", math.nan), "spin": r.get("spin")} for r in ran])
    for key in ("wall_s", "cpu_s"):  # wall on a shared machine overstates the cost; CPU seconds do not
        summary[f"median_{key}_by_n_atoms"] = (
            {int(k): round(float(v), 1) for k, v in times.groupby("n_atoms")[key].median().dropna().items()}
            if len(times) else {})
    summary["wall_s"] = wall_s
    summary["core_s"] = float(sum(r.get("task_wall_s", r.get("wall_s", 0.0)) or 0.0 for r in records)
                              + sum(references[el].get("task_wall_s", references[el].get("wall_s", 0.0)) or 0.0
                                    for el in setups if el in references))
    summary["cpu_s_total"] = float(sum(r.get("process_cpu_s", 0.0) or 0.0 for r in records))  # records with CPU times
    summary["references"] = {el: {k: references[el].get(k) for k in ("status", "energy_per_atom", "structure_source",
                                                                       "reason")} for el in sorted(references)}
    summary.update(extra or {})
    return summary
