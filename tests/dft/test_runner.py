"""The DFT runner: formation energies from cached references, failures recorded (not raised), resume after a
killed run, and a 2-worker dask LocalCluster agreeing with the serial path."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from autoperi.dft.protocol import Protocol
from autoperi.dft.runner import (
    ensure_references,
    formation_energies,
    load_records,
    run_structures,
    structure_tasks,
    summarize,
)
from tests.dft.conftest import TINY, aluminium, requires_gpaw, silicon

REPO = Path(__file__).resolve().parents[2]


def _nacl(n_na: int = 1) -> Structure:
    species = ["Na"] * n_na + ["Cl"]
    coords = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]][:n_na] + [[0.5, 0.5, 0.5]]
    return Structure(Lattice.cubic(5.6), species, coords)


def test_formation_energy_from_cached_references_hand_worked():
    refs = {"Na": {"status": "ok", "energy_per_atom": -1.3}, "Cl": {"status": "ok", "energy_per_atom": -1.8}}
    records = [
        {"name": "a", "kind": "single_point", "formula": "NaCl", "n_atoms": 2, "status": "ok", "energy_ev": -7.0,
         "structure": _nacl(1).as_dict(), "database_ef": -2.0},
        {"name": "b", "kind": "single_point", "formula": "Na3Cl", "n_atoms": 4, "status": "ok", "energy_ev": -10.0,
         "structure": _nacl(3).as_dict()},
        {"name": "c", "kind": "single_point", "formula": "NaCl", "n_atoms": 2, "status": "failed",
         "reason": "timeout", "structure": _nacl(1).as_dict()},
        {"name": "r", "kind": "relax", "formula": "NaCl", "n_atoms": 2, "status": "ok", "energy_ev": -7.0,
         "structure": _nacl(1).as_dict()},
    ]
    table = formation_energies(records, refs).set_index("name")
    assert list(table.index) == ["a", "b", "c"]  # relaxations are not formation-energy rows
    assert table.loc["a", "dft_ef"] == pytest.approx((-7.0 + 1.3 + 1.8) / 2)  # -1.95
    assert table.loc["b", "dft_ef"] == pytest.approx((-10.0 + 3 * 1.3 + 1.8) / 4)  # -1.075
    assert table.loc["c", "reason"] == "timeout" and math.isnan(table.loc["c", "dft_ef"])
    missing = formation_energies(records[:1], {"Na": refs["Na"], "Cl": {"status": "failed"}}).iloc[0]
    assert missing["status"] == "failed" and missing["reason"] == "reference_failed:Cl"


def test_summary_uses_stage_database_values_and_ranks(tmp_path):
    # Records keep the database value they ran with; the stage's (per-atom) values replace it in the summary, so a
    # unit fix never needs a DFT rerun. Three NaCl-like cells with hand-set energies: E_f = -1.95, -1.45, -0.95.
    refs = {"Na": {"status": "ok", "energy_per_atom": -1.3}, "Cl": {"status": "ok", "energy_per_atom": -1.8}}
    (tmp_path / "structures").mkdir()
    for k, energy in enumerate([-7.0, -6.0, -5.0]):
        record = {"name": f"s{k}", "kind": "single_point", "formula": "NaCl", "n_atoms": 2, "status": "ok",
                  "energy_ev": energy, "structure": _nacl(1).as_dict(), "database_ef": 99.0}
        (tmp_path / "structures" / f"s{k}.json").write_text(json.dumps(record))
    database = {"s0": -1.75, "s1": -1.55, "s2": -0.65}  # errors +0.2, -0.1, +0.3 (DFT minus database)
    tasks = [{"name": f"s{k}", "relax": False} for k in range(3)]
    summary = summarize(tmp_path, tasks, refs, Protocol(), "test", 1.0, with_chgnet=False, database_ef=database)
    assert summary["ef_n_vs_database"] == 3
    assert summary["ef_mae_vs_database"] == pytest.approx(0.2)
    assert summary["ef_spearman_vs_database"] == pytest.approx(1.0)
    stored = summarize(tmp_path, tasks, refs, Protocol(), "test", 1.0, with_chgnet=False)
    assert stored["ef_mae_vs_database"] == pytest.approx(99.0 + 1.45)  # without the override: the stored values
    assert stored["ef_spearman_vs_database"] is None  # constant stored values: no ranking to compare


@requires_gpaw
def test_reference_phase_supercell_has_zero_formation_energy(tmp_path):
    # The whole path (reference task, cache, structure task in a subprocess, composition counting, per-atom
    # normalisation) on a 2x1x1 supercell of the reference itself: E_f must be 0 (equivalent k-meshes).
    refs = ensure_references(["Si"], TINY, tmp_path / "refs", tmp_path / "no_unaries.parquet", timeout_s=300)
    assert refs["Si"]["status"] == "ok" and "ASE bulk('Si')" in refs["Si"]["structure_source"]
    assert (tmp_path / "refs" / TINY.tag / "Si.json").exists()
    supercell = silicon().make_supercell([2, 1, 1], in_place=False)
    tasks = structure_tasks([("si4", supercell)], TINY, timeout_s=300, max_atoms=8)
    records = run_structures(tasks, tmp_path / "run")
    ef = formation_energies(records, refs).iloc[0]["dft_ef"]
    assert abs(ef) < 2e-3, ef
    again = ensure_references(["Si"], TINY, tmp_path / "refs", None, timeout_s=300)  # from the cache, no GPAW
    assert again["Si"]["energy_per_atom"] == refs["Si"]["energy_per_atom"]


@requires_gpaw
def test_failures_are_recorded_not_raised(tmp_path):
    squeezed = Structure(Lattice.cubic(6.0), ["Si", "Si"], [[0, 0, 0], [0.005, 0, 0]])  # atoms 0.03 Å apart
    big = silicon().make_supercell([3, 3, 3], in_place=False)  # 54 atoms > max_atoms
    tasks = structure_tasks([("squeezed", squeezed), ("big", big)], TINY, timeout_s=120, max_atoms=8)
    tasks += structure_tasks([("few_iterations", silicon())], dataclasses.replace(TINY, maxiter=2), 120, 8)
    tasks += structure_tasks([("slow", silicon())], dataclasses.replace(TINY, cutoff_ev=900.0), 0.5, 8)
    records = {r["name"]: r for r in run_structures(tasks, tmp_path)}
    assert records["big"]["reason"] == "too_large"
    assert records["few_iterations"]["reason"] == "scf_not_converged"
    assert records["slow"]["reason"] == "timeout"
    assert records["squeezed"]["status"] == "failed", records["squeezed"]
    assert records["squeezed"]["reason"].startswith(("gpaw_error:", "scf_not_converged"))
    csv = (tmp_path / "structures.csv").read_text()
    assert csv.count("\n") == 5 and "too_large" in csv and "timeout" in csv


@requires_gpaw
def test_resume_after_killed_run_skips_finished_structures(tmp_path):
    structures = [(f"si_{a}", silicon(a)) for a in (5.35, 5.40, 5.45, 5.50)]
    script = textwrap.dedent(f"""
        import pickle, sys
        from autoperi.dft.runner import run_structures
        tasks = pickle.load(open({str(tmp_path / 'tasks.pkl')!r}, 'rb'))
        run_structures(tasks, __import__('pathlib').Path({str(tmp_path / 'run')!r}))
    """)
    import pickle

    tasks = structure_tasks(structures, TINY, timeout_s=300, max_atoms=8)
    (tmp_path / "tasks.pkl").write_bytes(pickle.dumps(tasks))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    records_dir = tmp_path / "run" / "structures"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(records_dir.glob("*.json"))) < 1:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # killed mid-run: the second structure is being computed
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in records_dir.glob("*.json")}
    assert 1 <= len(finished) < len(structures)
    records = run_structures(tasks, tmp_path / "run")
    assert len(records) == len(structures) and all(r["status"] == "ok" for r in records)
    for name, mtime in finished.items():  # finished ones were not recomputed
        assert (records_dir / name).stat().st_mtime_ns == mtime
    assert len(load_records(tmp_path / "run")) == len(structures)


@requires_gpaw
def test_two_worker_local_cluster_matches_serial(tmp_path):
    from autoperi.parallel import dask_client

    structures = [("si", silicon()), ("al", aluminium())]
    tasks = structure_tasks(structures, TINY, timeout_s=300, max_atoms=8)
    serial = {r["name"]: r for r in run_structures(tasks, tmp_path / "serial")}
    with dask_client(None, workers=2) as client:
        parallel = {r["name"]: r for r in run_structures(tasks, tmp_path / "dask", client)}
    for name in serial:
        assert parallel[name]["status"] == serial[name]["status"] == "ok"
        assert parallel[name]["energy_ev"] == pytest.approx(serial[name]["energy_ev"], abs=1e-6)
    assert json.loads((tmp_path / "dask" / "structures" / "al.json").read_text())["n_atoms"] == 1


@requires_gpaw
def test_relaxation_of_strained_silicon_converges_and_lowers_the_energy(tmp_path):
    # Si at a = 5.65 Å (3% above PBE's 5.47): the cell relaxation must converge within the step limit, lower the
    # energy and shrink the cell.
    strained = silicon(5.65)
    tasks = structure_tasks([("si", strained)], TINY, timeout_s=600, max_atoms=8, relax_names=["si"],
                            relax_fmax=0.05, relax_steps=20)
    records = {r["name"]: r for r in run_structures(tasks, tmp_path)}
    relax = records["si__relax"]
    assert relax["kind"] == "relax" and relax["status"] == "ok"
    assert relax["relax_converged"] and 0 < relax["relax_n_steps"] <= 20
    assert relax["relax_energy_drop_per_atom"] > 0.005
    assert records["si"]["kind"] == "single_point" and "relax_converged" not in records["si"]


def test_greedy_order_runs_covered_structures_before_computing_new_references(tmp_path, monkeypatch):
    # Pure scheduling logic (GPAW replaced): Si is cached, Al is not. The Si crystal must run first, then the
    # Al reference is computed, then the Al crystal; the too-large cell is recorded without any reference.
    from autoperi.dft import runner
    from autoperi.dft.references import write_reference

    write_reference({"element": "Si", "status": "ok", "energy_per_atom": -5.0}, TINY, tmp_path / "refs")
    events = []

    def fake_references(elements, protocol, cache_dir, unary_table, timeout_s, client=None):
        events.append(("references", tuple(elements)))
        for el in elements:
            write_reference({"element": el, "status": "ok", "energy_per_atom": -3.0}, protocol, cache_dir)
        return {el: {"element": el, "status": "ok", "energy_per_atom": -3.0} for el in elements}

    def fake_task(task):
        events.append(("structure", task["name"]))
        return {"status": "failed", "reason": "too_large"} if task["too_large"] else {
            "status": "ok", "energy_ev": -1.0, "wall_s": 0.0}

    monkeypatch.setattr(runner, "ensure_references", fake_references)
    monkeypatch.setattr(runner, "_structure_or_skip", fake_task)
    big = aluminium().make_supercell([3, 3, 3], in_place=False)
    tasks = structure_tasks([("al", aluminium()), ("si", silicon()), ("big_al", big)], TINY, 60, max_atoms=8)
    refs = runner.run_greedy(tasks, tmp_path / "run", TINY, tmp_path / "refs", None, 60)
    assert events == [("structure", "si"), ("structure", "big_al"), ("references", ("Al",)), ("structure", "al")]
    assert refs["Si"]["energy_per_atom"] == -5.0 and refs["Al"]["status"] == "ok"
    assert (tmp_path / "run" / "structures.csv").read_text().count("\n") == 4
    runner.run_greedy(tasks, tmp_path / "run", TINY, tmp_path / "refs", None, 60)  # resumed: nothing left to do
    assert len(events) == 4
    (tmp_path / "refs" / TINY.tag / "Al.json").unlink()  # a reference missing after its structures ran (e.g. added
    refs = runner.run_greedy(tasks, tmp_path / "run", TINY, tmp_path / "refs", None, 60)  # later): computed now
    assert events[4:] == [("references", ("Al",))] and refs["Al"]["status"] == "ok"


def test_a_record_of_another_structure_under_the_same_name_is_set_aside_and_rerun(tmp_path, monkeypatch):
    # The samples file changed between runs (same names, other crystals): the old records must not be reused.
    from autoperi.dft import runner

    runs = []

    def fake_task(task):
        runs.append(task["name"])
        return {"status": "ok", "energy_ev": -float(task["structure"]["lattice"]["a"]), "wall_s": 0.0}

    monkeypatch.setattr(runner, "_structure_or_skip", fake_task)
    first = structure_tasks([("s#0", silicon(5.40)), ("s#1", silicon(5.45))], TINY, 60, max_atoms=8)
    run_structures(first, tmp_path / "run")
    run_structures(first, tmp_path / "run")  # unchanged input: nothing runs again
    assert runs == ["s#0", "s#1"]
    second = structure_tasks([("s#0", silicon(5.40)), ("s#1", silicon(5.60))], TINY, 60, max_atoms=8)
    records = {r["name"]: r for r in run_structures(second, tmp_path / "run")}
    assert runs == ["s#0", "s#1", "s#1"] and len(records) == 2
    assert records["s#1"]["energy_ev"] == -second[1]["structure"]["lattice"]["a"]  # the new crystal's result
    [stale_path] = (tmp_path / "run/structures/stale").glob("s_1.*.json")
    stale = json.loads(stale_path.read_text())
    assert stale["energy_ev"] == -first[1]["structure"]["lattice"]["a"]  # the old one kept aside, not lost


def test_a_finished_relaxation_is_recognised_by_its_input_structure(tmp_path, monkeypatch):
    # A relaxation starts from the CHGNet-relaxed input, which a resumed run does not recompute: the record is
    # matched by the input structure (records without `input_key`, written earlier, through their single point).
    from autoperi.dft import runner

    runs = []
    monkeypatch.setattr(runner, "_structure_or_skip", lambda task: runs.append(task["name"]) or {"status": "ok"})
    first = structure_tasks([("s#0", silicon(5.40))], TINY, 60, 8, ["s#0"], {"s#0": silicon(5.43)})
    run_structures(first, tmp_path / "run")
    resumed = structure_tasks([("s#0", silicon(5.40))], TINY, 60, 8, ["s#0"])  # no pre-relaxed input this time
    run_structures(resumed, tmp_path / "run")
    assert runs == ["s#0", "s#0__relax"]
    for path in (tmp_path / "run/structures").glob("*.json"):  # as written before input_key existed
        record = json.loads(path.read_text())
        del record["input_key"]
        path.write_text(json.dumps(record))
    run_structures(resumed, tmp_path / "run")
    assert runs == ["s#0", "s#0__relax"]
    changed = structure_tasks([("s#0", silicon(5.50))], TINY, 60, 8, ["s#0"])
    run_structures(changed, tmp_path / "run")
    assert runs == ["s#0", "s#0__relax", "s#0", "s#0__relax"]
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "run/structures/stale").glob("*.json")) == [
        "s_0", "s_0__relax"]


def test_float_noise_in_the_input_keeps_the_record_a_real_change_does_not(tmp_path, monkeypatch):
    # The same seeded samples drawn on another machine differ by ~1e-5 Å (BLAS rounding), which changes the 1e-6
    # rounded input key: the records must still be reused, single points and relaxations, and 1e-3 Å must not be.
    from autoperi.dft import runner

    runs = []
    monkeypatch.setattr(runner, "_structure_or_skip", lambda task: runs.append(task["name"]) or {"status": "ok"})

    def moved(shift):
        s = silicon(5.40)
        s.translate_sites([1], [shift, -shift, 0.0], frac_coords=False, to_unit_cell=True)
        return s

    run_structures(structure_tasks([("s#0", moved(0.0))], TINY, 60, 8, ["s#0"]), tmp_path / "run")
    noisy = structure_tasks([("s#0", moved(3e-5))], TINY, 60, 8, ["s#0"])
    assert noisy[0]["input_key"] != runner.structure_key(runner._plain_dict(moved(0.0)))  # the exact key differs
    run_structures(noisy, tmp_path / "run")
    assert runs == ["s#0", "s#0__relax"]
    run_structures(structure_tasks([("s#0", moved(1e-3))], TINY, 60, 8, ["s#0"]), tmp_path / "run")
    assert runs == ["s#0", "s#0__relax", "s#0", "s#0__relax"]
    assert not runner.same_input(runner._plain_dict(silicon(5.40)), runner._plain_dict(aluminium()))


def test_missing_paw_dataset_gets_a_short_reason():
    from autoperi.dft.worker import normalize_reason

    message = 'gpaw_error:FileNotFoundError: Could not find required PAW dataset file "La.PBE".\n\nYou need to set'
    assert normalize_reason(message) == "no_paw_setup:La"
    assert normalize_reason("timeout") == "timeout"


def test_tasks_of_structures_read_from_extxyz_are_json(tmp_path):
    """Structures read back from the pipeline's extxyz carry numpy-typed properties; their tasks must still be JSON."""
    import numpy as np

    from autoperi.data.readers import read_structures
    from autoperi.sampling.writers import write_extxyz

    write_extxyz([silicon()], tmp_path / "s.extxyz", info=[{"sample_id": np.int64(3), "network_evals": np.int64(20)}])
    (name, structure), = read_structures(tmp_path / "s.extxyz")
    tasks = structure_tasks([(name, structure)], TINY, 60.0, 8, relax_names=[name])
    assert len(tasks) == 2 and json.loads(json.dumps(tasks))[0]["structure"]["sites"]
    assert Structure.from_dict(tasks[0]["structure"]) == structure


