"""Formation-energy surrogate: invariances on real Perov-5 crystals, gradients, save/load, overfitting, prediction
API, and the training loop end to end on a tiny table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Structure

from autoperi.graphs import build_graphs
from autoperi.model.surrogate import (
    FormationEnergySurrogate,
    load_surrogate,
    predict_formation_energy,
    save_surrogate,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def perov_structures(raw_dir) -> list[Structure]:
    """A few real Perov-5 test crystals straight from the raw CSV (no dependence on data/processed)."""
    table = pd.read_csv(raw_dir / "perov_5" / "test.csv", nrows=40)
    return [Structure.from_str(cif, fmt="cif") for cif in table["cif"]]


@pytest.fixture(scope="module")
def perov_targets(raw_dir) -> np.ndarray:
    return pd.read_csv(raw_dir / "perov_5" / "test.csv", nrows=40)["heat_all"].to_numpy()


def _model(dtype=torch.float64, seed=0) -> FormationEnergySurrogate:
    torch.manual_seed(seed)
    model = FormationEnergySurrogate({"hidden_dim": 32, "interactions": 2, "target_mean": 1.5, "target_std": 0.7})
    return model.to(dtype).eval()


def _triples(structures, frac=None, lattice=None):
    return [
        ([site.specie.Z for site in s], s.frac_coords if frac is None else frac[k],
         s.lattice.matrix if lattice is None else lattice[k])
        for k, s in enumerate(structures)
    ]


def _predict(model, triples):
    with torch.no_grad():
        return model(build_graphs(triples, model.graph_config())).numpy()


def test_surrogate_invariant_to_rotation_translation_permutation_and_lattice_shifts(perov_structures):
    structures = perov_structures[:6]
    model = _model()
    reference = _predict(model, _triples(structures))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    rotated = _predict(model, _triples(structures, lattice=[s.lattice.matrix @ q.T for s in structures]))
    translated = _predict(model, _triples(structures, frac=[s.frac_coords + rng.uniform(0, 1, 3) for s in structures]))
    shifted = _predict(model, _triples(structures, frac=[s.frac_coords + rng.integers(-2, 3, (len(s), 3))
                                                         for s in structures]))
    permuted_triples = []
    for s in structures:
        order = rng.permutation(len(s))
        permuted_triples.append(([s[i].specie.Z for i in order], s.frac_coords[order], s.lattice.matrix))
    permuted = _predict(model, permuted_triples)
    assert np.ptp(reference) > 1e-3  # the network is not trivially constant
    for name, got in [("rotation", rotated), ("translation", translated), ("lattice shift", shifted),
                      ("permutation", permuted)]:
        np.testing.assert_allclose(got, reference, atol=1e-5, rtol=0, err_msg=name)


def test_surrogate_is_smooth_at_the_cutoff():
    """A neighbour crossing the cutoff sphere changes the energy continuously (envelope → 0)."""
    torch.manual_seed(0)
    model = FormationEnergySurrogate({"hidden_dim": 32, "interactions": 2, "neighbor_norm": 1.0}).double().eval()
    cutoff = model.config["cutoff_angstrom"]
    lattice = np.diag([30.0, 30.0, 30.0])  # isolated pair: only the two atoms interact

    def energy(d):
        frac = np.array([[0.0, 0.0, 0.0], [d / 30.0, 0.0, 0.0]])
        return _predict(model, [([8, 22], frac, lattice)])[0]

    inside, outside = energy(cutoff - 1e-6), energy(cutoff + 1e-6)
    assert abs(inside - outside) < 1e-9
    assert abs(energy(2.0) - outside) > 1e-5  # but the pair does interact inside


def test_gradients_flow_to_frac_coords_and_lattice_and_match_finite_differences(perov_structures):
    model = _model()
    batch = build_graphs(_triples(perov_structures[:3]), model.graph_config())
    frac = batch.frac_coords.clone().requires_grad_(True)
    lattice = batch.lattice.clone().requires_grad_(True)
    energy = model.predict_from_geometry(frac, lattice, batch.batch, atomic_numbers=batch.atomic_numbers)
    energy.sum().backward()
    assert torch.isfinite(frac.grad).all() and torch.isfinite(lattice.grad).all()
    assert frac.grad.abs().sum() > 0 and lattice.grad.abs().sum() > 0
    # directional finite difference on the lattice of the first crystal
    direction = torch.zeros_like(lattice)
    direction[0] = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=lattice.dtype)
    eps = 1e-5
    with torch.no_grad():
        plus = model.predict_from_geometry(frac, lattice + eps * direction, batch.batch,
                                           atomic_numbers=batch.atomic_numbers).sum()
        minus = model.predict_from_geometry(frac, lattice - eps * direction, batch.batch,
                                            atomic_numbers=batch.atomic_numbers).sum()
    numeric = (plus - minus) / (2 * eps)
    assert numeric.item() == pytest.approx((lattice.grad * direction).sum().item(), rel=1e-5, abs=1e-8)


def test_soft_species_equal_hard_species_for_one_hot_weights(perov_structures):
    model = _model()
    batch = build_graphs(_triples(perov_structures[:4]), model.graph_config())
    onehot = torch.nn.functional.one_hot(batch.atomic_numbers - 1, model.config["max_atomic_number"]).double()
    with torch.no_grad():
        np.testing.assert_allclose(model(batch, species_weights=onehot).numpy(), model(batch).numpy(), atol=1e-12)


def test_save_load_weights_only_gives_identical_predictions(perov_structures, tmp_path):
    model = _model(torch.float32, seed=3)
    path = save_surrogate(model, tmp_path / "surrogate.pt", {"test": {"mae": 0.1}, "data_hash_sha256": "abc"})
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["config"]["hidden_dim"] == 32
    loaded = load_surrogate(path)
    triples = _triples(perov_structures[:8])
    np.testing.assert_array_equal(_predict(loaded, triples), _predict(model, triples))
    assert json.loads(path.with_suffix(".json").read_text())["test"]["mae"] == 0.1
    # the evaluation-suite entry point: structures in, numpy out, same numbers as the module's forward
    via_api = predict_formation_energy(perov_structures[:8], path, batch_size=3)
    np.testing.assert_allclose(via_api, _predict(model, triples), rtol=1e-6, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no surrogate checkpoint"):
        load_surrogate(tmp_path / "missing.pt")


def test_few_hundred_steps_overfit_32_real_crystals(perov_structures, perov_targets):
    torch.manual_seed(0)
    structures, y = perov_structures[:32], torch.tensor(perov_targets[:32], dtype=torch.float32)
    model = FormationEnergySurrogate({"hidden_dim": 32, "interactions": 2, "cutoff_angstrom": 4.0,
                                      "target_mean": float(y.mean()), "target_std": float(y.std())})
    batch = build_graphs(_triples(structures), model.graph_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    initial = torch.nn.functional.mse_loss(model(batch), y).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < initial / 20, (initial, loss.item())


def test_train_surrogate_end_to_end_on_a_tiny_table(params, raw_dir, tmp_path, monkeypatch):
    """The training loop on 48 raw Perov-5 rows: splits, checkpoint + json, test MAE, resume state removed."""
    from autoperi.data.datasets import limits_from
    from autoperi.data.preprocess import structure_record
    from autoperi.training import surrogate as training

    table = pd.read_csv(raw_dir / "perov_5" / "test.csv", nrows=48)
    rows = []
    for k, (cif, heat) in enumerate(zip(table["cif"], table["heat_all"], strict=True)):
        record = structure_record(Structure.from_str(cif, fmt="cif"), limits_from(params.data), params.data.symprec)
        rows.append({"id": f"r{k}", "split": ["train", "val", "test"][k % 3], "heat_of_formation": heat, **record})
    monkeypatch.setattr(training, "CACHE_DIR", str(tmp_path / "cache"))
    report = training.train_surrogate(params, "perov_5", out_dir=tmp_path / "out", epochs=2, batch_size=8,
                                      frame=pd.DataFrame(rows), threads=1, track=False, progress=False)
    assert report["splits"]["n_train"] == 16 and report["splits"]["n_test"] == 16
    assert report["status"] == "done" and report["epochs_run"] == 2
    assert np.isfinite(report["test"]["mae"]) and report["test"]["n"] == 16
    assert (tmp_path / "out" / "surrogate.pt").exists() and (tmp_path / "out" / "surrogate_state.pt").exists()
    model = load_surrogate(tmp_path / "out" / "surrogate.pt")
    assert model.config["target"] == "heat_of_formation"
    # asking for more epochs continues the saved run exactly: same first two epochs, one more after them
    again = training.train_surrogate(params, "perov_5", out_dir=tmp_path / "out", epochs=3, batch_size=8,
                                     frame=pd.DataFrame(rows), threads=1, track=False, progress=False)
    assert again["epochs_run"] == 3 and again["history"][:2] == report["history"]
    # a saved state of another run (here: another batch size) is not resumed: training starts afresh
    other = training.train_surrogate(params, "perov_5", out_dir=tmp_path / "out", epochs=3, batch_size=4,
                                     frame=pd.DataFrame(rows), threads=1, track=False, progress=False)
    assert other["epochs_run"] == 3 and other["history"][0]["train_loss"] != again["history"][0]["train_loss"]
