"""MLflow runs for pipeline stages: SQLite store and artifacts inside `mlruns/`, one experiment per dataset.

Every run is tagged with the git commit, the DVC stage, the profile and the package version, and carries the
profile's parameters. The run ids of a stage are remembered in `mlruns/stage_runs/<stage>.json` so the executed
notebook, which exists only after papermill finishes, can be attached to them (`log_notebook`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import mlflow

from autoperi import __version__
from autoperi.config import Params
from autoperi.tracking.provenance import git_commit


def tracking_uri(params: Params) -> str:
    """`sqlite:///mlruns/mlflow.db` in params.yaml → an absolute URI, whatever the working directory."""
    uri = params.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        db = params.path(uri[len(prefix) :])
        db.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(db)
    return uri


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def _experiment_id(params: Params, name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = params.path(params.tracking.artifact_dir) / name
    artifacts.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifacts.resolve().as_uri())


def _stage_file(params: Params, stage: str) -> Path:
    return params.path(params.tracking.artifact_dir).parent / "stage_runs" / f"{stage}.json"


def forget_stage_runs(params: Params, stage: str) -> None:
    """Start a fresh list of run ids for `stage` (call once at the top of a stage)."""
    path = _stage_file(params, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[]")


@contextlib.contextmanager
def start_run(params: Params, experiment: str, stage: str, run_name: str | None = None, tags: dict | None = None):
    """Open an MLflow run in experiment `experiment` (one per dataset), tagged and with the params logged."""
    mlflow.set_tracking_uri(tracking_uri(params))
    all_tags = {
        "git_commit": git_commit(params.root),
        "dvc_stage": stage,
        "profile": params.profile,
        "autoperi_version": __version__,
        **(tags or {}),
    }
    with mlflow.start_run(experiment_id=_experiment_id(params, experiment), run_name=run_name, tags=all_tags) as run:
        mlflow.log_params(_flatten(params.as_dict()))
        path = _stage_file(params, stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(ids + [run.info.run_id]))
        yield run


def log_notebook(params: Params, stage: str, notebook: str | Path) -> list[str]:
    """Attach an executed notebook to every run the stage opened; returns those run ids."""
    mlflow.set_tracking_uri(tracking_uri(params))
    path = _stage_file(params, stage)
    ids = json.loads(path.read_text()) if path.exists() else []
    client = mlflow.MlflowClient()
    for run_id in ids:
        client.log_artifact(run_id, str(notebook), artifact_path="notebooks")
    return ids


def log_dataset_runs(params: Params, stage: str, metrics: dict[str, dict], artifacts: list[Path] = ()) -> list[str]:
    """One run per dataset (its experiment) with numeric metrics; shared artifacts (figures) on each."""
    forget_stage_runs(params, stage)
    ids = []
    for dataset, values in metrics.items():
        with start_run(params, experiment=dataset, stage=stage, run_name=f"{stage}:{dataset}") as run:
            mlflow.log_metrics({k: float(v) for k, v in values.items()})
            for path in artifacts:
                mlflow.log_artifact(str(path), artifact_path="figures")
            ids.append(run.info.run_id)
    return ids
