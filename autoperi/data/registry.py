"""Build every configured dataset and write the processed tables, split id lists and data reports.

Outputs (paths from params.yaml `data`):
- `<processed_dir>/<dataset>.parquet`: one row per kept crystal (geometry, descriptors, properties, splits)
- `<processed_dir>/splits/<dataset>/{original,composition}_{train,val,test}.txt`: id lists
- `<reports_dir>/summary.json`: per dataset n_raw, n_kept, skipped (by reason), splits, ...
- `<reports_dir>/skipped/<dataset>.csv`: every refused row (source, row_or_file, reason, detail)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from autoperi.config import Params
from autoperi.data.datasets import (
    ALL_DATASETS,
    DATASETS,
    RawTableCache,
    build_dataset,
    finish_dataset,
    limits_from,
)
from autoperi.data.merge import build_perovskites
from autoperi.data.preprocess import process_items
from autoperi.data.readers import read_structures
from autoperi.data.splits import write_id_lists

SKIPPED_COLUMNS = ["source", "row_or_file", "reason", "detail"]


IMPORTS_DIR = "data/imports"  # user imports live outside the data stage's outputs, so DVC never deletes them


def write_dataset(
    name: str, frame: pd.DataFrame, skipped: list[dict], report: dict, processed: Path, reports: Path
) -> dict:
    processed.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(processed / f"{name}.parquet", index=False)
    folder = processed / "splits" / name
    write_id_lists(frame["id"], frame["split"], folder, "original")
    if frame["comp_split"].notna().any():
        write_id_lists(frame["id"], frame["comp_split"], folder, "composition")
    (reports / "skipped").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_csv(reports / "skipped" / f"{name}.csv", index=False)
    return report


def preprocess_registry(params: Params) -> dict:
    """Build each dataset in `params.data.datasets`; write outputs; return (and write) the summary."""
    cfg = params.data
    unknown = sorted(set(cfg.datasets) - set(ALL_DATASETS))
    if unknown:
        raise ValueError(f"params.yaml data.datasets: unknown dataset(s) {unknown}; known: {list(ALL_DATASETS)}")
    raw_dir = params.path(cfg.raw_dir)
    cache = RawTableCache(raw_dir, cfg)
    summary = {"profile": params.profile, "max_rows_per_split": cfg.max_rows_per_split, "datasets": {}}
    t_all = time.perf_counter()
    for name in cfg.datasets:
        t0 = time.perf_counter()
        if name in DATASETS:
            frame, skipped, report = build_dataset(name, raw_dir, cfg, cache)
        else:
            frame, skipped, report = build_perovskites(raw_dir, cfg, cache)
        report["wall_s"] = round(time.perf_counter() - t0, 2)
        summary["datasets"][name] = write_dataset(
            name, frame, skipped, report, params.path(cfg.processed_dir), params.path(cfg.reports_dir)
        )
    summary["wall_s"] = round(time.perf_counter() - t_all, 2)
    reports = params.path(cfg.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def import_folder(folder: str | Path, name: str, params: Params) -> dict:
    """A folder of the user's CIF / POSCAR / extxyz files → a processed dataset `name`, same checks and outputs.

    Written to data/imports/<name>/ (`<name>.parquet`, `splits/`, `skipped/<name>.csv`, `summary.json`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    if name in ALL_DATASETS:
        raise ValueError(f"{name!r} is a registry dataset name; choose another")
    entries = read_structures(folder)
    items = [(key, item) for key, item in entries if not isinstance(item, Exception)]
    skipped = [
        {"source": str(folder), "row_or_file": key, "reason": item.reason, "detail": item.detail}
        for key, item in entries
        if isinstance(item, Exception)
    ]
    cfg = params.data
    records, refused, timings = process_items(items, limits_from(cfg), cfg.symprec, cfg.workers, desc=name)
    skipped += [{"source": str(folder), "row_or_file": k, "reason": r, "detail": d} for k, r, d in refused]
    frame = pd.DataFrame(
        [{"id": key, "source": str(folder), "row": key, "split": "all", **rec} for key, rec in records]
    )
    report = {
        "description": f"user import of {folder}",
        "notes": "",
        "n_raw": len(entries),
        "excluded": {},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    frame, skipped, report = finish_dataset(name, frame, skipped, cfg, report)
    root = params.path(IMPORTS_DIR) / name
    report = write_dataset(name, frame, skipped, report, root, root)
    (root / "summary.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def load_processed(params: Params, names=None) -> dict[str, pd.DataFrame]:
    """Processed tables of the configured datasets (or `names`), as written by `preprocess_registry`."""
    folder = params.path(params.data.processed_dir)
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in (names or params.data.datasets)}


def stage_metrics(summary: dict) -> dict[str, dict[str, float]]:
    """summary.json → flat numeric metrics per dataset, as logged to MLflow."""
    out = {}
    for name, rep in summary["datasets"].items():
        values = {"n_raw": rep["n_raw"], "n_kept": rep["n_kept"], "n_skipped": sum(rep["skipped"].values())}
        values.update({f"skipped_{k}": v for k, v in rep["skipped"].items()})
        values.update({f"split_{k}": v for k, v in rep["splits"]["original"].items()})
        values["wall_s"] = rep["wall_s"]
        out[name] = values
    return out
