"""Training: the generic loop, checkpoints, multi-process data parallelism, and the AutoPeri-GNN runner.

- `loop.fit(model, train, val, cfg, out_dir, ...)`: any module with `loss(batch) -> (total, terms)`; seeded,
  resumable from `out_dir/last.pt`, NaN guard, early stopping, time budget, history.json + MLflow.
- `checkpoint`: weights-only checkpoints (`load_checkpoint(path) -> (model, meta)`), RNG states, data hash.
- `records`: the result dict, history.json, progress bars, the MLflow run; `figures`: loss curves.
- `distributed`: torchrun / DDP helpers (gloo on CPU), seeded sharding of global batches.
- `runner.train_dataset(params, dataset)`: what `autoperi train` and notebooks/03_train.ipynb run.
- `surrogate`: the formation-energy surrogate's own training (the physics loss needs it first).
"""
