"""comparison_table on hand-written metrics JSONs: ordering, nulls, published rows labelled and kept apart."""

from __future__ import annotations

import json
import math

import pytest

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
    assert "| oracle | 100.00 | 90.00 | — | 50.00 | 0.2500 | — |" in text


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
