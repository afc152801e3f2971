"""The DFT stage for one (dataset, source): choose the structures, compute references, run, summarise.

Sources: `oracle` = the dataset's test split from `data/processed/<dataset>.parquet` (database formation energy
attached: perov_5 `heat_of_formation`, mp20_bt `formation_energy_per_atom`); anything else = a structures file
(`reports/samples/<dataset>/<source>.extxyz` by default, or any path `read_structures` accepts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from autoperi.config import DftConfig, Params
from autoperi.dft.protocol import Protocol

DATABASE_EF_COLUMN = {"perov_5": "heat_of_formation", "mp20_bt": "formation_energy_per_atom",
                      "mp_20": "formation_energy_per_atom"}
# Database columns given per cell (divided by the atom count so every E_f column is eV/atom).
DATABASE_PER_CELL = {"perov_5"}
# What each database number is, so nobody reads the MAE against it as a pure protocol error.
DATABASE_DEFINITION = {
    "perov_5": "CMR ABS3 heat_all (Castelli et al. 2012): GPAW RPBE energy of the cubic cell relative to the most "
               "stable combination of competing reference phases, per 5-atom cell (divided by 5 here); a stability "
               "energy, not a formation energy from the elements, so its MAE against our elemental-reference E_f "
               "measures the definition gap as much as the protocol",
    "mp20_bt": "Materials Project formation_energy_per_atom: VASP PBE / PBE+U with MP's fitted anion and U "
               "corrections, from the elements; same definition as ours, different code, setups and corrections",
    "mp_20": "Materials Project formation_energy_per_atom (see mp20_bt)",
}


def protocol_from_config(cfg: DftConfig) -> Protocol:
    return Protocol(cutoff_ev=float(cfg.cutoff_ev), kpt_density=float(cfg.kpt_density),
                    smearing_ev=float(cfg.smearing_ev), maxiter=int(cfg.scf_maxiter))


def select_oracle(params: Params, dataset: str, n: int, seed: int, max_atoms: int) -> tuple[list, dict, dict]:
    """Seeded random subset (numpy default_rng(seed), permutation of the test rows) of `n` test-split crystals
    with at most `max_atoms` atoms, smallest cells first. Returns ([(name, Structure)], {name: database E_f},
    selection info)."""
    from autoperi.data.preprocess import record_to_structure
    from autoperi.data.registry import load_processed

    table = load_processed(params, [dataset])[dataset]
    test = table[table["split"] == "test"].reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(test))
    column = DATABASE_EF_COLUMN.get(dataset)
    eligible = [i for i in order if test.loc[i, "n_atoms"] <= max_atoms]
    if column is not None:
        eligible = [i for i in eligible if math.isfinite(float(test.loc[i, column]))]
    covered = [i for i in eligible if _setups_cover(test.loc[i, "elements"])]
    chosen = test.loc[covered[:n]].sort_values("n_atoms", kind="stable")
    structures = [(str(row["id"]), record_to_structure(row)) for _, row in chosen.iterrows()]
    per_cell = dataset in DATABASE_PER_CELL
    database = {str(row["id"]): float(row[column]) / (float(row["n_atoms"]) if per_cell else 1.0)
                for _, row in chosen.iterrows()} if column else {}
    info = {"selection": f"test split, n_atoms <= {max_atoms}, finite {column}, every element with a PAW setup, "
                         f"default_rng({seed}) permutation, first {n}", "n_test": int(len(test)),
            "n_eligible": len(covered), "n_excluded_no_paw_setup": len(eligible) - len(covered),
            "database_property": column + (" / n_atoms" if per_cell else "") if column else None,
            "database_definition": DATABASE_DEFINITION.get(dataset)}
    return structures, database, info


def _setups_cover(elements) -> bool:
    from autoperi.dft.install import has_setup

    return all(has_setup(str(el)) for el in elements)


def select_from_file(path: Path, n: int, seed: int) -> tuple[list, dict]:
    """Seeded random subset of `n` valid structures of a structures file; refused inputs are counted. Structures
    with an element the installed PAW data set lacks are left out before the draw (counted): the missing setup is
    this machine's limit, not the generator's."""
    from autoperi.data.readers import read_structures

    items = read_structures(path)
    readable = [(name, s) for name, s in items if not hasattr(s, "reason")]
    valid = [(name, s) for name, s in readable if _setups_cover(s.composition.get_el_amt_dict())]
    refused = {}
    for _, s in items:
        if hasattr(s, "reason"):
            refused[s.reason] = refused.get(s.reason, 0) + 1
    order = np.random.default_rng(seed).permutation(len(valid))[:n]
    chosen = sorted((valid[i] for i in order), key=lambda item: len(item[1]))
    names = [name for name, _ in chosen]
    if len(set(names)) != len(names):  # extxyz frames without names: make them unique and stable
        chosen = [(f"{i:04d}_{name}", s) for i, (name, s) in zip(sorted(order), chosen, strict=True)]
    info = {"selection": f"{path}: valid structures, every element with a PAW setup, default_rng({seed}) "
                         f"permutation, first {n}",
            "n_read": len(items), "n_valid": len(valid), "n_refused_input": refused,
            "n_excluded_no_paw_setup": len(readable) - len(valid)}
    return chosen, info


def chgnet_relaxed(structures: list, fmax: float = 0.1, max_steps: int = 500) -> dict:
    """name → CHGNet-relaxed Structure (the start of the GPAW relaxation); the input where CHGNet fails."""
    try:
        from autoperi.metrics.potential import relax_structure
    except ImportError:
        return {}
    out = {}
    for name, structure in structures:
        result = relax_structure(structure, fmax=fmax, max_steps=max_steps)
        out[name] = result["relaxed"] if result.get("relaxed") is not None and not result["error"] else structure
    return out


def run_dft_source(
    params: Params, dataset: str, source: str, structures_path: str | Path | None = None,
    n: int | None = None, relax: bool | None = None, scheduler: str | None = None, workers: int | None = None,
    surrogate_checkpoint: str | Path | None = None, with_chgnet: bool = True, n_relax: int | None = None,
    compute: bool = True,
) -> dict:
    """Run (or resume) the DFT stage for one dataset and source; writes and returns the summary JSON.

    relax=None relaxes every source but the oracle (database crystals are already DFT-relaxed).
    compute=False only summarises the records and cached references already on disk (e.g. while a run is still
    going: `n_finished` < `n_submitted` then)."""
    from autoperi.dft.install import ensure_gpaw
    from autoperi.dft.runner import is_finished, run_greedy, structure_tasks, summarize, write_csv
    from autoperi.parallel import dask_client

    cfg = params.dft
    version = ensure_gpaw()
    protocol = protocol_from_config(cfg)
    n = cfg.n_structures if n is None else n
    start = time.perf_counter()
    if source == "oracle" and structures_path is None:
        structures, database, info = select_oracle(params, dataset, n, cfg.seed, cfg.max_atoms)
    else:
        path = Path(structures_path) if structures_path else params.path(f"reports/samples/{dataset}/{source}.extxyz")
        structures, info = select_from_file(path, n, cfg.seed)
        database = {}
    folder = params.path(cfg.out_dir) / dataset / source
    folder.mkdir(parents=True, exist_ok=True)
    fitting = [(name, s) for name, s in structures if len(s) <= cfg.max_atoms]
    n_relax = cfg.n_relax if n_relax is None else n_relax
    relax = source != "oracle" if relax is None else relax
    relax_names = [name for name, _ in fitting[:n_relax]] if relax else []
    # CHGNet pre-relaxation only for relaxations still to run (a finished one is checked against its input); a
    # summary-only pass touches no record
    unfinished = {t["name"] for t in structure_tasks(structures, protocol, cfg.timeout_s, cfg.max_atoms, relax_names)
                  if not is_finished(folder / "structures", t)} if compute else set()
    to_prerelax = [(name, s) for name, s in fitting if f"{name}__relax" in unfinished]
    relax_inputs = chgnet_relaxed(to_prerelax) if to_prerelax else {}
    tasks = structure_tasks(structures, protocol, cfg.timeout_s, cfg.max_atoms, relax_names, relax_inputs,
                            cfg.relax_fmax, cfg.relax_steps)
    elements = sorted({el for _, s in fitting for el in s.composition.get_el_amt_dict()})
    workers = cfg.workers if workers is None else workers
    if compute:
        with dask_client(scheduler or cfg.scheduler, workers) as client:
            references = run_greedy(tasks, folder, protocol, params.path(cfg.reference_dir),
                                    params.path(params.data.processed_dir) / "mp_20.parquet", cfg.timeout_s,
                                    client, database, batch=max(1, workers))
    else:
        from autoperi.dft.references import cached_reference

        references = {el: cached_reference(el, protocol, params.path(cfg.reference_dir))
                      or {"element": el, "status": "failed", "reason": "not computed yet"} for el in elements}
        write_csv(folder, tasks)
    wall = time.perf_counter() - start
    previous = folder.parent / f"{source}.json"
    prior_wall = json.loads(previous.read_text()).get("wall_s_total", 0.0) if previous.exists() else 0.0
    extra = {"dataset": dataset, "source": source, **info, "n_requested": n, "complete": compute,
             "config": dataclasses.asdict(cfg), "wall_s_total": prior_wall + (wall if compute else 0.0)}
    if surrogate_checkpoint is None and getattr(params.model, "surrogate_path", None):
        surrogate_checkpoint = params.path(params.model.surrogate_path.format(dataset=dataset))
    extra["surrogate_checkpoint"] = str(surrogate_checkpoint) if surrogate_checkpoint else None
    summary = summarize(folder, tasks, references, protocol, version, wall,
                        Path(surrogate_checkpoint) if surrogate_checkpoint else None, with_chgnet, extra, database)
    previous.write_text(json.dumps(summary, indent=1, default=float))
    return summary


# The convergence test: the plane-wave cutoff on a perov_5 oxide (O has the hardest PAW setup, so oxides set the
# cutoff) and the k-point density on an mp20_bt binary whose references include a metal (Al: metals set the k-mesh).
CONVERGENCE_CELLS = (
    ("perov_5", "perov_18806", "cutoff_ev"),  # SrTiO3, 5 atoms
    ("mp20_bt", "mp-2172", "kpt_density"),  # AlAs, 2 atoms; references fcc Al and As
)


def run_convergence(params: Params, cutoffs_ev=(400, 500, 600), kpt_densities=(2.0, 3.0, 4.0)) -> dict:
    """The protocol's convergence test on CONVERGENCE_CELLS → `<out_dir>/convergence.json` (see protocol.py)."""
    from autoperi.data.preprocess import record_to_structure
    from autoperi.data.registry import load_processed
    from autoperi.dft.protocol import convergence_test

    cfg = params.dft
    base = protocol_from_config(cfg)
    out = params.path(cfg.out_dir) / "convergence.json"
    partial = out.with_suffix(".partial.json")
    done_rows: list[dict] = []

    def keep(row: dict) -> None:
        done_rows.append(dict(row))
        partial.with_suffix(".tmp").write_text(json.dumps({"partial": True, "rows": done_rows}, indent=1))
        partial.with_suffix(".tmp").replace(partial)

    merged = None
    for dataset, cell_id, scan in CONVERGENCE_CELLS:
        row = load_processed(params, [dataset])[dataset].set_index("id", drop=False).loc[cell_id]
        structure = (f"{cell_id} {row['reduced_formula']}", record_to_structure(row))
        result = convergence_test(
            [structure], cutoffs_ev if scan == "cutoff_ev" else (base.cutoff_ev,),
            kpt_densities if scan == "kpt_density" else (base.kpt_density,), base=base,
            reference_cache=params.path(cfg.reference_dir), on_row=keep)
        result["rows"] = [r for r in result["rows"] if r["scan"] == scan]
        if merged is None:
            merged = result
        else:
            merged["rows"] += result["rows"]
    out.write_text(json.dumps(merged, indent=1))
    partial.unlink(missing_ok=True)
    return merged
