"""Train AutoPeri-GNN on one dataset from params: splits → statistics → graphs → model (+ surrogate) → `fit`.

The CLI (`autoperi train`) and `notebooks/03_train.ipynb` both call `train_dataset`; under torchrun every process
runs it and `fit` shards the batches.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from autoperi.config import ModelConfig, Params, TrainConfig, override_model
from autoperi.data.sources import sha256_of
from autoperi.training import distributed
from autoperi.training.checkpoint import seed_everything
from autoperi.training.loop import fit


def select_splits(frame: pd.DataFrame, cfg: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, val rows) from the published `split` column.

    Where a dataset has no val rows (carbon_24: its train split is CDVAE's val), a seeded `cfg.val_fraction` of the
    train rows is held out. `max_train_rows`/`max_val_rows` keep a seeded subset (quick profiles). Row order is
    the table's, so ids and the data hash do not depend on the seed's draw order.
    """
    if "split" not in frame.columns:
        raise ValueError(f"the table has no `split` column (columns: {sorted(frame.columns)})")
    rng = np.random.default_rng(cfg.seed)
    train = frame[frame["split"] == "train"]
    val = frame[frame["split"] == "val"]
    if len(train) == 0:
        raise ValueError("the table has no train rows")
    if len(val) == 0 and cfg.val_fraction > 0:
        held = np.zeros(len(train), dtype=bool)
        held[rng.permutation(len(train))[: max(1, round(cfg.val_fraction * len(train)))]] = True
        train, val = train[~held], train[held]
    return _subset(train, cfg.max_train_rows, rng), _subset(val, cfg.max_val_rows, rng)


def _subset(frame: pd.DataFrame, limit: int | None, rng: np.random.Generator) -> pd.DataFrame:
    if limit is None or len(frame) <= limit:
        return frame
    keep = np.sort(rng.permutation(len(frame))[:limit])
    return frame.iloc[keep]


def drop_unknown_elements(frame: pd.DataFrame, elements) -> tuple[pd.DataFrame, list[str]]:
    """(rows whose elements all occur in `elements`, ids of the others): the model's species vocabulary is the
    train split's, so a val crystal with an unseen element cannot be scored; such rows are skipped and listed."""
    vocabulary = {int(z) for z in elements}
    known = frame["atomic_numbers"].map(lambda z: {int(v) for v in z} <= vocabulary).to_numpy(dtype=bool)
    return frame[known], [str(i) for i in frame["id"][~known]]


def surrogate_for(params: Params, dataset: str):
    """(frozen surrogate or None, its path, sha256 or None): the formation-energy surrogate the E_f term uses,
    from `model.surrogate_path`; None where the term is off or no surrogate was trained (the term is then 0)."""
    path = params.path(params.model.surrogate_path.format(dataset=dataset))
    if params.model.w_ef <= 0 or not path.exists():
        return None, path, None
    from autoperi.model.surrogate import load_surrogate

    return load_surrogate(path), path, sha256_of(path)


def budget_for(cfg: TrainConfig, dataset: str) -> TrainConfig:
    """`cfg` with `max_minutes` set to the dataset's entry of `max_minutes_by_dataset` where it has one."""
    budgets = cfg.max_minutes_by_dataset or {}
    if dataset not in budgets:
        return cfg
    return dataclasses.replace(cfg, max_minutes=budgets[dataset])


def model_for(cfg: ModelConfig, dataset: str) -> ModelConfig:
    """`cfg` with the dataset's entry of `by_dataset` applied (and `by_dataset` cleared, so a checkpoint records the
    configuration it was built with); an unknown key is refused with the dataset's name."""
    overrides = dict((cfg.by_dataset or {}).get(dataset) or {})
    return override_model(dataclasses.replace(cfg, by_dataset=None), overrides, f"model.by_dataset.{dataset}",
                          exclude=("by_dataset",))


