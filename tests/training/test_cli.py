"""`autoperi train` on 32 real Perov-5 crystals (parsed from data/raw, not data/processed): trains the real model,
writes best/last/history, logs to MLflow, resumes to more epochs, and runs DDP through `--nproc 2`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch
import yaml

from autoperi.cli import main
from autoperi.config import load_params
from autoperi.training.checkpoint import load_checkpoint, read_checkpoint
from autoperi.training.runner import read_training_run
from tests.training.tiny import REPO, perov_frame

TINY_MODEL = {
    "hidden_dim": 16,
    "latent_dim": 8,
    "cond_dim": 8,
    "encoder_layers": 1,
    "encoder_hidden_dim": 16,
    "decoder_layers": 1,
    "flow_layers": 2,
    "flow_hidden_dim": 16,
    "flow_bins": 4,
    "sample_steps": 2,
    "w_ef": 0.0,
}
TINY_TRAIN = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "threads": 1, "max_minutes": 5.0,
              "max_minutes_by_dataset": {"perov_5": 30.0, "mp20_bt": 1.0},
              "refine_minutes_by_dataset": {"perov_5": 0}}  # profiles merge into params.yaml's 10 minutes


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A params.yaml in a temp folder whose `clitest` profile reads a 32-row perov_5 table written there."""
    root = tmp_path_factory.mktemp("project")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["processed_dir"] = "processed"
    raw["train"]["datasets"] = ["perov_5"]  # a stage list: base section only (profiles may not change it)
    raw["profiles"]["clitest"] = {"model": TINY_MODEL, "train": TINY_TRAIN}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    (root / "processed").mkdir()
    perov_frame(32, 8).to_parquet(root / "processed" / "perov_5.parquet")
    return root


def _autoperi(root, *args, timeout=300):
    """`autoperi ...` in a fresh process (for torchrun); returns the JSON summary it prints last."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "autoperi.cli", "--params", str(root / "params.yaml"), "--profile", "clitest", *args]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _autoperi_here(root, capsys, *args):
    """The same command line through `autoperi.cli.main` in this process (saves the start-up of a new one)."""
    assert main(["--params", str(root / "params.yaml"), "--profile", "clitest", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_cli_trains_resumes_and_logs(project, capsys):
    summary = _autoperi_here(project, capsys, "train", "--dataset", "perov_5")
    out = project / "models" / "perov_5"
    assert summary["epochs_completed"] == 2 and summary["stop_reason"] == "epochs"
    history = json.loads((out / "history.json").read_text())["history"]
    assert len(history) == 2
    for term in ("recon_coords", "recon_species", "kl", "flow_nll", "physics_rdf"):
        assert all(f"train_{term}" in r and f"val_{term}" in r for r in history), term
    model, meta = load_checkpoint(out / "best.pt")
    assert type(model).__name__ == "AutoPeriGNN" and meta["config"]["model"]["hidden_dim"] == 16
    assert meta["stats"]["n_train"] == 24 and meta["config"]["dataset"] == "perov_5"
    assert meta["config"]["train"]["max_minutes"] == 30.0  # the dataset's own budget
    crystals = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert len(crystals) == 3 and all(c["lattice"].shape == (3, 3) for c in crystals)

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["perov_5"], output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["dvc_stage"] == "train"
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"checkpoints", "figures", "history.json"} <= artifacts

    # more epochs: resumes from last.pt and keeps the first two epochs as they were
    more = _autoperi_here(project, capsys, "train", "--dataset", "perov_5", "--epochs", "3", "--no-mlflow",
                          "--max-minutes", "20")
    assert more["epochs_completed"] == 3
    again = json.loads((out / "history.json").read_text())["history"]
    last = read_checkpoint(out / "last.pt")
    assert again[:2] == history and last["progress"]["epoch"] == 3
    assert last["config"]["train"]["max_minutes"] == 20.0  # the command line wins over max_minutes_by_dataset

    # what the training notebook reads back, without training
    run = read_training_run(load_params(project / "params.yaml", "clitest"), "perov_5")
    assert run["epochs_completed"] == 3 and run["history"] == again
    assert (run["n_train"], run["n_val"], run["val_skipped_unknown_elements"]) == (24, 8, [])


@pytest.mark.slow
def test_train_cli_nproc_2_runs_ddp(project):
    out = project / "ddp"
    summary = _autoperi(
        project, "train", "--dataset", "perov_5", "--nproc", "2", "--epochs", "1", "--out", str(out), "--no-mlflow"
    )
    assert summary["epochs_completed"] == 1
    state = read_checkpoint(out / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["progress"]["optimizer_steps"] == 3
    assert load_params(project / "params.yaml", "clitest").train.batch_size == 8
