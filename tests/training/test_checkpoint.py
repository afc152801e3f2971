"""Checkpoints load with torch.load(weights_only=True) and carry config, data hash and code version."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from autoperi.config import TrainConfig
from autoperi.training.checkpoint import (
    code_version,
    load_checkpoint,
    read_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    source_hash,
    to_plain,
)
from autoperi.training.loop import fit
from tests.training.tiny import REPO, TinyRegressor, build_tiny, perov_graphs

CFG = TrainConfig(epochs=2, batch_size=8, learning_rate=3e-3, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    graphs = perov_graphs(32)
    out = tmp_path_factory.mktemp("ckpt")
    model = TinyRegressor()
    result = fit(model, graphs[:24], graphs[24:], CFG, out, dataset="perov_5", log_mlflow=False, progress=False)
    return model, graphs, out, result


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_checkpoint_loads_weights_only_with_provenance(trained, name):
    model, graphs, out, _ = trained
    state = torch.load(out / name, weights_only=True)  # raises on anything but tensors and plain containers
    assert state["config"]["train"] == to_plain(dataclasses.asdict(CFG))
    assert state["config"]["dataset"] == "perov_5"
    # data hash recomputed by hand: sha256 of the training ids (in order) and the model-shaping config
    digest = hashlib.sha256(json.dumps([g.id for g in graphs[:24]]).encode())
    digest.update(json.dumps({"dataset": "perov_5", "graphs": None, "model": None}, sort_keys=True).encode())
    assert state["data_hash"] == digest.hexdigest()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert state["code_version"]["git_commit"].split("-")[0] == head
    assert state["code_version"]["autoperi_version"] and state["code_version"]["torch_version"] == torch.__version__
    assert torch.equal(state["stats"]["y_mean"], torch.tensor([0.5], dtype=torch.float64))
    assert set(state["model_state"]) == set(model.state_dict())


def test_last_checkpoint_holds_the_state_to_resume(trained):
    _, _, out, result = trained
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["progress"]["epoch"] == 2 and state["progress"]["stop_reason"] == "epochs"
    assert state["optimizer_state"]["state"] and len(state["rng"]) == 1
    assert len(state["history"]) == 2 and state["history"][-1]["val_loss"] == result["history"][-1]["val_loss"]


def test_load_checkpoint_rebuilds_the_model_with_the_same_predictions(trained):
    model, graphs, out, _ = trained
    loaded, meta = load_checkpoint(out / "last.pt", build_model=build_tiny)
    batch = Batch.from_data_list(graphs[24:])
    model.eval()
    torch.testing.assert_close(loaded.predict(batch), model.predict(batch), rtol=0, atol=0)
    assert not loaded.training and "model_state" not in meta and meta["data_hash"]


def test_last_pt_of_other_data_or_code_is_set_aside_and_training_starts_afresh(trained, tmp_path, monkeypatch):
    _, graphs, out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.pt", "last.pt", "history.json"):
        (run / name).write_bytes((out / name).read_bytes())
    earlier = read_checkpoint(run / "last.pt")
    # other training ids: not resumed, the earlier last.pt kept aside
    result = fit(TinyRegressor(), graphs[8:32], graphs[:8], replace(CFG, epochs=1), run, log_mlflow=False)
    assert len(result["history"]) == 1 and result["epochs_completed"] == 1
    assert read_checkpoint(run / "last.superseded.pt")["data_hash"] == earlier["data_hash"]
    assert read_checkpoint(run / "last.pt")["data_hash"] != earlier["data_hash"]
    # same data, other training code: not resumed either
    import autoperi.training.loop as loop

    real = loop.code_version
    monkeypatch.setattr(loop, "code_version", lambda: {**real(), "source_sha256": "0" * 64})
    again = fit(TinyRegressor(), graphs[8:32], graphs[:8], replace(CFG, epochs=2), run, log_mlflow=False)
    assert [r["epoch"] for r in again["history"]] == [1, 2]  # from scratch, not epoch 2 on top of the first run
    assert read_checkpoint(run / "last.superseded.pt")["progress"]["epoch"] == 1
    # same data and code: resumed (one more epoch on top)
    more = fit(TinyRegressor(), graphs[8:32], graphs[:8], replace(CFG, epochs=3), run, log_mlflow=False)
    assert more["history"][:2] == again["history"] and len(more["history"]) == 3


def test_source_hash_follows_the_training_code(tmp_path):
    assert source_hash() == source_hash() and len(source_hash()) == 64
    assert source_hash(("model",)) != source_hash(("losses",))
    state = torch.load(  # the hash is stored with every checkpoint
        save_checkpoint({"format": "autoperi-checkpoint/1", "code": code_version()}, tmp_path / "c.pt"),
        weights_only=True,
    )
    assert state["code"]["source_sha256"] == source_hash()


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    np.random.seed(1)
    torch.manual_seed(2)
    import random

    random.seed(3)
    save_checkpoint({"format": "autoperi-checkpoint/1", "rng": rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(3), torch.rand(3))
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (random.random(), np.random.rand(3), torch.rand(3))
    assert expected[0] == again[0] and np.array_equal(expected[1], again[1]) and torch.equal(expected[2], again[2])


def test_unstorable_values_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match=r"stats\['scaler'\]: object"):
        to_plain({"scaler": object()}, "stats")
    assert to_plain({"a": np.float64(1.5), "b": (np.int64(2), tmp_path)}) == {"a": 1.5, "b": (2, str(tmp_path))}
    assert type(to_plain(np.float64(1.5))) is float


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"format": "autoperi-checkpoint/1", "value": torch.ones(2)}, tmp_path / "last.pt")

    def dying_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"format": "autoperi-checkpoint/1", "value": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_fresh_run_leaves_nothing_of_the_earlier_one(trained, tmp_path):
    _, graphs, out, _ = trained
    earlier = tmp_path / "run"
    earlier.mkdir()
    for name in ("best.pt", "last.pt", "history.json"):
        (earlier / name).write_bytes((out / name).read_bytes())

    class NeverFinite(TinyRegressor):
        def loss(self, batch):
            total, terms = super().loss(batch)
            return (total, terms) if self.training else (total * math.nan, terms)

    cfg = replace(CFG, epochs=1)
    fit(NeverFinite(), graphs[:24], graphs[24:], cfg, earlier, resume=False, log_mlflow=False, progress=False)
    assert not (earlier / "best.pt").exists()  # the new run never improved: the old best.pt must not pass for its own
    assert len(json.loads((earlier / "history.json").read_text())["history"]) == 1
