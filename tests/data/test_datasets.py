"""Datasets built from the raw files: published splits, reports of refused rows, perovskite deduplication."""

import json

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from autoperi.data.datasets import RawTableCache, build_dataset
from autoperi.data.merge import group_duplicates
from autoperi.data.preprocess import record_to_structure, structure_record
from autoperi.data.readers import Limits
from autoperi.data.registry import import_folder
from tests.data.test_readers import cif


def test_perov5_keeps_published_splits_and_geometry(raw_dir, params):
    frame, skipped, report = build_dataset("perov_5", raw_dir, params.data)
    assert report["splits"]["original"] == {"test": 60, "train": 60, "val": 60}
    assert report["n_kept"] + sum(report["skipped"].values()) == report["n_raw"]
    assert (frame["n_atoms"] == 5).all() and frame["id"].is_unique
    # the processed geometry is the same crystal as the raw CIF
    raw = pd.read_csv(raw_dir / "perov_5/test.csv", nrows=3, index_col=False)
    first = frame[frame["id"] == f"perov5-{raw['material_id'][0]}"].iloc[0]
    original = Structure.from_str(raw["cif"][0], fmt="cif")
    assert record_to_structure(first).matches(original)


def test_mp20_bt_keeps_only_binaries_and_ternaries(raw_dir, params):
    cache = RawTableCache(raw_dir, params.data)
    bt, _, report = build_dataset("mp20_bt", raw_dir, params.data, cache)
    full, _, _ = build_dataset("mp_20", raw_dir, params.data, cache)
    assert set(bt["n_elements"]) <= {2, 3}
    assert (
        report["excluded"]["not_in_element_count_range"]
        == (full["n_elements"] > 3).sum() + (full["n_elements"] == 1).sum()
    )


def test_user_folder_mixing_good_and_broken_files(tmp_path, params, nacl, perovskite):
    folder = tmp_path / "mine"
    folder.mkdir()
    nacl.to(filename=str(folder / "nacl.cif"))
    perovskite.to(filename=str(folder / "POSCAR"))
    (folder / "empty.cif").write_text("")
    (folder / "dummy.cif").write_text(cif(el="Xx"))
    (folder / "half.cif").write_text(cif(occ="0.5"))
    (folder / "no_z.cif").write_text(cif().replace(" _atom_site_fract_z\n", ""))  # a loop column missing
    close = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.02, 0, 0], [0.94, 0, 0]])
    close.to(filename=str(folder / "close.cif"))
    p = params.__class__(profile="t", root=tmp_path, data=params.data, graphs=params.graphs, tracking=params.tracking)
    report = import_folder(folder, "mine", p)
    assert report["n_kept"] == 2
    assert report["skipped"] == {
        "empty": 1,
        "unknown_element": 1,
        "partial_occupancy": 1,
        "atoms_too_close": 1,
        "malformed": 1,
    }
    skipped = pd.read_csv(tmp_path / "data/imports/mine/skipped/mine.csv")
    assert set(skipped["row_or_file"]) == {"empty.cif", "dummy.cif", "half.cif", "close.cif", "no_z.cif"}
    assert (tmp_path / "data/imports/mine/mine.parquet").exists()
    assert not (tmp_path / params.data.processed_dir).exists()  # the data stage's outputs are untouched


def test_duplicates_found_across_cell_settings(perovskite):
    rng = np.random.default_rng(0)
    records = []
    for k in range(3):
        s = perovskite.copy()
        if k == 1:  # same crystal: a 2x1x1 supercell, slightly strained, shifted origin
            s = s * (2, 1, 1)
            s.apply_strain(0.01)
            s.translate_sites(list(range(len(s))), rng.uniform(0, 1, 3))
        if k == 2:  # same formula, other crystal: Sr and Ti swap sites, so Sr sits in the O octahedron
            s = Structure(
                Lattice.cubic(3.905),
                ["Ti", "Sr", "O", "O", "O"],
                [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            )
        records.append(structure_record(s, Limits(), 0.1))
    frame = pd.DataFrame(records)
    groups = group_duplicates(frame)
    assert sorted(map(sorted, groups)) == [[0, 1], [2]]


def test_summary_and_skip_lists_agree(tmp_path, params, raw_dir):
    from autoperi.data.registry import preprocess_registry

    cfg = params.data.__class__(
        **{**params.data.__dict__, "datasets": ("carbon_24",), "raw_dir": str(raw_dir), "max_rows_per_split": 30}
    )
    p = params.__class__(profile="t", root=tmp_path, data=cfg, graphs=params.graphs, tracking=params.tracking)
    summary = preprocess_registry(p)
    rep = summary["datasets"]["carbon_24"]
    assert json.loads((tmp_path / cfg.reports_dir / "summary.json").read_text())["datasets"]["carbon_24"] == json.loads(
        json.dumps(rep)
    )
    assert rep["splits"]["composition"].startswith("not possible")
    assert rep["n_raw"] == 60 and rep["n_kept"] == 60 - sum(rep["skipped"].values())
    table = pd.read_parquet(tmp_path / cfg.processed_dir / "carbon_24.parquet")
    assert len(table) == rep["n_kept"]
    assert pytest.approx(table["density"].iloc[0], rel=1e-6) == record_to_structure(table.iloc[0]).density
