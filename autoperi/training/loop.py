"""`fit`: the training loop for any module with `loss(batch) -> (total, {term: tensor})`.

Seeded and resumable: the data order of epoch e is a permutation drawn from a generator seeded by (seed, e), and
`last.pt` holds model, optimizer, scheduler, every process's RNG states and the position inside the epoch, so a
run killed at any point and resumed from `last.pt` continues the same trajectory (bit-identical on CPU).
Non-finite losses or gradients skip the step (counted) and stop the run after `max_nonfinite_steps` in a row.
Early stopping on the validation loss, a wall-clock budget, per-epoch metrics to `history.json` and MLflow.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from autoperi.config import Params, TrainConfig
from autoperi.training import distributed
from autoperi.training.checkpoint import (
    FORMAT,
    CheckpointError,
    code_version,
    data_hash,
    read_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    seed_everything,
    to_plain,
)
from autoperi.training.records import (
    BEST,
    CURVES,
    HISTORY,
    LAST,
    finite_numbers,
    fit_result,
    log_final_artifacts,
    mlflow_run,
    progress_bar,
    run_summary,
    write_json,
)

SUPERSEDED = "last.superseded.pt"  # the last.pt of an earlier run with other data, params or code
_VAL_SEED_OFFSET = 7919  # validation noise comes from its own stream, the same every epoch


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a NaN/Inf loss or gradient."""


# --- data access: a list of items (PyG Data, tensors) or a pandas DataFrame -------------------------------------


def _take(data, indices: np.ndarray):
    if hasattr(data, "iloc"):
        return data.iloc[indices]
    return [data[int(i)] for i in indices]


def default_collate(items):
    """PyG Data → Batch; anything else → torch's default collate."""
    from torch_geometric.data import Batch, Data

    if isinstance(items, list) and items and isinstance(items[0], Data):
        return Batch.from_data_list(items)
    return torch.utils.data.default_collate(items)


def item_ids(data) -> list:
    """Ids that identify the training items for the data hash: the `id` column / attribute, else positions."""
    if hasattr(data, "columns"):
        return list(data["id"]) if "id" in data.columns else list(range(len(data)))
    return [getattr(item, "id", i) for i, item in enumerate(data)]


