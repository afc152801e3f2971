"""One-shot decoders from the latent (seed §2.3): atom count, composition and lattice.

- Atom count N: classification over 1..max_atoms from (z_G, condition); sampling is restricted to counts seen in
  training (the histogram in the dataset statistics).
- Composition: the atoms in canonical order (electronegativity, then Z); slot k classifies the element of atom k
  from (z_G, condition); decoding fills the first N slots, so composition and atom count always agree.
- Lattice: g_L(z_G, z_L, composition) → (ℓ, θ): the lattice code z_L = (ℓ, θ) enters with small training noise and the
  decoder returns the cleaned code, informed by z_G and the mean species embedding; the crystal-system constraint of
  the target space group is imposed afterwards (`autoperi.model.lattice.project_parameters`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from autoperi.model.encoder import mlp


def canonical_order_keys(max_atomic_number: int = 100) -> torch.Tensor:
    """Sort key per Z (index = Z): Pauling electronegativity (noble gases / unknown last), ties broken by Z, so
    cations come before anions (A, B, X, X, X for a perovskite ABX3)."""
    import warnings

    from pymatgen.core.periodic_table import Element

    keys = torch.zeros(max_atomic_number + 1, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for elements without an electronegativity
        for z in range(1, max_atomic_number + 1):
            x = Element.from_Z(z).X
            keys[z] = (x if x == x else 5.0) * 1000 + z  # X is NaN for noble gases
    return keys


class CompositionDecoder(nn.Module):
    """(z_G, condition) → atom-count logits [B, max_atoms + 1] and per-slot element logits [B, max_slots, E].

    The atoms of a crystal are listed in the canonical order (`canonical_order_keys`) and slot k predicts the
    element of the k-th atom; decoding fills slots 0..N-1. Slots keep roles (cation / anion sites), so even an
    uncertain latent decodes to a cation-anion composition rather than to a product of independent counts.
    """

    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int, max_atoms: int, n_elements: int,
                 max_slots: int):
        super().__init__()
        self.n_elements, self.max_slots = n_elements, max_slots
        self.trunk = mlp(latent_dim + cond_dim, hidden_dim, hidden_dim)
        self.n_atoms = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, max_atoms + 1))
        self.slots = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
                                   nn.Linear(hidden_dim, max_slots * n_elements))

    def forward(self, z: Tensor, cond_emb: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(torch.cat([z, cond_emb], dim=-1))
        return self.n_atoms(h), self.slots(h).view(-1, self.max_slots, self.n_elements)


class LatticeDecoder(nn.Module):
    """(z_G, ℓ [B, 3], θ [B, 3], composition embedding, condition) → cleaned (ℓ̂ [B, 3], θ̂ [B, 3])."""

    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int):
        super().__init__()
        self.net = mlp(latent_dim + cond_dim + hidden_dim + 9, hidden_dim, 6, layers=3)
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity on the code
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: Tensor, length_code: Tensor, theta: Tensor, comp_emb: Tensor, cond_emb: Tensor
                ) -> tuple[Tensor, Tensor]:
        features = torch.cat([z, cond_emb, comp_emb, length_code, torch.cos(theta), torch.sin(theta)], dim=-1)
        out = self.net(features)
        return length_code + out[:, :3], theta + out[:, 3:]
