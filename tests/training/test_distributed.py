"""torchrun with 2 processes (DDP, gloo on CPU) ends where the single-process run on the same global batches ends."""

from __future__ import annotations

import json
import os
import subprocess

import torch

from autoperi.config import TrainConfig
from autoperi.training import distributed
from autoperi.training.checkpoint import read_checkpoint, seed_everything
from autoperi.training.loop import fit
from tests.training.tiny import REPO, TinyRegressor, perov_graphs

# 24 crystals, global batch 10: batches of 10, 10 and 4 → 5 + 5, 5 + 5, 2 + 2 per process; 2 epochs = 6 steps
CFG = TrainConfig(epochs=2, batch_size=10, learning_rate=3e-3, threads=1, scheduler="cosine", grad_clip_norm=1.0)


def test_torchrun_two_processes_match_single_process(tmp_path):
    command = distributed.torchrun_command(2, [str(tmp_path)], module="tests.training.ddp_worker")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"

    graphs = perov_graphs(32)
    seed_everything(5)  # rank 0's initial weights
    single = TinyRegressor()
    reference = fit(single, graphs[:24], graphs[24:], CFG, tmp_path / "single", log_mlflow=False, progress=False)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-4, atol=1e-5, msg=f"{name}: DDP vs single process")
    assert any(not torch.equal(rank0[n], v) for n, v in TinyRegressor().state_dict().items())  # it did train

    history = json.loads((tmp_path / "history.json").read_text())["history"]
    for ddp, one in zip(history, reference["history"], strict=True):
        for key in ("train_loss", "train_mse", "val_loss", "val_mse"):
            assert abs(ddp[key] - one[key]) < 1e-5 * max(1.0, abs(one[key])), key
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["progress"]["optimizer_steps"] == 6
