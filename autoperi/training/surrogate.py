"""Training of the formation-energy surrogate (`autoperi.model.surrogate`) on one dataset's published split.

Targets (column of the processed table, unit, what is learnt):
- perov_5: `heat_of_formation`, CMR heat of formation `heat_all` in eV per 5-atom cell (matminer's metadata for
  the same CMR data: "Heat of formation of the entire 5-atom perovskite cell, in eV"); every cell has 5 atoms,
  so eV/atom = value / 5. Learnt as given.
- mp20_bt: `formation_energy_per_atom`, eV/atom (Materials Project). Rows with NaN are excluded and counted; in
  the processed table every *train* row is NaN (MP-20's train CIF file carries no properties), so the surrogate
  trains on the published val split (90 %, seeded) with early stopping on the other 10 %, and is tested on test.
- carbon_24: `energy_per_atom` relative to the lowest training energy, eV/atom. Carbon-24 has one element, so no
  formation energy exists; the energy above the lowest-energy training structure is the analogue. Its processed
  table has no val split (train = CDVAE's val): 10 % of train (seeded) is held out for early stopping.

Graphs are cached on disk (`<cache_dir>/<dataset>-cut<cutoff>-<data hash>.pt`): atom arrays, edge lists and
integer image shifts from the one neighbour list; batches are sliced from them, edge lengths recomputed in torch.
Training state is written every epoch (`surrogate_state.pt`) and resumed if present; the best model so far is
written to `surrogate.pt` (+ `.json`) whenever validation improves, so a killed run loses at most one epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from autoperi.config import Params
from autoperi.data.sources import sha256_of
from autoperi.graphs.neighbors import neighbor_list
from autoperi.model.surrogate import FormationEnergySurrogate, save_surrogate

TARGETS = {  # dataset → (column, unit, subtract the lowest train value)
    "perov_5": ("heat_of_formation", "eV per 5-atom cell (CMR heat_all)", False),
    "mp20_bt": ("formation_energy_per_atom", "eV/atom", False),
    "carbon_24": ("energy_per_atom", "eV/atom above the lowest-energy training structure", True),
}
CACHE_DIR = "data/cache/surrogate"


def surrogate_splits(frame: pd.DataFrame, dataset: str, seed: int, holdout_fraction: float = 0.1):
    """Row positions for train / val / test and a report of what was excluded or carved out, and why."""
    column = TARGETS[dataset][0]
    finite = frame[column].notna().to_numpy()
    split = frame["split"].to_numpy()
    report = {"target": column, "excluded_nan": {s: int(((split == s) & ~finite).sum()) for s in np.unique(split)}}
    pools = {s: np.flatnonzero((split == s) & finite) for s in ("train", "val", "test")}
    rng = np.random.default_rng(seed)
    if len(pools["train"]) == 0:  # mp20_bt: no train labels in the processed table
        pool = rng.permutation(pools["val"])
        n_hold = max(1, int(round(holdout_fraction * len(pool))))
        pools["train"], pools["val"] = np.sort(pool[n_hold:]), np.sort(pool[:n_hold])
        report["split_note"] = f"train split has no {column}: trained on {1 - holdout_fraction:.0%} of val, " \
                               f"early stopping on the other {holdout_fraction:.0%}"
    elif len(pools["val"]) == 0:  # carbon_24: no val split
        pool = rng.permutation(pools["train"])
        n_hold = max(1, int(round(holdout_fraction * len(pool))))
        pools["train"], pools["val"] = np.sort(pool[n_hold:]), np.sort(pool[:n_hold])
        report["split_note"] = f"no val split: {holdout_fraction:.0%} of train held out for early stopping"
    else:
        report["split_note"] = "published train / val / test"
    report.update({f"n_{s}": int(len(p)) for s, p in pools.items()})
    return pools, report


class GraphStore:
    """Crystal graphs of a table held as flat arrays; `batch(rows)` slices a PyG Batch like `build_graphs`."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.t = tensors
        self.node_ptr = tensors["node_ptr"].numpy()
        self.edge_ptr = tensors["edge_ptr"].numpy()

    @classmethod
    def build(cls, frame: pd.DataFrame, cutoff_angstrom: float, desc: str = "graphs") -> GraphStore:
        numbers, fracs, lattices, edges, shifts = [], [], [], [], []
        n_nodes, n_edges = [0], [0]
        for z, frac, lattice in tqdm(zip(frame["atomic_numbers"], frame["frac_coords"], frame["lattice"], strict=True),
                                     total=len(frame), desc=desc, mininterval=5, unit="cryst"):
            frac = np.asarray(frac, dtype=float).reshape(-1, 3)
            lattice = np.asarray(lattice, dtype=float).reshape(3, 3)
            edge_index, shift, _ = neighbor_list(frac, lattice, cutoff_angstrom)
            numbers.append(np.asarray(z, dtype=np.int16))
            fracs.append(frac)
            lattices.append(lattice)
            edges.append(edge_index.astype(np.int16))  # local atom indices (< 2^15)
            shifts.append(shift.astype(np.int8))
            n_nodes.append(len(frac))
            n_edges.append(edge_index.shape[1])
        return cls({
            "atomic_numbers": torch.from_numpy(np.concatenate(numbers)),
            "frac_coords": torch.from_numpy(np.concatenate(fracs)),
            "lattice": torch.from_numpy(np.stack(lattices)),
            "edge_index": torch.from_numpy(np.concatenate(edges, axis=1)),
            "edge_shift": torch.from_numpy(np.concatenate(shifts)),
            "node_ptr": torch.from_numpy(np.cumsum(n_nodes)),
            "edge_ptr": torch.from_numpy(np.cumsum(n_edges)),
        })

    @classmethod
    def cached(cls, frame: pd.DataFrame, cutoff_angstrom: float, path: Path, desc: str = "graphs") -> GraphStore:
        if path.exists():
            return cls(torch.load(path, weights_only=True))
        store = cls.build(frame, cutoff_angstrom, desc)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(store.t, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return store

    def mean_degree(self) -> float:
        return float(self.edge_ptr[-1] / max(1, self.node_ptr[-1]))

    def batch(self, rows: np.ndarray) -> Batch:
        node_lo, node_hi = self.node_ptr[rows], self.node_ptr[rows + 1]
        edge_lo, edge_hi = self.edge_ptr[rows], self.edge_ptr[rows + 1]
        node_idx = torch.from_numpy(np.concatenate([np.arange(a, b) for a, b in zip(node_lo, node_hi, strict=True)]))
        edge_idx = torch.from_numpy(np.concatenate([np.arange(a, b) for a, b in zip(edge_lo, edge_hi, strict=True)]))
        sizes = torch.from_numpy(node_hi - node_lo)
        offsets = torch.cumsum(sizes, 0) - sizes  # first atom of each crystal in the batch
        edge_offsets = torch.repeat_interleave(offsets, torch.from_numpy(edge_hi - edge_lo))
        return Batch(
            atomic_numbers=self.t["atomic_numbers"][node_idx].long(),
            frac_coords=self.t["frac_coords"][node_idx],
            lattice=self.t["lattice"][torch.from_numpy(rows)],
            edge_index=self.t["edge_index"][:, edge_idx].long() + edge_offsets,
            edge_shift=self.t["edge_shift"][edge_idx].long(),
            batch=torch.repeat_interleave(torch.arange(len(rows)), sizes),
            ptr=torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)]),
        )


