"""What a training run reports: the result dict, `history.json`, progress bars and its MLflow run."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from autoperi.config import Params
from autoperi.training.checkpoint import to_json

LAST, BEST, HISTORY, CURVES = "last.pt", "best.pt", "history.json", "loss_curves.png"


def run_summary(prog: dict, digest: str) -> dict:
    """The run as a whole (what history.json and the result carry besides the per-epoch records)."""
    return {
        "best_val_loss": prog["best_val_loss"] if math.isfinite(prog["best_val_loss"]) else None,
        "best_epoch": prog["best_epoch"],
        "stop_reason": prog["stop_reason"],
        "epochs_completed": prog["epoch"],
        "planned_epochs": prog.get("planned_epochs"),
        "skipped_steps": prog["skipped_steps"],
        "train_minutes": prog["elapsed_s"] / 60,
        "data_hash": digest,
    }


def fit_result(prog: dict, history: list, out_dir: Path, digest: str) -> dict:
    """What `fit` returns: history, run summary and the paths of the files it wrote."""
    return {
        "history": list(history),
        **run_summary(prog, digest),
        "last": out_dir / LAST,
        "best": out_dir / BEST,
        "history_path": out_dir / HISTORY,
    }


def finite_numbers(record: dict) -> dict:
    """The finite numeric entries of a record (MLflow refuses NaN/inf and strings)."""
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_json(payload), indent=1, default=str) + "\n")
    tmp.replace(path)


def progress_bar(enabled: bool, total: int, initial: int, epoch: int, epochs: int):
    from tqdm.auto import tqdm

    # mininterval: an executed notebook keeps every redraw as a line (10 per second by default: ~10,000 per stage)
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", disable=not enabled, leave=False,
                mininterval=10)


@contextlib.contextmanager
def mlflow_run(params: Params | None, dataset: str | None, enabled: bool, digest: str, prog: dict):
    """The MLflow module inside an `autoperi.tracking.start_run` (stage `train`), or None when not logging."""
    if not enabled or params is None:
        yield None
        return
    import mlflow

    from autoperi.tracking import start_run

    tags = {"data_hash": digest, "resumed_at_step": str(prog["global_step"])}
    name = f"train:{dataset}" if dataset else "train"
    with start_run(params, experiment=dataset or "train", stage="train", run_name=name, tags=tags):
        yield mlflow


def log_final_artifacts(mlflow, out_dir: Path, history: list, prog: dict) -> None:
    from autoperi.training.figures import plot_loss_curves

    mlflow.log_metrics({k: float(v) for k, v in finite_numbers(run_summary(prog, "")).items()})
    mlflow.set_tag("stop_reason", prog["stop_reason"])
    if history:
        figure = plot_loss_curves(history)
        figure.savefig(out_dir / CURVES, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
        mlflow.log_artifact(str(out_dir / CURVES), artifact_path="figures")
    for name in (HISTORY, BEST):
        if (out_dir / name).exists():
            mlflow.log_artifact(str(out_dir / name), artifact_path="checkpoints" if name == BEST else None)
