"""Coverage recall and precision of generated crystals against a reference set (CDVAE evaluation protocol).

Each crystal gets a structure fingerprint (CrystalNN 'ops' site fingerprints averaged over sites) and a composition
fingerprint (matminer's Magpie element-property statistics, standardised with CDVAE's scaler). A reference crystal is
recalled when some generated crystal is within `struct_cutoff` of it in structure-fingerprint space and some
generated crystal (not necessarily the same one) is within `comp_cutoff` in composition space; precision swaps roles.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Structure
from scipy.spatial.distance import cdist

# (structure cutoff, composition cutoff) in fingerprint units, as CDVAE's COV_Cutoffs.
COVERAGE_CUTOFFS: dict[str, tuple[float, float]] = {
    "mp20": (0.4, 10.0),
    "carbon": (0.2, 4.0),
    "perovskite": (0.2, 4.0),
}

STRUCTURE_FINGERPRINT_LENGTH = 61  # CrystalNN 'ops' preset: CN 1-24 weights plus order parameters, matminer 0.10


@lru_cache(maxsize=1)
def _site_featurizer():
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops")


@lru_cache(maxsize=2)
def _magpie_featurizer(impute_nan: bool):
    from matminer.featurizers.composition.composite import ElementProperty

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ElementProperty.from_preset("magpie", impute_nan=impute_nan)


def structure_fingerprint(structure: Structure, min_volume_angstrom3: float = 0.1) -> np.ndarray | None:
    """Mean over sites of matminer's CrystalNNFingerprint ('ops' preset), length 61; None if featurizing fails.

    CDVAE counts a crystal whose fingerprint cannot be built as failed, and never fingerprints a cell of volume
    < 0.1 Å³ (CrystalNN can run for minutes on such degenerate cells), which gives None here too. CrystalNN's
    warnings about missing oxidation states and radii are silenced.
    """
    if len(structure) == 0 or not structure.volume >= min_volume_angstrom3:
        return None
    featurizer = _site_featurizer()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sites = [featurizer.featurize(structure, i) for i in range(len(structure))]
        return np.asarray(sites, dtype=float).mean(axis=0)
    except Exception:  # any featurizer failure marks the crystal as failed, as in CDVAE
        return None


def load_magpie_scaler(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(means, stds) of CDVAE's composition-fingerprint scaler from a JSON with `CompScalerMeans`/`CompScalerStds`.

    Zero or non-finite stds become 1, as CDVAE's StandardScaler does when fitted.
    """
    data = json.loads(Path(path).read_text())
    means = np.asarray(data["CompScalerMeans"], dtype=float)
    stds = np.asarray(data["CompScalerStds"], dtype=float)
    if means.shape != stds.shape or means.ndim != 1:
        raise ValueError(f"scaler means {means.shape} and stds {stds.shape} must be equal-length vectors")
    stds = np.where(np.isfinite(stds) & (stds != 0), stds, 1.0)
    return means, stds