def predict_rows(model, store: GraphStore, rows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            out.append(model(store.batch(rows[start : start + batch_size])).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    err = pred - target
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "n": int(len(err))}


def train_surrogate(
    params: Params,
    dataset: str,
    out_dir: str | Path | None = None,
    epochs: int = 60,
    batch_size: int = 64,
    learning_rate: float | None = None,
    patience: int = 8,
    max_wall_s: float | None = None,
    model_config: dict | None = None,
    threads: int | None = None,
    frame: pd.DataFrame | None = None,
    resume: bool = True,
    init_from: str | Path | None = None,
    track: bool = True,
    progress: bool = True,
) -> dict:
    """Train, early-stop on validation MAE, test, and write `<out_dir>/surrogate.pt` + `.json`; returns the report.

    `out_dir` defaults to `<train.models_dir>/<dataset>`. `max_wall_s` stops after the epoch that crosses it
    (reported as `stopped: wall_time`); `max_wall_s` and `epochs` count the whole run across resumes. The
    training state (`surrogate_state.pt`) is kept after the run, so calling again with more epochs or wall time
    continues it exactly (`resume=False` starts over). `init_from` warm-starts the weights from an earlier
    `surrogate.pt` of the same architecture when no state exists (fresh optimiser, reported in the json).
    `frame` replaces the processed table (tests); its data hash is then computed from the rows used.
    """
    if dataset not in TARGETS:
        raise ValueError(f"no surrogate target defined for {dataset!r}; known: {sorted(TARGETS)}")
    torch.set_num_threads(threads or params.train.threads)
    seed = params.train.seed
    torch.manual_seed(seed)
    out_dir = Path(out_dir) if out_dir is not None else params.path(params.train.models_dir) / dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    column, unit, relative = TARGETS[dataset]
    if frame is None:
        from autoperi.data.registry import load_processed

        frame = load_processed(params, [dataset])[dataset]
        data_hash = sha256_of(params.path(params.data.processed_dir) / f"{dataset}.parquet")
    else:
        data_hash = hashlib.sha256(pd.util.hash_pandas_object(frame[["id", column]]).values.tobytes()).hexdigest()
    pools, split_report = surrogate_splits(frame, dataset, seed)
    used = np.concatenate([pools["train"], pools["val"], pools["test"]])
    frame = frame.iloc[used].reset_index(drop=True)
    sizes = [len(pools["train"]), len(pools["val"]), len(pools["test"])]
    bounds = np.cumsum([0, *sizes])
    train_rows, val_rows, test_rows = (np.arange(bounds[k], bounds[k + 1]) for k in range(3))

    config = {**(model_config or {})}
    cutoff = config.get("cutoff_angstrom", FormationEnergySurrogate().config["cutoff_angstrom"])
    cache = params.path(CACHE_DIR) / f"{dataset}-cut{cutoff:g}-{data_hash[:16]}-{len(frame)}.pt"
    store = GraphStore.cached(frame, cutoff, cache, desc=f"{dataset} graphs")
    values = frame[column].to_numpy(dtype=float)
    reference = float(values[train_rows].min()) if relative else 0.0
    target = values - reference
    config.update({
        "target": column, "target_unit": unit, "target_reference": reference,
        "target_mean": float(target[train_rows].mean()), "target_std": float(target[train_rows].std() or 1.0),
        "neighbor_norm": round(store.mean_degree(), 2),
    })
    model = FormationEnergySurrogate(config)
    lr = learning_rate or params.train.learning_rate
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(1, patience // 3))
    y = torch.tensor(target, dtype=torch.float32)
    scale = config["target_std"]

    state_path = out_dir / "surrogate_state.pt"
    history, best, epoch0, wall0 = [], {"val_mae": math.inf, "epoch": -1}, 0, 0.0
    best_state = None
    # A saved state is resumed only by the same run: same data, split seed, model and optimiser settings.
    run_key = json.dumps([data_hash, seed, batch_size, learning_rate or params.train.learning_rate, patience,
                          str(init_from), sorted(config.items())], default=str)
    state = torch.load(state_path, weights_only=True) if resume and state_path.exists() else None
    if state is not None and state.get("run_key") != run_key:
        print(f"{dataset} surrogate: {state_path} belongs to another run (data or settings differ); starting afresh")
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, best, epoch0, wall0 = state["history"], state["best"], state["epoch"] + 1, state["wall_s"]
        best_state = state["best_model"]
    elif init_from is not None:
        warm = torch.load(init_from, weights_only=True)
        model.load_state_dict(warm["state_dict"])  # same architecture; target scaling recomputed identically

    meta_base = {
        "dataset": dataset, "data_hash_sha256": data_hash, "splits": split_report, "seed": seed,
        "batch_size": batch_size, "learning_rate": lr, "max_epochs": epochs, "patience": patience,
        "init_from": str(init_from) if init_from is not None and epoch0 == 0 else None,
    }
    run_ctx = contextlib.nullcontext()
    if track:
        from autoperi.tracking import start_run

        run_ctx = start_run(params, experiment=dataset, stage="train", run_name="surrogate")
    stopped = "max_epochs"
    t_start = time.perf_counter() - wall0
    with run_ctx:
        bar = tqdm(range(epoch0, epochs), desc=f"surrogate {dataset}", disable=not progress, mininterval=10)
        for epoch in bar:
            model.train()
            order = torch.randperm(len(train_rows)).numpy()
            losses = []
            for start in range(0, len(order), batch_size):
                rows = train_rows[order[start : start + batch_size]]
                pred = model(store.batch(rows))
                # Huber on the standardised target: MAE-like, smooth near 0
                loss = torch.nn.functional.smooth_l1_loss(pred / scale, y[rows] / scale, beta=0.1)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{dataset} surrogate: non-finite loss at epoch {epoch}")
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
                losses.append(loss.item())
            val = _metrics(predict_rows(model, store, val_rows), target[val_rows])
            scheduler.step(val["mae"])
            wall = time.perf_counter() - t_start
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mae": val["mae"],
                   "lr": optimizer.param_groups[0]["lr"], "wall_s": round(wall, 1)}
            history.append(row)
            bar.set_postfix(val_mae=f"{val['mae']:.4f}", loss=f"{row['train_loss']:.4f}")
            if track:
                import mlflow

                mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            if val["mae"] < best["val_mae"]:
                best = {"val_mae": val["mae"], "epoch": epoch}
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
                save_surrogate(model, out_dir / "surrogate.pt", {**meta_base, "status": "training", "best": best})
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "history": history,
                        "best": best, "epoch": epoch, "wall_s": wall, "best_model": best_state, "run_key": run_key},
                       state_path)
            if epoch - best["epoch"] >= patience:
                stopped = "early_stopping"
                break
            if max_wall_s is not None and wall >= max_wall_s:
                stopped = "wall_time"
                break
        model.load_state_dict(best_state)
        test = _metrics(predict_rows(model, store, test_rows), target[test_rows])
        baseline = _metrics(np.full(len(test_rows), config["target_mean"]), target[test_rows])
        report = {
            **meta_base, "status": "done", "stopped": stopped, "best": best,
            "epochs_run": len(history), "wall_s": round(time.perf_counter() - t_start, 1),
            "threads": torch.get_num_threads(), "test": test, "test_mae_predict_train_mean": baseline["mae"],
            "val": _metrics(predict_rows(model, store, val_rows), target[val_rows]),
            "n_parameters": sum(p.numel() for p in model.parameters()), "history": history,
        }
        save_surrogate(model, out_dir / "surrogate.pt", report)
        if track:
            import mlflow

            mlflow.log_metrics({"test_mae": test["mae"], "test_rmse": test["rmse"], "best_val_mae": best["val_mae"],
                                "test_mae_predict_train_mean": baseline["mae"]})
            mlflow.log_artifact(str(out_dir / "surrogate.json"))
    return json.loads((out_dir / "surrogate.json").read_text())


