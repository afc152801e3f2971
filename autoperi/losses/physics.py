"""Physics terms of the AutoPeri-GNN loss (seed §3): a smoothed radial distribution function under periodic
boundary conditions and a formation-energy penalty through the pre-trained surrogate.

Each function returns tensors that stay differentiable with respect to fractional coordinates and lattice; the
model combines the scalar terms as (total, {term: value}).

RDF definition (what `radial_distribution` returns, per structure b with N_b atoms and cell volume V_b):
    bins k = 0..n_bins-1 of width Δ = r_max / n_bins on [0, r_max], edges r_k^lo = kΔ, r_k^hi = (k+1)Δ;
    every ordered pair (i, j, image n) with 0 < d_ijn, d_ijn = |(f_j + n - f_i) L|, an atom and its own periodic
    images included, is spread as a Gaussian of width σ and contributes the mass that falls in each bin,
        c_k = Σ_pairs ½ [erf((r_k^hi - d)/(σ√2)) - erf((r_k^lo - d)/(σ√2))]      (a smoothed pair count);
    the count is normalised by the ideal-gas expectation at the structure's number density ρ_b = N_b / V_b,
        g_k = c_k / (N_b · ρ_b · (4π/3)((r_k^hi)^3 - (r_k^lo)^3)) = V_b c_k / (N_b² · shell volume_k),
    so g → 1 at large r for any crystal, and σ → 0 gives exactly the hard histogram g(r) of the same bins.
    Pairs beyond r_max + 6σ are dropped (their mass inside [0, r_max] is < 1e-9 per pair).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autoperi.graphs.neighbors import neighbor_list

_TAIL_SIGMAS = 6.0  # pairs further than r_max + 6σ put < 1e-9 of their mass inside [0, r_max]


def periodic_pairs(
    frac_coords: torch.Tensor, lattice: torch.Tensor, batch: torch.Tensor, cutoff_angstrom: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordered pairs (i, j, image) within `cutoff_angstrom`, self-images included, for a batch of crystals.

    Fixed, non-differentiable edge set from the project's neighbour list: edge_index [2, E] (global atom
    indices) and integer image shifts [E, 3]. Distances are recomputed from them in torch (`pair_distances`).
    """
    frac = frac_coords.detach().cpu().double().numpy()
    lat = lattice.detach().cpu().double().numpy()
    counts = torch.bincount(batch.cpu(), minlength=lat.shape[0]).tolist()
    edges, shifts, start = [], [], 0
    for b, n in enumerate(counts):
        if n:
            edge_index, shift, _ = neighbor_list(frac[start : start + n], lat[b], cutoff_angstrom)
            edges.append(edge_index + start)
            shifts.append(shift)
        start += n
    device = frac_coords.device
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long, device=device), torch.zeros(0, 3, dtype=torch.long, device=device)
    edge_index = torch.from_numpy(np.concatenate(edges, axis=1)).to(device)
    return edge_index, torch.from_numpy(np.concatenate(shifts)).to(device)


def pair_distances(
    frac_coords: torch.Tensor, lattice: torch.Tensor, batch: torch.Tensor, edge_index: torch.Tensor,
    edge_shift: torch.Tensor,
) -> torch.Tensor:
    """|(f_j + shift - f_i) L_b| for every pair [E] (Å), differentiable in frac coords and lattice."""
    src, dst = edge_index
    delta = frac_coords[dst] - frac_coords[src] + edge_shift.to(frac_coords.dtype)
    cart = (delta.unsqueeze(1) @ lattice[batch[src]]).squeeze(1)
    return cart.norm(dim=-1)


