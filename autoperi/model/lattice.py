"""Lattice ↔ lattice code (log lengths, torus angles) ↔ matrix, and the lattice-system constraints (seed §2.2).

Mapping (rows of L are the lattice vectors a, b, c in Å; G = L Lᵀ is the Gram matrix, invariant under rotation):
    lengths      (a, b, c) = sqrt(G_00, G_11, G_22)
    angles       α = arccos(G_12 / (b c)),  β = arccos(G_02 / (a c)),  γ = arccos(G_01 / (a b))     ∈ (0, π)
    torus code   θ = 2·angle − π  ∈ (−π, π)   (a bijection (0, π) → (−π, π); θ is treated as a circular variable)
    length code  ℓ = (log(lengths) − log(n_atoms)/3 − μ_ℓ) / σ_ℓ   (μ_ℓ, σ_ℓ: per-axis training statistics)
and back: angle = (θ + π)/2 with θ wrapped to [−π, π), lengths = exp(σ_ℓ ℓ + μ_ℓ + log(n_atoms)/3), and L in the
standard orientation a ∥ x, b in the xy plane (`lattice_from_parameters`). L → code → L reproduces G exactly.

Constraints. Processed cells are Niggli-reduced standard PRIMITIVE cells, so the shape a decoder must respect is the
one of the primitive cell of the space group's Bravais lattice, not of the conventional cell: a primitive cubic cell
has a = b = c and 90°, but face-centred cubic has a = b = c and 60°, body-centred cubic 109.47°, rhombohedral
a = b = c and α = β = γ. `constraint_kind(sg)` names the shape from (lattice system, centring letter) and
`project_parameters` imposes it on decoded (lengths, angles). Constraints whose primitive shape is not fixed by the
Bravais type alone (centred tetragonal / orthorhombic / monoclinic, triclinic) are left free; `constraint_hold_rates`
measures on a dataset how often each kind holds for the data, and the model only enforces the kinds that do.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
from torch import Tensor

RIGHT = math.pi / 2
TETRAHEDRAL = math.acos(-1.0 / 3.0)  # 109.47°: primitive cell of body-centred cubic
CONSTRAINT_KINDS = ("free", "cubic_P", "cubic_F", "cubic_I", "rhombohedral", "hexagonal", "tetragonal_P",
                    "orthorhombic_P", "monoclinic_P")


def lattice_parameters(lattice: Tensor) -> tuple[Tensor, Tensor]:
    """[B, 3, 3] → (lengths [B, 3] Å, angles [B, 3] rad: α (b,c), β (a,c), γ (a,b)) through the Gram matrix."""
    gram = lattice @ lattice.transpose(-1, -2)
    lengths = torch.diagonal(gram, dim1=-2, dim2=-1).clamp_min(1e-12).sqrt()
    pairs = ((1, 2), (0, 2), (0, 1))
    cos = torch.stack([gram[..., i, j] / (lengths[..., i] * lengths[..., j]) for i, j in pairs], dim=-1)
    return lengths, torch.arccos(cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7))


def lattice_from_parameters(lengths: Tensor, angles: Tensor) -> Tensor:
    """(lengths [B, 3], angles [B, 3] rad) → L [B, 3, 3] with a ∥ x and b in the xy plane (differentiable)."""
    a, b, c = lengths.unbind(-1)
    alpha, beta, gamma = angles.unbind(-1)
    cos_a, cos_b, cos_g, sin_g = torch.cos(alpha), torch.cos(beta), torch.cos(gamma), torch.sin(gamma)
    cx = cos_b
    cy = (cos_a - cos_b * cos_g) / sin_g
    cz = (1.0 - cx**2 - cy**2).clamp_min(1e-8).sqrt()
    zero = torch.zeros_like(a)
    rows = [
        torch.stack([a, zero, zero], -1),
        torch.stack([b * cos_g, b * sin_g, zero], -1),
        torch.stack([c * cx, c * cy, c * cz], -1),
    ]
    return torch.stack(rows, dim=-2)


def angles_to_torus(angles: Tensor) -> Tensor:
    """Cell angles in (0, π) → θ = 2·angle − π on the circle [−π, π)."""
    return 2.0 * angles - math.pi


def torus_to_angles(theta: Tensor) -> Tensor:
    """θ (any real; wrapped to [−π, π)) → cell angle (θ + π)/2 in [0, π)."""
    wrapped = torch.remainder(theta + math.pi, 2.0 * math.pi) - math.pi
    return (wrapped + math.pi) / 2.0


def encode_lattice(lattice: Tensor, n_atoms: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """L [B, 3, 3], n_atoms [B] → (ℓ [B, 3] standardised log lengths per atom^(1/3), θ [B, 3] torus angles)."""
    lengths, angles = lattice_parameters(lattice)
    scaled = torch.log(lengths) - torch.log(n_atoms.to(lengths.dtype)).unsqueeze(-1) / 3.0
    return (scaled - mean) / std, angles_to_torus(angles)


def decode_lengths(code: Tensor, n_atoms: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """ℓ [B, 3] → lengths [B, 3] Å (inverse of the length part of `encode_lattice`)."""
    return torch.exp(code * std + mean + torch.log(n_atoms.to(code.dtype)).unsqueeze(-1) / 3.0)


@cache
def centring_letter(sg: int) -> str:
    """First letter of the Hermann–Mauguin symbol (P, A, B, C, F, I, R) of space group `sg`."""
    from pymatgen.symmetry.groups import SpaceGroup

    return SpaceGroup.from_int_number(int(sg)).symbol[0]


@cache
def constraint_kind(sg: int) -> str:
    """Primitive-cell shape fixed by the Bravais lattice of space group `sg` (one of CONSTRAINT_KINDS)."""
    from autoperi.model.symmetry import lattice_system_of_spacegroup

    system, letter = lattice_system_of_spacegroup(int(sg)), centring_letter(int(sg))
    if system == "cubic":
        return {"P": "cubic_P", "F": "cubic_F", "I": "cubic_I"}[letter]
    if system == "rhombohedral":
        return "rhombohedral"
    if system == "hexagonal":
        return "hexagonal"
    if letter == "P" and system in ("tetragonal", "orthorhombic", "monoclinic"):
        return f"{system}_P"
    return "free"


def _geomean(x: Tensor) -> Tensor:
    return torch.exp(torch.log(x).mean(-1, keepdim=True))


def _closest_pair(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row of [B, 3]: indices (i, j) of the two closest values and k, the remaining index."""
    v = values.detach()
    gaps = torch.stack([(v[:, 1] - v[:, 2]).abs(), (v[:, 0] - v[:, 2]).abs(), (v[:, 0] - v[:, 1]).abs()], -1)
    k = gaps.argmin(-1)  # the pair not containing k is the closest
    i = torch.where(k == 0, 1, 0)
    j = torch.where(k == 2, 1, 2)
    return i, j, k


