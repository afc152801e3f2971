"""Runs logged through the helper are visible to an MLflow server over its REST API, as the UI sees them."""

import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from autoperi.config import TrackingConfig
from autoperi.tracking import log_dataset_runs, log_notebook, tracking_uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def tmp_params(params, tmp_path):
    return dataclasses.replace(params, root=tmp_path, tracking=TrackingConfig())


def test_runs_and_artifacts_reach_the_server(tmp_params, tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"\x89PNG fake")
    notebook = tmp_path / "01_data.ipynb"
    notebook.write_text("{}")
    ids = log_dataset_runs(tmp_params, "data", {"perov_5": {"n_kept": 10}, "carbon_24": {"n_kept": 7}}, [figure])
    assert log_notebook(tmp_params, "data", notebook) == ids
    assert tracking_uri(tmp_params) == f"sqlite:///{tmp_path}/mlruns/mlflow.db"

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            tracking_uri(tmp_params),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        for _ in range(120):
            try:
                experiments = _post(f"{base}/experiments/search", {"max_results": 100})["experiments"]
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer within 60 s")
        by_name = {e["name"]: e["experiment_id"] for e in experiments}
        assert {"perov_5", "carbon_24"} <= set(by_name)
        runs = _post(f"{base}/runs/search", {"experiment_ids": [by_name["perov_5"]]})["runs"]
        assert len(runs) == 1
        run = runs[0]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["dvc_stage"] == "data" and tags["profile"] == "smoke" and "git_commit" in tags
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["n_kept"] == 10
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["graphs.cutoff_angstrom"] == "8.0"
        listing = urllib.request.urlopen(f"{base}/artifacts/list?run_id={run['info']['run_id']}", timeout=10).read()
        paths = {f["path"] for f in json.loads(listing)["files"]}
        assert {"figures", "notebooks"} <= paths
    finally:
        server.terminate()
        server.wait(timeout=30)
