"""The dataset registry: which raw files make each dataset, its splits and properties, and how it is built.

`build_dataset` turns raw files into one table per dataset (a row per kept crystal, `split` = the published split,
`comp_split` = the composition-disjoint 70/15/15 split) plus a report of every refused row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from autoperi.config import DataConfig
from autoperi.data.preprocess import process_items
from autoperi.data.readers import Limits
from autoperi.data.splits import composition_split


@dataclass(frozen=True)
class RawSplit:
    file: str  # path under data/raw
    split: str  # the published split this file is
    id_column: str | None  # None → ids are "<id_prefix><row>"
    id_prefix: str = ""
    properties: dict = field(default_factory=dict)  # raw column → column name here
    cif_column: str = "cif"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    splits: tuple[RawSplit, ...]
    n_elements: tuple[int, ...] | None = None  # keep only these element counts (others are excluded, not refused)
    notes: str = ""


_MP_PROPS = {
    "formation_energy_per_atom": "formation_energy_per_atom",
    "band_gap": "band_gap",
    "e_above_hull": "e_above_hull",
    "spacegroup.number": "spacegroup_reported",
}
_PEROV_PROPS = {"heat_all": "heat_of_formation", "ind_gap": "band_gap", "heat_ref": "heat_of_formation_ref"}
_MP20_TRAIN = RawSplit("mp_20/train_cifs.csv.gz", "train", None, "mp20-train-")
_MP20_BT = (
    RawSplit("mp_20_biternary/val.csv.gz", "val", "material_id", properties=_MP_PROPS),
    RawSplit("mp_20_biternary/test.csv.gz", "test", "material_id", properties=_MP_PROPS),
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "perov_5",
            "Perov-5 (Castelli CMR cubic perovskites, 5 atoms), CDVAE's split; train rebuilt from the full CMR set",
            (
                RawSplit(
                    "perov_5/train_reconstructed.csv",
                    "train",
                    "material_id",
                    properties={"e_form": "heat_of_formation", "gap_gllbsc": "band_gap"},
                ),
                RawSplit("perov_5/val.csv", "val", "material_id", "perov5-", _PEROV_PROPS),
                RawSplit("perov_5/test.csv", "test", "material_id", "perov5-", _PEROV_PROPS),
            ),
            notes="train ids are CMR file stems (perov_<i>); val/test ids are CDVAE's integer ids with prefix perov5-",
        ),
        DatasetSpec(
            "carbon_24",
            "Carbon-24 (AIRSS carbon at 10 GPa, 6-24 atoms)",
            (
                RawSplit(
                    "carbon_24/val.csv", "train", "material_id", properties={"energy_per_atom": "energy_per_atom"}
                ),
                RawSplit(
                    "carbon_24/test.csv", "test", "material_id", properties={"energy_per_atom": "energy_per_atom"}
                ),
            ),
            notes="CDVAE's train split is not in the mirror: here train = CDVAE's val split, test = CDVAE's test split",
        ),
        DatasetSpec(
            "mp20_bt",
            "MP-20 binary + ternary compounds with MP-20's own split (train: structures only)",
            (_MP20_TRAIN, *_MP20_BT),
            n_elements=(2, 3),
        ),
        DatasetSpec(
            "mp_20",
            "MP-20 full train split (structures only); val/test are only MP-20's binary+ternary parts here",
            (_MP20_TRAIN, *_MP20_BT),
            notes="val/test hold only the binary+ternary part of MP-20's val/test; fetch the full splits online",
        ),
        DatasetSpec(
            "wbm",
            "10,000 WBM hypothetical structures (out-of-distribution set)",
            (
                RawSplit(
                    "wbm/val.csv.gz",
                    "all",
                    None,
                    "wbm-",
                    {"formation_energy_per_atom": "formation_energy_per_atom", "band_gap": "band_gap"},
                ),
            ),
        ),
        DatasetSpec(
            "mpts_52",
            "MPTS-52 val split (Materials Project, up to 52 atoms, split by publication year)",
            (
                RawSplit(
                    "mpts_52/val.csv.gz",
                    "val",
                    "material_id",
                    properties={
                        "formation_energy_per_atom": "formation_energy_per_atom",
                        "energy_above_hull": "e_above_hull",
                        "year": "year",
                    },
                ),
            ),
        ),
    )
}
MERGED_DATASETS = ("perovskites",)  # built by autoperi.data.merge
ALL_DATASETS = tuple(DATASETS) + MERGED_DATASETS


def limits_from(cfg: DataConfig) -> Limits:
    return Limits(cfg.max_atoms, cfg.min_distance_angstrom, cfg.max_lattice_length_angstrom)


class RawTableCache:
    """Processes each raw file once per run; datasets sharing a file (mp_20, mp20_bt) reuse the result."""

    def __init__(self, raw_dir, cfg: DataConfig):
        self.raw_dir, self.cfg, self._done = raw_dir, cfg, {}

    def get(self, raw: RawSplit):
        """→ (table, records {row: record}, refused [(row, reason, detail)], timings)."""
        key = (raw.file, raw.cif_column)
        if key not in self._done:
            t0 = time.perf_counter()
            table = pd.read_csv(self.raw_dir / raw.file, nrows=self.cfg.max_rows_per_split, index_col=False)
            if "Unnamed: 0" in table.columns:
                table = table.drop(columns="Unnamed: 0")
            read_s = time.perf_counter() - t0
            items = list(enumerate(table[raw.cif_column].fillna("").astype(str)))
            records, refused, timings = process_items(
                items, limits_from(self.cfg), self.cfg.symprec, self.cfg.workers, desc=raw.file
            )
            timings["read_s"] = read_s
            self._done[key] = (table, dict(records), refused, timings)
        return self._done[key]


def volume_mask(frame: pd.DataFrame, cfg: DataConfig) -> pd.Series:
    """True where a crystal passes the seed's volume filter (cell volume, and per atom when configured)."""
    keep = pd.Series(True, index=frame.index)
    if cfg.volume_range_angstrom3:
        lo, hi = cfg.volume_range_angstrom3
        keep &= frame["volume"].between(lo, hi)
    if cfg.volume_per_atom_range_angstrom3:
        lo, hi = cfg.volume_per_atom_range_angstrom3
        keep &= frame["volume_per_atom"].between(lo, hi)
    return keep