def train_dataset(
    params: Params,
    dataset: str,
    *,
    frame: pd.DataFrame | None = None,
    out_dir: str | Path | None = None,
    epochs: int | None = None,
    resume: bool | None = None,
    log_mlflow: bool = True,
    progress: bool = True,
) -> dict:
    """Train (or resume, or reuse a finished run of) the model for `dataset`; writes `<models_dir>/<dataset>/
    {best.pt,last.pt,history.json,loss_curves.png}` and returns `fit`'s result plus `graphs_s` and `surrogate`.

    `frame`: the processed table (default: `load_processed(params, [dataset])`). `epochs`/`resume` override
    `params.train`.
    """
    from autoperi.model.autoperi_gnn import AutoPeriGNN, batch_from_frame, collate, dataset_statistics

    params = dataclasses.replace(params, model=model_for(params.model, dataset))
    cfg = budget_for(params.train, dataset)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=epochs)
    if frame is None:
        from autoperi.data.registry import load_processed

        frame = load_processed(params, [dataset])[dataset]
    out_dir = Path(out_dir) if out_dir is not None else params.path(cfg.models_dir) / dataset
    train, val = select_splits(frame, cfg)
    stats = dataset_statistics(train, dataset)
    val, val_unknown = drop_unknown_elements(val, stats["elements"])
    tick = time.monotonic()
    cutoff = params.model.encoder_cutoff_angstrom
    train_graphs = batch_from_frame(train, params.graphs, cutoff_angstrom=cutoff)
    val_graphs = batch_from_frame(val, params.graphs, cutoff_angstrom=cutoff)
    graphs_s = time.monotonic() - tick
    seed_everything(cfg.seed)  # initial weights depend only on the seed (DDP then broadcasts rank 0's)
    model = AutoPeriGNN(params.model, stats)
    surrogate, surrogate_path, surrogate_sha = surrogate_for(params, dataset)
    model.attach_surrogate(surrogate)
    job = distributed.current()
    if job.is_main and progress:
        print(
            f"{dataset}: {len(train)} train / {len(val)} val crystals ({len(val_unknown)} val rows skipped: "
            f"elements absent from train), graphs in {graphs_s:.1f} s, "
            f"surrogate {'attached' if surrogate is not None else 'none'} ({surrogate_path}), "
            f"{job.world_size} process(es) → {out_dir}"
        )
    # the surrogate's checksum enters the data hash (through the ids), so a retrained surrogate is a new run
    ids = [*train["id"].astype(str), f"surrogate:{surrogate_sha}"]
    result = fit(
        model,
        train_graphs,
        val_graphs,
        cfg,
        out_dir,
        params=params,
        dataset=dataset,
        resume=cfg.resume if resume is None else resume,
        log_mlflow=log_mlflow,
        collate=collate,
        train_ids=ids,
        progress=progress,
    )
    refinement = None
    refine_minutes = (cfg.refine_minutes_by_dataset or {}).get(dataset)
    if refine_minutes and job.is_main:
        from autoperi.training.refine import refine_best

        refinement = refine_best(params, dataset, out_dir, refine_minutes, threads=cfg.threads, progress=progress,
                                 frame=frame)
    return {
        **result,
        "refinement": refinement,
        "graphs_s": graphs_s,
        "n_train": len(train),
        "n_val": len(val),
        "val_skipped_unknown_elements": list(val_unknown),
        "surrogate": str(surrogate_path) if surrogate else None,
        "model": model,
    }


def read_training_run(params: Params, dataset: str, frame: pd.DataFrame | None = None) -> dict:
    """A finished (or interrupted) run of `dataset` read back from `<models_dir>/<dataset>/history.json`, with the
    train/val counts of its splits: what `training_summary` and the training notebook need, without training."""
    import json

    path = params.path(params.train.models_dir) / dataset / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training run of {dataset} (run `autoperi train --dataset {dataset}` "
                                f"or `dvc repro train@{dataset}`)")
    run = json.loads(path.read_text())
    if frame is None:
        from autoperi.data.registry import load_processed

        frame = load_processed(params, [dataset])[dataset]
    train, val = select_splits(frame, params.train)
    train_elements = {int(z) for zs in train["atomic_numbers"] for z in zs}
    _, val_unknown = drop_unknown_elements(val, sorted(train_elements))
    return {**run, "n_train": len(train), "n_val": len(val) - len(val_unknown),
            "val_skipped_unknown_elements": val_unknown}


def training_summary(results: dict[str, dict]) -> dict[str, dict]:
    """Per dataset, the numbers `dvc metrics show` lists: epochs, stop reason, best val loss, wall minutes, median
    crystals/s of the training pass, and counts of train/val crystals and skipped steps or rows; with a finished
    coordinate-decoder refinement, its minutes, crystals/s and validation loss before and after (its own loss: the
    coordinate terms only, not comparable with best_val_loss)."""
    out = {}
    for name, r in results.items():
        speeds = [h["crystals_per_s"] for h in r["history"] if np.isfinite(h.get("crystals_per_s", np.nan))]
        out[name] = {
            "epochs": r["epochs_completed"],
            "stop_reason": r["stop_reason"],
            "best_epoch": r["best_epoch"],
            "best_val_loss": r["best_val_loss"],
            "wall_minutes": round(r["train_minutes"], 3),
            "crystals_per_s": round(float(np.median(speeds)), 3) if speeds else None,
            "n_train": r["n_train"],
            "n_val": r["n_val"],
            "val_skipped_unknown_elements": len(r["val_skipped_unknown_elements"]),
            "skipped_steps": r["skipped_steps"],
            "graphs_s": round(r["graphs_s"], 2) if "graphs_s" in r else None,  # not kept by read_training_run
        }
        refined = r.get("refinement") or {}
        if refined.get("complete"):
            out[name].update(refine_minutes=refined["minutes"], refine_crystals_per_s=refined["crystals_per_s"],
                             refine_val_loss_start=refined["history"][0]["val_loss"],
                             refine_val_loss_best=refined["best_val_loss"])
    return out


def write_training_summary(results: dict[str, dict], path: str | Path) -> Path:
    """`training_summary` as JSON (the train stage's metrics file)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(training_summary(results), indent=2) + "\n")
    return path
