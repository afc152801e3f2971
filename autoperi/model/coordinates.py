"""Iterative coordinate decoder: flow matching of fractional coordinates on the torus [0, 1)^3 (seed §2.3, made
iterative as in DiffCSP / FlowMM).

Path and target. x_0 ~ Uniform[0, 1)^3 per atom, x_1 = data, w(d) = d − round(d) ∈ [−0.5, 0.5) the periodic minimum
image; x_t = x_0 + t·w(x_1 − x_0) (mod 1) and the target velocity is u = w(x_1 − x_0), constant along the geodesic.
The loss is |v̂(x_t, t) − (u − ū)|², ū the mean over the crystal's atoms — a periodic difference, never a Euclidean
difference of raw fractional coordinates; the common translation ū is removed from target and output (the origin of
a crystal is arbitrary, and the network cannot see it).
Sampling integrates dx/dt = v̂ with K Euler steps (x ← x + v̂/K mod 1): K network evaluations per crystal.

Network (CSPNet-style periodic transformer over all atom pairs of a crystal, dense and padded). Node state from
species, z_G, the condition embedding and time; pair features from Fourier features sin/cos(2πk·w(Δf)), k = 1..F, the
minimum-image distance |w(Δf)·L| and the lattice invariants (log lengths, cos angles from the Gram matrix). Every input
is a fractional difference or rotation-invariant, so the network is translation-invariant in the periodic sense (a
common shift of all x leaves v̂ unchanged, i.e. the generated positions shift with it), invariant under rotations of
the cell, and permutation-equivariant (no atom index enters). Outputs: v̂_i = Σ_j w(Δf_ij)·a(m_ij) / n + W h_i and
bond logits for every pair (the seed's bond/edge reconstruction head).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from autoperi.model.encoder import mlp


def wrap(delta: Tensor) -> Tensor:
    """Periodic minimum image of fractional differences: d − round(d) ∈ [−0.5, 0.5]."""
    return delta - torch.round(delta)


def masked_mean_free(x: Tensor, mask: Tensor) -> Tensor:
    """x [B, N, 3] minus its mean over the atoms of each crystal (mask [B, N], float): the part a common
    translation cannot change."""
    mean = (x * mask.unsqueeze(-1)).sum(1, keepdim=True) / mask.sum(1).clamp_min(1).view(-1, 1, 1)
    return (x - mean) * mask.unsqueeze(-1)


def interpolate(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Geodesic on the torus: (x_t = x_0 + t·w(x_1 − x_0) mod 1, target velocity w(x_1 − x_0)); t broadcasts."""
    velocity = wrap(x1 - x0)
    return torch.remainder(x0 + t * velocity, 1.0), velocity


def pair_by_species(x0: Tensor, x1: Tensor, species: Tensor, mask: Tensor, lattice: Tensor) -> Tensor:
    """x_0 [B, N, 3] with its atoms reassigned, within each crystal and species, to the atoms of x_1 so that the sum
    of squared minimum-image distances |w(x_1 − x_0)·L|² is smallest (Hungarian algorithm). Atoms of one element are
    interchangeable, so any assignment is a valid flow-matching pair; the optimal one gives straighter, less crossing
    paths and a less ambiguous target velocity (equivariant OT flow matching, Klein et al. 2023)."""
    from scipy.optimize import linear_sum_assignment

    delta = wrap(x1.unsqueeze(1) - x0.unsqueeze(2))  # [B, i (x_0), j (x_1), 3]
    cost = (torch.einsum("bijk,bkl->bijl", delta, lattice) ** 2).sum(-1).detach().cpu().numpy()
    species_np, mask_np = species.cpu().numpy(), mask.cpu().numpy().astype(bool)
    order = torch.arange(x0.shape[1]).repeat(x0.shape[0], 1)
    for b in range(x0.shape[0]):
        elements, counts = np.unique(species_np[b][mask_np[b]], return_counts=True)
        for element in elements[counts > 1]:
            slots = np.flatnonzero(mask_np[b] & (species_np[b] == element))
            rows, cols = linear_sum_assignment(cost[b][np.ix_(slots, slots)])
            order[b, slots[cols]] = torch.as_tensor(slots[rows])  # x_1's atom slots[c] is paired with x_0's slots[r]
    return torch.gather(x0, 1, order.unsqueeze(-1).expand_as(x0).to(x0.device))


def lattice_invariants(lattice: Tensor) -> Tensor:
    """[B, 3, 3] → [B, 6]: log lengths and cosines of the angles, from the Gram matrix (rotation-invariant)."""
    gram = lattice @ lattice.transpose(-1, -2)
    lengths = torch.diagonal(gram, dim1=-2, dim2=-1).clamp_min(1e-12).sqrt()
    cos = torch.stack([gram[:, 1, 2] / (lengths[:, 1] * lengths[:, 2]), gram[:, 0, 2] / (lengths[:, 0] * lengths[:, 2]),
                       gram[:, 0, 1] / (lengths[:, 0] * lengths[:, 1])], dim=-1)
    return torch.cat([torch.log(lengths), cos], dim=-1)


class TimeEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), dim // 2)), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angle = t.unsqueeze(-1) * self.freqs * 2 * math.pi
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class PairLayer(nn.Module):
    def __init__(self, hidden_dim: int, pair_dim: int):
        super().__init__()
        # message MLP on cat([h_i, h_j, pair_ij]) with its first linear map split (node parts once per atom)
        self.node_i, self.node_j = nn.Linear(hidden_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.pair = nn.Linear(pair_dim, hidden_dim, bias=False)
        self.message = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.update = mlp(2 * hidden_dim, hidden_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)

    def forward(self, h: Tensor, pair: Tensor, pair_mask: Tensor, n_atoms: Tensor) -> tuple[Tensor, Tensor]:
        first = self.node_i(h).unsqueeze(2) + self.node_j(h).unsqueeze(1) + self.pair(pair)
        m = self.message(first) * pair_mask.unsqueeze(-1)
        agg = m.sum(2) / n_atoms.view(-1, 1, 1)
        return self.norm(h + self.update(torch.cat([h, agg], dim=-1))), m


class CoordinateDecoder(nn.Module):
    """v̂(x_t, t | species, L, z_G, condition) on padded batches: x [B, N, 3], mask [B, N] (True = atom)."""

    def __init__(self, hidden_dim: int, latent_dim: int, cond_dim: int, n_layers: int = 4, n_freq: int = 4,
                 max_atomic_number: int = 100):
        super().__init__()
        self.n_freq = n_freq
        self.species = nn.Embedding(max_atomic_number + 1, hidden_dim)
        self.time = TimeEmbedding(32)
        self.context = mlp(latent_dim + cond_dim + 32 + 6, hidden_dim, hidden_dim)
        pair_dim = 6 * n_freq + 1
        self.layers = nn.ModuleList([PairLayer(hidden_dim, pair_dim) for _ in range(n_layers)])
        self.pair_weight = mlp(hidden_dim, hidden_dim, 1)
        self.node_velocity = nn.Linear(hidden_dim, 3)
        self.bond = mlp(hidden_dim, hidden_dim, 1)
        self.register_buffer("k", torch.arange(1, n_freq + 1, dtype=torch.float32), persistent=False)

    def forward(self, x: Tensor, t: Tensor, species: Tensor, mask: Tensor, lattice: Tensor, z: Tensor,
                cond_emb: Tensor, with_bonds: bool = True) -> tuple[Tensor, Tensor | None]:
        """→ (velocity [B, N, 3] in fractional units per unit time, bond logits [B, N, N] or None)."""
        dtype = self.node_velocity.weight.dtype
        maskf = mask.to(dtype)
        n_atoms = maskf.sum(1).clamp_min(1.0)
        delta = wrap(x.unsqueeze(1) - x.unsqueeze(2))  # [B, N, N, 3]: w(x_j − x_i)
        angle = 2 * math.pi * delta.unsqueeze(-1) * self.k.to(dtype)  # [B, N, N, 3, F]
        fourier = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)
        dist = (delta @ lattice.unsqueeze(1)).norm(dim=-1, keepdim=True)  # minimum-image distance (Å)
        pair = torch.cat([fourier, torch.log1p(dist)], dim=-1)
        pair_mask = maskf.unsqueeze(1) * maskf.unsqueeze(2)
        context = self.context(torch.cat([z, cond_emb, self.time(t), lattice_invariants(lattice)], dim=-1))
        h = (self.species(species) + context.unsqueeze(1)) * maskf.unsqueeze(-1)
        m = None
        for layer in self.layers:
            h, m = layer(h, pair, pair_mask, n_atoms)
            h = h * maskf.unsqueeze(-1)
        weight = self.pair_weight(m) * pair_mask.unsqueeze(-1)
        velocity = masked_mean_free((delta * weight).sum(2) / n_atoms.view(-1, 1, 1) + self.node_velocity(h), maskf)
        return velocity, (self.bond(m).squeeze(-1) if with_bonds else None)

    @torch.no_grad()
    def integrate(self, species: Tensor, mask: Tensor, lattice: Tensor, z: Tensor, cond_emb: Tensor, n_steps: int,
                  generator: torch.Generator | None = None, anneal: float = 0.0) -> Tensor:
        """Euler integration from x_0 ~ U[0,1)^3 to t = 1 in `n_steps` network evaluations → x [B, N, 3] in [0, 1).
        anneal = s > 0 scales the velocity by (1 + s·t) (FlowMM's inference anti-annealing): the learned field is an
        average over the targets still compatible with x_t, and speeding it up late commits atoms to one of them. The
        scale is capped at (1 − t)/dt so that no step goes past the endpoint the field predicts, x_t + (1 − t)·v
        (plain Euler, s = 0, never reaches the cap)."""
        x = torch.rand(mask.shape + (3,), generator=generator, dtype=lattice.dtype)
        dt = 1.0 / n_steps
        for step in range(n_steps):
            t = torch.full((mask.shape[0],), step * dt, dtype=lattice.dtype)
            velocity, _ = self(x, t, species, mask, lattice, z, cond_emb, with_bonds=False)
            scale = min(1.0 + anneal * step * dt, n_steps - step) if anneal else 1.0
            x = torch.remainder(x + dt * scale * velocity, 1.0)
        return x
