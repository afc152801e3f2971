"""Oracle and memorization draw from the right splits, reproducibly, and say when they run short."""

from __future__ import annotations

import json

import numpy as np
from ase.io import read

from autoperi.baselines import build_baseline, memorization_draw, novelty_exclusions, oracle_draw, without_novelty_ids


def _ids(draw) -> list[str]:
    return draw.rows["id"].tolist()


def test_oracle_takes_val_rows_seeded(table):
    val_ids = set(table.loc[table.split == "val", "id"])
    a, b, c = oracle_draw(table, 5, seed=0), oracle_draw(table, 5, seed=0), oracle_draw(table, 5, seed=1)
    assert set(_ids(a)) <= val_ids and len(set(_ids(a))) == 5
    assert _ids(a) == _ids(b)
    assert _ids(a) != _ids(c)
    assert a.source_split == "val" and not a.notes


def test_oracle_takes_all_of_a_short_val_split_and_says_so(table):
    draw = oracle_draw(table, 100, seed=0)
    assert sorted(_ids(draw)) == sorted(table.loc[table.split == "val", "id"])
    assert any("fewer than the 100 requested" in note for note in draw.notes)


def test_memorization_takes_train_rows_seeded(table):
    train_ids = set(table.loc[table.split == "train", "id"])
    a, b, c = (
        memorization_draw(table, 10, seed=0),
        memorization_draw(table, 10, seed=0),
        memorization_draw(table, 10, seed=3),
    )
    assert set(_ids(a)) <= train_ids and len(set(_ids(a))) == 10 and not a.replacement
    assert _ids(a) == _ids(b) and _ids(a) != _ids(c)


def test_memorization_replaces_only_when_train_is_short(table):
    draw = memorization_draw(table, 100, seed=0)
    assert draw.replacement and len(draw.rows) == 100
    assert set(_ids(draw)) <= set(table.loc[table.split == "train", "id"])
    assert any("with replacement" in note for note in draw.notes)


def test_without_val_the_oracle_is_a_disjoint_train_holdout(table_without_val):
    t = table_without_val
    oracle = oracle_draw(t, 8, seed=0)
    memo = memorization_draw(t, 8, seed=0)
    train_ids = set(t.loc[t.split == "train", "id"])
    assert oracle.source_split == "train-holdout"
    assert set(_ids(oracle)) <= train_ids and len(_ids(oracle)) == 8
    assert not set(_ids(oracle)) & set(_ids(memo))
    assert novelty_exclusions(t, 8, seed=0) == set(_ids(oracle))
    # At most half of train is held out, however many samples are asked for.
    assert len(oracle_draw(t, 1000, seed=0).rows) == 15
    # Datasets with a val split exclude nothing from the novelty reference.


def test_no_exclusions_where_val_exists(table):
    assert novelty_exclusions(table, 5, seed=0) == set()


def test_build_writes_extxyz_with_source_ids(table, params, tmp_path, monkeypatch):
    import dataclasses

    local = dataclasses.replace(params, root=tmp_path)
    report = build_baseline(local, "toy", "oracle", n=4, seed=0, table=table)
    frames = read(report["samples_path"], index=":")
    assert len(frames) == 4 == report["n_written"]
    ids = [f.info["source_id"] for f in frames]
    assert ids == report["source_ids"] and set(ids) <= set(table.loc[table.split == "val", "id"])
    by_id = table.set_index("id")
    for frame in frames:
        row = by_id.loc[frame.info["source_id"]]
        assert frame.info["spacegroup"] == row["spacegroup"]
        assert np.allclose(np.asarray(frame.cell).ravel(), row["lattice"])
    saved = json.loads((tmp_path / "reports/samples/toy/oracle.report.json").read_text())
    assert saved["n_written"] == 4 and saved["source_split"] == "val"


def test_without_novelty_ids_drops_only_those_rows(table_without_val):
    from autoperi.metrics.references import References

    train = table_without_val[table_without_val.split == "train"].reset_index(drop=True)
    refs = References("carbon_24", test=train.iloc[:0], test_struct_fps=np.zeros((0, 2)),
                      test_comp_fps=np.zeros((0, 2)), train=train)  # fmt: skip
    held = novelty_exclusions(table_without_val, 8, seed=0)
    reduced = without_novelty_ids(refs, held)
    assert len(reduced.train) == len(train) - 8 and not set(reduced.train["id"]) & held
    assert reduced.details["novelty_reference_excluded_ids"] == 8
    assert len(refs.train) == len(train)  # the original is untouched


def test_oracle_holdout_ids_come_from_the_build_report(table, table_without_val, params, tmp_path):
    import dataclasses

    from autoperi.baselines import oracle_holdout_ids

    local = dataclasses.replace(params, root=tmp_path)
    build_baseline(local, "no_val", "oracle", n=6, seed=2, table=table_without_val)
    assert oracle_holdout_ids(local, "no_val") == novelty_exclusions(table_without_val, 6, seed=2)
    report = build_baseline(local, "with_val", "oracle", n=6, seed=2, table=table)
    ids = oracle_holdout_ids(local, "with_val")  # the val crystals it submitted, left out of its novelty reference
    assert len(ids) == 6 and ids <= set(table.loc[table["split"] == "val", "id"].astype(str))
    assert ids == set(map(str, report["source_ids"]))
