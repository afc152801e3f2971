"""Reference data of each dataset for the evaluation, built once and cached under `data/references/<dataset>/`.

- COV / Wasserstein / Fréchet reference = the TEST split: CrystalNN 'ops' structure fingerprints (site-averaged),
  CDVAE-scaled Magpie composition fingerprints, density, number of elements, Niggli lattice parameters, reduced
  formulas (composition coverage).
- Novelty reference = the training structures (train + val; carbon_24 has no val), with their reduced formula and
  StructureMatcher primitive-cell size (the exact matching pre-filter of `autoperi.metrics.fastmatch`).
- `coverage_split="val"` puts the rows training held out for validation in the test split's place, so sampling
  settings can be chosen without looking at the test split; cached apart, under `<references_dir>_val/<dataset>/`
  (the `references` stage's output stays as it is).

Per-structure results are cached by `<id>:<content hash>` in parquet parts (`test_scores/`, `train_scores/`), so a
second call computes nothing and an interrupted build resumes. `evaluation.max_reference` caps each side by a seeded
random choice (quick profiles).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from autoperi.config import Params
from autoperi.metrics.coverage import COVERAGE_CUTOFFS, STRUCTURE_FINGERPRINT_LENGTH, load_magpie_scaler
from autoperi.metrics.samples import LATTICE_COLUMNS, ScoreCache, cached_scores, fingerprint_matrix, structure_key

COMPOSITION_FINGERPRINT_LENGTH = 132
# Property column standing for "formation energy" per dataset (eV/atom), when a dataset has one.
ENERGY_COLUMNS = {
    "perov_5": "heat_of_formation",
    "mp20_bt": "formation_energy_per_atom",
    "mp_20": "formation_energy_per_atom",
    "carbon_24": "energy_per_atom",
}


def coverage_family(dataset: str) -> str:
    """Key of COVERAGE_CUTOFFS for a dataset: perov* → perovskite, carbon* → carbon, anything else → mp20."""
    if dataset.startswith("perov"):
        return "perovskite"
    if dataset.startswith("carbon"):
        return "carbon"
    return "mp20"


@dataclass
class References:
    dataset: str
    test: pd.DataFrame  # id, reduced_formula, density, n_elements, Niggli lattice columns, energy, geometry
    test_struct_fps: np.ndarray  # [n_test, 61], NaN rows where CrystalNN failed
    test_comp_fps: np.ndarray  # [n_test, 132]
    train: pd.DataFrame  # id, split, reduced_formula, n_prim_sites, lattice, atomic_numbers, frac_coords
    details: dict = field(default_factory=dict)
    coverage_split: str = "test"  # which rows `test` holds: "test", or "val" (held out of training)

    @property
    def cutoffs(self) -> tuple[float, float]:
        return COVERAGE_CUTOFFS[coverage_family(self.dataset)]

    def train_structure(self, row: int) -> Structure:
        from autoperi.data.preprocess import record_to_structure

        return record_to_structure(self.train.iloc[row])

    def test_structure(self, row: int) -> Structure:
        from autoperi.data.preprocess import record_to_structure

        return record_to_structure(self.test.iloc[row])


COVERAGE_SPLITS = ("test", "val")


def reference_dir(params: Params, dataset: str, coverage_split: str = "test") -> Path:
    root = params.evaluation.references_dir
    return params.path(root if coverage_split == "test" else f"{root}_{coverage_split}") / dataset


def magpie_scaler(params: Params) -> tuple[np.ndarray, np.ndarray]:
    return load_magpie_scaler(params.path(params.data.raw_dir) / "cdvae_magpie_scaler.json")


def _capped(rows: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    if cap is None or len(rows) <= cap:
        return rows.reset_index(drop=True)
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size=cap, replace=False))
    return rows.iloc[chosen].reset_index(drop=True)


def split_reference_rows(
    table: pd.DataFrame, params: Params, coverage_split: str = "test"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(coverage rows, train+val rows) of a processed table, each capped at `evaluation.max_reference`. Coverage
    rows: the test split, or with "val" the rows training validates on (`select_splits` under `params.train`: the
    val split, carbon_24's seeded hold-out of train)."""
    cap, seed = params.evaluation.max_reference, params.evaluation.seed
    if coverage_split == "val":
        from autoperi.training.runner import select_splits

        test = _capped(select_splits(table, params.train)[1], cap, seed)
    elif coverage_split == "test":
        test = _capped(table[table["split"] == "test"], cap, seed)
    else:
        raise ValueError(f"coverage_split must be one of {COVERAGE_SPLITS}, got {coverage_split!r}")
    train = _capped(table[table["split"].isin(["train", "val"])], cap, seed + 1)
    if len(test) == 0:
        raise ValueError(f"the processed table has no {coverage_split} rows to serve as the coverage reference")
    return test, train