def test_elements_without_a_small_cell_get_their_built_in_reference(tmp_path):
    # S, B and Mn have no ASE bulk state and no small MP-20 cell: the S8 ring (α-S's molecule), α-B and γ-Mn stand
    # in, with the geometry they were built with, and every other element keeps its own rule.
    import numpy as np

    from autoperi.dft.references import choose_reference_structures, ring_molecule

    ring = ring_molecule("S", 8, bond_angstrom=2.05, angle_deg=108.0)
    d = ring.get_all_distances(mic=True)
    bonded = [d[k, (k + 1) % 8] for k in range(8)]
    assert np.allclose(bonded, 2.05, atol=1e-9)
    v1, v2 = ring.positions[0] - ring.positions[1], ring.positions[2] - ring.positions[1]
    assert np.degrees(np.arccos(v1 @ v2 / (np.linalg.norm(v1) * np.linalg.norm(v2)))) == pytest.approx(108.0)
    assert np.sort(d[0])[3] > 3.0  # no third atom within bonding distance: a ring, not a cluster
    chosen = choose_reference_structures(["S", "O", "B", "Mn"], tmp_path / "no_unaries.parquet")
    assert chosen["S"]["molecule"] and len(chosen["S"]["atoms"]) == 8 and "S8" in chosen["S"]["structure_source"]
    assert chosen["O"]["structure_source"].startswith("molecule O2")
    boron = chosen["B"]["atoms"]  # α-B: 12 atoms, B-B bonds 1.67-1.79 Å, 7.3 Å^3/atom (experiment: 7.3)
    nearest = (boron.get_all_distances(mic=True) + 10 * np.eye(12)).min(axis=1)
    assert len(boron) == 12 and nearest.min() > 1.6 and nearest.max() < 1.85
    assert boron.get_volume() / 12 == pytest.approx(7.32, abs=0.05)
    assert len(chosen["Mn"]["atoms"]) == 1 and not chosen["Mn"]["molecule"]


