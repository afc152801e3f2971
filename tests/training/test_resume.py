"""Resume continues the same trajectory: after a crash mid-epoch, a SIGKILL, or a spent time budget."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from autoperi.config import TrainConfig
from autoperi.training.checkpoint import read_checkpoint, seed_everything
from autoperi.training.loop import fit
from tests.training.tiny import REPO, TinyRegressor, perov_graphs

CFG = TrainConfig(
    epochs=2, batch_size=8, learning_rate=3e-3, threads=1, checkpoint_every_steps=1, scheduler="cosine", seed=3
)
TIMING = ("train_s", "val_s", "crystals_per_s")


class CrashingRegressor(TinyRegressor):
    """Raises in the `crash_at`-th training loss call, like a process dying mid-run."""

    def __init__(self, crash_at: int, **kw):
        super().__init__(**kw)
        self.crash_at, self.calls = crash_at, 0

    def loss(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == self.crash_at:
                raise RuntimeError("simulated crash")
        return super().loss(batch)


def _model(cls=TinyRegressor, **kw):
    seed_everything(11)
    return cls(dropout=0.2, **kw)


def _without_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


@pytest.fixture(scope="module")
def data():
    graphs = perov_graphs(32)
    return graphs[:24], graphs[24:]


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    model = _model()
    result = fit(model, *data, CFG, tmp_path_factory.mktemp("ref"), resume=False, log_mlflow=False, progress=False)
    return model.state_dict(), result


def _assert_same_run(model, result, uninterrupted):
    ref_state, ref_result = uninterrupted
    for name, tensor in ref_state.items():
        assert torch.equal(model.state_dict()[name], tensor), name  # bit-identical on CPU with 1 thread
    assert _without_timing(result["history"]) == _without_timing(ref_result["history"])
    assert result["best_val_loss"] == ref_result["best_val_loss"]


def test_crash_mid_epoch_then_resume_matches_uninterrupted(data, tmp_path, uninterrupted):
    crashing = _model(CrashingRegressor, crash_at=5)  # 3 batches per epoch: dies in epoch 2, batch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(crashing, *data, CFG, tmp_path, log_mlflow=False, progress=False)
    saved = read_checkpoint(tmp_path / "last.pt")["progress"]
    assert (saved["epoch"], saved["batch_in_epoch"], saved["global_step"]) == (1, 1, 4)
    fresh = TinyRegressor(dropout=0.2)  # other initial weights: all state must come from last.pt
    result = fit(fresh, *data, CFG, tmp_path, log_mlflow=False, progress=False)
    _assert_same_run(fresh, result, uninterrupted)


def test_time_budget_stops_then_resume_finishes_the_same_run(data, tmp_path, uninterrupted):
    model = _model()
    first = fit(model, *data, replace(CFG, max_minutes=1e-9), tmp_path, log_mlflow=False, progress=False)
    assert first["stop_reason"] == "time_budget" and first["epochs_completed"] == 0
    # rank 0 decides at each step; the step that finds the budget spent still completes (one collective a step)
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["progress"]["global_step"] == 2
    # no epoch finished, yet the run leaves a validated best.pt: the weights of the partial epoch
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["partial_epoch"]["batches"] == 2 and best["partial_epoch"]["of"] == 3
    assert math.isfinite(best["partial_epoch"]["val_loss"]) and best["partial_epoch"]["val_loss"] > 0
    for name, tensor in last["model_state"].items():
        assert torch.equal(best["model_state"][name], tensor), name
    # the same budget again: nothing to do
    again = fit(TinyRegressor(dropout=0.2), *data, replace(CFG, max_minutes=1e-9), tmp_path, log_mlflow=False)
    assert again["stop_reason"] == "time_budget"
    assert read_checkpoint(tmp_path / "last.pt")["progress"]["global_step"] == 2
    resumed = TinyRegressor(dropout=0.2)
    result = fit(resumed, *data, CFG, tmp_path, log_mlflow=False, progress=False)
    _assert_same_run(resumed, result, uninterrupted)  # validating the partial epoch drew no random numbers
    assert "partial_epoch" not in read_checkpoint(tmp_path / "best.pt")  # a finished epoch replaced it


KILLED_RUN = """
import sys, time, torch
from dataclasses import replace
from autoperi.training.checkpoint import seed_everything
from autoperi.training.loop import fit
from tests.training.test_resume import CFG, TinyRegressor
from tests.training.tiny import perov_graphs

class Slow(TinyRegressor):
    def loss(self, batch):
        time.sleep(0.3 if self.training else 0.0)
        return super().loss(batch)

graphs = perov_graphs(32)
seed_everything(11)
fit(Slow(dropout=0.2), graphs[:24], graphs[24:], CFG, sys.argv[1], log_mlflow=False, progress=False)
"""


def test_sigkill_mid_run_then_resume_matches_uninterrupted(data, tmp_path, uninterrupted):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path)], cwd=REPO, env=env)
    last = tmp_path / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists() and read_checkpoint(last)["progress"]["global_step"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_at = read_checkpoint(last)["progress"]
    assert 2 <= killed_at["global_step"] < 6 and not killed_at["finished"]
    resumed = TinyRegressor(dropout=0.2)
    result = fit(resumed, *data, CFG, tmp_path, log_mlflow=False, progress=False)
    _assert_same_run(resumed, result, uninterrupted)
