"""Reconstruction and regularisation terms of AutoPeri-GNN (seed §3); each returns a scalar, mean over crystals.

- `kl_normal`: KL(N(μ, σ²) ‖ N(0, I)) summed over latent dims.
- `count_loss` / `composition_loss`: cross-entropies of the atom count and of the element in every occupied slot
  (atoms in canonical order; summed over slots, i.e. the negative log-likelihood of the composition).
- `lattice_loss`: squared error of the standardised log lengths plus the chordal error |e^{iθ̂} − e^{iθ}|² of the
  torus angles (periodic, so θ = −π and θ = π are the same cell).
- `flow_matching_loss`: |v̂ − w(x_1 − x_0)|² per atom (w: periodic minimum image), mean over real atoms.
- `bond_loss`: binary cross-entropy of the pair bond head against bondedness d_ij < 1.25·(r_cov,i + r_cov,j) under
  the minimum image, over real atom pairs i ≠ j.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from autoperi.model.coordinates import masked_mean_free

BOND_TOLERANCE = 1.25


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(-1).mean()


def count_loss(logits: Tensor, n_atoms: Tensor) -> Tensor:
    return F.cross_entropy(logits, n_atoms.long())


def composition_loss(slot_logits: Tensor, slot_targets: Tensor) -> Tensor:
    """slot_logits [B, S, E], slot_targets [B, S] (vocabulary index, -100 = no atom) → mean over crystals of the
    summed cross-entropy of the occupied slots (the NLL of the composition in canonical atom order)."""
    ce = F.cross_entropy(slot_logits.transpose(1, 2), slot_targets, ignore_index=-100, reduction="none")
    return ce.sum(-1).mean()


def lattice_loss(pred_code: Tensor, pred_theta: Tensor, code: Tensor, theta: Tensor) -> Tensor:
    length_term = (pred_code - code).pow(2).sum(-1)
    angle_term = 2.0 - 2.0 * torch.cos(pred_theta - theta)  # = |e^{iθ̂} − e^{iθ}|²
    return (length_term + angle_term.sum(-1)).mean()


def flow_matching_loss(velocity: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """velocity, target [B, N, 3] (target already a minimum-image difference), mask [B, N] → scalar.

    The target's per-crystal mean (a common translation of all atoms) is removed, as in FlowMM: a crystal's origin
    is arbitrary and the translation-invariant decoder cannot predict it, so that part is irreducible noise."""
    err = (velocity - masked_mean_free(target, mask)).pow(2).sum(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


def covalent_radii(max_atomic_number: int = 100) -> Tensor:
    """Covalent radii (Å) indexed by Z (ASE's table, Cordero et al. 2008)."""
    from ase.data import covalent_radii as table

    return torch.tensor(table[: max_atomic_number + 1], dtype=torch.float32)


def bond_targets(frac: Tensor, lattice: Tensor, species: Tensor, mask: Tensor, radii: Tensor) -> Tensor:
    """[B, N, N] float: 1 where the minimum-image distance is below 1.25·(r_i + r_j)."""
    delta = frac.unsqueeze(1) - frac.unsqueeze(2)
    delta = delta - torch.round(delta)
    dist = (delta @ lattice.unsqueeze(1)).norm(dim=-1)
    r = radii.to(frac.dtype)[species]
    return (dist < BOND_TOLERANCE * (r.unsqueeze(1) + r.unsqueeze(2))).to(frac.dtype)


def bond_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    pair = mask.unsqueeze(1) & mask.unsqueeze(2)
    pair = pair & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device).unsqueeze(0)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * pair).sum() / pair.sum().clamp_min(1)
