"""Formation-energy surrogate: a small invariant periodic GNN (SchNet-style continuous filters) on crystal graphs.

It is the seed's "pre-trained surrogate network" for the physics loss: trained once per dataset
(`autoperi.training.surrogate`), frozen, and differentiated through by the generative model, so its output must be
a smooth function of fractional coordinates and lattice. Hence:
- edge lengths are recomputed in torch from the integer image shifts (`autoperi.graphs.edge_vectors`);
- each message is multiplied by a cosine envelope that vanishes at the cutoff, so a neighbour entering or leaving
  the cutoff sphere changes nothing discontinuously, and messages are summed with a fixed normalisation (a mean
  over neighbours would jump when the neighbour count changes);
- atoms are embedded by species only (no fractional-coordinate features), so the output is invariant to rotation,
  translation, site permutation and lattice-vector shifts of atoms; per-atom outputs are mean-pooled (intensive).

Input: a PyG Batch as built by `autoperi.graphs.build_graphs` (atomic_numbers, frac_coords, lattice [B,3,3],
edge_index, edge_shift, batch) with a cutoff ≥ the surrogate's; or geometry tensors via `predict_from_geometry`.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from autoperi.config import GraphConfig
from autoperi.graphs.crystal_graph import build_graphs, edge_vectors

DEFAULT_CONFIG = {
    "hidden_dim": 48,
    "interactions": 3,
    "cutoff_angstrom": 4.0,  # small on purpose: per-edge work dominates, and 3 blocks see 12 Å
    "rbf_count": 16,
    "max_atomic_number": 100,
    "neighbor_norm": 30.0,  # messages are summed and divided by this (≈ the mean neighbour count in the data)
    "target_mean": 0.0,  # output = network · target_std + target_mean, in the target's unit
    "target_std": 1.0,
    "target": "",  # column of the processed table the surrogate predicts
    "target_unit": "",
    "target_reference": 0.0,  # subtracted from the column before training (carbon_24: lowest train energy)
}


class RadialBasis(nn.Module):
    """Gaussians on [0, cutoff] times a cosine envelope that goes smoothly to 0 at the cutoff: [E] → [E, count]."""

    def __init__(self, cutoff_angstrom: float, count: int):
        super().__init__()
        self.cutoff = float(cutoff_angstrom)
        self.register_buffer("centres", torch.linspace(0.0, self.cutoff, count))
        self.width = self.cutoff / count

    def envelope(self, distance: torch.Tensor) -> torch.Tensor:
        inside = distance < self.cutoff
        return torch.where(inside, 0.5 * (torch.cos(math.pi * distance / self.cutoff) + 1.0), 0.0)

    def forward(self, distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rbf [E, count], envelope [E])."""
        envelope = self.envelope(distance)
        gauss = torch.exp(-(((distance.unsqueeze(-1) - self.centres) / self.width) ** 2))
        return gauss * envelope.unsqueeze(-1), envelope


class InteractionBlock(nn.Module):
    """Residual continuous-filter convolution: h_i += MLP(Σ_j W(rbf(d_ij)) ⊙ A h_j / neighbor_norm)."""

    def __init__(self, hidden_dim: int, rbf_count: int):
        super().__init__()
        self.filter = nn.Linear(rbf_count, hidden_dim)  # one layer: the Gaussian basis is already nonlinear in d
        self.neighbor = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.update = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, h, edge_index, rbf, envelope, neighbor_norm: float):
        centre, neighbour = edge_index
        weight = self.filter(rbf) * envelope.unsqueeze(-1)  # filter(0) ≠ 0: the envelope makes W → 0 at the cutoff
        message = self.neighbor(h)[neighbour] * weight
        aggregated = torch.zeros_like(h).index_add(0, centre, message) / neighbor_norm
        return h + self.update(aggregated)


