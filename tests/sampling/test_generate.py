"""`autoperi generate` end to end on a small untrained model: files that pymatgen and ASE read back, space-group
and composition conditioning, symmetrisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from ase.io import read as ase_read

from autoperi.cli import main
from autoperi.data.readers import read_structures
from autoperi.model.autoperi_gnn import AutoPeriGNN, dataset_statistics
from autoperi.training.checkpoint import FORMAT, save_checkpoint
from tests.model.helpers import frame_of, raw_structures, small_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    structures = list(raw_structures("perov_5", 6))
    stats = dataset_statistics(frame_of(structures))
    torch.manual_seed(0)
    cfg = small_config()
    model = AutoPeriGNN(cfg, stats)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint({"format": FORMAT, "config": {"model": dataclasses.asdict(cfg), "dataset": "perov_5"},
                     "stats": stats, "model_state": model.state_dict()}, path)
    return path, structures


def read_back(path):
    pmg = [s for _, s in read_structures(path)]
    ase = ase_read(path, index=":")
    assert len(pmg) == len(ase)
    for s, atoms in zip(pmg, ase, strict=True):
        assert not isinstance(s, str) and hasattr(s, "lattice"), s  # a RefusedInput would carry a reason instead
        np.testing.assert_allclose(s.lattice.matrix, atoms.cell.array, atol=1e-6)
        assert [site.specie.Z for site in s] == atoms.get_atomic_numbers().tolist()
    return pmg, ase


def test_generate_space_group_221_gives_cubic_cells(checkpoint, tmp_path):
    path, _ = checkpoint
    out = tmp_path / "samples.extxyz"
    assert main(["generate", "--checkpoint", str(path), "--n", "5", "--out", str(out), "--space-group", "221",
                 "--threads", "1", "--steps", "3"]) == 0
    pmg, ase = read_back(out)
    assert len(pmg) == 5
    for s, atoms in zip(pmg, ase, strict=True):
        a, b, c = s.lattice.abc
        assert abs(a - b) < 1e-6 and abs(a - c) < 1e-6
        np.testing.assert_allclose(s.lattice.angles, 90.0, atol=1e-4)
        assert atoms.info["spacegroup_condition"] == 221


def test_generate_composition_yields_that_composition(checkpoint, tmp_path):
    path, structures = checkpoint
    formula = structures[0].composition.formula.replace(" ", "")
    out = tmp_path / "csp.extxyz"
    cif_dir = tmp_path / "cifs"
    assert main(["generate", "--checkpoint", str(path), "--n", "4", "--out", str(out), "--composition", formula,
                 "--threads", "1", "--steps", "3", "--cif-dir", str(cif_dir)]) == 0
    pmg, _ = read_back(out)
    assert len(pmg) == 4
    for s in pmg:
        assert s.composition == structures[0].composition
    cifs = [s for _, s in read_structures(cif_dir)]
    assert len(cifs) == 4 and all(c.composition == structures[0].composition for c in cifs)


def test_generate_refuses_unknown_elements(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    code = main(["generate", "--checkpoint", str(path), "--n", "2", "--out", str(tmp_path / "x.extxyz"),
                 "--composition", "U2Pu2O6", "--threads", "1"])
    assert code == 2
    assert "vocabulary" in capsys.readouterr().err


def test_symmetrize_reports_the_group_found(checkpoint, tmp_path):
    path, _ = checkpoint
    out = tmp_path / "sym.extxyz"
    assert main(["generate", "--checkpoint", str(path), "--n", "3", "--out", str(out), "--space-group", "221",
                 "--threads", "1", "--steps", "3", "--symmetrize"]) == 0
    _, ase = read_back(out)
    assert all(1 <= atoms.info["spacegroup_found"] <= 230 for atoms in ase)



def test_checkpoint_without_composition_decoder_key_loads_as_slots(checkpoint, tmp_path):
    """Checkpoints written before `composition_decoder` existed (config without the key) load and sample."""
    from autoperi.sampling.sampler import generate, load_model
    from autoperi.training.checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint[0])
    del state["config"]["model"]["composition_decoder"]
    old = tmp_path / "old.pt"
    save_checkpoint(state, old)
    model, _ = load_model(old)
    assert model.cfg.composition_decoder == "slots"
    fresh, _ = load_model(checkpoint[0])
    a, b = generate(model, 3, n_steps=2, seed=1), generate(fresh, 3, n_steps=2, seed=1)
    assert all((x["atomic_numbers"] == y["atomic_numbers"]).all() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("sampling, expected", [({"perov_5": {"sample_steps": 3}}, 3),
                                                ({"mp20_bt": {"sample_steps": 3}}, 5), (None, 5)])
def test_generate_takes_the_step_count_from_params(checkpoint, tmp_path, capsys, sampling, expected):
    """No --steps: evaluation.sampling.<dataset>.sample_steps of the checkpoint's dataset, else the checkpoint's
    model.sample_steps (5)."""
    import json

    import yaml

    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["evaluation"]["sampling"] = sampling
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "s.extxyz"
    assert main(["--params", str(tmp_path / "params.yaml"), "generate", "--checkpoint", str(checkpoint[0]),
                 "--n", "4", "--out", str(out), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == expected
    assert all(atoms.info["network_evals"] % expected == 0 for atoms in ase_read(out, index=":"))


def test_sampling_settings_reach_the_model_and_unknown_keys_are_refused(checkpoint):
    """evaluation.sampling.<dataset> replaces the checkpoint's sampling settings (here: anti-annealing changes the
    coordinates, not the composition or lattice); a key that is not a sampling setting is refused by name."""
    from autoperi.config import load_params
    from autoperi.sampling.sampler import configure_sampling, generate, load_model, sampling_settings
    from tests.conftest import REPO

    params = load_params(REPO / "params.yaml")
    with_anneal = dataclasses.replace(params, evaluation=dataclasses.replace(
        params.evaluation, sampling={"perov_5": {"sample_steps": 3, "velocity_anneal": 2}}))
    assert sampling_settings(with_anneal, "perov_5") == {"sample_steps": 3, "velocity_anneal": 2}
    assert sampling_settings(with_anneal, "mp20_bt") == {}
    plain, _ = load_model(checkpoint[0])
    annealed = configure_sampling(load_model(checkpoint[0])[0], sampling_settings(with_anneal, "perov_5"))
    assert annealed.cfg.velocity_anneal == 2.0 and isinstance(annealed.cfg.velocity_anneal, float)
    a, b = generate(plain, 4, n_steps=3, seed=0), generate(annealed, 4, n_steps=3, seed=0)
    for x, y in zip(a, b, strict=True):
        assert (x["atomic_numbers"] == y["atomic_numbers"]).all()
        np.testing.assert_allclose(x["lattice"], y["lattice"])
    assert max(float(np.abs(x["frac_coords"] - y["frac_coords"]).max()) for x, y in zip(a, b, strict=True)) > 1e-3
    bad = dataclasses.replace(params, evaluation=dataclasses.replace(
        params.evaluation, sampling={"perov_5": {"hidden_dim": 8}}))
    with pytest.raises(ValueError, match=r"evaluation.sampling.perov_5: unknown key\(s\) \['hidden_dim'\]"):
        sampling_settings(bad, "perov_5")


def test_csp_match_rate_counts_a_composition_matched_within_k_samples(checkpoint, monkeypatch):
    """Bookkeeping of the CDVAE CSP metric: row 0 is matched by its 2nd sample only (k = 1 misses, k = 2 hits, RMSE
    0), row 1 never (its samples are another crystal)."""
    from autoperi.sampling import csp
    from autoperi.sampling.sampler import load_model

    path, structures = checkpoint
    model, _ = load_model(path)
    frame = frame_of(structures[:2], split="test")
    first = structures[0].composition.formula.replace(" ", "")

    def as_sample(s):
        return {"atomic_numbers": [site.specie.Z for site in s], "frac_coords": s.frac_coords,
                "lattice": s.lattice.matrix}

    def samples_for(model, composition, n, **kwargs):
        other = as_sample(structures[2])
        return [other, as_sample(structures[0]) if composition == first else other][:n]

    monkeypatch.setattr(csp, "sample_for_composition", samples_for)
    result = csp.csp_match_rate(model, frame, ks=(1, 2))
    assert result["1"] == {"match_rate": 0.0, "rmse": None, "n_compositions": 2}
    assert result["2"]["match_rate"] == 50.0 and result["2"]["rmse"] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_checkpoint_refuses_a_checkpoint_of_another_dataset(checkpoint, capsys):
    path, _ = checkpoint  # trained (config) on perov_5
    code = main(["evaluate-checkpoint", "--dataset", "mp20_bt", "--checkpoint", str(path), "--n", "2",
                 "--threads", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "trained on 'perov_5', not 'mp20_bt'" in err


def test_evaluate_checkpoint_relaxes_as_many_samples_as_its_dataset_is_given(checkpoint, tmp_path, monkeypatch):
    from autoperi.config import load_params
    from autoperi.metrics import commands

    path, _ = checkpoint
    params = load_params("params.yaml", "smoke")
    evaluation = dataclasses.replace(params.evaluation, samples_dir=str(tmp_path),
                                     checkpoint_stability_n_by_dataset={"perov_5": 3, "mp20_bt": 200})
    monkeypatch.setattr(commands, "_params_with", lambda args: dataclasses.replace(params, evaluation=evaluation))
    scored = []
    monkeypatch.setattr(commands, "_score", lambda params, out, dataset, model, stability, *rest:
                        scored.append((params.evaluation.n_samples, out, stability)) or 0)
    assert main(["evaluate-checkpoint", "--dataset", "perov_5", "--checkpoint", str(path), "--n", "2",
                 "--threads", "1"]) == 0
    assert main(["evaluate-checkpoint", "--dataset", "perov_5", "--checkpoint", str(path), "--n", "2",
                 "--threads", "1", "--stability", "0"]) == 0
    assert [(n, stability) for n, _, stability in scored] == [(2, 3), (2, 0)]
    assert len(read_back(scored[0][1])) == 2