def radial_distribution(
    frac_coords: torch.Tensor,
    lattice: torch.Tensor,
    batch: torch.Tensor,
    r_max_angstrom: float = 6.0,
    n_bins: int = 60,
    sigma_angstrom: float = 0.1,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Gaussian-smoothed g(r) under PBC, [B, n_bins] (dimensionless; the module docstring gives the formula).

    frac_coords [N, 3], lattice [B, 3, 3] (rows are lattice vectors, Å), batch [N] (structure index of each atom).
    Differentiable w.r.t. frac_coords and lattice (the pair set is fixed by the neighbour list, distances and the
    volume are recomputed in torch). `pairs` (edge_index, edge_shift) may be passed to reuse a pair list that
    covers r_max + 6σ. Bin k covers [kΔ, (k+1)Δ), Δ = r_max / n_bins; `rdf_bin_centres` gives their centres.
    """
    if sigma_angstrom <= 0:
        raise ValueError(f"sigma_angstrom must be > 0 (got {sigma_angstrom}); use a small value for a sharp g(r)")
    n_structures = lattice.shape[0]
    if pairs is None:
        pairs = periodic_pairs(frac_coords, lattice, batch, r_max_angstrom + _TAIL_SIGMAS * sigma_angstrom)
    edge_index, edge_shift = pairs
    distance = pair_distances(frac_coords, lattice, batch, edge_index, edge_shift)  # [E]
    edges = torch.linspace(0.0, r_max_angstrom, n_bins + 1, dtype=distance.dtype, device=distance.device)
    scale = sigma_angstrom * math.sqrt(2.0)
    cdf = torch.erf((edges.unsqueeze(0) - distance.unsqueeze(1)) / scale)  # [E, n_bins + 1]
    mass = 0.5 * (cdf[:, 1:] - cdf[:, :-1])  # [E, n_bins]: share of each pair's Gaussian in each bin
    counts = torch.zeros(n_structures, n_bins, dtype=distance.dtype, device=distance.device)
    counts = counts.index_add(0, batch[edge_index[0]], mass)
    n_atoms = torch.bincount(batch, minlength=n_structures).to(distance.dtype)  # [B]
    volume = torch.linalg.det(lattice).abs()  # [B]
    shell = (4.0 * math.pi / 3.0) * (edges[1:] ** 3 - edges[:-1] ** 3)  # [n_bins]
    ideal = (n_atoms**2 / volume).unsqueeze(1) * shell.unsqueeze(0)  # N·ρ·shell volume, [B, n_bins]
    return counts / ideal.clamp_min(torch.finfo(distance.dtype).tiny)


def rdf_bin_centres(r_max_angstrom: float = 6.0, n_bins: int = 60) -> np.ndarray:
    """Centres (Å) of the bins `radial_distribution` uses, [n_bins]."""
    width = r_max_angstrom / n_bins
    return (np.arange(n_bins) + 0.5) * width


def rdf_loss(pred_rdf: torch.Tensor, target_rdf: torch.Tensor, bin_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean squared difference of two g(r) batches [B, n_bins] → scalar.

    loss = mean_b Σ_k w_k (g_pred - g_target)² / Σ_k w_k with w = 1 by default; pass bin_weights [n_bins]
    (e.g. emphasising the first shells) to reweight. Both inputs must use the same r_max, n_bins and σ.
    """
    if pred_rdf.shape != target_rdf.shape:
        raise ValueError(f"rdf_loss: shapes differ, pred {tuple(pred_rdf.shape)} vs target {tuple(target_rdf.shape)}")
    squared = (pred_rdf - target_rdf) ** 2
    if bin_weights is None:
        return squared.mean()
    weights = bin_weights.to(squared.dtype)
    return (squared * weights).sum(dim=-1).mean() / weights.sum()


def formation_energy_penalty(
    predicted_ef: torch.Tensor, threshold: float = 0.0, softness: float = 0.1
) -> torch.Tensor:
    """Seed §3 physics term: penalise decoded crystals whose surrogate formation energy lies above `threshold`.

    predicted_ef [B] in the surrogate's target unit (eV/atom for mp20_bt; see the surrogate's `target_unit`).
    Returns mean_b softness · softplus((E_f,b - threshold) / softness): ≈ E_f - threshold well above the threshold
    (gradient 1), ≈ 0 well below it (no push towards ever lower energies), smooth in between (width `softness`,
    same unit). Gradients flow into the decoder through the surrogate, which is differentiable in coordinates and
    lattice.
    """
    if softness <= 0:
        raise ValueError(f"softness must be > 0 (got {softness})")
    return (softness * torch.nn.functional.softplus((predicted_ef - threshold) / softness)).mean()
