"""Random crystals: requested composition, atom count and (at least) the requested symmetry; valid; seeded."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pymatgen.core import Element
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.symmetry.groups import SpaceGroup

from autoperi.baselines.random_crystals import (
    RandomSettings,
    chunk_tasks,
    compatible,
    pyxtal_crystal,
    random_chunk,
    summarize,
    training_pool,
)
from autoperi.metrics import structure_validity


def _point_group_order(number: int) -> int:
    return len(SpaceGroup.from_int_number(number).symmetry_ops) // _centring(number)


def _centring(number: int) -> int:
    symbol = SpaceGroup.from_int_number(number).full_symbol[0]
    return {"P": 1, "I": 2, "C": 2, "A": 2, "B": 2, "R": 3, "F": 4}[symbol]


@pytest.mark.parametrize(
    ("group", "counts", "expected"),
    [
        (221, [1, 1, 3], True),  # cubic perovskite: 1a + 1b + 3c
        (225, [1, 1], True),  # rock salt: 4a + 4b in the F-centred cell
        (225, [1, 1, 3], False),  # 4a, 4b, then 12 atoms: no F m-3m orbit combination holds 12 with 4a, 4b taken
        (1, [3, 7], True),  # P1 holds anything
        (229, [1], True),  # I m-3m: 1 atom per primitive cell = 2 per conventional cell = the 2a orbit
        (221, [2], True),  # P m-3m: one species may fill 1a and 1b
        (227, [1], False),  # F d-3m: 1 per primitive cell = 4 per conventional cell; its smallest orbit is 8a
        (221, [1, 1], True),  # CsCl: 1a + 1b
    ],
)
def test_compatibility_against_wyckoff_tables(group, counts, expected):
    assert compatible(group, counts) is expected


def test_pyxtal_crystal_has_the_requested_composition_and_group():
    rng = np.random.default_rng(0)
    for group, species, counts in [
        (221, ["Sr", "Ti", "O"], [1, 1, 3]),
        (225, ["Na", "Cl"], [1, 1]),
        (186, ["Zn", "O"], [2, 2]),
    ]:
        s = pyxtal_crystal(species, counts, group, rng, RandomSettings())
        assert Counter(site.specie.symbol for site in s) == dict(zip(species, counts, strict=True))
        assert SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number() >= 1
        # random positions can add symmetry, never remove it: the group found has at least the requested order
        found = SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_number()
        assert _point_group_order(found) >= _point_group_order(group)


def test_random_rows_match_training_compositions_and_groups(table):
    settings = RandomSettings(seed=7)
    pool = training_pool(table)
    tasks = chunk_tasks(pool, 16, settings)
    results = [item for task in tasks for item in random_chunk(task)]
    assert len(results) == 16
    compositions = {row_id: comp for row_id, comp in zip(pool["ids"], pool["compositions"], strict=True)}
    exact = valid = 0
    for structure, record in results:
        assert structure is not None, record
        species, counts = compositions[record["source_id"]]
        assert len(structure) == sum(counts) == record["n_atoms"]
        assert Counter(Element.from_Z(site.specie.Z).symbol for site in structure) == dict(
            zip(species, counts, strict=True)
        )
        assert record["spacegroup"] in set(table.loc[table.split == "train", "spacegroup"]) | {1}
        found = SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_number()
        # at least the requested symmetry (random positions can add some, never remove it)
        assert _point_group_order(found) >= _point_group_order(record["spacegroup"])
        exact += found == record["spacegroup"]
        valid += structure_validity(structure, 0.5)
    # pyxtal keeps atoms apart by covalent-radius tolerances, far above 0.5 Å: every crystal is valid.
    assert valid == 16
    # With these prototypes most draws land on orbits without free parameters; the group is usually exact.
    assert exact >= 12, exact
    summary = summarize([r for _, r in results], wall_s=1.0)
    assert summary["n_written"] == 16 and summary["n_failed_rows"] == 0


def test_random_rows_are_seeded(table):
    pool = training_pool(table)

    def run(seed):
        out = [item for task in chunk_tasks(pool, 6, RandomSettings(seed=seed)) for item in random_chunk(task)]
        return [(r["source_id"], r["spacegroup"], s.lattice.abc) for s, r in out]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_a_row_that_cannot_be_built_is_counted_not_dropped():
    # 'Xx' is no element: pyxtal fails for every group, P1 included -> a failed row in the summary.
    from autoperi.baselines.random_crystals import random_crystal

    groups = (np.array([1]), np.array([1.0]))
    structure, record = random_crystal(["Xx"], [2], groups, np.random.default_rng(0), RandomSettings(max_group_draws=2))
    assert structure is None and record["spacegroup"] is None and record["failed"] >= 1
    summary = summarize([{**record, "index": 0, "source_id": "bad", "formula": "Xx2"}], wall_s=1.0)
    assert summary["n_failed_rows"] == 1 and summary["failed_rows"][0]["source_id"] == "bad"


def test_a_killed_random_build_resumes_with_the_same_crystals(table, params, tmp_path, monkeypatch):
    import dataclasses

    from ase.io import read

    import autoperi.baselines.build as build

    local = dataclasses.replace(params, root=tmp_path)
    clean = build.build_baseline(local, "toy", "random", n=26, seed=5, table=table)
    expected = [(f.info["source_id"], f.get_positions().round(6).tolist()) for f in read(clean["samples_path"], ":")]

    real_chunk = build.random_chunk

    def dies_on_second_chunk(task):
        if task[0] == 1:
            raise KeyboardInterrupt("killed")
        return real_chunk(task)

    monkeypatch.setattr(build, "random_chunk", dies_on_second_chunk)
    local2 = dataclasses.replace(params, root=tmp_path / "second")
    with pytest.raises(KeyboardInterrupt):
        build.build_baseline(local2, "toy", "random", n=26, seed=5, table=table)
    monkeypatch.setattr(build, "random_chunk", real_chunk)
    resumed = build.build_baseline(local2, "toy", "random", n=26, seed=5, table=table)
    assert resumed["n_resumed_chunks"] == 1 and resumed["n_built_now"] == 26 - 25
    got = [(f.info["source_id"], f.get_positions().round(6).tolist()) for f in read(resumed["samples_path"], ":")]
    assert got == expected
    assert not list((tmp_path / "second").rglob("*.pkl"))  # parts are removed once the samples file is written
