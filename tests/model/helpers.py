"""Real crystals for the model tests, read from data/raw (never data/processed), and a small untrained model."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from autoperi.config import ModelConfig

REPO = Path(__file__).resolve().parents[2]
RAW = {"perov_5": REPO / "data/raw/perov_5/test.csv", "mp20_bt": REPO / "data/raw/mp_20_biternary/test.csv.gz"}


@cache
def raw_structures(dataset: str, n: int) -> tuple[Structure, ...]:
    """The first n structures of a raw test CSV as standard primitive, Niggli-reduced cells (like data/processed)."""
    frame = pd.read_csv(RAW[dataset], nrows=n)
    out = []
    for cif in frame["cif"]:
        structure = Structure.from_str(cif, fmt="cif")
        primitive = SpacegroupAnalyzer(structure, symprec=0.1).get_primitive_standard_structure()
        out.append(primitive.get_reduced_structure("niggli"))
    return tuple(out)


def frame_of(structures, split: str = "train") -> pd.DataFrame:
    """Rows shaped like data/processed (the columns the model reads)."""
    rows = []
    for i, s in enumerate(structures):
        rows.append({
            "id": f"s{i}", "split": split, "atomic_numbers": [site.specie.Z for site in s],
            "frac_coords": np.asarray(s.frac_coords).ravel().tolist(), "lattice": s.lattice.matrix.ravel().tolist(),
            "spacegroup": SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number(), "n_atoms": len(s),
            "heat_of_formation": float(i % 3) - 1.0,
        })
    return pd.DataFrame(rows)


def small_config(**changes) -> ModelConfig:
    base = dict(hidden_dim=32, latent_dim=8, cond_dim=8, encoder_layers=2, encoder_hidden_dim=32, decoder_layers=2,
                fourier_frequencies=2, flow_layers=2, flow_hidden_dim=32, flow_bins=4, sample_steps=5,
                physics_max_crystals=8)
    base.update(changes)
    return dataclasses.replace(ModelConfig(), **base)


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Non-zero weights everywhere (zero-initialised output layers would make equivariance tests vacuous)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)


def random_rotation(seed: int = 0) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q
