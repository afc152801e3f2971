"""Per-structure work of the evaluation: screening inputs, content keys, per-structure scores and their cache.

Everything here is computed once per structure and cached by content, so a killed evaluation (or a reference set
built a second time) only computes what is missing. Heavy work runs in chunks through `autoperi.parallel.fan_out`.
"""

from __future__ import annotations

import hashlib
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from autoperi.data.readers import ABSURD_FRACTION, RefusedInput, check_readable_crystal
from autoperi.metrics.coverage import composition_fingerprint, structure_fingerprint
from autoperi.metrics.validity import composition_validity, structure_validity
from autoperi.parallel import fan_out

# Per-structure columns computed by `score_structures` (besides `key`).
LATTICE_COLUMNS = ("a", "b", "c", "alpha", "beta", "gamma", "volume_per_atom")
SCORE_COLUMNS = (
    "struct_valid",
    "comp_valid",
    "density",
    "n_elements",
    "reduced_formula",
    "n_prim_sites",
    *LATTICE_COLUMNS,
    "struct_fp",
    "comp_fp",
)


def screen_sample(structure: Structure, max_atoms: int = 500, max_lattice_length_angstrom: float = 1000.0) -> None:
    """Refuse (RefusedInput) only what cannot be read as an ordered periodic crystal of real elements.

    Unlike the data pipeline's `check_structure`, close atoms and tiny or zero cell volumes are NOT refused: a
    generated crystal with overlapping atoms is a crystal the model produced and counts against structure validity.
    Refused: no sites, partial occupancy, dummy/unknown species, non-finite lattice or coordinates, a lattice
    vector longer than `max_lattice_length_angstrom`, |fractional coordinate| > 100, more than `max_atoms` sites.
    """
    check_readable_crystal(structure)
    lengths = np.linalg.norm(structure.lattice.matrix, axis=1)
    if lengths.max() > max_lattice_length_angstrom:
        raise RefusedInput("bad_lattice", f"lattice vector of {lengths.max():.4g} Å > {max_lattice_length_angstrom} Å")
    if not np.all(np.isfinite(structure.frac_coords)):
        raise RefusedInput("nan_coordinates", "non-finite coordinates")
    if np.any(np.abs(structure.frac_coords) > ABSURD_FRACTION):
        raise RefusedInput("absurd_coordinates", f"|frac| up to {np.abs(structure.frac_coords).max():g}")
    if len(structure) > max_atoms:
        raise RefusedInput("too_many_atoms", f"{len(structure)} sites > {max_atoms}")


def structure_key(structure: Structure, decimals: int = 6) -> str:
    """Content hash (sha1, 16 hex digits) of lattice, species and fractional coordinates rounded to `decimals`.

    Two inputs with the same key get the same per-structure scores, so the key (together with the sample name)
    indexes the caches."""
    h = hashlib.sha1()
    h.update(np.round(structure.lattice.matrix, decimals).astype(np.float64).tobytes())
    h.update(np.asarray(structure.atomic_numbers, dtype=np.int64).tobytes())
    h.update(np.round(structure.frac_coords, decimals).astype(np.float64).tobytes())
    return h.hexdigest()[:16]


