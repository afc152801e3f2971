"""Coverage on hand-built fingerprints, and the real CrystalNN / Magpie fingerprints on small crystals."""

import importlib
import json

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from autoperi.metrics.coverage import (
    COVERAGE_CUTOFFS,
    STRUCTURE_FINGERPRINT_LENGTH,
    composition_fingerprint,
    coverage,
    load_magpie_scaler,
    nearest_to_references,
    structure_fingerprint,
)

# `autoperi.metrics.coverage` as an attribute is the exported function, which shadows the submodule.
coverage_module = importlib.import_module("autoperi.metrics.coverage")
NAN = np.nan


def test_independent_minimum_quirk():
    # R0 is 0.1 from A in structure space and 0.5 from B in composition space. A is 100 away from R0 in composition,
    # B is 5 away in structure: no single generated item covers R0, yet R0 counts as recalled. R1 is far from all.
    gen_struct = np.array([[0.1, 0.0], [5.0, 0.0]])
    gen_comp = np.array([[100.0, 0.0], [0.5, 0.0]])
    ref_struct = np.array([[0.0, 0.0], [10.0, 10.0]])
    ref_comp = np.array([[0.0, 0.0], [10.0, 10.0]])
    result = coverage(gen_struct, gen_comp, ref_struct, ref_comp, struct_cutoff=0.4, comp_cutoff=1.0)
    assert result["cov_recall"] == pytest.approx(50.0)
    # Precision: A fails the composition test, B the structure test.
    assert result["cov_precision"] == pytest.approx(0.0)


def test_cutoffs_are_inclusive():
    gen_struct, gen_comp = np.array([[0.25]]), np.array([[2.0]])
    ref_struct, ref_comp = np.array([[0.0]]), np.array([[0.0]])
    assert coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.25, 2.0) == {
        "cov_recall": 100.0,
        "cov_precision": 100.0,
    }
    assert coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.2499, 2.0)["cov_recall"] == 0.0
    assert coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.25, 1.999)["cov_precision"] == 0.0


def test_failed_generated_fingerprints_count_in_the_precision_denominator_only():
    # A covers R0; B would cover R1 in both spaces but its structure fingerprint failed (NaN), so it is no candidate;
    # C is far from everything. None is a failed row too.
    gen_struct = [np.array([0.1, 0.0]), np.array([NAN, 10.0]), np.array([50.0, 50.0]), None]
    gen_comp = [np.array([0.2]), np.array([10.0]), np.array([50.0]), np.array([0.0])]
    ref_struct = np.array([[0.0, 0.0], [10.0, 10.0]])
    ref_comp = np.array([[0.0], [10.0]])
    result = coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.4, 1.0)
    assert result["cov_recall"] == pytest.approx(50.0)
    assert result["cov_precision"] == pytest.approx(100.0 / 4)  # 1 precise of the 4 rows passed
    # Two more samples whose fingerprints failed before they could be passed in.
    result = coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.4, 1.0, n_generated_total=6)
    assert result["cov_precision"] == pytest.approx(100.0 / 6)
    with pytest.raises(ValueError, match="n_generated_total"):
        coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.4, 1.0, n_generated_total=3)


def test_failed_reference_is_never_covered_and_never_a_candidate():
    gen_struct, gen_comp = np.array([[0.0], [7.0]]), np.array([[0.0], [7.0]])
    ref_struct, ref_comp = np.array([[0.0], [7.0]]), np.array([[0.0], [NAN]])
    result = coverage(gen_struct, gen_comp, ref_struct, ref_comp, 0.1, 0.1)
    assert result == {"cov_recall": 50.0, "cov_precision": 50.0}


def test_nearest_to_references_per_reference_distances():
    # The quirk case above: R0's nearest structure is A (0.1), nearest composition B (0.5); R1 is (10, 10) from A's
    # structure and from B's composition. R2's composition failed: inf on both sides. The NaN row C is no candidate.
    gen_struct = np.array([[0.1, 0.0], [5.0, 0.0], [NAN, 0.0]])
    gen_comp = np.array([[100.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    ref_struct = np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 0.0]])
    ref_comp = np.array([[0.0, 0.0], [10.0, 10.0], [NAN, 0.0]])
    d_struct, d_comp = nearest_to_references(gen_struct, gen_comp, ref_struct, ref_comp)
    np.testing.assert_allclose(d_struct, [0.1, np.hypot(5.0, 10.0), np.inf])
    np.testing.assert_allclose(d_comp, [0.5, np.hypot(9.5, 10.0), np.inf])


def test_all_generated_failed_gives_zero():
    result = coverage([None, None], [None, None], np.zeros((1, 3)), np.zeros((1, 2)), 0.4, 10.0)
    assert result == {"cov_recall": 0.0, "cov_precision": 0.0}


