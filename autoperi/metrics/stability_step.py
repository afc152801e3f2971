"""The stability step of `evaluate_samples`: CHGNet relaxation of a seeded random sample of valid structures,
E_hull against the dataset's self-consistent CHGNet hull, and S.U.N.

Only coordinates the agreed interface of `autoperi.metrics.stability` (`relax_structures`, `reference_hull`,
`e_above_hull`, `stability_summary`); the physics lives there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pymatgen.core import Structure

STABILITY_KEYS = ("n_relaxed", "relax_success", "rmsd_mean", "stable_0_1", "stable_0_0", "sun")
REQUIRED = ("relax_structures", "reference_hull", "e_above_hull", "stability_summary")
# S.U.N. uses MatterGen's matcher tolerances for "unique" and "novel", as MatterGen defines it.
SUN_TOLERANCES = "mattergen"


def stability_module():
    """(module, note): autoperi.metrics.stability if it provides the agreed functions, else (None, why not)."""
    try:
        from autoperi.metrics import stability
    except ImportError as exc:
        return None, f"not available: autoperi.metrics.stability cannot be imported ({exc})"
    missing = [name for name in REQUIRED if not hasattr(stability, name)]
    if missing:
        return None, f"not available: autoperi.metrics.stability lacks {missing}"
    return stability, "autoperi.metrics.stability"


def _relaxed(cif) -> Structure | None:
    if not isinstance(cif, str) or not cif.strip():
        return None
    try:
        return Structure.from_str(cif, fmt="cif")
    except Exception:  # an unreadable relaxed structure counts as a failed relaxation
        return None


def run_stability(
    table: pd.DataFrame,
    scored,
    valid: np.ndarray,
    stability_n: int,
    params,
    dataset: str,
    client,
    cache_dir,
    rng: np.random.Generator,
) -> tuple[dict, str]:
    """Fill `table` columns e_hull, rmsd, relax_converged (NaN where not relaxed) and return (stability dict, note).

    The relaxed sample: min(stability_n, #valid) valid structures, drawn with `rng` (after the Wasserstein draw,
    so it is reproducible from `evaluation.seed`). S.U.N. denominator = structures submitted to relaxation.
    """
    table["e_hull"] = np.nan
    table["rmsd"] = np.nan
    table["relax_converged"] = pd.array([pd.NA] * len(table), dtype="boolean")
    empty = {key: None for key in STABILITY_KEYS}
    if stability_n <= 0:
        return empty, "not computed (stability_n = 0)"
    module, note = stability_module()
    if module is None:
        return empty, note
    candidates = np.flatnonzero(valid)
    if len(candidates) == 0:
        return {**empty, "n_relaxed": 0}, "no valid samples to relax"
    rows = np.sort(rng.choice(candidates, size=min(stability_n, len(candidates)), replace=False))
    cfg = params.evaluation
    relax = module.relax_structures(
        [scored[i] for i in rows],
        cfg.relax_fmax_ev_per_angstrom,
        cfg.relax_max_steps,
        client=client,
        cache_dir=cache_dir / "relax",
    ).reset_index(drop=True)
    relaxed = [_relaxed(c) for c in relax.get("relaxed_cif", [None] * len(rows))]
    energies = relax["energy_per_atom"].to_numpy(dtype=float)
    usable = [k for k, s in enumerate(relaxed) if s is not None and np.isfinite(energies[k])]
    e_hull = np.full(len(rows), np.nan)
    if usable:
        hull = module.reference_hull(params, dataset)
        e_hull[usable] = module.e_above_hull(hull, [relaxed[k] for k in usable], energies[usable])
    relax["e_above_hull"] = e_hull
    relax["e_hull"] = e_hull
    unique = table[f"unique_{SUN_TOLERANCES}"].to_numpy(dtype=bool)[rows]
    novel = table[f"novel_{SUN_TOLERANCES}"].to_numpy(dtype=bool)[rows]
    summary = module.stability_summary(relax, unique, novel, len(rows))
    table.loc[rows, "e_hull"] = e_hull
    table.loc[rows, "rmsd"] = relax["rmsd_angstrom"].to_numpy(dtype=float)
    table.loc[rows, "relax_converged"] = relax["converged"].to_numpy(dtype=bool)
    out = {key: summary.get(key) for key in STABILITY_KEYS}
    note = (
        f"CHGNet relaxation (cell + positions, fmax {cfg.relax_fmax_ev_per_angstrom} eV/Å, <= "
        f"{cfg.relax_max_steps} steps) of {len(rows)} valid samples (seeded); E_hull vs the self-consistent "
        f"CHGNet hull of {dataset} (CHGNet energies on both sides, not DFT); S.U.N. with {SUN_TOLERANCES} "
        f"matcher tolerances, denominator = {len(rows)} structures submitted"
    )
    return out, note
