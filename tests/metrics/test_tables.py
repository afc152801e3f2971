"""comparison_table on hand-written metrics JSONs: ordering, nulls, published rows labelled and kept apart."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from autoperi.metrics.coverage import coverage
from autoperi.metrics.figures import (
    coverage_curves,
    coverage_figure,
    distribution_figure,
    ehull_figure,
    precision_curve,
)
from autoperi.metrics.published import PUBLISHED_COLUMNS, published_table
from autoperi.metrics.tables import comparison_table, format_table, not_comparable_published


def _write(folder, model, dataset="perov_5", **values):
    record = {
        "dataset": dataset, "model": model, "protocol": "cdvae", "n_samples": 100,
        "struct_validity": 100.0, "comp_validity": 90.0, "cov_recall": None, "cov_precision": 50.0,
        "wdist_density": 0.25, "wdist_num_elems": None, "wdist_formation_energy": None, "uniqueness": 66.0,
        "novelty": 0.0, "composition_coverage": 10.0, "frechet_props": None, "frechet_embedding": None,
        "stability": {"n_relaxed": 0, "relax_success": None, "rmsd_mean": None, "stable_0_1": None,
                      "stable_0_0": None, "sun": None},
    }  # fmt: skip
    record.update(values)
    path = folder / dataset / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.fixture
def metrics_dir(tmp_path):
    for model in ("zeta_model", "random", "autoperi", "oracle", "memorization"):
        _write(tmp_path, model, novelty=12.5 if model == "autoperi" else 0.0)
    _write(tmp_path, "oracle", dataset="mp20_bt", cov_recall=99.0)
    return tmp_path


def test_rows_are_ordered_references_then_models_then_published(metrics_dir):
    table = comparison_table(metrics_dir, "perov_5")
    labels = list(table.index)
    assert labels[:5] == ["oracle", "memorization", "random", "autoperi", "zeta_model"]
    assert labels[5:] == ["CDVAE (published)", "DiffCSP (published)"]
    assert list(table["kind"]) == ["reference"] * 3 + ["model"] * 2 + ["published"] * 2
    assert (table.loc[labels[:5], "source"] == "measured here").all()
    assert table.loc["CDVAE (published)", "source"].startswith("Xie et al.")


def test_values_and_nulls(metrics_dir):
    table = comparison_table(metrics_dir, "perov_5")
    assert table.loc["autoperi", "novelty"] == 12.5
    assert table.loc["oracle", "wdist_density"] == 0.25
    assert math.isnan(table.loc["oracle", "cov_recall"]) and math.isnan(table.loc["oracle", "sun"])
    assert table.loc["oracle", "n_relaxed"] == 0
    # Published rows report no seed metrics: NaN, not 0.
    assert math.isnan(table.loc["CDVAE (published)", "novelty"])
    cdvae = table.loc["CDVAE (published)", list(PUBLISHED_COLUMNS)].tolist()
    assert cdvae == [100.0, 98.59, 99.45, 98.46, 0.1258, 0.0628]
    text = format_table(table)
    assert "| oracle | 100.00 | 90.00 | — | 50.00 | 0.25 | — |" in text
    assert "| CDVAE (published) | 100.00 | 98.59 | 99.45 | 98.46 | 0.1258 | 0.0628 |" in text


def test_mp20_bt_gets_no_published_rows_but_a_separate_labelled_table(metrics_dir):
    table = comparison_table(metrics_dir, "mp20_bt")
    assert list(table.index) == ["oracle"] and table.loc["oracle", "cov_recall"] == 99.0
    published, caption = not_comparable_published("mp20_bt")
    assert "not comparable" in caption and len(published) >= 1
    assert list(published.index) == list(published_table("mp_20").index)
    assert not_comparable_published("perov_5") is None


def test_carbon_has_no_composition_columns_published(tmp_path):
    table = comparison_table(tmp_path, "carbon_24")  # no measured rows yet: published rows only
    assert list(table["kind"].unique()) == ["published"]
    assert math.isnan(table.loc["CDVAE (published)", "comp_validity"])


def test_bad_json_names_the_file(tmp_path):
    (tmp_path / "perov_5").mkdir()
    (tmp_path / "perov_5" / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        comparison_table(tmp_path, "perov_5")


# --- figures: coverage curves agree with the coverage metric at every cutoff --------------------------------------


def _fingerprints(rng, n, d, failed):
    x = rng.normal(size=(n, d))
    x[failed] = np.nan
    return x


def test_coverage_curves_match_the_coverage_metric_at_every_cutoff():
    rng = np.random.default_rng(0)
    gen_s, gen_c = _fingerprints(rng, 40, 5, [3, 7]), _fingerprints(rng, 40, 4, [11])
    ref_s, ref_c = _fingerprints(rng, 30, 5, [0]), _fingerprints(rng, 30, 4, [])
    cutoffs = [0.5, 1.0, 1.5, 2.0, 3.0]
    curves = coverage_curves(gen_s, gen_c, ref_s, ref_c, cutoffs, comp_cutoff=2.0, n_generated_total=45)
    for cutoff, recall, precision in curves.itertuples(index=False):
        expected = coverage(gen_s, gen_c, ref_s, ref_c, cutoff, 2.0, n_generated_total=45)
        assert recall == pytest.approx(expected["cov_recall"])
        assert precision == pytest.approx(expected["cov_precision"])
    assert curves["cov_recall"].is_monotonic_increasing and curves["cov_precision"].is_monotonic_increasing


def test_precision_curve_from_per_structure_distances():
    rng = np.random.default_rng(1)
    gen_s, gen_c = _fingerprints(rng, 25, 3, [2]), _fingerprints(rng, 25, 3, [])
    ref_s, ref_c = _fingerprints(rng, 20, 3, []), _fingerprints(rng, 20, 3, [])
    # The per-structure table as evaluate_samples writes it: nearest test distance, NaN where the fingerprint failed.
    table = pd.DataFrame(
        {
            "nn_struct_dist": [np.nan if np.isnan(g).any() else cdist(g[None], ref_s).min() for g in gen_s],
            "nn_comp_dist": cdist(gen_c, ref_c).min(axis=1),
        }
    )
    cutoffs = [0.3, 0.8, 1.5]
    from_table = precision_curve(table, cutoffs, comp_cutoff=1.0)
    full = coverage_curves(gen_s, gen_c, ref_s, ref_c, cutoffs, comp_cutoff=1.0)
    assert np.allclose(from_table["cov_precision"], full["cov_precision"])
    assert from_table["cov_recall"].isna().all()


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(2)
    columns = ["density", "n_elements", "a", "b", "c", "alpha", "beta", "gamma"]
    test = pd.DataFrame(rng.uniform(1, 10, size=(50, 8)), columns=columns).assign(n_elements=3)
    model = pd.DataFrame(rng.uniform(1, 10, size=(30, 8)), columns=columns).assign(n_elements=2, e_hull=np.nan)
    assert distribution_figure({"m": model}, test, tmp_path / "d.png").stat().st_size > 0
    assert ehull_figure({"m": model}, tmp_path / "e.png") is None  # no E_hull values: no figure
    model["e_hull"] = rng.uniform(0, 0.5, size=30)
    assert ehull_figure({"m": model}, tmp_path / "e.png").stat().st_size > 0
    # coverage: two panels (11 in wide) when a model has recall, only the COV-P one (6 in) when none has
    from matplotlib.image import imread

    full = pd.DataFrame({"struct_cutoff": [0.0, 0.2], "cov_recall": [10.0, 80.0], "cov_precision": [5.0, 70.0]})
    precision_only = full.assign(cov_recall=np.nan)
    for curves, inches in (({"a": full, "b": precision_only}, 11), ({"b": precision_only}, 6)):
        width = imread(coverage_figure(curves, 0.2, tmp_path / "c.png")).shape[1]
        assert width == 120 * inches  # dpi 120


def test_csp_reports_beside_the_metrics_are_not_rows(tmp_path):
    import json

    from autoperi.metrics.tables import measured_table

    folder = tmp_path / "perov_5"
    folder.mkdir()
    (folder / "oracle.json").write_text(json.dumps({"dataset": "perov_5", "model": "oracle", "struct_validity": 100.0}))
    (folder / "autoperi_csp.json").write_text(json.dumps({"match_rate_1": 55.0}))
    table = measured_table(tmp_path, "perov_5")
    assert list(table.index) == ["oracle"] and table.loc["oracle", "struct_validity"] == 100.0
