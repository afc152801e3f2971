"""Build a reference row's samples: `reports/samples/<dataset>/<kind>.extxyz` plus `<kind>.report.json`.

The extxyz frames carry `baseline`, `source_id` (the data row the crystal comes from, or whose composition it
copies), `source_split` and `spacegroup` in their info; the report says what was requested, what was written, what
failed and how long it took. The random baseline writes each finished chunk to a parts folder first, so a killed
run resumes where it stopped.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

import pandas as pd

from autoperi.baselines.random_crystals import RandomSettings, chunk_tasks, random_chunk, summarize, training_pool
from autoperi.baselines.references import Draw, memorization_draw, oracle_draw
from autoperi.config import Params

KINDS = ("oracle", "memorization", "random")


def samples_path(params: Params, dataset: str, kind: str) -> Path:
    """reports/samples/<dataset>/<kind>.extxyz (params.evaluation.samples_dir)."""
    return params.path(params.evaluation.samples_dir) / dataset / f"{kind}.extxyz"


def report_path(params: Params, dataset: str, kind: str) -> Path:
    return samples_path(params, dataset, kind).with_suffix(".report.json")


def _write(path: Path, structures, info, report: dict) -> dict:
    from autoperi.sampling.writers import write_extxyz

    write_extxyz(structures, path, info)
    report["samples_path"] = str(path)
    report_file = path.with_suffix(".report.json")
    report_file.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def _real_rows(draw: Draw, kind: str, dataset: str, seed: int, path: Path, start: float) -> dict:
    from autoperi.data.preprocess import record_to_structure

    rows = draw.rows
    structures = [record_to_structure(row) for _, row in rows.iterrows()]
    info = [
        {
            "baseline": kind,
            "source_id": str(row["id"]),
            "source_split": str(row["split"]),
            "spacegroup": int(row["spacegroup"]),
            "formula": str(row["formula"]),
        }
        for _, row in rows.iterrows()
    ]
    report = {
        "dataset": dataset,
        "kind": kind,
        "seed": seed,
        "n_requested": draw.n_requested,
        "n_written": len(structures),
        "n_unique_source_ids": int(rows["id"].nunique()),
        "source_split": draw.source_split,
        "replacement": draw.replacement,
        "notes": draw.notes,
        "source_ids": rows["id"].astype(str).tolist(),
    }
    report["wall_s"] = round(time.perf_counter() - start, 2)
    return _write(path, structures, info, report)


def _random_rows(table: pd.DataFrame, n: int, seed: int, dataset: str, path: Path, client, start: float) -> dict:
    from autoperi.parallel import fan_out

    settings = RandomSettings(seed=seed)
    tasks = chunk_tasks(training_pool(table), n, settings)
    parts = path.parent / f".{path.stem}.parts-n{n}-seed{seed}"
    parts.mkdir(parents=True, exist_ok=True)
    done = {int(p.stem): p for p in parts.glob("*.pkl")}
    todo = [t for t in tasks if t[0] not in done]

    built_now = [0]  # crystals built in this run (resumed chunks excluded), for crystals_per_s

    def keep(i: int, result) -> None:  # each finished chunk goes to disk at once (resume after a kill)
        built_now[0] += sum(structure is not None for structure, _ in result)
        tmp = parts / f"{todo[i][0]}.tmp"
        tmp.write_bytes(pickle.dumps(result))
        tmp.replace(parts / f"{todo[i][0]}.pkl")

    fan_out(random_chunk, todo, client=client, desc=f"random crystals {dataset}", on_result=keep)
    results = [item for t in tasks for item in pickle.loads((parts / f"{t[0]}.pkl").read_bytes())]
    wall_s = time.perf_counter() - start
    records = [record for _, record in results]
    structures = [s for s, _ in results if s is not None]
    info = [
        {
            "baseline": "random",
            "source_id": r["source_id"],
            "source_split": "train",
            "spacegroup": int(r["spacegroup"]),
            "formula": r["formula"],
            "group_redraws": r["incompatible"] + r["failed"] + r["reduced"],
            "fallback_p1": bool(r["fallback_p1"]),
        }
        for s, r in results
        if s is not None
    ]
    report = {
        "dataset": dataset,
        "kind": "random",
        "seed": seed,
        "settings": settings.__dict__,
        "n_resumed_chunks": len(done),
        "n_built_now": built_now[0],
        **summarize(records, wall_s, n_built_now=built_now[0]),
        "notes": [
            "composition and primitive-cell atom counts of a seeded training row; space group drawn from the "
            "training space-group distribution, redrawn when incompatible with the counts or when pyxtal fails; "
            "wall_s covers only this run (resumed chunks excluded)"
        ],
    }
    report = _write(path, structures, info, report)
    shutil.rmtree(parts, ignore_errors=True)
    return report


def build_baseline(
    params: Params,
    dataset: str,
    kind: str,
    n: int | None = None,
    seed: int | None = None,
    client=None,
    table: pd.DataFrame | None = None,
) -> dict:
    """Write reports/samples/<dataset>/<kind>.extxyz for kind in oracle | memorization | random and return its
    report (also written as <kind>.report.json). n defaults to params.evaluation.n_samples, seed to
    params.evaluation.seed; `table` defaults to the processed dataset; `client` fans the random crystals out."""
    if kind not in KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; expected one of {KINDS}")
    if table is None:
        from autoperi.data.registry import load_processed

        table = load_processed(params, [dataset])[dataset]
    n = int(params.evaluation.n_samples if n is None else n)
    seed = int(params.evaluation.seed if seed is None else seed)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    path = samples_path(params, dataset, kind)
    start = time.perf_counter()
    if kind == "random":
        return _random_rows(table, n, seed, dataset, path, client, start)
    draw = oracle_draw(table, n, seed) if kind == "oracle" else memorization_draw(table, n, seed)
    return _real_rows(draw, kind, dataset, seed, path, start)


def oracle_holdout_ids(params: Params, dataset: str) -> set[str]:
    """Ids of the real crystals the oracle of `dataset` submitted (val rows, or the held-out train rows where there
    is no val split), read from the oracle's report so they match the samples actually written. The evaluation
    leaves them out of the oracle's novelty reference (train + val): otherwise every oracle crystal would match
    itself and its novelty would be 0 by construction. Raises FileNotFoundError when the oracle has not been built."""
    report = json.loads(report_path(params, dataset, "oracle").read_text())
    return set(map(str, report["source_ids"]))
