"""The one MLflow helper every stage uses (`mlflow_runs`, imported on first use so that `provenance` and the
packages that only need it, checkpoints among them, load without MLflow)."""

from autoperi.lazy import lazy_exports

_EXPORTS = {
    "log_dataset_runs": "mlflow_runs",
    "log_notebook": "mlflow_runs",
    "start_run": "mlflow_runs",
    "tracking_uri": "mlflow_runs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
