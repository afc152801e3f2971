"""End to end: `dvc repro` of the smoke profile in a fresh copy, then a second repro that has nothing to do."""

import json
import sys

import mlflow
import pandas as pd
import pytest

from autoperi.data.splits import read_id_list
from tests.conftest import _run

pytestmark = pytest.mark.slow
STAGES = ("data", "model", "train", "generate", "baselines", "references", "evaluate", "dft")


def test_fetched_data_matches_data_dvc(repo_copy):
    root, env = repo_copy
    assert "data.dvc" not in _run([sys.executable, "-m", "dvc", "status", "data.dvc"], root, env).replace(
        "Data and pipelines are up to date", ""
    )


@pytest.mark.timeout(3600)  # the whole smoke pipeline runs in this test's setup
def test_dvc_repro_smoke_end_to_end(smoke_pipeline):
    root, env, first = smoke_pipeline
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first, stage

    summary = json.loads((root / "reports/data/summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert set(summary["datasets"]) == {"perov_5", "carbon_24", "mp20_bt", "perovskites"}
    for name, rep in summary["datasets"].items():
        assert rep["n_kept"] > 0 and (root / f"data/processed/{name}.parquet").exists()
        assert (root / f"reports/data/skipped/{name}.csv").exists()
        if name == "carbon_24":  # one composition: no composition split
            continue
        lists = {
            split: set(read_id_list(root / "data/processed/splits" / name, "composition", split))
            for split in ("train", "val", "test")
        }
        assert all(lists.values()) and not (lists["train"] & lists["val"] or lists["train"] & lists["test"])
        assert not lists["val"] & lists["test"]
        frame = pd.read_parquet(root / f"data/processed/{name}.parquet")
        formulas = {s: set(frame.loc[frame["id"].isin(ids), "reduced_formula"]) for s, ids in lists.items()}
        assert not (formulas["train"] & formulas["test"] or formulas["train"] & formulas["val"]), name
        assert not formulas["val"] & formulas["test"], name
    assert (root / "reports/notebooks/01_data.ipynb").exists()
    assert (root / "reports/figures/data/elements.png").stat().st_size > 10_000

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.dvc_stage = 'data'")
    assert len(runs) == 4
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(runs.run_id[0], "notebooks")] == ["notebooks/01_data.ipynb"]

    second = _run([sys.executable, "-m", "dvc", "repro"], root, env)
    assert "Running stage" not in second
    status = _run([sys.executable, "-m", "dvc", "status"], root, env)
    assert "up to date" in status
