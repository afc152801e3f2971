"""CHGNet stability: E_hull on hand-worked phase diagrams, S.U.N. counting, relaxation, resume, hull cache."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.core.operations import SymmOp

from autoperi.metrics import hull as hull_module
from autoperi.metrics import stability
from autoperi.metrics.hull import ReferenceHull, _reference_order, e_above_hull, elemental_references
from autoperi.metrics.stability import (
    chgnet_embeddings,
    chgnet_energies,
    load_chgnet,
    reference_hull,
    relax_structures,
    relaxation_rmsd,
    stability_summary,
)


def _entries(energies_per_atom: dict[str, float]) -> list[PDEntry]:
    return [PDEntry(Composition(f), e * Composition(f).num_atoms) for f, e in energies_per_atom.items()]


# Na at -1, Cl at -2, NaCl at -3 eV/atom: NaCl sits 1.5 eV/atom below the Na–Cl tie line.
# Na2Cl (x_Cl = 1/3) lies between Na and NaCl: hull = -1 + (1/3)/(1/2) * (-3 + 1) = -7/3 eV/atom.
NA_CL = {"Na": -1.0, "Cl": -2.0, "NaCl": -3.0}


@pytest.mark.parametrize("wrap", [PhaseDiagram, ReferenceHull])
def test_e_above_hull_hand_worked_binary(wrap):
    hull = wrap(_entries(NA_CL))
    report = {}
    got = e_above_hull(
        hull,
        [Composition("Na2Cl"), Composition("NaCl"), Composition("NaCl"), Composition("KCl"), Composition("Na")],
        [-2.0, -2.9, -3.2, -5.0, math.nan],
        report=report,
    )
    assert got[0] == pytest.approx(-2.0 + 7 / 3, abs=1e-9)  # 1/3 eV/atom above the Na–NaCl tie line
    assert got[1] == pytest.approx(0.1, abs=1e-9)
    assert got[2] == pytest.approx(-0.2, abs=1e-9)  # below the hull: negative, not clipped
    assert math.isnan(got[3]) and math.isnan(got[4])
    assert report == {"n_outside_hull": 1, "n_nan_energy": 1}


def test_reference_hull_builds_ternary_from_subsystems():
    # No Na–K–Cl entry exists: the K-Na-Cl diagram must come from the elements and both binaries. KNaCl2 is the
    # midpoint of NaCl and KCl (both x_Cl = 1/2; any mix with elements needs Cl at -2 and lies far higher), so its
    # hull energy is the mean, -2.8 eV/atom.
    hull = ReferenceHull(_entries({**NA_CL, "K": -0.5, "KCl": -2.6, "LiF": -4.0, "Li": -1.0, "F": -1.0}))
    on_line = (-3.0 - 2.6) / 2
    got = e_above_hull(
        hull, [Structure(Lattice.cubic(5), ["K", "Na", "Cl", "Cl"], np.eye(4, 3) * 0.5)], [on_line + 0.05]
    )
    assert got[0] == pytest.approx(0.05, abs=1e-9)
    assert len(hull.phase_diagram(["K", "Na", "Cl"]).all_entries) == 5  # Li-F entries stay out


def test_stability_summary_hand_counted():
    table = pd.DataFrame(
        {
            "converged": [True, True, True, True, False, True],
            "e_hull": [-0.05, 0.0, 0.08, 0.3, -0.5, math.nan],
            "rmsd_angstrom": [0.1, 0.2, 0.3, 0.4, 5.0, math.nan],
        }
    )
    unique = [True, True, False, True, True, True]
    novel = [True, False, True, True, True, True]
    got = stability_summary(table, unique, novel, n_submitted=8)
    # stable ≤ 0.1: rows 0,1,2 (row 4 failed to relax, row 5 has no E_hull); ≤ 0.0: rows 0,1; SUN: row 0 only
    assert got == {
        "n_relaxed": 6,
        "relax_success": pytest.approx(100 * 5 / 8),
        "rmsd_mean": pytest.approx(0.25),  # converged rows with a match: 0.1, 0.2, 0.3, 0.4
        "stable_0_1": pytest.approx(100 * 3 / 8),
        "stable_0_0": pytest.approx(100 * 2 / 8),
        "sun": pytest.approx(100 * 1 / 8),
    }
    with pytest.raises(ValueError):
        stability_summary(table, unique, novel, n_submitted=5)


def test_chgnet_energies_match_chgnet_per_atom(perovskite, silicon):
    model = load_chgnet()
    ours = chgnet_energies([perovskite, silicon, perovskite * (2, 1, 1)], batch_size=2)
    own = model.predict_structure(perovskite, task="e")["e"]
    assert ours[0] == pytest.approx(float(own), abs=1e-5)
    assert ours[2] == pytest.approx(ours[0], abs=1e-5)  # per atom: a supercell has the same energy
    assert -10 < ours[1] < -3  # eV/atom, not a total energy (2 atoms)


def test_chgnet_energies_nan_for_a_structure_chgnet_rejects(silicon):
    einsteinium = Structure(Lattice.cubic(3.0), ["Es"], [[0, 0, 0]])  # Z = 99: beyond CHGNet's 94 embeddings
    energies = chgnet_energies([silicon, einsteinium, silicon], batch_size=3)
    assert math.isnan(energies[1])
    assert energies[0] == energies[2] == pytest.approx(chgnet_energies([silicon])[0], abs=1e-6)
    assert np.isnan(chgnet_embeddings([einsteinium, silicon])[0]).all()


def test_embeddings_fixed_dim_and_invariant(perovskite, nacl):
    rotation = SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0)
    rotated = Structure(
        Lattice(rotation.apply_rotation_only(perovskite.lattice.matrix)), perovskite.species, perovskite.frac_coords
    )
    order = [3, 1, 4, 0, 2]
    permuted = Structure(perovskite.lattice, [perovskite.species[i] for i in order], perovskite.frac_coords[order])
    emb = chgnet_embeddings([perovskite, rotated, permuted, perovskite * (1, 1, 2), nacl])
    assert emb.shape == (5, 64) and np.isfinite(emb).all()
    for k in (1, 2, 3):
        np.testing.assert_allclose(emb[k], emb[0], atol=1e-4)
    assert np.abs(emb[4] - emb[0]).max() > 0.05


def test_relax_rattled_silicon_converges_and_lowers_energy(silicon):
    rattled = silicon.copy()
    rattled.apply_strain(0.04)
    rattled.translate_sites([1], [0.03, -0.02, 0.01])
    table = relax_structures([rattled], fmax=0.05, max_steps=200, desc=None)
    row = table.iloc[0]
    assert row.converged and row.error == ""
    assert 0 < row.n_steps < 200
    assert row.energy_per_atom < row.initial_energy_per_atom - 1e-3
    assert row.rmsd_angstrom < 0.15 and row.rmsd_normalized < 0.1
    relaxed = Structure.from_str(row.relaxed_cif, fmt="cif")
    assert chgnet_energies([relaxed])[0] == pytest.approx(row.energy_per_atom, abs=2e-3)


def test_relaxation_rmsd_in_angstrom_hand_worked(perovskite):
    # One of n atoms moved by d (cell fixed): after the matcher removes the mean shift, the displacements are
    # d(1 - 1/n) once and d/n (n - 1) times, so RMS = d sqrt(n - 1) / n = 0.2 * 2 / 5 = 0.08 Å for n = 5.
    moved = perovskite.copy()
    moved.translate_sites([1], [0.2, 0, 0], frac_coords=False)
    rmsd, normalised = relaxation_rmsd(perovskite, moved)
    assert rmsd == pytest.approx(0.08, abs=1e-6)
    assert normalised == pytest.approx(0.08 / (perovskite.volume / 5) ** (1 / 3), abs=1e-6)
    expanded = Structure(perovskite.lattice.matrix * 1.1, perovskite.species, perovskite.frac_coords)
    assert relaxation_rmsd(perovskite, expanded)[0] == pytest.approx(0.0, abs=1e-6)  # pure expansion
    assert all(math.isnan(x) for x in relaxation_rmsd(perovskite, perovskite.copy().replace_species({"Sr": "Ba"})))


def test_non_physical_cells_are_recorded_not_raised(silicon):
    isolated = Structure(Lattice.cubic(30.0), ["Si", "Si"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # no neighbour in 6 Å
    overlapping = Structure(Lattice.cubic(4.0), ["Si", "Si"], [[0, 0, 0], [0.025, 0, 0]])  # 0.1 Å apart
    table = relax_structures([isolated, overlapping, silicon], max_steps=15, desc=None)
    assert list(table.converged) == [False, False, True]
    assert "isolated" in table.error[0]
    assert math.isnan(table.energy_per_atom[0]) and table.relaxed_cif[0] == ""
    assert table.error[2] == ""


def test_relax_resumes_from_cache(tmp_path, monkeypatch, silicon, nacl):
    calls = []
    original = stability._relax_task

    def counting(task):
        calls.append(task[0].composition.reduced_formula)
        return original(task)

    monkeypatch.setattr(stability, "_relax_task", counting)
    first = relax_structures([silicon, silicon], max_steps=5, cache_dir=tmp_path, desc=None)
    assert calls == ["Si"]  # the duplicate is relaxed once
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = relax_structures([nacl, silicon], max_steps=5, cache_dir=tmp_path, desc=None)
    assert calls == ["Si", "NaCl"]  # Si came from the cache
    pd.testing.assert_series_equal(second.iloc[1], first.iloc[0], check_names=False)
    (tmp_path / f"{second.cache_key[0]}.json").write_text('{"converged": tru')  # cut short by a kill
    relax_structures([nacl], max_steps=5, cache_dir=tmp_path, desc=None)
    assert calls == ["Si", "NaCl", "NaCl"]
    other = relax_structures([silicon], max_steps=6, cache_dir=tmp_path, desc=None)  # other settings, other key
    assert calls[-1] == "Si" and other.cache_key[0] != first.cache_key[0]


def test_elemental_reference_of_silicon_is_diamond_and_cached(tmp_path, monkeypatch, silicon):
    cache = tmp_path / "elements.json"
    refs = elemental_references(["Si"], cache, relax=False)
    si = refs["Si"]
    assert si["prototype"] in ("diamond", "ase_reference")  # ASE's reference state of Si is diamond too
    assert si["candidates"]["diamond"] < min(si["candidates"][k] for k in ("fcc", "bcc", "hcp", "sc")) - 0.1
    assert si["energy_per_atom"] <= chgnet_energies([silicon])[0] + 0.01  # the scan finds the minimum
    monkeypatch.setattr(hull_module, "chgnet_energies", lambda *a, **k: pytest.fail("recomputed a cached element"))
    assert elemental_references(["Si"], cache) == refs


def test_reference_hull_built_once_and_cached(tmp_path, monkeypatch, params, perovskite, nacl, silicon):
    rows = []
    for i, (structure, split, energy) in enumerate(
        [(perovskite, "train", -3.0), (nacl, "val", -2.0), (silicon, "test", 0.0), (nacl * (1, 1, 2), "train", -1.9)]
    ):
        rows.append(
            dict(
                id=f"r{i}",
                split=split,
                reduced_formula=structure.composition.reduced_formula,
                heat_of_formation=energy,
                lattice=structure.lattice.matrix.reshape(-1).tolist(),
                atomic_numbers=[s.Z for s in structure.species],
                frac_coords=structure.frac_coords.reshape(-1).tolist(),
            )
        )
    (tmp_path / "processed").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "processed" / "toy.parquet")
    local = dataclasses.replace(
        params,
        data=dataclasses.replace(params.data, processed_dir=str(tmp_path / "processed")),
        evaluation=dataclasses.replace(params.evaluation, references_dir=str(tmp_path / "refs")),
    )
    fake_refs = {s: dict(energy_per_atom=-1.0, prototype="fcc") for s in ("Sr", "Ti", "O", "Na", "Cl", "Si")}
    monkeypatch.setattr(hull_module, "elemental_references", lambda symbols, path: {s: fake_refs[s] for s in symbols})
    hull = reference_hull(local, "toy")
    assert len(hull) == 4 + 6
    meta = json.loads((tmp_path / "refs" / "toy" / "hull_meta.json").read_text())
    assert meta["n_entries"] == 10 and meta["n_elemental_entries"] == 6 and "not DFT" in meta["note"]
    assert meta["single_points_s_all_chunks"] > 0 and meta["n_single_points_this_run"] == 4
    energies = chgnet_energies([perovskite])
    assert e_above_hull(hull, [perovskite], energies)[0] == pytest.approx(0.0, abs=1e-6)  # it is a reference

    monkeypatch.setattr(hull_module, "chgnet_energies", lambda *a, **k: pytest.fail("rebuilt a cached hull"))
    again = reference_hull(local, "toy")
    assert sorted(e.name for e in again.all_entries) == sorted(e.name for e in hull.all_entries)

    # Relaxed references: a new build (the flag differs), single points from the chunk cache, energies ≤ them.
    relaxed = reference_hull(local, "toy", relax_references=True, desc=None)
    meta = json.loads((tmp_path / "refs" / "toy" / "hull_meta.json").read_text())
    assert meta["relaxed_references"] and meta["n_relax_ok"] == 4 and meta["n_single_points_this_run"] == 0
    before = {e.name: e.energy_per_atom for e in hull.all_entries}
    after = {e.name: e.energy_per_atom for e in relaxed.all_entries}
    assert all(after[k] <= before[k] + 1e-9 for k in before) and after != before
    assert len(list((tmp_path / "refs" / "toy" / "relaxations").glob("*.json"))) == 4


def test_capped_reference_keeps_lowest_dft_polymorph_per_formula_first():
    frame = pd.DataFrame(
        dict(
            reduced_formula=["A", "A", "B", "C", "C", "C"], formation_energy_per_atom=[0.0, -1.0, 0.5, -0.2, -0.3, 0.1]
        )
    )
    kept = _reference_order(frame, cap=4, seed=0)
    assert sorted(kept.index[:3]) == [1, 2, 4]  # the lowest of each formula
    assert set(kept.index[3:]) <= {0, 3}  # then second-lowest ones
    assert len(_reference_order(frame, cap=None, seed=0)) == 6


@pytest.mark.slow
def test_relax_on_two_dask_workers_matches_serial(tmp_path, silicon, nacl):
    from autoperi.parallel import dask_client

    rattled = silicon.copy()
    rattled.translate_sites([0], [0.05, 0, 0], frac_coords=False)
    serial = relax_structures([rattled, nacl], max_steps=20, desc=None)
    with dask_client(None, 2) as client:
        parallel = relax_structures([rattled, nacl], max_steps=20, client=client, cache_dir=tmp_path, desc=None)
    assert len(list(tmp_path.glob("*.json"))) == 2
    pd.testing.assert_frame_equal(
        serial.drop(columns=["wall_s", "relaxed_cif"]), parallel.drop(columns=["wall_s", "relaxed_cif"]), atol=1e-5
    )


@pytest.mark.parametrize(
    "symbol, kind, n_sites, nearest",
    # textbook nearest-neighbour distances (Å): graphite 1.42, alpha-B 1.67-1.80, black P 2.22, Se chain 2.37,
    # alpha-Ga dimer 2.44-2.48
    [
        ("C", "graphite", 4, 1.42),
        ("B", "alpha-B", 12, 1.67),
        ("P", "black-P", 4, 2.22),
        ("Se", "chain", 3, 2.37),
        ("Ga", "alpha-Ga", 4, 2.48),
    ],
)
def test_known_elemental_structures_have_textbook_geometry(symbol, kind, n_sites, nearest):
    from autoperi.graphs.neighbors import min_pair_distance

    cell = hull_module._prototype(symbol, f"known:{kind}", nn_distance=1.0)
    assert len(cell) == n_sites and cell.composition.reduced_formula == symbol
    assert min_pair_distance(cell.frac_coords, cell.lattice.matrix, 3.0) == pytest.approx(nearest, abs=0.03)
