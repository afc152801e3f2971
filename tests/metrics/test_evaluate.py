"""evaluate_samples end to end on real Perov-5 rows plus broken files; serial == 2-worker LocalCluster; resume;
the fast matching (pre-filters, groups, dask) against the brute-force uniqueness / novelty."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

import autoperi.metrics.samples as samples_module
from autoperi.data.preprocess import record_to_structure
from autoperi.metrics.evaluate import METRIC_KEYS, evaluate_samples
from autoperi.metrics.fastmatch import match_samples
from autoperi.metrics.figures import coverage_curves, sample_fingerprints
from autoperi.metrics.matching import novelty, uniqueness
from autoperi.metrics.references import build_references
from autoperi.metrics.samples import matcher_primitive_sites
from autoperi.metrics.stability_step import STABILITY_KEYS
from autoperi.parallel import dask_client
from autoperi.sampling.writers import write_cifs
from tests.metrics.test_references import raw_table, scoped

COMPARED = [k for k in METRIC_KEYS if k not in ("dataset", "model", "protocol", "stability")]
GOOD_CIF = """data_x
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_type_symbol
_atom_site_label
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{sites}
"""


def _cif(sites: str, a: float = 4.0) -> str:
    return GOOD_CIF.replace("_cell_length_a 4.0", f"_cell_length_a {a}").format(sites=sites)


@pytest.fixture(scope="module")
def perov_table(raw_dir):
    return raw_table(raw_dir, "perov_5", {"test": 30, "train": 40, "val": 24})


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def sample_folder(module_tmp, perov_table):
    """20 real Perov-5 crystals (val split) as CIFs, one readable crystal with overlapping atoms, six broken files."""
    folder = module_tmp / "samples"
    val = perov_table[perov_table["split"] == "val"].head(20)
    write_cifs([record_to_structure(r) for r in val.to_dict("records")], folder, [f"val_{i:02d}" for i in range(20)])
    (folder / "empty.cif").write_text("")
    good = _cif("Sr Sr0 0 0 0 1\nTi Ti0 0.5 0.5 0.5 1\nO O0 0.5 0.5 0 1\nO O1 0.5 0 0.5 1\nO O2 0 0.5 0.5 1")
    (folder / "truncated.cif").write_text(good[: good.index("_atom_site_type_symbol")])
    (folder / "disordered.cif").write_text(_cif("Sr Sr0 0 0 0 0.5\nTi Ti0 0.5 0.5 0.5 1"))
    (folder / "unknown_element.cif").write_text(_cif("Xx X0 0 0 0 1\nO O0 0.5 0.5 0.5 1"))
    (folder / "absurd_lattice.cif").write_text(_cif("Sr Sr0 0 0 0 1\nO O0 0.5 0.5 0.5 1", a=5000.0))
    (folder / "notes.txt").write_text("not a crystal")
    # 0.05 * 4 Å = 0.2 Å apart: readable, scored, structurally invalid.
    (folder / "overlapping.cif").write_text(_cif("Na Na0 0 0 0 1\nCl Cl0 0.05 0 0 1"))
    return folder


EXPECTED_REFUSALS = {
    "empty.cif": "empty",
    "truncated.cif": "malformed",
    "disordered.cif": "partial_occupancy",
    "unknown_element.cif": "unknown_element",
    "absurd_lattice.cif": "bad_lattice",
    "notes.txt": "malformed",
}


@pytest.fixture(scope="module")
def setup(params, module_tmp, perov_table):
    params = scoped(params, module_tmp, frechet_embedding=False, n_wasserstein=15)
    return params, build_references(params, "perov_5", table=perov_table)


@pytest.fixture(scope="module")
def serial_result(setup, sample_folder):
    params, refs = setup
    return evaluate_samples(sample_folder, "perov_5", "folder", params, references=refs, stability_n=0)


def test_schema_and_refusals(setup, serial_result, module_tmp):
    result = serial_result
    assert list(result)[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    assert set(result["stability"]) == set(STABILITY_KEYS) and all(v is None for v in result["stability"].values())
    for key in ("n_refused", "refused_by_reason", "uniqueness_mattergen", "novelty_mattergen", "versions",
                "protocol_details", "wall_s"):  # fmt: skip
        assert key in result
    assert result["n_samples"] == 21  # 20 real + the overlapping crystal
    assert result["n_refused"] == 6
    assert result["refused_by_reason"] == {"bad_lattice": 1, "empty": 1, "malformed": 2, "partial_occupancy": 1,
                                           "unknown_element": 1}  # fmt: skip
    # 20 valid real crystals, 1 overlapping NaCl (composition valid, structure invalid).
    assert result["struct_validity"] == pytest.approx(100 * 20 / 21)
    assert result["comp_validity"] == pytest.approx(100.0)
    assert result["wdist_formation_energy"] is None and result["frechet_embedding"] is None
    assert "not available" in result["protocol_details"]["formation_energy"]
    assert result["novelty"] == 0.0  # val crystals are in the novelty reference (train + val)
    assert result["uniqueness"] == pytest.approx(100.0)
    for key in ("cov_recall", "cov_precision", "wdist_density", "wdist_num_elems", "frechet_props"):
        assert isinstance(result[key], float) and np.isfinite(result[key])
    assert result["versions"]["pymatgen"] and result["versions"]["smact"]

    table = pd.read_csv(module_tmp / "metrics" / "perov_5" / "folder.csv")
    assert len(table) == 27
    statuses = dict(zip(table["name"], table["status"], strict=True))
    assert {k: statuses[k] for k in EXPECTED_REFUSALS} == {k: f"refused:{v}" for k, v in EXPECTED_REFUSALS.items()}
    overlapping = table[table["name"] == "overlapping.cif"].iloc[0]
    assert overlapping["status"] == "ok" and not overlapping["struct_valid"] and not overlapping["valid"]
    ok = table[table["status"] == "ok"]
    assert ok["matched_train_id"].str.startswith("val-").sum() == 20  # each val crystal matches itself
    assert (ok.loc[ok["valid"], "nn_struct_dist"] >= 0).all()
    json.loads((module_tmp / "metrics" / "perov_5" / "folder.json").read_text())  # valid JSON (no NaN)


def test_wasserstein_uses_a_seeded_subset_of_valid_samples(setup, serial_result, module_tmp, perov_table):
    from autoperi.metrics.distributions import wasserstein_property

    params, refs = setup
    table = pd.read_csv(module_tmp / "metrics" / "perov_5" / "folder.csv")
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    rng = np.random.default_rng(params.evaluation.seed)
    subset = np.sort(rng.choice(np.flatnonzero(ok["valid"]), size=15, replace=False))
    expected = wasserstein_property(ok["density"].to_numpy()[subset], refs.test["density"])
    assert serial_result["wdist_density"] == pytest.approx(expected)


def test_two_worker_cluster_gives_the_serial_numbers(setup, serial_result, sample_folder, module_tmp):
    params, refs = setup
    with dask_client(None, 2) as client:
        parallel = evaluate_samples(sample_folder, "perov_5", "folder", params, client=client, references=refs,
                                    out_dir=module_tmp / "parallel")  # fmt: skip
    for key in COMPARED + ["n_refused", "refused_by_reason", "uniqueness_mattergen", "novelty_mattergen"]:
        assert parallel[key] == pytest.approx(serial_result[key]), key


def test_resume_uses_cached_per_structure_results(setup, serial_result, sample_folder, module_tmp, monkeypatch):
    params, refs = setup

    def forbidden(*args, **kwargs):
        raise AssertionError("cached per-structure results were computed again")

    # Everything per structure is in .cache/folder/ from the first run: a rerun must not score or match again.
    monkeypatch.setattr(samples_module, "score_structures", forbidden)
    monkeypatch.setattr("autoperi.metrics.fastmatch._match_task", forbidden)
    again = evaluate_samples(sample_folder, "perov_5", "folder", params, references=refs)
    for key in COMPARED:
        assert again[key] == pytest.approx(serial_result[key]), key


def test_coverage_curve_reads_the_evaluations_fingerprints(setup, serial_result, sample_folder):
    params, refs = setup
    gen_struct, gen_comp = sample_fingerprints(params, "perov_5", "folder", sample_folder, cached_only=True)
    assert gen_struct.shape == (21, 61) and gen_comp.shape == (21, 132)
    struct_cutoff, comp_cutoff = refs.cutoffs
    curve = coverage_curves(gen_struct, gen_comp, refs.test_struct_fps, refs.test_comp_fps, [struct_cutoff],
                            comp_cutoff)  # fmt: skip
    assert curve["cov_recall"].iloc[0] == pytest.approx(serial_result["cov_recall"])
    assert curve["cov_precision"].iloc[0] == pytest.approx(serial_result["cov_precision"])
    with pytest.raises(KeyError, match="21 of 21 structures have no scores in the score cache"):
        sample_fingerprints(params, "perov_5", "never_scored", sample_folder, cached_only=True)


def test_resume_after_a_kill_midway(setup, perov_table, module_tmp, monkeypatch):
    params, refs = setup
    params = scoped(params, module_tmp, frechet_embedding=False, n_wasserstein=15, chunk_size=5)
    structures = [
        record_to_structure(r) for r in perov_table[perov_table["split"] == "train"].head(12).to_dict("records")
    ]
    original = samples_module._score_chunk
    calls = []

    def killed_after_first_chunk(payload):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(payload)

    monkeypatch.setattr(samples_module, "_score_chunk", killed_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        evaluate_samples(structures, "perov_5", "killed", params, references=refs)
    done = samples_module.ScoreCache(module_tmp / "metrics" / "perov_5" / ".cache" / "killed" / "scores").load()
    assert len(done) == 5
    calls.clear()
    monkeypatch.setattr(samples_module, "_score_chunk", original)
    resumed = evaluate_samples(structures, "perov_5", "killed", params, references=refs)
    fresh = evaluate_samples(structures, "perov_5", "fresh", params, references=refs)
    for key in COMPARED:
        assert resumed[key] == pytest.approx(fresh[key]), key


def test_formation_energy_columns_use_the_surrogate_when_present(setup, module_tmp, perov_table, monkeypatch):
    import autoperi.model.surrogate as surrogate
    from autoperi.metrics.distributions import frechet_distance, wasserstein_property

    params, refs = setup
    checkpoint = module_tmp / "models" / "perov_5" / "surrogate.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"stand-in")
    # A stand-in "surrogate" whose prediction is known: minus the volume per atom.
    monkeypatch.setattr(
        surrogate, "predict_formation_energy", lambda structures, path: [-s.volume / len(s) for s in structures]
    )
    samples = [record_to_structure(r) for r in perov_table[perov_table["split"] == "val"].head(6).to_dict("records")]
    try:
        result = evaluate_samples(samples, "perov_5", "surrogate", params, references=refs)
    finally:
        checkpoint.unlink()
    gen = np.array([-s.volume / len(s) for s in samples])
    ref = np.array([-refs.test_structure(k).volume / len(refs.test_structure(k)) for k in range(len(refs.test))])
    assert result["wdist_formation_energy"] == pytest.approx(wasserstein_property(gen, ref))
    lattice = ["a", "b", "c", "alpha", "beta", "gamma", "volume_per_atom"]
    table = pd.read_csv(module_tmp / "metrics" / "perov_5" / "surrogate.csv")
    expected = frechet_distance(
        np.column_stack([gen, table[lattice].to_numpy()]),
        np.column_stack([ref, refs.test[lattice].to_numpy(dtype=float)]),
    )
    assert result["frechet_props"] == pytest.approx(expected)
    assert "surrogate" in result["protocol_details"]["formation_energy"]


def test_stability_step_plumbing_with_a_stand_in_module(setup, perov_table, monkeypatch):
    """The evaluation only coordinates the stability module: the right rows go in, its numbers come out."""
    import types

    import autoperi.metrics.stability_step as step

    params, refs = setup
    calls = {}

    def relax_structures(structures, fmax, max_steps, client=None, cache_dir=None):
        calls["relaxed"] = [s.composition.reduced_formula for s in structures]
        calls["settings"] = (fmax, max_steps)
        n = len(structures)
        return pd.DataFrame({"converged": [True] * (n - 1) + [False], "n_steps": [3] * n,
                             "energy_per_atom": [-1.0] * (n - 1) + [np.nan], "rmsd_angstrom": [0.1] * n,
                             "error": [""] * (n - 1) + ["exploded"],
                             "relaxed_cif": [s.to(fmt="cif") for s in structures[:-1]] + [""]})  # fmt: skip

    def e_above_hull(hull, structures, energies):
        assert hull == "hull"
        return np.arange(len(structures), dtype=float) * 0.05  # 0.0, 0.05, 0.1, ...

    def stability_summary(table, unique, novel, n_submitted):
        calls["summary"] = (table["e_hull"].tolist(), list(unique), list(novel), n_submitted)
        return {"n_relaxed": len(table), "relax_success": 75.0, "rmsd_mean": 0.1, "stable_0_1": 50.0,
                "stable_0_0": 25.0, "sun": 0.0}  # fmt: skip

    fake = types.SimpleNamespace(relax_structures=relax_structures, reference_hull=lambda params, dataset: "hull",
                                 e_above_hull=e_above_hull, stability_summary=stability_summary)  # fmt: skip
    monkeypatch.setattr(step, "stability_module", lambda: (fake, "stand-in"))
    samples = [record_to_structure(r) for r in perov_table[perov_table["split"] == "val"].head(6).to_dict("records")]
    samples.append(Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]]))  # invalid: never relaxed
    result = evaluate_samples(samples, "perov_5", "stab", params, references=refs, stability_n=4)
    assert result["stability"] == {"n_relaxed": 4, "relax_success": 75.0, "rmsd_mean": 0.1, "stable_0_1": 50.0,
                                   "stable_0_0": 25.0, "sun": 0.0}  # fmt: skip
    assert len(calls["relaxed"]) == 4 and "NaCl" not in calls["relaxed"]
    assert calls["settings"] == (params.evaluation.relax_fmax_ev_per_angstrom, params.evaluation.relax_max_steps)
    e_hull, unique, novel, n_submitted = calls["summary"]
    assert e_hull[:3] == [0.0, 0.05, 0.1] and np.isnan(e_hull[3]) and n_submitted == 4
    assert unique == [True] * 4 and novel == [False] * 4  # val crystals are in the novelty reference
    table = pd.read_csv(params.path(params.evaluation.metrics_dir) / "perov_5" / "stab.csv")
    assert table["e_hull"].notna().sum() == 3 and table["rmsd"].notna().sum() == 4


def test_periodic_image_contact_sample_is_invalid_not_refused(setup):
    params, refs = setup
    # 0.02 and 0.98 of 10 Å: 0.4 Å apart only through the periodic boundary.
    contact = Structure(Lattice.cubic(10.0), ["Na", "Cl"], [[0.02, 0.5, 0.5], [0.98, 0.5, 0.5]])
    apart = Structure(Lattice.cubic(10.0), ["Na", "Cl"], [[0.0, 0.5, 0.5], [0.3, 0.5, 0.5]])
    result = evaluate_samples([contact, apart], "perov_5", "contact", params, references=refs)
    assert result["n_refused"] == 0 and result["struct_validity"] == 50.0


def _group_keys(structures):
    return [(s.composition.reduced_formula, matcher_primitive_sites(s)) for s in structures]


@pytest.mark.parametrize("tolerances", ["cdvae", "mattergen"])
def test_fast_matching_equals_brute_force_on_perovskites(perov_table, tolerances):
    rows = perov_table.to_dict("records")
    references = [r for r in rows if r["split"] == "train"]
    ref_structures = [record_to_structure(r) for r in references]
    samples = [record_to_structure(r) for r in rows if r["split"] == "val"][:8] + ref_structures[:6]
    samples += [ref_structures[0].copy(), samples[0].get_primitive_structure()]  # duplicates in other settings
    fast = match_samples(samples, _group_keys(samples), references, _group_keys(ref_structures),
                         tolerances=(tolerances,))[tolerances]  # fmt: skip
    assert fast["labels"] == uniqueness(samples, tolerances)[1]
    assert fast["matched"] == novelty(samples, ref_structures, tolerances)[1]
    assert len(set(fast["labels"])) < len(samples) and max(fast["matched"]) >= 0  # the test has matches to find


def test_fast_matching_equals_brute_force_on_carbon(raw_dir):
    # Every formula is "C": only the primitive-cell-size groups and the pre-reduced fits are different from brute force.
    table = raw_table(raw_dir, "carbon_24", {"test": 10, "train": 40})
    rows = table.to_dict("records")
    references = [r for r in rows if r["split"] == "train"]
    ref_structures = [record_to_structure(r) for r in references]
    samples = [record_to_structure(r) for r in rows if r["split"] == "test"] + ref_structures[:3]
    assert {s.composition.reduced_formula for s in samples} == {"C"}
    fast = match_samples(samples, _group_keys(samples), references, _group_keys(ref_structures))
    for tol in ("cdvae", "mattergen"):
        assert fast[tol]["labels"] == uniqueness(samples, tol)[1], tol
        assert fast[tol]["matched"] == novelty(samples, ref_structures, tol)[1], tol
    assert max(fast["cdvae"]["matched"]) >= 0 and len(set(fast["cdvae"]["labels"])) < len(samples)


def test_reference_embeddings_are_computed_once_and_reloaded(tmp_path, raw_dir):
    """The test-split embedding cache must load again without pickle (string ids stored as fixed-width unicode)."""
    import dataclasses

    from autoperi.config import load_params
    from autoperi.metrics.evaluate import reference_embeddings
    from autoperi.metrics.references import References
    from tests.conftest import REPO

    table = raw_table(raw_dir, "perov_5", {"test": 4})
    refs = References("perov_5", table, np.zeros((4, 61)), np.zeros((4, 132)), table)
    params = load_params(REPO / "params.yaml", "smoke")
    params = dataclasses.replace(params, root=tmp_path)
    calls = []

    def embed(structures):
        calls.append(len(structures))
        return [[float(len(s)), s.volume] for s in structures]

    first = reference_embeddings(refs, params, embed)
    second = reference_embeddings(refs, params, embed)
    assert calls == [4] and first.shape == (4, 2)
    np.testing.assert_array_equal(first, second)