# --- optimizer and schedules ------------------------------------------------------------------------------------


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig):
    """AdamW and the schedule named by `cfg.scheduler`: `none` / `cosine` (per step, after linear warmup) /
    `plateau` (per validation). Returns (optimizer, plateau scheduler or None); warmup and cosine are applied by
    `_set_lr` from the optimizer-step count, so they need no scheduler state."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate
        )
        return optimizer, scheduler
    if cfg.scheduler not in ("none", "cosine"):
        raise ValueError(f"train.scheduler {cfg.scheduler!r}: use none, cosine or plateau")
    return optimizer, None


def _lr_factor(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (linear warmup, then constant or cosine)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.scheduler != "cosine":
        return 1.0
    floor = cfg.min_learning_rate / cfg.learning_rate
    span = max(total_steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# --- the loop -----------------------------------------------------------------------------------------------------


def _new_progress() -> dict:
    return {
        "epoch": 0,  # completed epochs = index of the current one
        "batch_in_epoch": 0,  # batches of the current epoch already processed (skipped ones included)
        "global_step": 0,  # batches processed
        "optimizer_steps": 0,
        "skipped_steps": 0,
        "consecutive_nonfinite": 0,
        "best_val_loss": math.inf,
        "best_epoch": 0,
        "bad_validations": 0,
        "elapsed_s": 0.0,  # training wall time over all sessions (max_minutes counts this)
        "planned_epochs": None,  # epochs that fit in max_minutes (budget_schedule), re-planned after each epoch
        "planned_for_minutes": None,
        "epoch_end_elapsed_s": [],  # elapsed_s at each epoch end (the plan uses the latest epochs' speed)
        "finished": False,  # stopped for good (early stopping); reaching `epochs` is not final: more can follow
        "stop_reason": "",
    }


def _new_accumulator() -> dict:
    return {"n": 0.0, "sums": {}, "seconds": 0.0, "skipped": 0}


def _epoch_means(acc: dict) -> dict:
    n = max(acc["n"], 1.0)
    return {k: v / n for k, v in acc["sums"].items()}


def _reduced_stats(total, terms: dict, n_items: int, keys: list[str], job, stop: bool = False) -> torch.Tensor:
    """[nonfinite flag, stop flag, n, n·total, n·term…] summed over processes, float64 (one all-reduce a step
    carries the NaN guard, rank 0's time-budget decision and the epoch's loss sums)."""
    values = [float(not torch.isfinite(total.detach())), float(stop), float(n_items), float(total.detach()) * n_items]
    values += [float(terms[k].detach()) * n_items for k in keys]
    return distributed.all_reduce_sum(torch.tensor(values, dtype=torch.float64), job)


@torch.no_grad()
def evaluate(model, data, cfg: TrainConfig, collate: Callable, job=None) -> dict:
    """Mean total loss and terms over `data` in eval mode (weighted by items), with fixed noise every call."""
    job = job or distributed.current()
    batches = distributed.global_batches(np.arange(len(data)), cfg.batch_size, min_size=job.world_size)
    was_training = model.training
    model.eval()
    sums, keys = None, None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + _VAL_SEED_OFFSET + job.rank)
        for batch_idx in batches:
            mine = distributed.shard(batch_idx, job)
            total, terms = model.loss(collate(_take(data, mine)))
            keys = keys or sorted(terms)
            stats = _reduced_stats(total, terms, len(mine), keys, job)
            sums = stats if sums is None else sums + stats
    model.train(was_training)
    if sums is None:
        return {}
    n = float(sums[2])
    out = {"loss": float(sums[3]) / n}
    out.update({k: float(v) / n for k, v in zip(keys, sums[4:], strict=True)})
    return out


def fit(
    model: torch.nn.Module,
    train_data: Sequence,
    val_data: Sequence | None,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    params: Params | None = None,
    dataset: str | None = None,
    resume: bool = True,
    log_mlflow: bool = True,
    collate: Callable | None = None,
    train_ids: Sequence | None = None,
    progress: bool = True,
) -> dict:
    """Train `model` (anything with `loss(batch) -> (total, terms)`) and write `out_dir/{last,best}.pt` and
    `history.json`; returns {"history", "best_val_loss", "best_epoch", "stop_reason", ...}.

    `train_data`/`val_data`: a list of items or a DataFrame; `collate(items or frame rows) -> batch` (default: PyG
    Batch of Data items). `cfg.batch_size` is the global batch: under torchrun each process takes an interleaved
    share and its loss is weighted by its share, so the averaged gradient equals the single-process one.
    `resume`: continue from `out_dir/last.pt` when it is this run (same data hash and training code; otherwise it is
    kept as `last.superseded.pt` and training starts afresh); a finished run is returned as it is.
    `params`/`dataset`: recorded in the checkpoint and used for MLflow.
    """
    job = distributed.current()
    torch.set_num_threads(cfg.threads)
    out_dir = Path(out_dir)
    collate = collate or default_collate
    config = {
        "train": dataclasses.asdict(cfg),
        "model": _model_config(model, params),
        "graphs": dataclasses.asdict(params.graphs) if params else None,
        "profile": params.profile if params else None,
        "dataset": dataset,
    }
    ids = list(train_ids) if train_ids is not None else item_ids(train_data)
    digest = data_hash(ids, {k: config[k] for k in ("model", "graphs", "dataset")})
    optimizer, plateau = build_optimizer(model, cfg)
    versions = code_version()
    state = _load_resume_state(out_dir / LAST, digest, versions["source_sha256"], job) if resume else None
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if plateau is not None and state.get("scheduler_state"):
            plateau.load_state_dict(state["scheduler_state"])
        prog, acc, history = state["progress"], state["accumulator"], list(state["history"])
        rngs = state["rng"]
        if job.rank < len(rngs):
            restore_rng_state(rngs[job.rank])
        else:
            seed_everything(cfg.seed + job.rank + 1000 * prog["global_step"])
        if prog.get("planned_for_minutes") != cfg.max_minutes:  # another budget: plan afresh
            prog["planned_epochs"] = None
    else:
        prog, acc, history = _new_progress(), _new_accumulator(), []
        seed_everything(cfg.seed + job.rank)
        if job.is_main:  # a fresh run: no best.pt or history of an earlier run may survive it
            for name in (LAST, BEST, HISTORY, CURVES):
                (out_dir / name).unlink(missing_ok=True)
        distributed.barrier(job)
    loss_fn = distributed.wrap_for_training(model, job)
    batches_per_epoch = len(distributed.global_batches(np.arange(len(train_data)), cfg.batch_size, job.world_size))
    if batches_per_epoch == 0:
        raise ValueError(f"{len(train_data)} training items: too few for {job.world_size} process(es)")

    def target_epochs() -> int:
        """cfg.epochs, or fewer where the time budget was found to allow fewer (`budget_schedule`)."""
        return min(cfg.epochs, prog.get("planned_epochs") or cfg.epochs)

    total_steps = target_epochs() * batches_per_epoch
    _set_lr(optimizer, cfg, prog["optimizer_steps"], total_steps, plateau)
    meta = {
        "format": FORMAT,
        "config": config,
        "stats": to_plain(getattr(model, "stats", None), "model.stats"),
        "data_hash": digest,
        "code_version": versions,
        "n_train": len(train_data),
        "n_val": len(val_data) if val_data is not None else 0,
        "world_size": job.world_size,
    }

    def checkpoint(path: Path, full: bool = True, extra: dict | None = None) -> None:
        rngs = distributed.gather_objects(rng_state(), job) if full else None
        if not job.is_main:
            return
        state = {**meta, "model_state": model.state_dict(), "progress": dict(prog), "history": history,
                 **(extra or {})}
        if full:
            state.update(
                optimizer_state=optimizer.state_dict(),
                scheduler_state=plateau.state_dict() if plateau is not None else None,
                rng=rngs,
                accumulator=acc,
            )
        save_checkpoint(state, path)

    if prog["finished"] or prog["epoch"] >= target_epochs():
        if progress and job.is_main:
            print(f"{out_dir / LAST}: run complete ({prog['epoch']} epochs, {prog['stop_reason']}); reused", flush=True)
        return fit_result(prog, history, out_dir, digest)
    prog["stop_reason"] = ""
    session_start = time.monotonic()
    elapsed_before = prog["elapsed_s"]

    def over_budget() -> bool:
        return cfg.max_minutes is not None and prog["elapsed_s"] > 60 * cfg.max_minutes

    def first_epoch_unfinished_best() -> None:
        """A budget spent inside the first epoch leaves no validated epoch: the weights so far become best.pt,
        validated, so every run leaves a model to sample. prog and history stay as they are (a resume continues
        the epoch, and its first finished epoch replaces this best.pt)."""
        extra = {"partial_epoch": {"batches": prog["batch_in_epoch"], "of": batches_per_epoch}}
        if val_data is not None and len(val_data) > 0:
            extra["partial_epoch"]["val_loss"] = evaluate(model, val_data, cfg, collate, job)["loss"]
        checkpoint(out_dir / BEST, full=False, extra=extra)

    if over_budget():  # same value on every process: it comes from the checkpoint
        prog["stop_reason"] = "time_budget"
        if not history and not (out_dir / BEST).exists():
            first_epoch_unfinished_best()
        return fit_result(prog, history, out_dir, digest)
    with mlflow_run(params, dataset, log_mlflow and job.is_main, digest, prog) as mlflow:
        while prog["epoch"] < target_epochs() and not prog["finished"] and prog["stop_reason"] != "time_budget":
            epoch = prog["epoch"]
            order = distributed.epoch_order(len(train_data), cfg.seed, epoch)
            batches = distributed.global_batches(order, cfg.batch_size, min_size=job.world_size)
            bar = progress_bar(progress and job.is_main, len(batches), prog["batch_in_epoch"], epoch, target_epochs())
            model.train()
            tick = time.monotonic()
            for b in range(prog["batch_in_epoch"], len(batches)):
                mine = distributed.shard(batches[b], job)
                total, terms = loss_fn(collate(_take(train_data, mine)))
                optimizer.zero_grad(set_to_none=True)
                (total * (len(mine) * job.world_size / len(batches[b]))).backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm or math.inf)
                keys = sorted(terms)
                stats = _reduced_stats(total, terms, len(mine), keys, job, stop=job.is_main and over_budget())
                prog["batch_in_epoch"], prog["global_step"] = b + 1, prog["global_step"] + 1
                if stats[0] > 0 or not torch.isfinite(grad_norm):
                    optimizer.zero_grad(set_to_none=True)
                    prog["skipped_steps"] += 1
                    prog["consecutive_nonfinite"] += 1
                    acc["skipped"] += 1
                    if prog["consecutive_nonfinite"] >= cfg.max_nonfinite_steps:
                        prog["elapsed_s"] = elapsed_before + time.monotonic() - session_start
                        prog["stop_reason"] = "non_finite"
                        checkpoint(out_dir / LAST)
                        bad = {k: float(v.detach()) for k, v in terms.items() if not torch.isfinite(v.detach())}
                        raise NonFiniteLossError(
                            f"{prog['consecutive_nonfinite']} consecutive steps with a non-finite loss or gradient "
                            f"(last at epoch {epoch + 1}, batch {b + 1}: loss {float(total.detach())}, "
                            f"non-finite terms {bad or 'none'}, gradient norm {float(grad_norm)}); "
                            f"{prog['skipped_steps']} skipped in all. Parameters are those of the last finite step "
                            f"({out_dir / LAST}). Lower train.learning_rate or check the data."
                        )
                else:
                    optimizer.step()
                    prog["optimizer_steps"] += 1
                    prog["consecutive_nonfinite"] = 0
                    _set_lr(optimizer, cfg, prog["optimizer_steps"], total_steps, plateau)
                    acc["n"] += float(stats[2])
                    for key, value in zip(["loss", *keys], stats[3:], strict=True):
                        acc["sums"][key] = acc["sums"].get(key, 0.0) + float(value)
                bar.update(1)
                bar.set_postfix(loss=f"{float(total.detach()):.4g}", refresh=False)
                now = time.monotonic()
                acc["seconds"] += now - tick
                tick = now
                prog["elapsed_s"] = elapsed_before + now - session_start
                if stats[1] > 0:  # rank 0 ran out of time before this step
                    prog["stop_reason"] = "time_budget"
                    break
                if cfg.checkpoint_every_steps and prog["global_step"] % cfg.checkpoint_every_steps == 0:
                    checkpoint(out_dir / LAST)
            bar.close()
            if prog["batch_in_epoch"] < len(batches):  # time budget hit mid-epoch: keep the partial epoch
                checkpoint(out_dir / LAST)
                if not history:
                    first_epoch_unfinished_best()
                break
            record = _finish_epoch(model, val_data, cfg, collate, job, prog, acc, plateau, target_epochs())
            record["learning_rate"] = optimizer.param_groups[0]["lr"]
            history.append(record)
            improved = record.get("improved", val_data is None or len(val_data) == 0)
            prog["epoch"], prog["batch_in_epoch"] = epoch + 1, 0
            acc.clear()
            acc.update(_new_accumulator())
            prog.setdefault("epoch_end_elapsed_s", []).append(prog["elapsed_s"])
            if cfg.max_minutes is not None and cfg.budget_schedule and not prog["finished"]:
                prog["planned_epochs"] = distributed.broadcast_object(_plan_epochs(cfg, prog), job)
                prog["planned_for_minutes"] = cfg.max_minutes
                total_steps = target_epochs() * batches_per_epoch
            if prog["epoch"] >= target_epochs() and not prog["stop_reason"]:
                prog["stop_reason"] = "epochs" if target_epochs() == cfg.epochs else "time_budget"
            if improved:
                checkpoint(out_dir / BEST, full=False)
            checkpoint(out_dir / LAST)
            if job.is_main:
                write_json(out_dir / HISTORY, {"history": history, **run_summary(prog, digest)})
                if mlflow is not None:
                    mlflow.log_metrics(
                        {k: v for k, v in finite_numbers(record).items() if k != "epoch"}, step=epoch + 1
                    )
        if job.is_main and mlflow is not None:
            log_final_artifacts(mlflow, out_dir, history, prog)
    distributed.barrier(job)
    return fit_result(prog, history, out_dir, digest)


def _plan_epochs(cfg: TrainConfig, prog: dict) -> int:
    """Epochs that fit in `max_minutes` at the wall time per epoch of the last (up to 3) epochs, so a cosine schedule
    reaches its floor inside the budget instead of being cut off at a high learning rate. The plan follows the
    current speed both ways (a first epoch slowed by other jobs no longer caps the run: measured, mp20_bt planned 6
    epochs and used 45 of its 65 minutes), except that a schedule which has reached its planned end stays ended."""
    done = prog["epoch"]
    previous = prog.get("planned_epochs")
    if previous and done >= previous:
        return previous
    ends = prog.get("epoch_end_elapsed_s") or []
    if len(ends) >= 2:
        k = min(3, len(ends) - 1)
        per_epoch = (ends[-1] - ends[-1 - k]) / k
    else:
        per_epoch = prog["elapsed_s"] / max(done, 1)
    remaining = 60 * cfg.max_minutes - prog["elapsed_s"]
    return min(cfg.epochs, done + max(int(remaining // max(per_epoch, 1e-9)), 0))


def _finish_epoch(model, val_data, cfg, collate, job, prog, acc, plateau, last_epoch: int) -> dict:
    """Validate (every `val_every` epochs and at the last), update early stopping, return the epoch's record."""
    epoch = prog["epoch"] + 1
    means = _epoch_means(acc)
    record = {"epoch": epoch, "train_loss": means.pop("loss", math.nan)}
    record.update({f"train_{k}": v for k, v in means.items()})
    record.update(
        train_s=acc["seconds"],
        crystals_per_s=acc["n"] / acc["seconds"] if acc["seconds"] > 0 else math.nan,
        skipped_steps=acc["skipped"],
    )
    validate = val_data is not None and len(val_data) > 0 and (epoch % cfg.val_every == 0 or epoch == last_epoch)
    if validate:
        tick = time.monotonic()
        val = evaluate(model, val_data, cfg, collate, job)
        record["val_s"] = time.monotonic() - tick
        record["val_loss"] = val.pop("loss")
        record.update({f"val_{k}": v for k, v in val.items()})
        record["improved"] = bool(record["val_loss"] < prog["best_val_loss"] - cfg.min_delta)
        if record["improved"]:
            prog["best_val_loss"], prog["best_epoch"], prog["bad_validations"] = record["val_loss"], epoch, 0
        else:
            prog["bad_validations"] += 1
            if cfg.patience and prog["bad_validations"] >= cfg.patience:
                prog["stop_reason"], prog["finished"] = "early_stopping", True
        if plateau is not None:
            plateau.step(record["val_loss"])
    elif val_data is None or len(val_data) == 0:
        prog["best_epoch"] = epoch  # no validation set: the latest model is the best one
    return record