def _structures_and_keys(rows: pd.DataFrame) -> tuple[list[Structure], list[str]]:
    from autoperi.data.preprocess import record_to_structure

    structures = [record_to_structure(r) for r in rows.to_dict("records")]
    keys = [f"{i}:{structure_key(s)}" for i, s in zip(rows["id"], structures, strict=True)]
    return structures, keys


def build_references(
    params: Params,
    dataset: str,
    client=None,
    table: pd.DataFrame | None = None,
    chunk_size: int | None = None,
    coverage_split: str = "test",
) -> References:
    """Reference data of `dataset` (computed where not cached yet). `table` replaces the processed parquet
    (tests pass a small table built from data/raw); `coverage_split` see the module docstring."""
    if table is None:
        from autoperi.data.registry import load_processed

        table = load_processed(params, [dataset])[dataset]
    folder = reference_dir(params, dataset, coverage_split)
    chunk_size = chunk_size or params.evaluation.chunk_size
    scaler = magpie_scaler(params)
    test_rows, train_rows = split_reference_rows(table, params, coverage_split)
    timings = {}

    t0 = time.perf_counter()
    structures, keys = _structures_and_keys(test_rows)
    test_cache = ScoreCache(folder / "test_scores")
    computed = {"test": len(set(keys) - set(test_cache.load()["key"]))}
    label = f"{dataset} {coverage_split} fps"
    scores = cached_scores(keys, structures, scaler, test_cache, client, chunk_size, True, label)
    test_cache.consolidate()
    timings["test_fingerprints_s"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    train_structures, train_keys = _structures_and_keys(train_rows)
    train_cache = ScoreCache(folder / "train_scores")
    # The novelty index does not depend on coverage_split: a val-split build reads the `references` stage's index
    # when it is complete, and only reads it (no chunk is computed, so nothing is written or consolidated there).
    stage_index = ScoreCache(reference_dir(params, dataset) / "train_scores")
    if coverage_split != "test" and set(train_keys) <= set(stage_index.load()["key"]):
        train_cache = stage_index
    computed["train"] = len(set(train_keys) - set(train_cache.load()["key"]))
    train_scores = cached_scores(
        train_keys, train_structures, scaler, train_cache, client, chunk_size, False, f"{dataset} train index"
    )
    if train_cache is not stage_index:
        train_cache.consolidate()
    timings["train_index_s"] = round(time.perf_counter() - t0, 2)

    energy_column = ENERGY_COLUMNS.get(dataset)
    test = pd.DataFrame(
        {
            "id": test_rows["id"].astype(str).to_numpy(),
            **{c: scores[c].to_numpy() for c in ("reduced_formula", "density", "n_elements")},
            **{c: scores[c].to_numpy(dtype=float) for c in LATTICE_COLUMNS},
            "energy": test_rows[energy_column].to_numpy(dtype=float) if energy_column in test_rows else np.nan,
            **{c: test_rows[c].to_numpy() for c in ("lattice", "atomic_numbers", "frac_coords")},
        }
    )
    train = train_rows[["id", "split", "lattice", "atomic_numbers", "frac_coords"]].copy()
    train["id"] = train["id"].astype(str)
    train["reduced_formula"] = train_scores["reduced_formula"].to_numpy()
    train["n_prim_sites"] = train_scores["n_prim_sites"].to_numpy(dtype=int)
    refs = References(
        dataset=dataset,
        test=test,
        test_struct_fps=fingerprint_matrix(scores["struct_fp"], STRUCTURE_FINGERPRINT_LENGTH),
        test_comp_fps=fingerprint_matrix(scores["comp_fp"], COMPOSITION_FINGERPRINT_LENGTH),
        train=train.reset_index(drop=True),
        coverage_split=coverage_split,
    )
    refs.details = {
        "dataset": dataset,
        "coverage_reference": "test split" if coverage_split == "test" else "val rows held out of training",
        "novelty_reference": "train + val splits" if (train_rows["split"] == "val").any() else "train split",
        "n_test": len(test),
        "n_test_fingerprint_failed": int((~np.isfinite(refs.test_struct_fps).all(axis=1)).sum()),
        "n_train_val": len(train),
        "max_reference": params.evaluation.max_reference,
        "coverage_family": coverage_family(dataset),
        "coverage_cutoffs": list(refs.cutoffs),
        "energy_column": energy_column if energy_column in test_rows else None,
        "wall_s": timings,
        "n_computed": computed,
    }
    meta_file = folder / "fingerprints_meta.json"
    previous = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    # Keep the timing of the call that did the work: a fully cached call only loads (seconds).
    if sum(computed.values()) == 0 and "build_wall_s" in previous:
        refs.details["build_wall_s"] = previous["build_wall_s"]
    else:
        refs.details["build_wall_s"] = {**timings, "n_computed": computed}
    # Written only by a call that computed something: readers (every evaluation) must leave the `references`
    # stage's output unchanged, or DVC would see it modified and re-run everything downstream.
    if sum(computed.values()) or not meta_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        meta_file.write_text(json.dumps(refs.details, indent=2) + "\n")
    return refs
