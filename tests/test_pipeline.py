"""End to end: `dvc repro` of the smoke profile in a fresh copy, then a second repro that has nothing to do."""

import json
import sys

import pandas as pd
import pytest

from autoperi.config import load_params
from autoperi.data.readers import read_structures
from autoperi.data.splits import read_id_list
from tests.conftest import _run

pytestmark = pytest.mark.slow
NOTEBOOK_STAGES = ("data", "model", "training", "generate", "baselines", "ablations", "evaluation", "dft_validation")


def test_fetched_data_matches_data_dvc(repo_copy):
    root, env = repo_copy
    assert "data.dvc" not in _run([sys.executable, "-m", "dvc", "status", "data.dvc"], root, env).replace(
        "Data and pipelines are up to date", ""
    )


@pytest.mark.timeout(3600)  # the whole smoke pipeline runs in this test's setup
def test_dvc_repro_smoke_end_to_end(smoke_pipeline):
    root, first = smoke_pipeline.root, smoke_pipeline.first
    stages = _run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], root, smoke_pipeline.env).split()
    assert set(NOTEBOOK_STAGES) <= set(stages)
    assert {"train@perov_5", "evaluate@perov_5-oracle", "evaluate@carbon_24-autoperi", "dft@mp20_bt-random",
            "references", "evaluate_checkpoint@mp20_bt"} <= set(stages)
    for stage in stages:  # every stage ran, each (dataset, model) evaluation and (dataset, source) DFT run included
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
    # the checkpoint row: its own sample count (smoke: 6), not evaluation.n_samples, sampled and scored
    params = load_params(root / "params.yaml", "smoke")
    cfg = params.evaluation
    assert cfg.checkpoint_n_samples != cfg.n_samples
    for name in cfg.checkpoint_datasets:
        row = json.loads((root / f"reports/metrics/{name}/{cfg.checkpoint_model}.json").read_text())
        assert row["n_samples"] == cfg.checkpoint_n_samples and row["model"] == cfg.checkpoint_model
        frames = read_structures(root / f"reports/samples/{name}/{cfg.checkpoint_model}.extxyz")
        assert len(frames) == cfg.checkpoint_n_samples
    assert (root / "reports/notebooks/01_data.ipynb").exists()
    assert (root / "reports/figures/data/elements.png").stat().st_size > 10_000

    # one run per processed dataset, each carrying the executed notebook
    assert len(smoke_pipeline.data_runs) == 4
    assert set(smoke_pipeline.data_runs["tags.profile"]) == {"smoke"}
    assert all(paths == ["notebooks/01_data.ipynb"] for paths in smoke_pipeline.data_notebooks)

    assert "Running stage" not in smoke_pipeline.second
    assert "up to date" in smoke_pipeline.status