def composition_fingerprint(
    composition: Composition | str, means: np.ndarray, stds: np.ndarray, impute_nan: bool = False
) -> np.ndarray:
    """Standardised Magpie fingerprint (132 = 22 element properties x 6 statistics): (magpie - means) / stds.

    `impute_nan=False` reproduces the matminer CDVAE used: properties missing for an element (e.g. He, Ne, Ar, Rn)
    give NaN entries, which `coverage` treats as a failed fingerprint. `impute_nan=True` fills them with matminer's
    element averages instead.
    """
    if isinstance(composition, str):
        composition = Composition(composition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = np.asarray(_magpie_featurizer(impute_nan).featurize(composition), dtype=float)
    means, stds = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    if raw.shape != means.shape or raw.shape != stds.shape:
        raise ValueError(f"magpie fingerprint has {raw.shape} features, scaler has {means.shape}/{stds.shape}")
    return (raw - means) / stds


def _fingerprint_rows(fps, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack fingerprints into [n, d] (None becomes a NaN row) and a mask of rows that are finite."""
    if isinstance(fps, np.ndarray) and fps.ndim == 2:
        rows = fps.astype(float)
        return rows, np.all(np.isfinite(rows), axis=1) & (rows.shape[1] > 0)
    items = list(fps)
    dims = {np.asarray(f).size for f in items if f is not None}
    if len(dims) > 1:
        raise ValueError(f"{name} rows have different lengths: {sorted(dims)}")
    d = dims.pop() if dims else 0
    rows = np.full((len(items), d), np.nan)
    for i, f in enumerate(items):
        if f is not None:
            rows[i] = np.asarray(f, dtype=float).ravel()
    ok = np.all(np.isfinite(rows), axis=1) & (d > 0)
    return rows, ok


def _nearest(candidates: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distance from each query row to its nearest candidate row (inf when there is no candidate)."""
    if len(candidates) == 0:
        return np.full(len(queries), np.inf)
    if len(queries) == 0:
        return np.zeros(0)
    return cdist(queries, candidates).min(axis=1)


def _paired_rows(gen_struct_fps, gen_comp_fps, ref_struct_fps, ref_comp_fps):
    """Both sides' fingerprint matrices and, per side, the mask of crystals with both fingerprints."""
    gs, gs_ok = _fingerprint_rows(gen_struct_fps, "gen_struct_fps")
    gc, gc_ok = _fingerprint_rows(gen_comp_fps, "gen_comp_fps")
    rs, rs_ok = _fingerprint_rows(ref_struct_fps, "ref_struct_fps")
    rc, rc_ok = _fingerprint_rows(ref_comp_fps, "ref_comp_fps")
    if len(gs) != len(gc) or len(rs) != len(rc):
        raise ValueError("structure and composition fingerprints must have one row per crystal on each side")
    return gs, gc, gs_ok & gc_ok, rs, rc, rs_ok & rc_ok


def nearest_to_references(
    gen_struct_fps, gen_comp_fps, ref_struct_fps, ref_comp_fps
) -> tuple[np.ndarray, np.ndarray]:
    """Per reference crystal, the distance to the nearest generated structure fingerprint and (independently) to the
    nearest generated composition fingerprint; only generated crystals with both fingerprints are candidates. inf
    where the reference's own fingerprint failed or there is no candidate."""
    return _reference_distances(*_paired_rows(gen_struct_fps, gen_comp_fps, ref_struct_fps, ref_comp_fps))


def _reference_distances(gs, gc, gen_ok, rs, rc, ref_ok) -> tuple[np.ndarray, np.ndarray]:
    d_struct, d_comp = np.full(len(rs), np.inf), np.full(len(rs), np.inf)
    d_struct[ref_ok] = _nearest(gs[gen_ok], rs[ref_ok])
    d_comp[ref_ok] = _nearest(gc[gen_ok], rc[ref_ok])
    return d_struct, d_comp


def coverage(
    gen_struct_fps: Sequence[np.ndarray | None] | np.ndarray,
    gen_comp_fps: Sequence[np.ndarray | None] | np.ndarray,
    ref_struct_fps: Sequence[np.ndarray | None] | np.ndarray,
    ref_comp_fps: Sequence[np.ndarray | None] | np.ndarray,
    struct_cutoff: float,
    comp_cutoff: float,
    n_generated_total: int | None = None,
) -> dict[str, float]:
    """CDVAE's COV-R and COV-P, in percent (0-100).

    Distances are Euclidean (`scipy.spatial.distance.cdist`). A generated (reference) item whose structure or
    composition fingerprint is None or contains NaN is failed: it is never a candidate neighbour and never covered.
      cov_recall = #{reference r : min_g d_struct(r, g) <= struct_cutoff and min_g' d_comp(r, g') <= comp_cutoff}
                   / (number of reference rows passed, failed ones included)
      cov_precision = #{generated g : the same test against the references} / n_generated_total
    The two minima are taken independently, so g and g' may differ (CDVAE's behaviour). `n_generated_total` is the
    number of all generated samples, including those not passed in because their fingerprint failed; by default it
    is the number of generated rows passed (failed rows included), which is CDVAE's `num_gen_crystals=None`.
    """
    gs, gc, gen_ok, rs, rc, ref_ok = _paired_rows(gen_struct_fps, gen_comp_fps, ref_struct_fps, ref_comp_fps)
    if len(rs) == 0:
        raise ValueError("coverage needs at least one reference fingerprint")
    n_total = len(gs) if n_generated_total is None else int(n_generated_total)
    if n_total < len(gs) or n_total <= 0:
        raise ValueError(f"n_generated_total={n_generated_total} is smaller than the {len(gs)} generated rows")

    d_struct, d_comp = _reference_distances(gs, gc, gen_ok, rs, rc, ref_ok)  # rows already paired
    recalled = (d_struct <= struct_cutoff) & (d_comp <= comp_cutoff)
    precise = (_nearest(rs[ref_ok], gs[gen_ok]) <= struct_cutoff) & (_nearest(rc[ref_ok], gc[gen_ok]) <= comp_cutoff)
    return {
        "cov_recall": 100.0 * float(recalled.sum()) / len(rs),
        "cov_precision": 100.0 * float(precise.sum()) / n_total,
    }