@pytest.fixture(scope="module")
def scaler(tmp_path_factory):
    # Means and stds chosen so standardised values can be undone by hand; one zero std must become 1.
    path = tmp_path_factory.mktemp("scaler") / "scaler.json"
    means, stds = np.arange(132, dtype=float), np.linspace(0.5, 2.0, 132)
    stds[5] = 0.0
    path.write_text(json.dumps({"CompScalerMeans": means.tolist(), "CompScalerStds": stds.tolist()}))
    return load_magpie_scaler(path)


def test_load_magpie_scaler_replaces_zero_std(scaler):
    means, stds = scaler
    assert means.shape == stds.shape == (132,)
    assert stds[5] == 1.0
    assert stds[0] == 0.5


def test_cdvae_scaler_file(raw_dir):
    means, stds = load_magpie_scaler(raw_dir / "cdvae_magpie_scaler.json")
    assert means.shape == stds.shape == (132,)
    assert np.all(stds > 0)


def test_composition_fingerprint_standardises_magpie_statistics(scaler):
    means, stds = scaler
    fp = composition_fingerprint(Composition("NaCl"), means, stds)
    raw = fp * stds + means
    # Magpie "Number" statistics of NaCl (Z = 11, 17; fractions 1/2): min, max, range, mean, mean |dev|, mode.
    assert raw[:6] == pytest.approx([11, 17, 6, 14, 3, 11])
    assert composition_fingerprint("Na4Cl4", means, stds) == pytest.approx(fp, abs=1e-12)
    assert not np.allclose(composition_fingerprint("NaCl2", means, stds), fp)


def test_composition_fingerprint_of_noble_gas_fails_without_imputation(scaler):
    means, stds = scaler
    assert np.isnan(composition_fingerprint("HeO", means, stds)).any()
    assert np.isfinite(composition_fingerprint("HeO", means, stds, impute_nan=True)).all()


@pytest.fixture(scope="module")
def rocksalt_settings():
    conventional = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return conventional, conventional.get_primitive_structure()


def _label_index(label):
    return coverage_module._site_featurizer().feature_labels().index(label)


def test_structure_fingerprint_is_independent_of_cell_setting(rocksalt_settings):
    conventional, primitive = rocksalt_settings
    assert len(conventional) == 8 and len(primitive) == 2
    fp_conv, fp_prim = structure_fingerprint(conventional), structure_fingerprint(primitive)
    assert fp_conv.shape == (STRUCTURE_FINGERPRINT_LENGTH,) == (61,)
    assert fp_conv == pytest.approx(fp_prim, abs=1e-6)
    # Every rock-salt site is octahedral: all coordination weight on CN 6, octahedral order parameter 1.
    assert fp_conv[_label_index("wt CN_6")] == pytest.approx(1.0)
    assert fp_conv[_label_index("octahedral CN_6")] == pytest.approx(1.0, abs=1e-6)
    assert fp_conv[_label_index("wt CN_4")] == pytest.approx(0.0)


def test_structure_fingerprint_of_diamond_is_tetrahedral(silicon):
    fp = structure_fingerprint(silicon)
    assert fp[_label_index("wt CN_4")] == pytest.approx(1.0)
    assert fp[_label_index("tetrahedral CN_4")] == pytest.approx(1.0, abs=1e-3)


def test_structure_fingerprint_failures_give_none(monkeypatch, nacl):
    flat = Structure(Lattice([[4, 0, 0], [0, 4, 0], [4, 4, 1e-9]]), ["Na"], [[0, 0, 0]])
    assert structure_fingerprint(flat) is None  # volume < 0.1 Å^3 is never fingerprinted

    class Broken:
        def featurize(self, structure, index):
            raise RuntimeError("no neighbours")

    monkeypatch.setattr(coverage_module, "_site_featurizer", lambda: Broken())
    assert structure_fingerprint(nacl) is None


def test_coverage_on_real_fingerprints(rocksalt_settings, silicon, raw_dir):
    conventional, primitive = rocksalt_settings
    means, stds = load_magpie_scaler(raw_dir / "cdvae_magpie_scaler.json")
    generated, reference = [conventional, silicon], [primitive]

    def fps(structures):
        return [structure_fingerprint(s) for s in structures], [
            composition_fingerprint(s.composition, means, stds) for s in structures
        ]

    struct_cutoff, comp_cutoff = COVERAGE_CUTOFFS["mp20"]
    result = coverage(*fps(generated), *fps(reference), struct_cutoff, comp_cutoff)
    # Rock salt is recalled by its other cell setting; silicon is far from NaCl in both spaces.
    assert result == {"cov_recall": 100.0, "cov_precision": 50.0}
