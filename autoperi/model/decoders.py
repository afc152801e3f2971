"""One-shot decoders from the latent (seed §2.3): atom count, composition and lattice.

- Atom count N: classification over 1..max_atoms from (z_G, condition); sampling is restricted to counts seen in
  training (the histogram in the dataset statistics).
- Composition: for every element e of the training vocabulary a classification of its count c_e ∈ 0..C_max from
  (z_G, condition). Decoding picks the most probable count vector with Σ_e c_e = N exactly (`best_composition`, a
  small dynamic programme over elements), so the composition and the atom count always agree.
- Lattice: g_L(z_G, z_L, composition) → (ℓ, θ): the lattice code z_L = (ℓ, θ) enters with small training noise and the
  decoder returns the cleaned code, informed by z_G and the mean species embedding; the crystal-system constraint of
  the target space group is imposed afterwards (`autoperi.model.lattice.project_parameters`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from autoperi.model.encoder import mlp


class CompositionDecoder(nn.Module):
    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int, max_atoms: int, n_elements: int,
                 max_count: int):
        super().__init__()
        self.n_elements, self.max_count = n_elements, max_count
        self.trunk = mlp(latent_dim + cond_dim, hidden_dim, hidden_dim)
        self.n_atoms = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, max_atoms + 1))
        self.counts = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
                                    nn.Linear(hidden_dim, n_elements * (max_count + 1)))

    def forward(self, z: Tensor, cond_emb: Tensor) -> tuple[Tensor, Tensor]:
        """→ (atom-count logits [B, max_atoms + 1], per-element count logits [B, n_elements, max_count + 1])."""
        h = self.trunk(torch.cat([z, cond_emb], dim=-1))
        return self.n_atoms(h), self.counts(h).view(-1, self.n_elements, self.max_count + 1)


def best_composition(count_logits: Tensor, n_atoms: Tensor) -> Tensor:
    """Most probable per-element counts with Σ_e c_e = N: [B, E, C+1] logits, n_atoms [B] → counts [B, E] (long).

    dp[s] = best log-probability of the elements so far summing to s; one max-plus convolution per element.
    Rows whose N cannot be reached (N > E·C) fall back to the unconstrained argmax.
    """
    log_p = torch.log_softmax(count_logits.double(), dim=-1)
    batch, n_el, n_c = log_p.shape
    s_max = int(n_atoms.max())
    neg = torch.tensor(-1e30, dtype=log_p.dtype)
    dp = torch.full((batch, s_max + 1), float(neg))
    dp[:, 0] = 0.0
    choices = torch.zeros(n_el, batch, s_max + 1, dtype=torch.long)
    for e in range(n_el):
        best = torch.full_like(dp, float(neg))
        arg = torch.zeros(batch, s_max + 1, dtype=torch.long)
        for c in range(n_c):
            shifted = torch.full_like(dp, float(neg))
            shifted[:, c:] = dp[:, : s_max + 1 - c] if c <= s_max else neg
            cand = shifted + log_p[:, e, c].unsqueeze(-1)
            better = cand > best
            best = torch.where(better, cand, best)
            arg = torch.where(better, torch.full_like(arg, c), arg)
        dp, choices[e] = best, arg
    counts = torch.zeros(batch, n_el, dtype=torch.long)
    remaining = n_atoms.long().clone()
    rows = torch.arange(batch)
    for e in reversed(range(n_el)):
        c = choices[e, rows, remaining.clamp(0, s_max)]
        counts[:, e] = c
        remaining = remaining - c
    reachable = dp[rows, n_atoms.long().clamp(0, s_max)] > neg / 2
    fallback = log_p.argmax(-1)
    return torch.where(reachable.unsqueeze(-1), counts, fallback)


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
