"""Small real modules and real Perov-5 graphs for the training tests (no mocks: they learn formation heats).

`perov_graphs(n)`: the first n rows of data/raw/perov_5/test.csv parsed from their CIFs into PyG graphs with
y = heat of formation (eV/atom). `TinyRegressor`: one message-passing layer and a readout with the
`loss(batch) -> (total, terms)` protocol that `autoperi.training.fit` trains.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from autoperi.config import GraphConfig
from autoperi.data.readers import structure_from_cif_block
from autoperi.graphs.crystal_graph import build_graph

REPO = Path(__file__).resolve().parents[2]
RAW_PEROV_TEST = REPO / "data" / "raw" / "perov_5" / "test.csv"
GRAPHS = GraphConfig(cutoff_angstrom=4.0, rbf_count=8, rbf_sigma_angstrom=0.5, max_atomic_number=100)


@functools.lru_cache(maxsize=4)
def _graphs(n: int):
    rows = pd.read_csv(RAW_PEROV_TEST, nrows=n, index_col=False)
    graphs = []
    for row in rows.itertuples():
        structure = structure_from_cif_block(row.cif)
        graphs.append(
            build_graph(
                structure.atomic_numbers,
                structure.frac_coords,
                structure.lattice.matrix,
                GRAPHS,
                y=torch.tensor([float(row.heat_all)], dtype=torch.float64),
                id=f"perov5-{row.material_id}",
            )
        )
    return graphs


def perov_graphs(n: int = 32) -> list:
    """The first `n` Perov-5 test crystals as graphs (copies, so tests may change them)."""
    return [g.clone() for g in _graphs(n)]


class TinyRegressor(nn.Module):
    """Predict the heat of formation per crystal; terms: mse and a small weight penalty (l2).

    `dropout` > 0 makes the loss consume torch's RNG, so resume tests also check that RNG state is restored.
    """

    def __init__(self, hidden: int = 16, rbf_count: int = GRAPHS.rbf_count, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(GRAPHS.max_atomic_number + 1, hidden)
        self.edge = nn.Linear(rbf_count, hidden)
        self.update = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, 1)
        self.stats = {"y_mean": np.array([0.5]), "note": "tiny"}  # numpy on purpose: checkpoints must convert it

    def predict(self, batch) -> torch.Tensor:
        h = self.embed(batch.atomic_numbers)
        src, dst = batch.edge_index
        messages = h[src] * self.edge(batch.edge_attr.float())
        h = h + self.update(torch.zeros_like(h).index_add_(0, dst, messages) / 32)
        per_atom = self.head(h).squeeze(-1)
        n_graphs = int(batch.batch.max()) + 1
        totals = torch.zeros(n_graphs, dtype=per_atom.dtype).index_add_(0, batch.batch, per_atom)
        counts = torch.bincount(batch.batch, minlength=n_graphs).to(per_atom.dtype)
        return totals / counts + float(self.stats["y_mean"][0])

    def loss(self, batch):
        mse = ((self.predict(batch) - batch.y.float()) ** 2).mean()
        l2 = 1e-4 * sum(p.pow(2).sum() for p in self.parameters())
        return mse + l2, {"mse": mse, "l2": l2}


def build_tiny(meta: dict) -> TinyRegressor:
    """`load_checkpoint(path, build_model=build_tiny)`."""
    return TinyRegressor(**(meta["config"].get("model") or {}))


def perov_frame(n: int = 32, n_val: int = 8) -> pd.DataFrame:
    """Rows of the raw Perov-5 test CSV as a processed-style table (the data stage's own record function): the
    first `n - n_val` rows are train, then the next `n_val` rows whose elements all occur in train are val (the
    model's species vocabulary is the train split's) — for tests that must not depend on data/processed."""
    from autoperi.config import DataConfig
    from autoperi.data.datasets import limits_from
    from autoperi.data.preprocess import structure_record

    cfg = DataConfig()
    raw = pd.read_csv(RAW_PEROV_TEST, nrows=20 * n, index_col=False)
    records, vocabulary, n_train = [], set(), n - n_val
    for row in raw.itertuples():
        record = structure_record(structure_from_cif_block(row.cif), limits_from(cfg), cfg.symprec)
        is_train = len(records) < n_train
        if not is_train and not set(record["atomic_numbers"]) <= vocabulary:
            continue
        vocabulary |= set(record["atomic_numbers"]) if is_train else set()
        record.update(
            id=f"perov5-{row.material_id}",
            split="train" if is_train else "val",
            heat_of_formation=float(row.heat_all),
            band_gap=float(row.ind_gap),
        )
        records.append(record)
        if len(records) == n:
            return pd.DataFrame.from_records(records)
    raise ValueError(f"fewer than {n_val} val rows with train elements in {RAW_PEROV_TEST}")