class FormationEnergySurrogate(nn.Module):
    """Invariant periodic GNN predicting one energy per crystal, [B], in `config['target_unit']`."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        unknown = sorted(set(self.config) - set(DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"FormationEnergySurrogate: unknown config key(s) {unknown}")
        c = self.config
        self.embedding = nn.Embedding(c["max_atomic_number"] + 1, c["hidden_dim"])
        self.radial = RadialBasis(c["cutoff_angstrom"], c["rbf_count"])
        self.interactions = nn.ModuleList(
            InteractionBlock(c["hidden_dim"], c["rbf_count"]) for _ in range(c["interactions"])
        )
        self.readout = nn.Sequential(nn.Linear(c["hidden_dim"], c["hidden_dim"]), nn.SiLU(),
                                     nn.Linear(c["hidden_dim"], 1))

    def graph_config(self) -> GraphConfig:
        """GraphConfig whose cutoff matches this surrogate, for `autoperi.graphs.build_graphs`."""
        return GraphConfig(cutoff_angstrom=self.config["cutoff_angstrom"])

    def embed_species(self, atomic_numbers: torch.Tensor | None, species_weights: torch.Tensor | None):
        """Hard species (atomic_numbers [N]) or soft ones (species_weights [N, max_Z], column z-1 = element Z)."""
        if species_weights is not None:
            return species_weights.to(self.embedding.weight.dtype) @ self.embedding.weight[1:]
        return self.embedding(atomic_numbers.long())

    def forward(self, batch, species_weights: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.embedding.weight.dtype
        graph_index = getattr(batch, "batch", None)
        if graph_index is None:
            graph_index = torch.zeros(batch.frac_coords.shape[0], dtype=torch.long, device=batch.frac_coords.device)
        n_graphs = batch.lattice.shape[0]

        geometry = SimpleNamespace(  # what edge_vectors reads, cast to the model's dtype
            frac_coords=batch.frac_coords.to(dtype), lattice=batch.lattice.to(dtype), batch=graph_index,
            edge_index=batch.edge_index, edge_shift=batch.edge_shift,
        )
        rbf, envelope = self.radial(edge_vectors(geometry).norm(dim=-1))
        h = self.embed_species(getattr(batch, "atomic_numbers", None), species_weights)
        for block in self.interactions:
            h = block(h, batch.edge_index, rbf, envelope, self.config["neighbor_norm"])
        per_atom = self.readout(h).squeeze(-1)
        total = torch.zeros(n_graphs, dtype=dtype, device=per_atom.device).index_add(0, graph_index, per_atom)
        count = torch.bincount(graph_index, minlength=n_graphs).to(dtype)
        return (total / count) * self.config["target_std"] + self.config["target_mean"]

    def predict_from_geometry(
        self, frac_coords: torch.Tensor, lattice: torch.Tensor, batch: torch.Tensor,
        atomic_numbers: torch.Tensor | None = None, species_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B] energies for decoded crystals given as tensors (differentiable in frac_coords [N,3], lattice [B,3,3]).

        The edge set comes from the project's neighbour list (no gradient); lengths are recomputed in torch.
        """
        from autoperi.losses.physics import periodic_pairs

        edge_index, edge_shift = periodic_pairs(frac_coords, lattice, batch, self.config["cutoff_angstrom"])

        graph = SimpleNamespace(frac_coords=frac_coords, lattice=lattice, batch=batch, edge_index=edge_index,
                                edge_shift=edge_shift, atomic_numbers=atomic_numbers)
        return self.forward(graph, species_weights)


def save_surrogate(model: FormationEnergySurrogate, path: str | Path, meta: dict | None = None) -> Path:
    """Write `path` (.pt: state_dict + plain-dict config + meta, loadable with weights_only=True) and a .json beside
    it with config and meta (metrics, data hash, ...). `meta` must hold only JSON-compatible values."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads(json.dumps(meta or {}))  # refuse non-plain values now, not at load time
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"state_dict": state, "config": dict(model.config), "meta": meta}, tmp)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps({"config": model.config, **meta}, indent=2) + "\n")
    return path


def load_surrogate(path: str | Path, map_location: str = "cpu") -> FormationEnergySurrogate:
    """Rebuild a surrogate from `save_surrogate`'s checkpoint (torch.load with weights_only=True), in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no surrogate checkpoint (train it with autoperi.training.surrogate)")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model = FormationEnergySurrogate(checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


@functools.lru_cache(maxsize=4)
def _cached_surrogate(path: str, mtime_ns: int) -> FormationEnergySurrogate:
    return load_surrogate(path)


def structure_triples(structures) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """pymatgen Structures (or (atomic_numbers, frac_coords, lattice) triples) → triples; refuses disordered sites."""
    triples = []
    for k, s in enumerate(structures):
        if hasattr(s, "lattice"):
            if not s.is_ordered:
                raise ValueError(f"structure {k} ({s.composition.reduced_formula}): disordered sites are not supported")
            triples.append(([site.specie.Z for site in s], s.frac_coords, s.lattice.matrix))
        else:
            triples.append(s)
    return triples


def predict_formation_energy(structures, checkpoint_path: str | Path, batch_size: int = 256) -> np.ndarray:
    """Surrogate energies [n] (the checkpoint's `target_unit`; eV/atom for mp20_bt) for a list of structures."""
    path = Path(checkpoint_path).resolve()
    model = _cached_surrogate(str(path), path.stat().st_mtime_ns)
    triples = structure_triples(structures)
    cfg = model.graph_config()
    out = []
    with torch.no_grad():
        for start in range(0, len(triples), batch_size):
            out.append(model(build_graphs(triples[start : start + batch_size], cfg)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)
