"""Coordinate-decoder refinement on real crystals: only the decoder moves, it learns, batches are unpadded and
cover every crystal once per epoch, and a refined checkpoint loads and samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from autoperi.config import GraphConfig
from autoperi.model.autoperi_gnn import AutoPeriGNN, batch_from_frame, dataset_statistics
from autoperi.training.refine import group_batches, posterior_groups, refine_coordinates, validation_loss
from tests.model.helpers import frame_of, raw_structures, small_config

GRAPHS = GraphConfig(cutoff_angstrom=4.5, rbf_count=8, rbf_sigma_angstrom=0.5, max_atomic_number=100)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    structures = list(raw_structures("mp20_bt", 12))
    frame = frame_of(structures)
    torch.manual_seed(0)
    model = AutoPeriGNN(small_config(), dataset_statistics(frame))
    items = batch_from_frame(frame, GRAPHS, cutoff_angstrom=model.cfg.encoder_cutoff_angstrom)
    return model, items, structures


def test_groups_hold_each_crystal_once_unpadded(setup):
    model, items, structures = setup
    groups = posterior_groups(model, items, batch_size=5)
    counts = sorted(len(s) for s in structures)
    assert sorted(n for n, g in groups.items() for _ in range(len(g["mu"]))) == counts
    for n, g in groups.items():
        assert g["species"].shape[1] == n and g["frac"].shape[1:] == (n, 3) and (g["species"] > 0).all()
    batches = group_batches(groups, atoms_per_batch=8, rng=np.random.default_rng(0))
    seen = {n: [] for n in groups}
    for n, rows in batches:
        assert len(rows) * n <= 8 or len(rows) == 1  # a crystal larger than the budget goes alone
        seen[n].extend(rows.tolist())
    assert all(sorted(seen[n]) == list(range(len(groups[n]["mu"]))) for n in groups)


def test_refinement_moves_only_the_decoder_and_lowers_its_loss(setup):
    model, items, _ = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = posterior_groups(model, items)
    start = validation_loss(model, groups, atoms_per_batch=64)
    result = refine_coordinates(model, items, items, minutes=0.25, lr=3e-3, atoms_per_batch=64,
                                validate_every_s=2.0, progress=False)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("coords.") for k in moved)
    assert result["best_val_loss"] < 0.8 * start  # a tiny set the decoder can fit
    assert validation_loss(model, groups, atoms_per_batch=64) == pytest.approx(result["best_val_loss"], rel=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # nothing left frozen for later training
    samples = model.sample(3, n_steps=2, generator=torch.Generator().manual_seed(0))
    assert all(np.isfinite(s["frac_coords"]).all() for s in samples)


def test_refinement_refuses_an_empty_split(setup):
    model, items, _ = setup
    with pytest.raises(ValueError, match="got 0 and 12"):
        refine_coordinates(model, [], items, minutes=0.01, progress=False)


def test_refine_best_keeps_the_joint_weights_and_reuses_a_finished_refinement(tmp_path, params):
    import dataclasses
    import json

    from autoperi.training.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
    from autoperi.training.refine import refine_best

    torch.set_num_threads(1)
    structures = list(raw_structures("mp20_bt", 12))
    # val = the train crystals: a tiny set the decoder can fit, so the selected weights do move
    frame = pd.concat([frame_of(structures, "train"), frame_of(structures, "val")], ignore_index=True)
    frame["id"] = [f"s{i}" for i in range(len(frame))]
    torch.manual_seed(0)
    cfg = small_config()
    stats = dataset_statistics(frame[frame["split"] == "train"])
    model = AutoPeriGNN(cfg, stats)
    joint = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint({"format": FORMAT, "config": {"model": dataclasses.asdict(cfg), "dataset": "mp20_bt"},
                     "stats": stats, "model_state": joint}, tmp_path / "best.pt")
    (tmp_path / "history.json").write_text(json.dumps({"history": []}))
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, max_val_rows=None,
                                                                   max_train_rows=None))
    first = refine_best(params, "mp20_bt", tmp_path, 0.2, progress=False, frame=frame, validate_every_s=1.0,
                        lr=3e-3, atoms_per_batch=64)
    state = read_checkpoint(tmp_path / "best.pt")
    assert first["complete"] and state["refinement"]["complete"] and first["steps"] > 0
    assert set(state["joint_coords_state"]) == {k for k in joint if k.startswith("coords.")}
    assert all(torch.equal(state["joint_coords_state"][k], joint[k]) for k in state["joint_coords_state"])
    moved = {k for k in joint if not torch.equal(state["model_state"][k], joint[k])}
    assert moved and all(k.startswith("coords.") for k in moved)
    assert json.loads((tmp_path / "history.json").read_text())["refinement"]["steps"] == first["steps"]
    refined, _ = load_checkpoint(tmp_path / "best.pt")  # the refined weights are what loads
    assert torch.equal(refined.state_dict()[sorted(moved)[0]], state["model_state"][sorted(moved)[0]])

    data = (tmp_path / "best.pt").read_bytes()
    assert refine_best(params, "mp20_bt", tmp_path, 0.2, progress=False, frame=frame) == first  # reused
    assert (tmp_path / "best.pt").read_bytes() == data
    again = refine_best(params, "mp20_bt", tmp_path, 0.05, progress=False, frame=frame, validate_every_s=1.0,
                        atoms_per_batch=64)  # another budget: again from the joint weights
    state = read_checkpoint(tmp_path / "best.pt")
    assert again["minutes"] == 0.05
    assert all(torch.equal(state["joint_coords_state"][k], joint[k]) for k in state["joint_coords_state"])


def test_refinement_figure_plots_the_validation_curve_against_minutes():
    from autoperi.training.figures import plot_refinement

    history = [{"step": 0, "wall_s": 0.0, "val_loss": 0.9}, {"step": 5, "wall_s": 120.0, "val_loss": 0.8,
                                                              "train_loss": 0.7}]
    fig = plot_refinement({"mp20_bt": {"history": history}})
    val, train = fig.axes[0].lines
    assert list(val.get_xdata()) == [0.0, 2.0] and list(val.get_ydata()) == [0.9, 0.8]
    assert list(train.get_xdata()) == [2.0] and list(train.get_ydata()) == [0.7]


def test_posteriors_are_cached_by_encoder_weights_and_data(tmp_path, params):
    """The GPU path reads `posteriors.pt` without the data; a changed encoder (or data hash) recomputes it."""
    import dataclasses

    from autoperi.training.refine import cached_posteriors

    structures = list(raw_structures("mp20_bt", 6))
    frame = pd.concat([frame_of(structures, "train"), frame_of(structures[:3], "val")], ignore_index=True)
    frame["id"] = [f"s{i}" for i in range(len(frame))]
    torch.manual_seed(0)
    model = AutoPeriGNN(small_config(), dataset_statistics(frame[frame["split"] == "train"]))
    state = {"model_state": model.state_dict(), "data_hash": "abc"}
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, max_val_rows=None,
                                                                   max_train_rows=None))
    cache = tmp_path / "posteriors.pt"
    train, val = cached_posteriors(params, "mp20_bt", state, model, cache, frame=frame)
    assert cache.exists()
    assert sum(len(g["mu"]) for g in train.values()) == 6 and sum(len(g["mu"]) for g in val.values()) == 3
    # a hit reads the file: an empty table would fail if it were used
    again = cached_posteriors(params, "mp20_bt", state, model, cache, frame=frame.iloc[:0])
    assert all(torch.equal(again[0][n]["mu"], train[n]["mu"]) for n in train)
    with torch.no_grad():
        next(model.encoder.parameters()).add_(0.5)
    moved = cached_posteriors(params, "mp20_bt", {**state, "model_state": model.state_dict()}, model, cache,
                              frame=frame)
    assert not all(torch.equal(moved[0][n]["mu"], train[n]["mu"]) for n in train)
    with pytest.raises(ValueError, match="no train rows"):  # another data hash: the (empty) table is read
        cached_posteriors(params, "mp20_bt", {**state, "data_hash": "xyz"}, model, cache, frame=frame.iloc[:0])


def test_checkpoints_load_without_mlflow():
    """Refinement on a lent GPU machine runs the package without MLflow: the checkpoint module must not need it."""
    import subprocess
    import sys

    code = ("import sys; import autoperi.training.checkpoint, autoperi.training.refine, autoperi.tracking.provenance;"
            " assert 'mlflow' not in sys.modules, 'mlflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