def _project_one(kind: str, lengths: Tensor, angles: Tensor) -> tuple[Tensor, Tensor]:
    rows = torch.arange(lengths.shape[0], device=lengths.device)
    if kind in ("cubic_P", "cubic_F", "cubic_I", "rhombohedral"):
        lengths = _geomean(lengths).expand_as(lengths)
        value = {"cubic_P": RIGHT, "cubic_F": math.pi / 3, "cubic_I": TETRAHEDRAL}.get(kind)
        angles = angles.mean(-1, keepdim=True).expand_as(angles) if value is None else torch.full_like(angles, value)
        return lengths, angles
    if kind in ("orthorhombic_P", "tetragonal_P"):
        angles = torch.full_like(angles, RIGHT)
        if kind == "tetragonal_P":
            i, j, _ = _closest_pair(lengths)
            pair = torch.exp(0.5 * (torch.log(lengths[rows, i]) + torch.log(lengths[rows, j])))
            lengths = lengths.clone()
            lengths[rows, i], lengths[rows, j] = pair, pair
        return lengths, angles
    if kind == "hexagonal":
        i, j, k = _closest_pair(lengths)
        pair = torch.exp(0.5 * (torch.log(lengths[rows, i]) + torch.log(lengths[rows, j])))
        lengths = lengths.clone()
        lengths[rows, i], lengths[rows, j] = pair, pair
        # angle k lies between the two equal axes: 120° (Niggli, all obtuse) or 60°, whichever is nearer
        hex_angle = torch.where(angles[rows, k].detach() > RIGHT, 2 * math.pi / 3, math.pi / 3).to(angles.dtype)
        angles = torch.full_like(angles, RIGHT)
        angles[rows, k] = hex_angle
        return lengths, angles
    if kind == "monoclinic_P":
        _, _, k = _closest_pair(-(angles - RIGHT).abs())  # k: the angle farthest from 90° stays free
        free = angles[rows, k]
        angles = torch.full_like(angles, RIGHT)
        angles[rows, k] = free
        return lengths, angles
    return lengths, angles


def project_parameters(lengths: Tensor, angles: Tensor, kinds: list[str]) -> tuple[Tensor, Tensor]:
    """Impose each row's constraint kind on (lengths [B, 3], angles [B, 3] rad); differentiable in the free parts."""
    out_l, out_a = lengths.clone(), angles.clone()
    kinds_arr = np.asarray(kinds)
    for kind in set(kinds):
        if kind == "free":
            continue
        rows = torch.from_numpy(np.flatnonzero(kinds_arr == kind)).to(lengths.device)
        new_l, new_a = _project_one(kind, lengths[rows], angles[rows])
        out_l = out_l.index_copy(0, rows, new_l)
        out_a = out_a.index_copy(0, rows, new_a)
    return out_l, out_a


def constraint_hold_rates(lattices: np.ndarray, spacegroups: np.ndarray, rtol: float = 1e-3,
                          atol_deg: float = 0.1) -> dict[str, dict]:
    """For each constraint kind present: fraction of the cells (L [n, 3, 3]) whose parameters it leaves unchanged
    to `rtol` on lengths and `atol_deg` on angles, and the count. The model enforces only kinds that hold."""
    lengths, angles = lattice_parameters(torch.as_tensor(np.asarray(lattices, dtype=float)))
    kinds = [constraint_kind(int(sg)) for sg in spacegroups]
    proj_l, proj_a = project_parameters(lengths, angles, kinds)
    ok_l = ((proj_l - lengths).abs() <= rtol * lengths).all(-1)
    ok_a = (torch.rad2deg(proj_a - angles).abs() <= atol_deg).all(-1)
    ok = (ok_l & ok_a).numpy()
    out = {}
    for kind in sorted(set(kinds)):
        mask = np.asarray(kinds) == kind
        out[kind] = {"n": int(mask.sum()), "hold_rate": float(ok[mask].mean())}
    return out