def _set_lr(optimizer, cfg: TrainConfig, step: int, total_steps: int, plateau) -> None:
    if plateau is not None and not (cfg.warmup_steps and step < cfg.warmup_steps):
        return  # ReduceLROnPlateau owns the learning rate after warmup
    for group in optimizer.param_groups:
        group["lr"] = cfg.learning_rate * _lr_factor(cfg, step, total_steps)


def _model_config(model, params: Params | None):
    if params is not None:
        return dataclasses.asdict(params.model)
    cfg = getattr(model, "cfg", None)
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None


def _load_resume_state(path: Path, digest: str, source_sha: str, job) -> dict | None:
    """last.pt's state when it continues this run: same data hash (ids + model-shaping params) and same training
    code (`source_hash`). A last.pt of another run is kept as `last.superseded.pt` and this run starts afresh,
    so a pipeline whose params or code changed retrains instead of failing or resuming the wrong run."""
    if not path.exists():
        return None
    state = read_checkpoint(path)
    if "optimizer_state" not in state:
        raise CheckpointError(f"{path} holds no optimizer/RNG state (a best.pt?); cannot resume from it")
    reasons = []
    if state.get("data_hash") != digest:
        reasons.append(f"data or model params changed (data hash {str(state.get('data_hash'))[:12]} → {digest[:12]})")
    old_source = state.get("code_version", {}).get("source_sha256")
    if old_source != source_sha:
        reasons.append(f"training code changed (source hash {str(old_source)[:12]} → {source_sha[:12]})")
    if not reasons:
        return state
    distributed.barrier(job)  # every process has read it before rank 0 moves it
    if job.is_main:
        path.replace(path.with_name(SUPERSEDED))
        print(f"{path}: not resumed, {'; '.join(reasons)}; kept as {SUPERSEDED}, training afresh", flush=True)
    return None
