"""The one MLflow helper every stage uses."""

from autoperi.tracking.mlflow_runs import log_dataset_runs, log_notebook, start_run, tracking_uri

__all__ = ["log_dataset_runs", "log_notebook", "start_run", "tracking_uri"]
