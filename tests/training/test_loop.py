"""The loop's guards: NaN/Inf steps skipped and counted then fatal, early stopping, schedules, data order."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from autoperi.config import TrainConfig
from autoperi.training import distributed
from autoperi.training.checkpoint import read_checkpoint, seed_everything
from autoperi.training.loop import NonFiniteLossError, _lr_factor, fit
from tests.training.tiny import TinyRegressor, perov_graphs

CFG = TrainConfig(epochs=3, batch_size=8, learning_rate=3e-3, threads=1, scheduler="none", grad_clip_norm=0.0)


@pytest.fixture(scope="module")
def graphs():
    return perov_graphs(32)


def _run(model, train, val, cfg, out):
    return fit(model, train, val, cfg, out, resume=False, log_mlflow=False, progress=False)


def test_nan_loss_on_one_crystal_skips_exactly_its_batches(graphs, tmp_path):
    train, val = graphs[:24], graphs[24:]
    poisoned = [g.clone() for g in train]
    poisoned[5].y = torch.tensor([float("nan")], dtype=torch.float64)  # one bad label: one bad batch an epoch
    seed_everything(0)
    model = TinyRegressor()
    result = _run(model, poisoned, val, CFG, tmp_path)
    assert [r["skipped_steps"] for r in result["history"]] == [1, 1, 1]
    assert result["skipped_steps"] == 3 and result["stop_reason"] == "epochs"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the epoch means count only the finite steps: 16 of 24 crystals
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in result["history"])
    # skipping is the same as training without the two batches that held crystal 5
    seed_everything(0)
    clean = TinyRegressor()
    order_batches = [
        distributed.global_batches(distributed.epoch_order(24, CFG.seed, e), CFG.batch_size) for e in range(3)
    ]
    optimizer = torch.optim.AdamW(clean.parameters(), lr=CFG.learning_rate, weight_decay=0.0)
    from torch_geometric.data import Batch

    for batches in order_batches:
        for batch in batches:
            if 5 in batch:
                continue
            optimizer.zero_grad()
            clean.loss(Batch.from_data_list([train[i] for i in batch]))[0].backward()
            optimizer.step()
    for a, b in zip(model.parameters(), clean.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


class NanGradient(TinyRegressor):
    """Finite loss, NaN gradient: sqrt at 0 has an infinite derivative, times 0 → NaN."""

    def loss(self, batch):
        total, terms = super().loss(batch)
        trap = torch.sqrt(self.head.bias.sum() * 0.0)
        return total + trap, {**terms, "trap": trap}


def test_nonfinite_gradients_stop_after_k_in_a_row_with_parameters_untouched(graphs, tmp_path):
    model = NanGradient()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive steps .* gradient norm nan"):
        _run(model, graphs[:24], graphs[24:], replace(CFG, max_nonfinite_steps=3, grad_clip_norm=1.0), tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    saved = read_checkpoint(tmp_path / "last.pt")["progress"]
    assert saved["stop_reason"] == "non_finite" and saved["skipped_steps"] == 3 and saved["optimizer_steps"] == 0


class ScriptedValidation(TinyRegressor):
    """Trains for real, but its validation loss follows a given curve (one value per validation)."""

    def __init__(self, curve):
        super().__init__()
        self.curve, self.validations = list(curve), 0

    def loss(self, batch):
        if self.training:
            return super().loss(batch)
        value = torch.tensor(self.curve[self.validations])
        self.validations += 1
        return value, {"scripted": value}


@pytest.mark.parametrize(
    ("curve", "patience", "min_delta", "stopped_after", "best_epoch"),
    [
        ([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0, 0.5, 0.1], 3, 0.0, 6, 3),  # three worse in a row after epoch 3
        ([5.0, 4.0, 3.0, 3.5, 2.9, 3.1, 3.2, 3.3, 0.5, 0.1], 3, 0.0, 8, 5),  # the counter resets on improvement
        ([5.0, 4.0, 3.95, 3.9, 3.85, 3.0, 2.0, 1.0, 0.5, 0.1], 3, 0.2, 5, 2),  # improvements under min_delta
        ([5.0, 6.0, 7.0, 8.0, 9.0, 9.5, 9.8, 9.9, 10.0, 11.0], 0, 0.0, 10, 1),  # patience 0: never stops
    ],
)
def test_early_stopping_on_a_constructed_validation_curve(
    graphs, tmp_path, curve, patience, min_delta, stopped_after, best_epoch
):
    cfg = replace(CFG, epochs=10, patience=patience, min_delta=min_delta)
    model = ScriptedValidation(curve)
    result = _run(model, graphs[:16], graphs[16:24], cfg, tmp_path)  # the 8 val crystals are one batch
    assert len(result["history"]) == stopped_after
    assert result["stop_reason"] == ("early_stopping" if stopped_after < 10 else "epochs")
    assert result["best_epoch"] == best_epoch and result["best_val_loss"] == pytest.approx(curve[best_epoch - 1])
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["progress"]["epoch"] == best_epoch and "optimizer_state" not in best
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert [r["val_loss"] for r in on_disk["history"]] == pytest.approx(curve[:stopped_after])
    # resuming a finished run returns it without training further
    again = fit(ScriptedValidation(curve), graphs[:16], graphs[16:24], cfg, tmp_path, log_mlflow=False)
    assert len(again["history"]) == stopped_after


def test_cosine_schedule_with_warmup_hand_values():
    cfg = replace(CFG, scheduler="cosine", warmup_steps=4, learning_rate=1e-3, min_learning_rate=1e-4)
    assert _lr_factor(cfg, 0, 104) == pytest.approx(0.25)
    assert _lr_factor(cfg, 3, 104) == pytest.approx(1.0)
    assert _lr_factor(cfg, 4, 104) == pytest.approx(1.0)
    assert _lr_factor(cfg, 54, 104) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine
    assert _lr_factor(cfg, 104, 104) == pytest.approx(0.1)
    assert _lr_factor(replace(cfg, scheduler="none"), 50, 104) == 1.0


def test_cosine_learning_rate_reaches_the_floor_at_the_last_step(graphs, tmp_path):
    cfg = replace(CFG, scheduler="cosine", min_learning_rate=1e-5, epochs=2)
    result = _run(TinyRegressor(), graphs[:24], graphs[24:], cfg, tmp_path)
    assert result["history"][-1]["learning_rate"] == pytest.approx(1e-5)
    assert result["history"][0]["learning_rate"] == pytest.approx(1e-5 + (3e-3 - 1e-5) * 0.5)


def test_epoch_order_is_a_seeded_permutation_and_shards_cover_each_global_batch():
    a, b = distributed.epoch_order(50, 1, 3), distributed.epoch_order(50, 1, 3)
    assert np.array_equal(a, b) and sorted(a) == list(range(50))
    assert not np.array_equal(a, distributed.epoch_order(50, 1, 4))
    batches = distributed.global_batches(a, 16, min_size=2)
    assert [len(x) for x in batches] == [16, 16, 16, 2]
    for batch in batches:
        parts = [distributed.shard(batch, distributed.Dist(r, 2)) for r in range(2)]
        assert sorted(np.concatenate(parts)) == sorted(batch)
    assert [len(x) for x in distributed.global_batches(np.arange(49), 16, min_size=2)] == [16, 16, 16]


class FakeClock:
    """time.monotonic advancing 1 s per call: the loop's timings become deterministic."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


