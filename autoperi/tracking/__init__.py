"""The one MLflow helper every stage uses (`mlflow_runs`, imported on first use so that `provenance` and the
packages that only need it, checkpoints among them, load without MLflow)."""

__all__ = ["log_dataset_runs", "log_notebook", "start_run", "tracking_uri"]


def __getattr__(name: str):
    if name in __all__:
        from autoperi.tracking import mlflow_runs

        return getattr(mlflow_runs, name)
    raise AttributeError(f"module 'autoperi.tracking' has no attribute {name!r}")
