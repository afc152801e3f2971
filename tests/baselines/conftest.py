"""A small hand-built processed table (the columns the baselines read) from real prototype crystals."""

from __future__ import annotations

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from autoperi.data.preprocess import structure_record
from autoperi.data.readers import Limits


def _prototypes() -> list[Structure]:
    rocksalt = Structure.from_spacegroup(225, Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    perovskite = Structure.from_spacegroup(
        221, Lattice.cubic(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]
    )
    rutile = Structure.from_spacegroup(
        136, Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]]
    )
    wurtzite = Structure.from_spacegroup(
        186, Lattice.hexagonal(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]
    )
    return [rocksalt, perovskite, rutile, wurtzite]


def make_table(splits: dict[str, int]) -> pd.DataFrame:
    """splits: rows per split, cycling through the prototypes (ids '<split>-<i>')."""
    protos = [structure_record(s, Limits(), symprec=0.1) for s in _prototypes()]
    rows = []
    for split, count in splits.items():
        for i in range(count):
            rows.append({"id": f"{split}-{i}", "split": split, **protos[i % len(protos)]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table({"train": 40, "val": 12, "test": 10})


@pytest.fixture(scope="module")
def table_without_val() -> pd.DataFrame:
    return make_table({"train": 30, "test": 10})