def test_time_budget_plans_the_epochs_so_the_cosine_ends_inside_it(graphs, tmp_path, monkeypatch):
    import autoperi.training.loop as loop

    monkeypatch.setattr(loop, "time", FakeClock())
    cfg = replace(CFG, epochs=50, scheduler="cosine", min_learning_rate=1e-5, max_minutes=0.5)  # 30 fake seconds
    result = _run(TinyRegressor(), graphs[:24], graphs[24:], cfg, tmp_path)
    history = result["history"]
    assert result["stop_reason"] == "time_budget" and 2 <= len(history) < 50
    assert result["planned_epochs"] == len(history)
    assert history[-1]["learning_rate"] == pytest.approx(1e-5)  # the schedule was planned to end here
    assert history[0]["learning_rate"] > 1e-3
    # a first epoch slowed down (another job on the cores) does not cap the plan: it grows once epochs are faster
    class SlowStart(FakeClock):
        def monotonic(self):
            self.now += 8.0 if self.now < 40 else 1.0
            return self.now

    monkeypatch.setattr(loop, "time", SlowStart())
    slow = _run(TinyRegressor(), graphs[:24], graphs[24:], replace(cfg, max_minutes=2.0), tmp_path / "s")
    first_plan = 1 + int((120 - slow["history"][0]["train_s"]) // slow["history"][0]["train_s"])
    assert slow["stop_reason"] == "time_budget" and slow["planned_epochs"] > first_plan + 2
    assert slow["history"][-1]["learning_rate"] == pytest.approx(1e-5)
    monkeypatch.setattr(loop, "time", FakeClock())
    # without the plan the same budget cuts the run mid-schedule
    unplanned = _run(TinyRegressor(), graphs[:24], graphs[24:], replace(cfg, budget_schedule=False), tmp_path / "u")
    assert unplanned["stop_reason"] == "time_budget" and unplanned["history"][-1]["learning_rate"] > 1e-3