def apply_volume_filter(frame: pd.DataFrame, skipped: list[dict], cfg: DataConfig, applied: bool):
    """Drop (when `applied`) and list the rows outside the volume range; returns (frame, rows outside)."""
    inside = volume_mask(frame, cfg)
    if applied:
        for _, row in frame[~inside].iterrows():
            skipped.append(
                {
                    "source": row["source"],
                    "row_or_file": row["row"],
                    "reason": "volume_filter",
                    "detail": f"volume {row['volume']:.1f} Å³ ({row['volume_per_atom']:.1f} Å³/atom)",
                }
            )
        frame = frame[inside].reset_index(drop=True)
    return frame, int((~inside).sum())


def finish_dataset(
    name: str, frame: pd.DataFrame, skipped: list[dict], cfg: DataConfig, report: dict, volume_outside=None
):
    """Shared tail of every build: volume filter (applied or only reported), composition split, report.

    `volume_outside`: rows the builder already removed with `apply_volume_filter` (the perovskite merge filters
    raw rows before deduplication, so every removed source row is listed); None filters here.
    """
    if frame.empty:
        reasons = pd.Series([s["reason"] for s in skipped], dtype=object).value_counts().to_dict()
        raise ValueError(f"{name}: no crystal left to keep (refused by reason: {reasons}, report: {report})")
    applied = name in cfg.volume_filter_applies_to
    if volume_outside is None:
        frame, volume_outside = apply_volume_filter(frame, skipped, cfg, applied)
    report["volume_filter"] = {
        "volume_range_angstrom3": cfg.volume_range_angstrom3,
        "volume_per_atom_range_angstrom3": cfg.volume_per_atom_range_angstrom3,
        "applied": applied,
        "outside_range": volume_outside,
    }
    if frame["id"].duplicated().any():
        dup = frame.loc[frame["id"].duplicated(), "id"].head(3).tolist()
        raise ValueError(f"{name}: duplicate ids after processing, e.g. {dup}")
    comp = composition_split(frame["reduced_formula"], cfg.split_fractions, cfg.seed)
    frame["comp_split"] = comp if comp is not None else None
    skipped_counts = pd.Series([s["reason"] for s in skipped], dtype=object).value_counts()
    report.update(
        n_kept=int(len(frame)),
        skipped={str(k): int(v) for k, v in skipped_counts.items()},
        splits={
            "original": {str(k): int(v) for k, v in frame["split"].value_counts().sort_index().items()},
            "composition": (
                {str(k): int(v) for k, v in frame["comp_split"].value_counts().sort_index().items()}
                if comp is not None
                else "not possible: fewer than 3 reduced compositions"
            ),
        },
    )
    return frame, skipped, report


def build_dataset(name: str, raw_dir, cfg: DataConfig, cache: RawTableCache | None = None):
    """Raw files → (table, skipped rows, report) for one registry dataset (see DATASETS)."""
    spec = DATASETS[name]
    cache = cache or RawTableCache(raw_dir, cfg)
    rows, skipped, excluded, timings = [], [], {}, {}
    n_raw = 0
    for raw in spec.splits:
        table, records, refused, t = cache.get(raw)
        n_raw += len(table)
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
        skipped += [{"source": raw.file, "row_or_file": r, "reason": why, "detail": d} for r, why, d in refused]
        for row, record in records.items():
            if spec.n_elements and record["n_elements"] not in spec.n_elements:
                excluded["not_in_element_count_range"] = excluded.get("not_in_element_count_range", 0) + 1
                continue
            raw_row = table.iloc[row]
            ident = raw_row[raw.id_column] if raw.id_column else row
            entry = {"id": f"{raw.id_prefix}{ident}", "source": raw.file, "row": row, "split": raw.split}
            entry.update(record)
            for column, prop in raw.properties.items():
                value = raw_row.get(column, np.nan)
                entry[prop] = value
            rows.append(entry)
    frame = pd.DataFrame(rows)
    report = {
        "description": spec.description,
        "notes": spec.notes,
        "n_raw": n_raw,
        "excluded": excluded,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    return finish_dataset(name, frame, skipped, cfg, report)
