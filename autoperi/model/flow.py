"""Conditional normalizing flow on the latent z = (z_G, z_L) in R^g x T^t (seed sec. 2.3).

Base distribution. u_G ~ N(0, I_g) on the Euclidean part and u_L ~ Uniform([-pi, pi)^t) on the torus part, density
(2 pi)^-t. The seed writes u ~ N(0, I) for all of u, but a Gaussian on angles has no periodic meaning: its density
jumps at the seam -pi/pi and depends on where the seam is put. The uniform density is the rotation-invariant,
maximum-entropy density of the torus and is exact (a wrapped normal needs a truncated series for its log-density);
the circular splines and rotations below carry all of the shape, as in Rezende et al. 2020.

Layers (K = n_layers couplings). Layer k transforms the Euclidean part when k is even and the torus part when k is
odd (all layers go to one part when the other has no dims). Within the part it transforms one half of the dims
(dims i with i % 2 == (k // 2) % 2; all of them when the part has one dim) while the other half conditions it, so
every dim is transformed and every dim sees every other (defaults, K = 6: G-even, T-even, G-odd, T-odd, G-even,
T-even):
- Euclidean coupling: x -> s(x) * exp(a) + b, with s a rational-quadratic spline on [-5, 5] with identity tails
  (Durkan et al. 2019) and (a = log scale, soft-clamped to |a| < 3, b = shift) per dim.
- Torus coupling: theta -> wrap(c(theta) + r), with c a circular RQ spline of [-pi, pi] (matching end slopes, so
  a C^1 diffeomorphism of the circle) and r a rotation; outputs are wrapped into [-pi, pi).
Each coupling's parameters come from an MLP on [untransformed Euclidean dims, cos/sin of the untransformed angles
(so the conditioner is periodic), embedding of `cond`, context]. The last layer of every MLP is zero-initialised, so
the flow starts as the exact identity.

What it guarantees. For every condition (crystal family or space-group index, embedded) and context (e.g. target
formation energy / band gap for goal-directed generation), the map is a bijection of R^g x T^t with exact inverse
and log-determinant, so `log_prob` is a normalised density (w.r.t. Lebesgue on R^g x [-pi, pi)^t) and `sample`
draws from it. Conditioning makes the sampled latents follow the chosen symmetry class's learnt distribution; it does
not enforce symmetry constraints on the lattice: that is the lattice decoder's job (crystal system of the target
space group, see `autoperi.model.symmetry`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from autoperi.model.splines import circular_rq_spline, tailed_rq_spline, wrap_angle

EUCLIDEAN_SPLINE_BOUND = 5.0  # the spline acts on [-5, 5] (> 99.9999 % of N(0, 1)); identity outside
MAX_LOG_SCALE = 3.0


def _half(n_dims: int, parity: int) -> tuple[list[int], list[int]]:
    """(transformed, conditioning) dim indices of one coupling; a 1-dim part is transformed whole."""
    transformed = [i for i in range(n_dims) if i % 2 == parity] or list(range(n_dims))
    return transformed, [i for i in range(n_dims) if i not in transformed]


class _Coupling(nn.Module):
    """One coupling layer on either the Euclidean or the torus part (see the module docstring)."""

    def __init__(
        self,
        on_torus: bool,
        gauss_dim: int,
        torus_dim: int,
        parity: int,
        hidden_dim: int,
        n_bins: int,
        cond_dim: int,
        context_dim: int,
    ):
        super().__init__()
        self.on_torus = on_torus
        transformed, kept = _half(torus_dim if on_torus else gauss_dim, parity)
        self.register_buffer("transformed", torch.tensor(transformed, dtype=torch.long), persistent=False)
        self.register_buffer("kept", torch.tensor(kept, dtype=torch.long), persistent=False)
        self.n_bins = n_bins
        # widths K + heights K + derivatives K and a rotation (circular), or K - 1 and log-scale, shift (tailed)
        self.n_params = 3 * n_bins + 1
        n_features = (gauss_dim + 2 * len(kept)) if on_torus else (len(kept) + 2 * torus_dim)
        self.net = nn.Sequential(
            nn.Linear(n_features + cond_dim + context_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, len(transformed) * self.n_params),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z_g: Tensor, z_t: Tensor, features: Tensor, inverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Apply the coupling (or its inverse); returns (z_g, z_t, log|det J| [B] of the map applied)."""
        target = z_t if self.on_torus else z_g
        if self.on_torus:
            kept = z_t[:, self.kept]
            inputs = [z_g, torch.cos(kept), torch.sin(kept)]
        else:
            inputs = [z_g[:, self.kept], torch.cos(z_t), torch.sin(z_t)]
        params = self.net(torch.cat(inputs + [features], dim=-1))
        params = params.view(target.shape[0], len(self.transformed), self.n_params)
        k = self.n_bins
        widths, heights = params[..., :k], params[..., k : 2 * k]
        x = target[:, self.transformed]
        if self.on_torus:
            derivatives, rotation = params[..., 2 * k : 3 * k], params[..., 3 * k]
            if inverse:
                y, log_det = circular_rq_spline(wrap_angle(x - rotation), widths, heights, derivatives, inverse=True)
            else:
                y, log_det = circular_rq_spline(x, widths, heights, derivatives)
                y = y + rotation
            y = wrap_angle(y)
        else:
            derivatives = params[..., 2 * k : 3 * k - 1]
            log_scale = MAX_LOG_SCALE * torch.tanh(params[..., 3 * k - 1] / MAX_LOG_SCALE)
            shift = params[..., 3 * k]
            if inverse:
                y, log_det = tailed_rq_spline(
                    (x - shift) * torch.exp(-log_scale),
                    widths,
                    heights,
                    derivatives,
                    EUCLIDEAN_SPLINE_BOUND,
                    inverse=True,
                )
                log_det = log_det - log_scale
            else:
                y, log_det = tailed_rq_spline(x, widths, heights, derivatives, EUCLIDEAN_SPLINE_BOUND)
                y, log_det = y * torch.exp(log_scale) + shift, log_det + log_scale
        out = target.clone()
        out[:, self.transformed] = y
        log_det = log_det.sum(-1)
        return (z_g, out, log_det) if self.on_torus else (out, z_t, log_det)