@requires_gpaw
def test_structures_without_paw_setups_are_left_out_and_counted(tmp_path):
    # Debian's gpaw-data has no lanthanides: an Nd crystal is excluded before the seeded draw (and counted), so it
    # neither fails against the generator nor shifts which other structures are drawn.
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.dft.install import has_setup
    from autoperi.dft.stage import select_from_file

    assert has_setup("Na") and has_setup("S") and not has_setup("Nd")
    nd = Structure(Lattice.cubic(4.0), ["Nd", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    frames = [_nacl(1), nd, _nacl(3)]
    path = tmp_path / "s.extxyz"
    write(path, [AseAtomsAdaptor.get_atoms(s) for s in frames], format="extxyz")
    chosen, info = select_from_file(path, n=5, seed=0)
    assert info["n_excluded_no_paw_setup"] == 1 and info["n_valid"] == 2
    assert all("Nd" not in s.composition for _, s in chosen) and len(chosen) == 2


@requires_gpaw
def test_a_summary_only_pass_moves_and_runs_nothing(tmp_path, monkeypatch):
    # `compute=False` (the summary of a run still going elsewhere) must leave every record where it is, even one
    # whose input has since changed: only a computing run may set records aside.
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    from autoperi.config import load_params
    from autoperi.dft import runner
    from autoperi.dft.stage import run_dft_source, select_from_file

    (tmp_path / "params.yaml").write_text(textwrap.dedent("""
        profile: t
        dft: {n_structures: 2, n_relax: 0, max_atoms: 8, cutoff_ev: 250, kpt_density: 1.9, workers: 0}
        profiles: {t: {}}
    """))
    params = load_params(tmp_path / "params.yaml")
    samples = tmp_path / "reports/samples/perov_5/random.extxyz"
    samples.parent.mkdir(parents=True)
    write(samples, [AseAtomsAdaptor.get_atoms(s) for s in (_nacl(1), _nacl(2))], format="extxyz")
    monkeypatch.setattr(runner, "_structure_or_skip", lambda task: {"status": "ok", "energy_ev": -1.0, "wall_s": 0})
    chosen, _ = select_from_file(samples, 2, params.dft.seed)
    run_structures(structure_tasks(chosen, TINY, 60, max_atoms=8), tmp_path / "reports/dft/perov_5/random")
    records = sorted((tmp_path / "reports/dft/perov_5/random/structures").glob("*.json"))
    before = {p.name: p.read_text() for p in records}
    assert len(before) == 2
    write(samples, [AseAtomsAdaptor.get_atoms(s) for s in (_nacl(1), _nacl(3))], format="extxyz")  # input changed
    monkeypatch.setattr(runner, "_structure_or_skip", lambda task: pytest.fail("a summary-only pass ran GPAW"))
    summary = run_dft_source(params, "perov_5", "random", compute=False, with_chgnet=False)
    after = {p.name: p.read_text() for p in (tmp_path / "reports/dft/perov_5/random/structures").glob("*.json")}
    assert after == before and not (tmp_path / "reports/dft/perov_5/random/structures/stale").exists()
    assert summary["complete"] is False and summary["n_submitted"] == 2
