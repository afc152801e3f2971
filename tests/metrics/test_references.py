"""Reference data of the evaluation: built from a few real raw rows, cached, capped, resumable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import autoperi.metrics.samples as samples_module
from autoperi.data.preprocess import record_to_structure, structure_record
from autoperi.data.readers import Limits, structure_from_cif_block
from autoperi.metrics.coverage import composition_fingerprint, structure_fingerprint
from autoperi.metrics.references import build_references, coverage_family, magpie_scaler
from autoperi.metrics.samples import ScoreCache, cached_scores, matcher_primitive_sites, structure_key
from autoperi.training.runner import select_splits

RAW_FILES = {
    "perov_5": {"test": "test.csv", "train": "train_reconstructed.csv", "val": "val.csv"},
    "carbon_24": {"test": "test.csv", "train": "val.csv"},  # carbon_24's train split is CDVAE's val file
}
ENERGY = {"perov_5": ("heat_all", "heat_of_formation"), "carbon_24": ("energy_per_atom", "energy_per_atom")}


def raw_table(raw_dir, dataset: str, rows_per_split: dict[str, int]) -> pd.DataFrame:
    """A processed-like table (same columns as data/processed) from the first rows of the raw CSVs."""
    records = []
    raw_column, column = ENERGY[dataset]
    for split, n in rows_per_split.items():
        for row in pd.read_csv(raw_dir / dataset / RAW_FILES[dataset][split], nrows=n).to_dict("records"):
            record = structure_record(structure_from_cif_block(row["cif"]), Limits(), 0.1)
            record.update(id=f"{split}-{row['material_id']}", split=split, **{column: row.get(raw_column, np.nan)})
            records.append(record)
    return pd.DataFrame(records)


def scoped(params, tmp_path, **evaluation):
    """params with the evaluation outputs and the models folder (no surrogate) under tmp_path, plus evaluation
    overrides."""
    train = dataclasses.replace(params.train, models_dir=str(tmp_path / "models"))
    # Pinned here, not taken from the smoke profile (which caps references and turns stability on).
    pinned = dict(max_reference=None, n_samples=10000, n_wasserstein=1000, stability_n=0, frechet_embedding=False)
    cfg = dataclasses.replace(
        params.evaluation,
        references_dir=str(tmp_path / "references"),
        metrics_dir=str(tmp_path / "metrics"),
        **{**pinned, **evaluation},
    )
    return dataclasses.replace(params, evaluation=cfg, train=train)


@pytest.fixture(scope="module")
def perov_table(raw_dir):
    return raw_table(raw_dir, "perov_5", {"test": 12, "train": 16, "val": 8})


@pytest.mark.parametrize(
    ("dataset", "family"),
    [("perov_5", "perovskite"), ("perovskites", "perovskite"), ("carbon_24", "carbon"), ("mp20_bt", "mp20"),
     ("mp_20", "mp20"), ("mpts_52", "mp20")],
)  # fmt: skip
def test_coverage_family(dataset, family):
    assert coverage_family(dataset) == family


def test_references_match_direct_fingerprints_and_are_cached(params, tmp_path, perov_table, monkeypatch):
    params = scoped(params, tmp_path)
    refs = build_references(params, "perov_5", table=perov_table)
    assert refs.test_struct_fps.shape == (12, 61) and refs.test_comp_fps.shape == (12, 132)
    assert len(refs.train) == 24 and set(refs.train["split"]) == {"train", "val"}
    assert refs.cutoffs == (0.2, 4.0)
    # Row 3 of the test split, fingerprinted directly.
    structure = record_to_structure(perov_table[perov_table["split"] == "test"].iloc[3])
    means, stds = magpie_scaler(params)
    assert refs.test_struct_fps[3] == pytest.approx(structure_fingerprint(structure))
    assert refs.test_comp_fps[3] == pytest.approx(composition_fingerprint(structure.composition, means, stds))
    assert refs.test["density"][3] == pytest.approx(structure.density)
    assert refs.train["n_prim_sites"].tolist() == [
        matcher_primitive_sites(record_to_structure(r))
        for r in perov_table[perov_table["split"] != "test"].to_dict("records")
    ]
    assert (tmp_path / "references" / "perov_5" / "fingerprints_meta.json").exists()
    # The novelty index keeps formulas and primitive-cell sizes, no fingerprints (nothing reads them for train rows).
    train_cache = ScoreCache(tmp_path / "references" / "perov_5" / "train_scores").load()
    assert len(train_cache) == 24 and train_cache["comp_fp"].isna().all() and train_cache["struct_fp"].isna().all()

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached reference set was computed again")

    monkeypatch.setattr(samples_module, "score_structures", forbidden)
    again = build_references(params, "perov_5", table=perov_table)
    assert refs.details["n_computed"] == {"test": 12, "train": 24}
    assert again.details["n_computed"] == {"test": 0, "train": 0}
    assert again.details["build_wall_s"] == refs.details["build_wall_s"]  # the timing of the build is kept
    np.testing.assert_array_equal(again.test_struct_fps, refs.test_struct_fps)
    np.testing.assert_array_equal(again.train["n_prim_sites"], refs.train["n_prim_sites"])


def test_val_coverage_reference_is_what_training_held_out_and_cached_apart(params, tmp_path, perov_table):
    params = scoped(params, tmp_path)
    refs = build_references(params, "perov_5", table=perov_table, coverage_split="val")
    val_ids = perov_table.loc[perov_table["split"] == "val", "id"].tolist()
    assert refs.coverage_split == "val" and refs.test["id"].tolist() == val_ids
    assert refs.test_struct_fps.shape == (8, 61) and len(refs.train) == 24  # novelty still vs train + val
    structure = record_to_structure(perov_table[perov_table["split"] == "val"].iloc[2])
    assert refs.test_struct_fps[2] == pytest.approx(structure_fingerprint(structure))
    assert (tmp_path / "references_val" / "perov_5" / "fingerprints_meta.json").exists()
    assert not (tmp_path / "references").exists()  # the `references` stage's output is left alone
    # No val split (carbon_24's case): the seeded hold-out of train that training validates on.
    no_val = perov_table.assign(split=perov_table["split"].replace("val", "train"))
    held = build_references(scoped(params, tmp_path / "b"), "perov_5", table=no_val, coverage_split="val")
    expected = select_splits(no_val, params.train)[1]["id"].tolist()
    assert held.test["id"].tolist() == expected and len(expected) == round(params.train.val_fraction * 24)
    assert not set(expected) & set(perov_table.loc[perov_table["split"] == "test", "id"])
    with pytest.raises(ValueError, match="coverage_split must be one of"):
        build_references(params, "perov_5", table=perov_table, coverage_split="train")


def test_val_build_reads_the_stage_novelty_index_without_touching_it(params, tmp_path, perov_table, monkeypatch):
    params = scoped(params, tmp_path)
    build_references(params, "perov_5", table=perov_table)  # the `references` stage's output
    stage_index = tmp_path / "references" / "perov_5" / "train_scores"
    ScoreCache(stage_index).write(ScoreCache(stage_index).load().head(2))  # a second part: consolidate would merge
    before = {p.name: p.read_bytes() for p in stage_index.iterdir()}
    calls = []
    real = samples_module.score_structures
    monkeypatch.setattr(samples_module, "score_structures", lambda s, *a: calls.append(len(s)) or real(s, *a))
    refs = build_references(params, "perov_5", table=perov_table, coverage_split="val")
    assert refs.details["n_computed"] == {"test": 8, "train": 0} and calls == [8]  # val fingerprints only
    assert {p.name: p.read_bytes() for p in stage_index.iterdir()} == before
    assert not (tmp_path / "references_val" / "perov_5" / "train_scores").exists()
    assert refs.train["n_prim_sites"].tolist() == build_references(params, "perov_5", table=perov_table).train[
        "n_prim_sites"
    ].tolist()


def test_max_reference_caps_both_sides_reproducibly(params, tmp_path, perov_table):
    capped = build_references(scoped(params, tmp_path, max_reference=5), "perov_5", table=perov_table)
    assert len(capped.test) == 5 and len(capped.train) == 5
    assert set(capped.test["id"]) < set(perov_table.loc[perov_table["split"] == "test", "id"])
    again = build_references(scoped(params, tmp_path / "b", max_reference=5), "perov_5", table=perov_table)
    assert capped.test["id"].tolist() == again.test["id"].tolist()


def test_cached_scores_resume_after_an_interruption(params, tmp_path, perov_table):
    structures = [record_to_structure(r) for r in perov_table.to_dict("records")][:12]
    keys = [f"s{i}:{structure_key(s)}" for i, s in enumerate(structures)]
    scaler = magpie_scaler(params)
    cache = ScoreCache(tmp_path / "cache")
    calls = []

    def dies_on_third_chunk(payload):
        calls.append(len(payload[0]))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the run were killed
        return samples_module._score_chunk(payload)

    with pytest.raises(KeyboardInterrupt):
        cached_scores(keys, structures, scaler, cache, chunk_size=4, compute=dies_on_third_chunk)
    assert len(cache.load()) == 8  # the two finished chunks are on disk

    resumed_calls = []

    def counting(payload):
        resumed_calls.append(list(payload[0]))
        return samples_module._score_chunk(payload)

    table = cached_scores(keys, structures, scaler, cache, chunk_size=4, compute=counting)
    assert resumed_calls == [keys[8:]]  # only the unfinished chunk is computed
    assert table["key"].tolist() == keys
    fresh = cached_scores(keys, structures, scaler, ScoreCache(tmp_path / "fresh"), chunk_size=4)
    pd.testing.assert_frame_equal(
        table.drop(columns=["struct_fp", "comp_fp"]), fresh.drop(columns=["struct_fp", "comp_fp"])
    )
    assert [list(x) for x in table["struct_fp"]] == [list(x) for x in fresh["struct_fp"]]


def test_structure_key_sees_content_not_object_identity(perov_table):
    a = record_to_structure(perov_table.iloc[0])
    b = record_to_structure(perov_table.iloc[0])
    assert structure_key(a) == structure_key(b)
    b.translate_sites([0], [0.01, 0, 0])
    assert structure_key(a) != structure_key(b)