def matcher_primitive_sites(structure: Structure) -> int:
    """Number of sites of the primitive cell StructureMatcher itself compares (Niggli, then get_primitive_structure).

    Without `attempt_supercell`, StructureMatcher.fit can only match two crystals whose reduced cells have the same
    number of sites, so this count is an exact pre-filter for uniqueness and novelty. -1 if the reduction fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return len(StructureMatcher._get_reduced_structure(structure, True, True))
    except Exception:  # a degenerate cell; such structures are never matched (they are structurally invalid)
        return -1


def _niggli_lattice_row(structure: Structure) -> list[float]:
    try:
        lattice = structure.lattice.get_niggli_reduced_lattice()
        return [*lattice.abc, *lattice.angles, lattice.volume / len(structure)]
    except Exception:  # degenerate cell
        return [np.nan] * len(LATTICE_COLUMNS)


def score_structures(
    structures: Sequence[Structure], scaler: tuple[np.ndarray, np.ndarray], fingerprints: bool = True
) -> pd.DataFrame:
    """One row per structure with SCORE_COLUMNS (fingerprints as float lists, None where they failed, or for both
    fingerprints when `fingerprints` is False: the train novelty index needs neither and stays small).

    Validity follows the CDVAE protocol (`structure_validity`, `composition_validity`); `density` (g/cm³) and the
    Niggli lattice row are NaN/inf-safe for degenerate cells; `n_prim_sites` and the lattice row are only computed
    for structurally valid crystals (they are what matching and the Fréchet distance use). Magpie fingerprints are
    computed once per reduced formula.
    """
    means, stds = scaler
    comp_cache: dict[str, np.ndarray] = {}
    rows = []
    for structure in structures:
        struct_ok = structure_validity(structure)
        composition = structure.composition
        formula = composition.reduced_formula
        try:
            comp_ok = composition_validity(composition)
        except ValueError:
            comp_ok = False
        volume = structure.volume
        density = float(structure.density) if volume > 1e-12 else np.inf
        if fingerprints and formula not in comp_cache:
            comp_cache[formula] = composition_fingerprint(composition, means, stds)
        comp_fp = comp_cache[formula] if fingerprints else None
        struct_fp = structure_fingerprint(structure) if fingerprints else None
        lattice_row = _niggli_lattice_row(structure) if struct_ok else [np.nan] * len(LATTICE_COLUMNS)
        rows.append(
            {
                "struct_valid": bool(struct_ok),
                "comp_valid": bool(comp_ok),
                "density": density,
                "n_elements": len(composition.elements),
                "reduced_formula": formula,
                "n_prim_sites": matcher_primitive_sites(structure) if struct_ok else -1,
                **dict(zip(LATTICE_COLUMNS, lattice_row, strict=True)),
                "struct_fp": None if struct_fp is None else [float(x) for x in struct_fp],
                "comp_fp": None if comp_fp is None else [float(x) for x in comp_fp],
            }
        )
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


class ScoreCache:
    """A folder of parquet parts, each holding rows keyed by `key`; written atomically as each chunk finishes."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def load(self) -> pd.DataFrame:
        parts = sorted(self.folder.glob("*.parquet")) if self.folder.exists() else []
        if not parts:
            return pd.DataFrame(columns=["key", *SCORE_COLUMNS])
        table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return table.drop_duplicates("key", keep="last")

    def write(self, table: pd.DataFrame) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"part-{uuid.uuid4().hex[:12]}.parquet"
        tmp = final.with_suffix(".tmp")
        table.to_parquet(tmp, index=False)
        tmp.rename(final)  # atomic: a killed run never leaves a half-written part that looks complete

    def consolidate(self) -> None:
        """Merge all parts into one (so later loads read a single file)."""
        parts = sorted(self.folder.glob("*.parquet"))
        if len(parts) <= 1:
            return
        table = self.load()
        self.write(table)
        newest = max(self.folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        for part in parts:
            if part != newest:
                part.unlink()


def _score_chunk(payload) -> pd.DataFrame:
    keys, structures, scaler, fingerprints = payload
    table = score_structures(structures, scaler, fingerprints)
    table.insert(0, "key", keys)
    return table


def cached_scores(
    keys: Sequence[str],
    structures: Sequence[Structure],
    scaler: tuple[np.ndarray, np.ndarray],
    cache: ScoreCache,
    client=None,
    chunk_size: int = 64,
    fingerprints: bool = True,
    desc: str | None = None,
    compute: Callable | None = None,
    compute_missing: bool = True,
) -> pd.DataFrame:
    """Scores for every key, in input order: read from `cache`, computing (in chunks, through `fan_out`) only the
    keys it lacks; each finished chunk is written to the cache at once, so an interrupted call resumes. With
    `compute_missing=False` a key the cache lacks raises KeyError instead."""
    if len(keys) != len(structures):
        raise ValueError(f"{len(keys)} keys for {len(structures)} structures")
    done = cache.load()
    have = set(done["key"])
    first_index: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in have:
            first_index.setdefault(key, i)  # duplicates in the input are computed once
    unique_todo = list(first_index.values())
    if unique_todo and not compute_missing:
        n_keys = len(set(keys))
        raise KeyError(f"{len(unique_todo)} of {n_keys} structures have no scores in the score cache {cache.folder}")
    chunks = [unique_todo[a : a + chunk_size] for a in range(0, len(unique_todo), chunk_size)]
    payloads = [([keys[i] for i in c], [structures[i] for i in c], scaler, fingerprints) for c in chunks]
    new_parts: list[pd.DataFrame] = []

    def store(_index: int, part: pd.DataFrame) -> None:
        cache.write(part)
        new_parts.append(part)

    if payloads:
        fan_out(compute or _score_chunk, payloads, client=client, desc=desc, on_result=store)
    parts = [t for t in (done, *new_parts) if len(t)]
    table = pd.concat(parts, ignore_index=True) if parts else done
    table = table.drop_duplicates("key", keep="last").set_index("key")
    return table.loc[list(keys)].reset_index()


def fingerprint_matrix(column: pd.Series, length: int) -> np.ndarray:
    """[n, length] float matrix from a column of float lists; a missing (None) fingerprint becomes a NaN row."""
    out = np.full((len(column), length), np.nan)
    for i, value in enumerate(column):
        if value is not None and len(value) == length:
            out[i] = np.asarray(value, dtype=float)
    return out
