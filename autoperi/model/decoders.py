"""One-shot decoders from the latent (seed §2.3): atom count, composition and lattice.

- Atom count N: classification over 1..max_atoms from (z_G, condition); sampling is restricted to counts seen in
  training (the histogram in the dataset statistics).
- Composition: the atoms in canonical order (electronegativity, then Z); slot k classifies the element of atom k
  and decoding fills the first N slots, so composition and atom count always agree. Two decoders: `slots` draws each
  slot independently from (z_G, condition) — enough for Perov-5's fixed ABX3 roles, but on mp20_bt an uncertain
  latent then mixes elements across slots (5.6 distinct elements per sample vs 2.75 in the test set);
  `autoregressive` factorises p(s_1..s_N | z_G, g, N) = Π_k p(s_k | z_G, g, N, s_<k) with a GRU over the slots.
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


class _CountedComposition(nn.Module):
    """Shared part of the composition decoders: a trunk on (z_G, condition) and the atom-count head p(N | z_G, g)."""

    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int, max_atoms: int, n_elements: int,
                 max_slots: int):
        super().__init__()
        self.n_elements, self.max_slots = n_elements, max_slots
        self.trunk = mlp(latent_dim + cond_dim, hidden_dim, hidden_dim)
        self.n_atoms = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, max_atoms + 1))

    def features(self, z: Tensor, cond_emb: Tensor) -> Tensor:
        return self.trunk(torch.cat([z, cond_emb], dim=-1))

    def count_logits(self, z: Tensor, cond_emb: Tensor) -> Tensor:
        return self.n_atoms(self.features(z, cond_emb))

    def log_likelihood(self, z: Tensor, cond_emb: Tensor, slot_targets: Tensor) -> Tensor:
        """log p(N, elements of the canonical slots | z_G, g) [B]; slot_targets [B, S] vocabulary indices, -100
        beyond N. Ranks latents for structure prediction."""
        valid = slot_targets >= 0
        n_atoms = valid.sum(1)
        log_n = torch.log_softmax(self.count_logits(z, cond_emb), -1).gather(1, n_atoms.unsqueeze(1)).squeeze(1)
        logits = self.scored_slot_logits(z, cond_emb, n_atoms, slot_targets)
        log_slots = torch.log_softmax(logits, -1).gather(-1, slot_targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        return log_n + torch.where(valid, log_slots, 0.0).sum(-1)

    def scored_slot_logits(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, slot_targets: Tensor) -> Tensor:
        """The slot logits `log_likelihood` scores: those of the loss."""
        return self.slot_loss_logits(z, cond_emb, n_atoms, slot_targets)


class CompositionDecoder(_CountedComposition):
    """(z_G, condition) → atom-count logits [B, max_atoms + 1] and per-slot element logits [B, max_slots, E].

    The atoms of a crystal are listed in the canonical order (`canonical_order_keys`) and slot k predicts the
    element of the k-th atom; decoding fills slots 0..N-1. Slots keep roles (cation / anion sites), so even an
    uncertain latent decodes to a cation-anion composition rather than to a product of independent counts.
    """

    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int, max_atoms: int, n_elements: int,
                 max_slots: int):
        super().__init__(latent_dim, cond_dim, hidden_dim, max_atoms, n_elements, max_slots)
        self.slots = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
                                   nn.Linear(hidden_dim, max_slots * n_elements))

    def forward(self, z: Tensor, cond_emb: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(z, cond_emb)
        return self.n_atoms(h), self.slots(h).view(-1, self.max_slots, self.n_elements)

    def slot_loss_logits(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, slot_targets: Tensor) -> Tensor:
        """Per-slot element logits [B, max_slots, E] for the loss (the targets are not needed: slots independent)."""
        return self.forward(z, cond_emb)[1]

    def sample_slots(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, draw) -> Tensor:
        """Vocabulary index of each of the first max(n_atoms) slots [B, n_max]; `draw(logits) → index`."""
        return draw(self.forward(z, cond_emb)[1][:, : int(n_atoms.max())])


REJECTION_TRIES = 64  # unconstrained composition draws per crystal before the constrained fallback


def distinct_count(slot_targets: Tensor) -> Tensor:
    """Number of distinct elements per crystal [B] from slot targets [B, S] (-100 = no atom)."""
    ordered = slot_targets.sort(dim=1).values
    new = (ordered[:, 1:] != ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    return new.sum(1) + (ordered[:, 0] >= 0).long()


class AutoregressiveCompositionDecoder(_CountedComposition):
    """p(N | z_G, g) · Π_k p(s_k | z_G, g, N, s_1..s_{k-1}): the atom count first, then the element of each canonical
    slot from a GRU that has read the elements already placed, so a crystal keeps few distinct elements (the slot
    decoder's independent draws mix them). Trained by teacher forcing on the canonical order; sampled slot by slot
    (max_slots GRU steps of a [B, hidden] state: negligible next to the coordinate decoder).

    `distinct_head`: also p(k | z_G, g) for the number k of distinct elements; sampling draws k, then slots with
    exactly k distinct elements (`sample_slots`: by rejection, a constrained decoding as fallback). Without it,
    prior latents between the training posteriors decode to too many elements on mp20_bt (3.53 distinct per crystal
    vs 2.75 in the test set); with it, 2.76.
    """

    def __init__(self, latent_dim: int, cond_dim: int, hidden_dim: int, max_atoms: int, n_elements: int,
                 max_slots: int, distinct_head: bool = False):
        super().__init__(latent_dim, cond_dim, hidden_dim, max_atoms, n_elements, max_slots)
        self.count_embedding = nn.Embedding(max_atoms + 1, hidden_dim)
        self.token = nn.Embedding(n_elements + 1, hidden_dim)  # index n_elements = start of sequence
        self.position = nn.Embedding(max_slots, hidden_dim)
        self.init_state = nn.Linear(2 * hidden_dim, hidden_dim)
        self.gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.head = mlp(2 * hidden_dim, hidden_dim, n_elements)
        # created last (and only when asked), so the other weights and older checkpoints are unchanged
        self.n_distinct = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, max_slots + 1)) if distinct_head else None

    def _start(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(z, cond_emb)
        state = torch.tanh(self.init_state(torch.cat([h, self.count_embedding(n_atoms)], dim=-1)))
        return h, state.unsqueeze(0)

    def distinct_logits(self, z: Tensor, cond_emb: Tensor) -> Tensor:
        """Logits of the number of distinct elements k = 0..max_slots [B, max_slots + 1] (needs distinct_head)."""
        if self.n_distinct is None:
            raise ValueError("this composition decoder was built without distinct_head")
        return self.n_distinct(self.features(z, cond_emb))

    def slot_loss_logits(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, slot_targets: Tensor) -> Tensor:
        """Teacher forcing: slot k reads the true elements of slots < k (targets -100 beyond N) → [B, max_slots, E]."""
        h, state = self._start(z, cond_emb, n_atoms)
        previous = torch.full_like(slot_targets, self.n_elements)
        previous[:, 1:] = slot_targets[:, :-1].clamp_min(0)  # past the crystal's atoms: ignored by the loss
        inputs = self.token(previous) + self.position.weight[: slot_targets.shape[1]]
        out, _ = self.gru(inputs, state)
        return self.head(torch.cat([out, h.unsqueeze(1).expand_as(out)], dim=-1))

    def _possible_k(self, k_logits: Tensor, n_atoms: Tensor) -> Tensor:
        """k logits with k outside 1..min(N, E) masked out."""
        k_range = torch.arange(k_logits.shape[-1], device=k_logits.device)
        possible = (k_range >= 1) & (k_range <= torch.clamp(n_atoms, max=self.n_elements).unsqueeze(-1))
        return k_logits.masked_fill(~possible, -torch.inf)

    @staticmethod
    def _constrain(logits: Tensor, used: Tensor, n_distinct: Tensor, remaining: Tensor) -> Tensor:
        """Slot logits [..., E] restricted so that exactly n_distinct elements end up placed: only the used ones once
        all are there, only new ones while the `remaining` slots (this one included) are all needed for them."""
        n_used = used.sum(-1)
        missing = n_distinct - n_used
        only_used = (missing <= 0) & (n_used > 0)
        only_new = missing >= remaining.clamp_min(1)
        blocked = (only_used.unsqueeze(-1) & ~used) | (only_new.unsqueeze(-1) & used)
        return logits.masked_fill(blocked, -torch.inf)

    def log_likelihood(self, z: Tensor, cond_emb: Tensor, slot_targets: Tensor) -> Tensor:
        """With the distinct head: p(N) · p(k | k ≤ min(N, E)) · Π_j p(s_j | s_<j, constraint to k), the distribution
        of the constrained decoding (`rejection_tries=0`), normalised over all element sequences of each N; ranks
        latents for structure prediction (the rejection sampler's p(s | k) = p_AR(s) / P_AR(k) has no closed form)."""
        log_p = super().log_likelihood(z, cond_emb, slot_targets)
        if self.n_distinct is None:
            return log_p
        k_logits = self._possible_k(self.distinct_logits(z, cond_emb), (slot_targets >= 0).sum(1))
        return log_p + torch.log_softmax(k_logits, -1).gather(1, distinct_count(slot_targets).unsqueeze(1)).squeeze(1)

    def scored_slot_logits(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, slot_targets: Tensor) -> Tensor:
        """Teacher-forced logits, with the distinct head restricted as the constrained decoding restricts them."""
        logits = self.slot_loss_logits(z, cond_emb, n_atoms, slot_targets)
        if self.n_distinct is None:
            return logits
        valid = slot_targets >= 0
        one_hot = torch.nn.functional.one_hot(slot_targets.clamp_min(0), self.n_elements) * valid.unsqueeze(-1)
        used_before = (one_hot.cumsum(1) - one_hot) > 0  # elements placed in slots < j
        remaining = n_atoms.unsqueeze(1) - torch.arange(slot_targets.shape[1], device=z.device)
        return self._constrain(logits, used_before, distinct_count(slot_targets).unsqueeze(1), remaining)

    def _decode(self, h: Tensor, state: Tensor, n_atoms: Tensor, draw, n_distinct: Tensor | None) -> Tensor:
        """Slot-by-slot draw; constrained to exactly n_distinct elements where given."""
        used = torch.zeros(len(h), self.n_elements, dtype=torch.bool, device=h.device)
        previous = torch.full((len(h),), self.n_elements, dtype=torch.long, device=h.device)
        picks = []
        for k in range(min(int(n_atoms.max()), self.max_slots)):
            out, state = self.gru((self.token(previous) + self.position.weight[k]).unsqueeze(1), state)
            logits = self.head(torch.cat([out[:, 0], h], dim=-1))
            if n_distinct is not None:
                logits = self._constrain(logits, used, n_distinct, n_atoms - k)
            previous = draw(logits)
            placed = k < n_atoms
            used[placed, previous[placed]] = True
            picks.append(previous)
        return torch.stack(picks, dim=1)

    def sample_slots(self, z: Tensor, cond_emb: Tensor, n_atoms: Tensor, draw,
                     rejection_tries: int = REJECTION_TRIES) -> Tensor:
        """[B, max(n_atoms)] vocabulary indices. With the distinct head: k ~ p(k | z_G, g), then the slots from the
        autoregressive model conditioned on having exactly k distinct elements, by rejection (up to
        `rejection_tries` unconstrained draws per crystal); crystals still without one are decoded under the
        constraint (`_constrain`), which is cheaper but biased: once k elements are placed it cannot add the
        anion that canonical order puts last (on mp20_bt: 33 % of crystals with an anion against 47 % by
        rejection and 51 % in the test set)."""
        h, state = self._start(z, cond_emb, n_atoms)
        if self.n_distinct is None:
            return self._decode(h, state, n_atoms, draw, None)
        n_distinct = draw(self._possible_k(self.n_distinct(h), n_atoms))
        width = min(int(n_atoms.max()), self.max_slots)
        picks = torch.zeros(len(z), width, dtype=torch.long, device=z.device)
        pending = torch.arange(len(z), device=z.device)
        for _ in range(rejection_tries):
            if len(pending) == 0:
                break
            trial = self._decode(h[pending], state[:, pending], n_atoms[pending], draw, None)
            valid = torch.arange(trial.shape[1], device=z.device) < n_atoms[pending].unsqueeze(1)
            targets = torch.where(valid, trial, -100)
            accept = distinct_count(targets) == n_distinct[pending]
            picks[pending[accept], : trial.shape[1]] = trial[accept]
            pending = pending[~accept]
        if len(pending):
            trial = self._decode(h[pending], state[:, pending], n_atoms[pending], draw, n_distinct[pending])
            picks[pending, : trial.shape[1]] = trial
        return picks


COMPOSITION_DECODERS = {"slots": CompositionDecoder, "autoregressive": AutoregressiveCompositionDecoder}


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
