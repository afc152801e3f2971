"""The multi-source perovskite corpus: CMR + OQMD + Materials Project, one entry per distinct structure.

Duplicates are found with pymatgen's StructureMatcher inside groups of equal reduced formula (structures of
different formulas can never match), and each entry keeps every source id and every source's properties.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import pandas as pd
from pymatgen.analysis.structure_matcher import StructureMatcher
from tqdm.auto import tqdm

from autoperi.config import DataConfig
from autoperi.data.datasets import RawSplit, RawTableCache, apply_volume_filter, finish_dataset
from autoperi.data.preprocess import record_to_structure

# Source order is the priority for the representative entry and its id.
PEROVSKITE_SOURCES = {
    "cmr": (
        RawSplit("perovskite_ml/cifs_cmr.csv", "all", "file", "cmr:"),
        [
            (
                "perovskite_ml/csv_files/cmr_perovskite_data_total.csv",
                {"e_form": "heat_of_formation", "gap gllbsc": "band_gap"},
            )
        ],
    ),
    "mp": (
        RawSplit("perovskite_ml/cifs_mp.csv", "all", "file", "mp:"),
        [
            (
                "perovskite_ml/csv_files/mp_perovskite_data_total.csv",
                {
                    "formation_energy": "formation_energy_per_atom",
                    "energy_above_hull": "e_above_hull",
                    "band_gap": "band_gap",
                },
            )
        ],
    ),
    "oqmd": (
        RawSplit("perovskite_ml/cifs_oqmd.csv", "all", "file", "oqmd:"),
        [
            ("perovskite_ml/csv_files/oqmd_fm.csv", {"formation_energy": "formation_energy_per_atom"}),
            ("perovskite_ml/csv_files/oqmd_bg.csv", {"band_gap": "band_gap"}),
        ],
    ),
}
# pymatgen's default tolerances. Every cell here is already a standard primitive cell, so the matcher's own
# primitive reduction is skipped: 1.7x faster on this corpus, same groups (measured on 300 formula groups).
MATCHER_TOLERANCES = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "primitive_cell": False}


def _group_chunk(groups):
    """[[(index, record), ...] per formula] → [[index, ...] per distinct structure]."""
    matcher = StructureMatcher(**MATCHER_TOLERANCES)
    out = []
    for members in groups:
        if len(members) == 1:
            out.append([members[0][0]])
            continue
        structures = []
        for index, record in members:
            s = record_to_structure(record)
            s.properties["index"] = index
            structures.append(s)
        out += [[s.properties["index"] for s in group] for group in matcher.group_structures(structures)]
    return out


def group_duplicates(frame: pd.DataFrame, workers: int = 1, chunk: int = 500) -> list[list[int]]:
    """Row positions of `frame` grouped into distinct structures (formula pre-grouping + StructureMatcher)."""
    by_formula = [
        [(int(i), frame.loc[i, ["lattice", "atomic_numbers", "frac_coords"]]) for i in idx]
        for idx in frame.groupby("reduced_formula", sort=True).indices.values()
    ]
    chunks = [by_formula[k : k + chunk] for k in range(0, len(by_formula), chunk)]
    parallel = workers > 1 and len(chunks) > 1
    groups = []
    with ProcessPoolExecutor(max_workers=workers) if parallel else nullcontext() as pool:
        results = pool.map(_group_chunk, chunks) if parallel else map(_group_chunk, chunks)
        for part in tqdm(results, total=len(chunks), desc="StructureMatcher", leave=False):
            groups += part
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def _source_table(raw_dir, source: str, cache: RawTableCache):
    raw, property_files = PEROVSKITE_SOURCES[source]
    table, records, refused, timings = cache.get(raw)
    rows = []
    for row, record in records.items():
        file_name = table.iloc[row]["file"]
        rows.append(
            {
                "id": f"{source}:{file_name.removesuffix('.cif')}",
                "source": raw.file,
                "row": row,
                "file": file_name,
                "db": source,
                **record,
            }
        )
    frame = pd.DataFrame(rows)
    for path, columns in property_files:
        props = pd.read_csv(raw_dir / path, index_col=False)
        props = props[["id", *columns]].drop_duplicates("id").rename(columns={"id": "file", **columns})
        frame = frame.merge(props, on="file", how="left")
    skipped = [{"source": raw.file, "row_or_file": r, "reason": why, "detail": d} for r, why, d in refused]
    return frame.drop(columns="file"), skipped, len(table), timings


def build_perovskites(raw_dir, cfg: DataConfig, cache: RawTableCache | None = None):
    """→ (table, skipped, report) with `sources`, `source_ids` and per-source property columns."""
    cache = cache or RawTableCache(raw_dir, cfg)
    parts, skipped, n_raw, timings = [], [], {}, {}
    for source in PEROVSKITE_SOURCES:
        frame, bad, n, t = _source_table(raw_dir, source, cache)
        parts.append(frame)
        skipped += bad
        n_raw[source] = n
        for k, v in t.items():
            timings[k] = timings.get(k, 0.0) + v
    every = pd.concat(parts, ignore_index=True)
    applied = "perovskites" in cfg.volume_filter_applies_to
    every, outside = apply_volume_filter(every, skipped, cfg, applied)  # per source row, before merging
    t0 = time.perf_counter()
    groups = group_duplicates(every, cfg.workers)
    timings["dedup_s"] = time.perf_counter() - t0

    property_columns = [
        c for c in every.columns if c in {"heat_of_formation", "band_gap", "formation_energy_per_atom", "e_above_hull"}
    ]
    pair_counts, within = Counter(), Counter()
    merged = []
    for members in groups:
        rows = every.iloc[members]
        dbs = rows["db"].tolist()
        for db, n in Counter(dbs).items():
            if n > 1:
                within[db] += n - 1
        for a, b in itertools.combinations(sorted(set(dbs), key=list(PEROVSKITE_SOURCES).index), 2):
            pair_counts[f"{a}+{b}"] += 1
        rep = rows.iloc[0].to_dict()  # rows are in source-priority order (cmr, mp, oqmd)
        entry = {k: rep[k] for k in rep if k not in property_columns and k != "db"}
        entry["split"] = "all"
        entry["sources"] = ";".join(sorted(set(dbs), key=list(PEROVSKITE_SOURCES).index))
        entry["source_ids"] = ";".join(rows["id"])
        for db, sub in rows.groupby("db", sort=False):
            first = sub.iloc[0]
            for col in property_columns:
                if col in first and pd.notna(first[col]):
                    entry[f"{col}_{db}"] = first[col]
        merged.append(entry)
    frame = pd.DataFrame(merged)
    report = {
        "description": "CMR + OQMD + Materials Project perovskites, one entry per distinct structure",
        "notes": "duplicates: StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5) on standard primitive cells, "
        "within equal reduced formulas",
        "n_raw": int(sum(n_raw.values())),
        "n_raw_by_source": n_raw,
        "n_parsed": int(len(every) + (outside if applied else 0)),
        "n_volume_filtered": int(outside if applied else 0),
        "n_distinct": int(len(frame)),
        "duplicates_across_sources": dict(sorted(pair_counts.items())),
        "duplicates_within_source": dict(sorted(within.items())),
        "excluded": {},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    return finish_dataset("perovskites", frame, skipped, cfg, report, volume_outside=outside)