class LatentFlow(nn.Module):
    """Conditional flow base (u_G, u_L) -> latent (z_G, z_L) on R^gauss_dim x [-pi, pi)^torus_dim.

    cond: [B] long in 0..n_conditions-1 (crystal family or space-group index, as the caller chooses), embedded in
    cond_dim; context: optional [B, context_dim] float (property targets), required when context_dim > 0.
    """

    def __init__(
        self,
        gauss_dim: int,
        torus_dim: int,
        n_conditions: int,
        n_layers: int = 6,
        hidden_dim: int = 128,
        n_bins: int = 8,
        cond_dim: int = 32,
        context_dim: int = 0,
    ):
        super().__init__()
        if gauss_dim < 0 or torus_dim < 0 or gauss_dim + torus_dim == 0:
            raise ValueError(f"need gauss_dim, torus_dim >= 0 and not both 0, got {gauss_dim}, {torus_dim}")
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.gauss_dim, self.torus_dim, self.context_dim = gauss_dim, torus_dim, context_dim
        self.n_conditions = n_conditions
        self.embedding = nn.Embedding(n_conditions, cond_dim)
        layers = []
        for k in range(n_layers):
            on_torus = (k % 2 == 1 and torus_dim > 0) or gauss_dim == 0  # a part with no dims hands its slots over
            layers.append(
                _Coupling(on_torus, gauss_dim, torus_dim, (k // 2) % 2, hidden_dim, n_bins, cond_dim, context_dim)
            )
        self.layers = nn.ModuleList(layers)

    def _features(self, cond: Tensor, context: Tensor | None, batch: int) -> Tensor:
        cond = torch.as_tensor(cond, dtype=torch.long, device=self.embedding.weight.device)
        if cond.dim() == 0:
            cond = cond.expand(batch)
        if cond.shape != (batch,):
            raise ValueError(f"cond must be a scalar or have shape [{batch}], got {tuple(cond.shape)}")
        if cond.numel() and (cond.min() < 0 or cond.max() >= self.n_conditions):
            raise ValueError(f"cond outside 0..{self.n_conditions - 1}: {cond.min().item()}..{cond.max().item()}")
        features = self.embedding(cond)
        if self.context_dim:
            if context is None or context.shape != (batch, self.context_dim):
                shape = None if context is None else tuple(context.shape)
                raise ValueError(f"context must have shape [{batch}, {self.context_dim}], got {shape}")
            features = torch.cat([features, context.to(features.dtype)], dim=-1)
        elif context is not None and context.numel():
            raise ValueError("context given but the flow was built with context_dim=0")
        return features

    def _run(self, z_g: Tensor, z_t: Tensor, cond, context, inverse: bool) -> tuple[Tensor, Tensor, Tensor]:
        features = self._features(cond, context, z_g.shape[0]).to(z_g.dtype)
        z_t = wrap_angle(z_t)  # any real angle is accepted: the map is one of the torus
        log_det = z_g.new_zeros(z_g.shape[0])
        for layer in reversed(self.layers) if inverse else self.layers:
            z_g, z_t, layer_log_det = layer(z_g, z_t, features, inverse)
            log_det = log_det + layer_log_det
        return z_g, z_t, log_det

    def forward(self, u_g: Tensor, u_t: Tensor, cond, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Base -> latent: (z_g [B, g], z_t [B, t] in [-pi, pi), log|det d z / d u| [B])."""
        return self._run(u_g, u_t, cond, context, inverse=False)

    def inverse(self, z_g: Tensor, z_t: Tensor, cond, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Latent -> base: (u_g, u_t in [-pi, pi), log|det d u / d z| [B])."""
        return self._run(z_g, z_t, cond, context, inverse=True)

    def base_log_prob(self, u_g: Tensor, u_t: Tensor) -> Tensor:
        """log N(u_g; 0, I) + log Uniform(u_t on [-pi, pi)^t), [B]."""
        gauss = -0.5 * (u_g.pow(2).sum(-1) + self.gauss_dim * math.log(2.0 * math.pi))
        return gauss - self.torus_dim * math.log(2.0 * math.pi)

    def log_prob(self, z_g: Tensor, z_t: Tensor, cond, context: Tensor | None = None) -> Tensor:
        """log density [B] of the latent w.r.t. Lebesgue measure on R^g x [-pi, pi)^t."""
        u_g, u_t, log_det = self.inverse(z_g, z_t, cond, context)
        return self.base_log_prob(u_g, u_t) + log_det

    @torch.no_grad()
    def sample(
        self, n: int, cond, context: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n latents (z_g [n, g], z_t [n, t] in [-pi, pi)) for cond (scalar or [n]) and context ([n, c]).

        Runs without autograd; for reparameterised samples (e.g. optimising a context), call `forward` on base draws.
        """
        weight = self.embedding.weight
        u_g = torch.randn(n, self.gauss_dim, generator=generator, device=weight.device, dtype=weight.dtype)
        u_t = torch.rand(n, self.torus_dim, generator=generator, device=weight.device, dtype=weight.dtype)
        z_g, z_t, _ = self.forward(u_g, (2.0 * u_t - 1.0) * math.pi, cond, context)
        return z_g, z_t