def _minutes_to_s(minutes: float | None) -> float | None:
    return None if minutes is None else 60.0 * minutes


def main(argv=None) -> None:
    """`python -m autoperi.training.surrogate --dataset perov_5 [...]`: train one or more surrogates in turn."""
    import argparse

    from autoperi.config import load_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--dataset", action="append", required=True, help="repeat for several, trained in order")
    parser.add_argument("--epochs", type=int, default=None, help="default: train.surrogate_epochs")
    parser.add_argument("--batch-size", type=int, default=None, help="default: train.surrogate_batch_size")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--patience", type=int, default=None, help="default: train.surrogate_patience")
    parser.add_argument("--max-wall-s", type=float, default=None,
                        help="per dataset (default: train.surrogate_max_minutes)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--init-from", default=None, help="warm-start weights from this surrogate.pt")
    parser.add_argument("--no-resume", action="store_true", help="ignore a saved training state")
    args = parser.parse_args(argv)
    params = load_params(args.params, args.profile)
    cfg = params.train
    max_wall_s = args.max_wall_s or _minutes_to_s(cfg.surrogate_max_minutes)
    for dataset in args.dataset:
        report = train_surrogate(params, dataset, epochs=args.epochs or cfg.surrogate_epochs,
                                 batch_size=args.batch_size or cfg.surrogate_batch_size,
                                 learning_rate=args.learning_rate, patience=args.patience or cfg.surrogate_patience,
                                 max_wall_s=max_wall_s, threads=args.threads, init_from=args.init_from,
                                 resume=not args.no_resume)
        print(json.dumps({k: report[k] for k in ("dataset", "test", "best", "epochs_run", "wall_s", "stopped")}))


if __name__ == "__main__":
    main()
