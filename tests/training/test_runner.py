"""Which rows train and validate: published splits, a held-out share where there is no val split, seeded caps,
and val rows with elements the model never saw (skipped and listed, not dropped silently)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from autoperi.config import TrainConfig
from autoperi.training.runner import drop_unknown_elements, select_splits
from tests.training.tiny import perov_frame


@pytest.fixture(scope="module")
def frame():
    return perov_frame(32, 8)


def test_published_splits_are_kept(frame):
    train, val = select_splits(frame, TrainConfig())
    assert list(train["id"]) == list(frame.loc[frame["split"] == "train", "id"])
    assert list(val["id"]) == list(frame.loc[frame["split"] == "val", "id"])


def test_no_val_split_holds_out_a_seeded_share_of_train(frame):
    carbon_like = frame.assign(split=["train"] * 28 + ["test"] * 4)  # like carbon_24: train and test only
    train, val = select_splits(carbon_like, TrainConfig(val_fraction=0.25, seed=1))
    assert len(val) == 7 and len(train) == 21
    assert set(train["id"]).isdisjoint(val["id"]) and set(train["id"]) | set(val["id"]) == set(carbon_like["id"][:28])
    again, _ = select_splits(carbon_like, TrainConfig(val_fraction=0.25, seed=1))
    other, _ = select_splits(carbon_like, TrainConfig(val_fraction=0.25, seed=2))
    assert list(again["id"]) == list(train["id"]) and list(other["id"]) != list(train["id"])
    assert list(train.index) == sorted(train.index)  # table order kept: the data hash does not depend on the draw


def test_row_caps_take_a_seeded_subset_in_table_order(frame):
    cfg = replace(TrainConfig(), max_train_rows=10, max_val_rows=3)
    train, val = select_splits(frame, cfg)
    assert len(train) == 10 and len(val) == 3 and list(train.index) == sorted(train.index)
    assert set(train["id"]) <= set(frame.loc[frame["split"] == "train", "id"])


def test_val_rows_with_unseen_elements_are_skipped_and_listed(frame):
    val = pd.concat([frame[frame["split"] == "val"], frame.iloc[:2]])
    vocabulary = sorted(
        {int(z) for zs in frame.iloc[2:]["atomic_numbers"] for z in zs} - {int(frame.iloc[0]["atomic_numbers"][0])}
    )
    kept, skipped = drop_unknown_elements(val, vocabulary)
    assert str(frame.iloc[0]["id"]) in skipped
    assert len(kept) + len(skipped) == len(val)
    for zs in kept["atomic_numbers"]:
        assert {int(z) for z in zs} <= set(vocabulary)


def test_a_table_without_train_rows_is_refused(frame):
    with pytest.raises(ValueError, match="no train rows"):
        select_splits(frame.assign(split="test"), TrainConfig())


def test_training_summary_takes_the_median_speed_and_counts(tmp_path):
    import json
    import math

    from autoperi.training.runner import write_training_summary

    result = {
        "epochs_completed": 3,
        "stop_reason": "early_stopping",
        "best_epoch": 2,
        "best_val_loss": 0.5,
        "train_minutes": 1.23456,
        "history": [{"crystals_per_s": 10.0}, {"crystals_per_s": math.nan}, {"crystals_per_s": 30.0}, {}],
        "n_train": 24,
        "n_val": 8,
        "val_skipped_unknown_elements": ["a", "b"],
        "skipped_steps": 1,
        "graphs_s": 0.5,
    }
    path = write_training_summary({"perov_5": result}, tmp_path / "reports" / "summary.json")
    summary = json.loads(path.read_text())["perov_5"]
    assert summary["crystals_per_s"] == 20.0 and summary["wall_minutes"] == 1.235
    assert summary["val_skipped_unknown_elements"] == 2 and summary["stop_reason"] == "early_stopping"
    assert "refine_minutes" not in summary

    refinement = {"minutes": 5, "complete": True, "crystals_per_s": 600.0, "best_val_loss": 0.7,
                  "history": [{"step": 0, "val_loss": 0.9}, {"step": 10, "val_loss": 0.7}]}
    refined = write_training_summary({"mp20_bt": {**result, "refinement": refinement}}, tmp_path / "s.json")
    summary = json.loads(refined.read_text())["mp20_bt"]
    assert (summary["refine_minutes"], summary["refine_crystals_per_s"]) == (5, 600.0)
    assert (summary["refine_val_loss_start"], summary["refine_val_loss_best"]) == (0.9, 0.7)
    stopped = write_training_summary({"mp20_bt": {**result, "refinement": {**refinement, "complete": False}}},
                                     tmp_path / "s.json")
    assert "refine_minutes" not in json.loads(stopped.read_text())["mp20_bt"]  # a stopped refinement is not reported


def test_per_dataset_budget_falls_back_to_max_minutes():
    from autoperi.training.runner import budget_for

    cfg = replace(TrainConfig(), max_minutes=22.0, max_minutes_by_dataset={"mp20_bt": 65.0})
    assert budget_for(cfg, "mp20_bt").max_minutes == 65.0
    assert budget_for(cfg, "perov_5").max_minutes == 22.0
    assert budget_for(replace(cfg, max_minutes_by_dataset=None), "mp20_bt").max_minutes == 22.0


def test_per_dataset_model_overrides():
    from autoperi.config import ModelConfig, ParamsError
    from autoperi.training.runner import model_for

    cfg = replace(ModelConfig(), by_dataset={"mp20_bt": {"distinct_element_head": True, "beta": 0.02}})
    resolved = model_for(cfg, "mp20_bt")
    assert resolved.distinct_element_head and resolved.beta == 0.02 and resolved.by_dataset is None
    assert model_for(cfg, "perov_5") == replace(ModelConfig(), by_dataset=None)
    with pytest.raises(ParamsError, match="model.by_dataset.mp20_bt.*betta"):
        model_for(replace(ModelConfig(), by_dataset={"mp20_bt": {"betta": 1}}), "mp20_bt")
