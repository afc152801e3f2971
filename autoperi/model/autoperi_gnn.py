"""AutoPeri-GNN assembled (seed §2–3): periodic encoder → z_G, lattice code z_L = (ℓ, θ ∈ T³), conditional flow prior
over (z_G, ℓ, θ), decoders for atom count, composition, lattice and (iteratively, by flow matching on the torus)
fractional coordinates and bonds; the loss terms of seed §3.

Training (`loss`): z_G ~ q(z_G | crystal) by reparameterisation; the lattice code is computed exactly from the Gram
matrix. The flow is fitted by maximum likelihood to (z_G, ℓ, θ) perturbed by small Gaussian noise (σ =
cfg.lattice_noise) with z_G detached, so it learns the aggregate posterior without pulling the encoder (two-stage VAE
/ learned prior). The lattice decoder cleans a code perturbed by σ ~ U(lattice_noise, lattice_denoise_max) per
crystal, informed by z_G and the composition: at sampling, the flow's ℓ is drawn jointly with z_G but not with the
composition decoded from it, and a decoder trained only on small noise passes it through nearly unchanged (volume
uncorrelated with mass, measured on Perov-5); trained on large noise it pulls ℓ towards the composition. β·KL
to N(0, I) keeps the posterior smooth. Physics terms act on the one-step estimate x̂_1 = x_t + (1 − t)·v̂.

Sampling (`sample`): space group g ~ training frequencies (or given) → (z_G, ℓ, θ) ~ flow(· | g) → N, composition
(the most probable count vector summing to N) → lattice (constraint of g's Bravais type, unless measured not to
hold on the training data's Niggli cells) → coordinates by K Euler steps of the flow-matching decoder: K network
evaluations per crystal (+1 flow pass and 1 decoder pass shared by the whole crystal).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

from autoperi.config import GraphConfig, ModelConfig
from autoperi.losses import vae
from autoperi.model.coordinates import CoordinateDecoder, interpolate, pair_by_species
from autoperi.model.decoders import COMPOSITION_DECODERS, LatticeDecoder, canonical_order_keys, distinct_count
from autoperi.model.encoder import PeriodicEncoder
from autoperi.model.flow import LatentFlow
from autoperi.model.lattice import (
    CONSTRAINT_KINDS,
    constraint_hold_rates,
    constraint_kind,
    decode_lengths,
    encode_lattice,
    lattice_from_parameters,
    project_parameters,
    torus_to_angles,
)

N_SPACEGROUPS = 230
ENERGY_COLUMNS = ("heat_of_formation", "formation_energy_per_atom", "energy_per_atom")
CONSTRAINT_MIN_HOLD_RATE = 0.99
MIN_DISTANCE_ANGSTROM = 0.5  # the structure-validity threshold of the CDVAE protocol
LOSS_TERMS = ("recon_species", "recon_counts", "recon_lattice", "recon_coords", "recon_bonds", "kl", "flow_nll",
              "physics_ef", "physics_rdf")


def _rows(frame):
    for row in frame.itertuples(index=False):
        z = np.asarray(row.atomic_numbers, dtype=np.int64)
        yield row, z, np.asarray(row.frac_coords, dtype=float).reshape(-1, 3), np.asarray(row.lattice).reshape(3, 3)


def dataset_statistics(frame, dataset: str | None = None) -> dict:
    """JSON-serialisable statistics of the train rows (all rows when there is no `split` column): element
    vocabulary, max count of one element, atom-count histogram, lattice-code normalisation, space-group and family
    frequencies, and which lattice constraints hold on the data."""
    from autoperi.model.symmetry import family_of_spacegroup

    train = frame[frame["split"] == "train"] if "split" in frame.columns else frame
    numbers = [np.asarray(z, dtype=np.int64) for z in train["atomic_numbers"]]
    elements = sorted({int(z) for arr in numbers for z in arr})
    max_count = max(int(np.bincount(arr).max()) for arr in numbers)
    n_atoms = np.array([len(arr) for arr in numbers])
    lattices = np.stack([np.asarray(v, dtype=float).reshape(3, 3) for v in train["lattice"]])
    lengths = np.linalg.norm(lattices, axis=-1)
    code = np.log(lengths) - np.log(n_atoms)[:, None] / 3.0
    sgs = train["spacegroup"].astype(int).to_numpy()
    sg_counts = np.bincount(sgs, minlength=N_SPACEGROUPS + 1)[1:]
    families = np.bincount([family_of_spacegroup(int(s)) for s in np.unique(sgs) for _ in range(sg_counts[s - 1])],
                           minlength=6)
    hold = constraint_hold_rates(lattices, sgs)
    return {
        "dataset": dataset,
        "n_train": len(train),
        "elements": elements,
        "max_count": max_count,
        "max_atoms": int(n_atoms.max()),
        "n_atoms_hist": np.bincount(n_atoms, minlength=int(n_atoms.max()) + 1).tolist(),
        "length_mean": code.mean(0).tolist(),
        "length_std": np.maximum(code.std(0), 1e-3).tolist(),
        "spacegroup_counts": sg_counts.tolist(),
        "family_counts": families.tolist(),
        "constraints": hold,
        # kinds measured NOT to hold on the Niggli cells of this data (e.g. rhombohedral): left free when decoding
        "relaxed_constraints": sorted(k for k, v in hold.items()
                                      if k != "free" and v["hold_rate"] < CONSTRAINT_MIN_HOLD_RATE),
    }


def batch_from_frame(frame, graph_cfg: GraphConfig, cutoff_angstrom: float | None = None) -> list[Data]:
    """Rows of data/processed → PyG Data (atomic_numbers, frac_coords, lattice [1,3,3], edge_index, edge_shift under
    PBC within the encoder cutoff, spacegroup [1], energy [1] (NaN when absent), id). Collate with `collate`."""
    from autoperi.graphs.crystal_graph import build_graph

    cfg = GraphConfig(**{**graph_cfg.__dict__, "cutoff_angstrom": cutoff_angstrom or graph_cfg.cutoff_angstrom})
    energy_column = next((c for c in ENERGY_COLUMNS if c in frame.columns), None)
    out = []
    for row, z, frac, lattice in _rows(frame):
        energy = float(getattr(row, energy_column)) if energy_column else math.nan
        data = build_graph(z, frac, lattice, cfg, spacegroup=torch.tensor([int(row.spacegroup)]),
                           energy=torch.tensor([energy], dtype=torch.float32), id=str(row.id))
        del data.x, data.edge_attr  # the encoder builds its own features; keeps the cached dataset small
        out.append(data)
    return out


def collate(items: list[Data]) -> Batch:
    return Batch.from_data_list(items)


class AutoPeriGNN(nn.Module):
    def __init__(self, cfg: ModelConfig, stats: dict):
        super().__init__()
        self.cfg, self.stats = cfg, stats
        elements = stats["elements"]
        index = torch.full((cfg.max_atomic_number + 1,), -1, dtype=torch.long)
        index[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("element_index", index, persistent=False)
        self.register_buffer("elements", torch.tensor(elements), persistent=False)
        self.register_buffer("length_mean", torch.tensor(stats["length_mean"]), persistent=False)
        self.register_buffer("length_std", torch.tensor(stats["length_std"]), persistent=False)
        self.register_buffer("radii", vae.covalent_radii(cfg.max_atomic_number), persistent=False)
        self.register_buffer("order_keys", canonical_order_keys(cfg.max_atomic_number), persistent=False)
        max_atoms = max(cfg.max_atoms, stats["max_atoms"])
        hidden, latent, cond = cfg.hidden_dim, cfg.latent_dim, cfg.cond_dim
        self.encoder = PeriodicEncoder(cfg.encoder_hidden_dim, latent, cfg.encoder_layers, cfg.encoder_cutoff_angstrom,
                                       max_atomic_number=cfg.max_atomic_number)
        self.condition = nn.Embedding(N_SPACEGROUPS, cond)
        self.species_embedding = nn.Embedding(cfg.max_atomic_number + 1, hidden)
        self.lattice = LatticeDecoder(latent, cond, hidden)
        self.coords = CoordinateDecoder(hidden, latent, cond, cfg.decoder_layers, cfg.fourier_frequencies,
                                        cfg.max_atomic_number)
        self.flow = LatentFlow(latent + 3, 3, N_SPACEGROUPS, n_layers=cfg.flow_layers, hidden_dim=cfg.flow_hidden_dim,
                               n_bins=cfg.flow_bins, context_dim=0)
        # built last: the other parts' initial weights do not depend on which composition decoder is chosen
        if cfg.composition_decoder not in COMPOSITION_DECODERS:
            raise ValueError(f"model.composition_decoder must be one of {sorted(COMPOSITION_DECODERS)}, "
                             f"got {cfg.composition_decoder!r}")
        extra = {}
        if cfg.distinct_element_head:
            if cfg.composition_decoder != "autoregressive":
                raise ValueError("model.distinct_element_head needs composition_decoder: autoregressive")
            extra["distinct_head"] = True
        self.composition = COMPOSITION_DECODERS[cfg.composition_decoder](latent, cond, hidden, max_atoms,
                                                                         len(elements), stats["max_atoms"], **extra)
        self._surrogate = None  # frozen formation-energy surrogate, attached by `attach_surrogate`, not saved

    # ---- pieces ----------------------------------------------------------------------------------------------
    def attach_surrogate(self, surrogate: nn.Module | None) -> None:
        """Use this frozen surrogate for the E_f physics term (kept out of the state dict and the optimizer)."""
        if surrogate is not None:
            surrogate.eval()
            for p in surrogate.parameters():
                p.requires_grad_(False)
        object.__setattr__(self, "_surrogate", surrogate)

    def composition_embedding(self, species: Tensor, mask: Tensor) -> Tensor:
        emb = self.species_embedding(species) * mask.unsqueeze(-1)
        return emb.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)

    def slot_targets(self, species: Tensor, mask: Tensor) -> Tensor:
        """Dense species [B, N] (0 = padding) → vocabulary index of the atom in each canonical slot [B, max_slots],
        -100 (ignored) beyond the crystal's atoms."""
        keys = torch.where(mask, self.order_keys[species], torch.full_like(self.order_keys[species], float("inf")))
        ordered = species.gather(1, keys.argsort(dim=1, stable=True))
        idx = self.element_index[ordered]
        if (idx[mask.sum(1, keepdim=True) > torch.arange(species.shape[1])] < 0).any():
            missing = sorted(set(species[mask][self.element_index[species[mask]] < 0].tolist()))
            raise ValueError(f"elements {missing} are not in the model's training vocabulary")
        out = torch.full((species.shape[0], self.composition.max_slots), -100, dtype=torch.long)
        n = min(species.shape[1], self.composition.max_slots)
        idx = torch.where(torch.arange(species.shape[1]) < mask.sum(1, keepdim=True), idx, torch.full_like(idx, -100))
        out[:, :n] = idx[:, :n]
        return out

    def constraint_kinds(self, spacegroups) -> list[str]:
        relaxed = {k for k, v in self.stats["constraints"].items() if v["hold_rate"] < CONSTRAINT_MIN_HOLD_RATE}
        kinds = [constraint_kind(int(sg)) for sg in spacegroups]
        return ["free" if k in relaxed else k for k in kinds]

    def decode_lattice(self, length_code: Tensor, theta: Tensor, n_atoms: Tensor, spacegroups) -> Tensor:
        """Cleaned lattice code → constrained lattice matrix [B, 3, 3] (Å)."""
        lengths = decode_lengths(length_code, n_atoms, self.length_mean, self.length_std)
        angles = torus_to_angles(theta)
        lengths, angles = project_parameters(lengths, angles, self.constraint_kinds(spacegroups))
        return lattice_from_parameters(lengths, angles)

    # ---- training ----------------------------------------------------------------------------------------------
    def loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, dtype = self.cfg, self.condition.weight.dtype
        n_graphs = batch.num_graphs
        sg = batch.spacegroup.view(-1)
        cond_emb = self.condition(sg - 1)
        n_atoms = torch.bincount(batch.batch, minlength=n_graphs)
        mu, logvar, _ = self.encoder(batch, n_graphs)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        terms: dict[str, Tensor] = {"kl": vae.kl_normal(mu, logvar)}

        species, mask = to_dense_batch(batch.atomic_numbers, batch.batch, fill_value=0, batch_size=n_graphs)
        targets = self.slot_targets(species, mask)
        terms["recon_counts"] = vae.count_loss(self.composition.count_logits(z, cond_emb), n_atoms)
        if cfg.distinct_element_head:  # the count term covers both counts: atoms and distinct elements
            terms["recon_counts"] = terms["recon_counts"] + vae.count_loss(
                self.composition.distinct_logits(z, cond_emb), distinct_count(targets))
        slot_logits = self.composition.slot_loss_logits(z, cond_emb, n_atoms, targets)
        terms["recon_species"] = vae.composition_loss(slot_logits, targets)

        lattice = batch.lattice.to(dtype)
        code, theta = encode_lattice(lattice, n_atoms, self.length_mean, self.length_std)
        noisy_code = code + cfg.lattice_noise * torch.randn_like(code)
        noisy_theta = theta + cfg.lattice_noise * torch.randn_like(theta)
        comp_emb = self.composition_embedding(species, mask)
        if cfg.lattice_denoise_max is None:
            in_code, in_theta = noisy_code, noisy_theta
        else:
            sigma = torch.empty(n_graphs, 1, dtype=dtype).uniform_(cfg.lattice_noise, cfg.lattice_denoise_max)
            in_code, in_theta = code + sigma * torch.randn_like(code), theta + sigma * torch.randn_like(theta)
        pred_code, pred_theta = self.lattice(z, in_code, in_theta, comp_emb, cond_emb)
        terms["recon_lattice"] = vae.lattice_loss(pred_code, pred_theta, code, theta)

        log_p = self.flow.log_prob(torch.cat([z.detach(), noisy_code], dim=-1), noisy_theta, sg - 1)
        terms["flow_nll"] = -log_p.mean() / (cfg.latent_dim + 6)

        x1, _ = to_dense_batch(batch.frac_coords.to(dtype), batch.batch, batch_size=n_graphs)
        # cfg.coord_draws (x_0, t) draws per crystal share one encoder pass: the decoder of small cells costs little
        # next to the encoder, and it is the part that needs the most updates. Draw k of crystal b sits at k·B + b.
        k = max(1, cfg.coord_draws)
        rep = (lambda x: x.repeat((k,) + (1,) * (x.dim() - 1))) if k > 1 else (lambda x: x)
        x1_k, species_k, mask_k, lattice_k = rep(x1), rep(species), rep(mask), rep(lattice)
        t = torch.rand(k * n_graphs, dtype=dtype)
        x0 = torch.rand_like(x1_k)
        if cfg.ot_pairing:
            x0 = pair_by_species(x0, x1_k, species_k, mask_k, lattice_k)
        xt, target = interpolate(x0, x1_k, t.view(-1, 1, 1))
        velocity, bond_logits = self.coords(xt, t, species_k, mask_k, lattice_k, rep(z), rep(cond_emb))
        terms["recon_coords"] = vae.flow_matching_loss(velocity, target, mask_k.to(dtype))
        bonds = rep(vae.bond_targets(x1, lattice, species, mask, self.radii))  # the same for every draw
        terms["recon_bonds"] = vae.bond_loss(bond_logits, bonds, mask_k)

        x1_hat = torch.remainder(xt + (1.0 - t.view(-1, 1, 1)) * velocity, 1.0)
        terms.update(self.physics_terms(x1_hat, x1_k, lattice_k, species_k, mask_k, t))
        weights = {"recon_species": cfg.w_species, "recon_counts": cfg.w_counts, "recon_lattice": cfg.w_lattice,
                   "recon_coords": cfg.w_coords, "recon_bonds": cfg.w_bonds, "kl": cfg.beta, "flow_nll": cfg.w_flow,
                   "physics_ef": cfg.w_ef, "physics_rdf": cfg.w_rdf}
        total = sum(weights[k] * terms[k] for k in LOSS_TERMS)
        return total, terms

    def physics_terms(self, x1_hat: Tensor, x1: Tensor, lattice: Tensor, species: Tensor, mask: Tensor,
                      t: Tensor) -> dict[str, Tensor]:
        """E_f penalty (surrogate) and RDF error under PBC on x̂_1 for the `physics_max_crystals` latest-time
        crystals of the batch (x̂_1 is meaningful near t = 1); zero when the weight is 0."""
        from autoperi.losses.physics import formation_energy_penalty, radial_distribution, rdf_loss

        zero = x1_hat.sum() * 0.0
        out = {"physics_ef": zero, "physics_rdf": zero}
        if self.cfg.w_rdf <= 0 and (self.cfg.w_ef <= 0 or self._surrogate is None):
            return out
        pick = torch.argsort(t, descending=True)[: self.cfg.physics_max_crystals]
        m = mask[pick]
        frac_hat, frac_true = x1_hat[pick][m], x1[pick][m]
        graph_index = torch.arange(len(pick)).unsqueeze(1).expand_as(m)[m]
        lat = lattice[pick]
        if self.cfg.w_rdf > 0:
            kw = dict(r_max_angstrom=self.cfg.rdf_r_max_angstrom, n_bins=self.cfg.rdf_bins,
                      sigma_angstrom=self.cfg.rdf_sigma_angstrom)
            with torch.no_grad():
                target = radial_distribution(frac_true, lat, graph_index, **kw)
            out["physics_rdf"] = rdf_loss(radial_distribution(frac_hat, lat, graph_index, **kw), target)
        if self.cfg.w_ef > 0 and self._surrogate is not None:
            energy = self._surrogate.predict_from_geometry(frac_hat, lat, graph_index, atomic_numbers=species[pick][m])
            out["physics_ef"] = formation_energy_penalty(energy, self.cfg.ef_threshold)
        return out

    # ---- sampling ----------------------------------------------------------------------------------------------
    def draw_spacegroups(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        freq = torch.tensor(self.stats["spacegroup_counts"], dtype=torch.float64)
        return torch.multinomial(freq, n, replacement=True, generator=generator) + 1

    def decode_composition(self, z: Tensor, cond_emb: Tensor, generator: torch.Generator | None = None
                           ) -> tuple[Tensor, Tensor]:
        """→ (species [B, N_max] in canonical slot order, 0 = padding; mask [B, N_max]). The atom count (among the
        counts seen in training) and each slot's element are drawn from the decoder's categoricals at temperature
        cfg.species_temperature (0 = the most probable one)."""
        n_logits = self.composition.count_logits(z, cond_emb)
        hist = torch.tensor(self.stats["n_atoms_hist"], dtype=n_logits.dtype)
        allowed = torch.zeros(n_logits.shape[-1], dtype=torch.bool)
        allowed[: len(hist)] = hist > 0
        n_atoms = self._draw(n_logits.masked_fill(~allowed, -math.inf), generator)
        species = self.elements[self.composition.sample_slots(z, cond_emb, n_atoms,
                                                              lambda logits: self._draw(logits, generator))]
        mask = torch.arange(species.shape[1]) < n_atoms.unsqueeze(-1)
        return species * mask, mask

    def _draw(self, logits: Tensor, generator: torch.Generator | None) -> Tensor:
        """Categorical draw over the last dim at cfg.species_temperature (argmax at 0)."""
        temperature = self.cfg.species_temperature
        if temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / temperature, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])

    @torch.no_grad()
    def decode(self, z_g: Tensor, z_t: Tensor, spacegroups: Tensor, n_steps: int | None = None,
               generator: torch.Generator | None = None, species: Tensor | None = None) -> list[dict]:
        """Flow-space latents (z_g = [z_G, ℓ], z_t = θ) → crystals. `species` [B, N] (0 = padding) fixes the
        composition (structure prediction)."""
        latent = self.cfg.latent_dim
        z, length_code = z_g[:, :latent], z_g[:, latent:]
        cond_emb = self.condition(spacegroups - 1)
        species, mask = (self.decode_composition(z, cond_emb, generator) if species is None
                         else (species, species > 0))
        n_atoms = mask.sum(1)
        code, theta = self.lattice(z, length_code, z_t, self.composition_embedding(species, mask), cond_emb)
        lattice = self.decode_lattice(code, theta, n_atoms, spacegroups.tolist())
        steps = n_steps or self.cfg.sample_steps
        frac = torch.zeros(mask.shape + (3,), dtype=lattice.dtype)
        evals = torch.zeros(len(species), dtype=torch.long)
        # Crystals of one atom count integrate together, unpadded: the pair tensors scale with N², so a batch padded
        # to its largest crystal costs up to (N_max / N)² more (4x on mp20_bt). Slots are atoms first, padding last.
        prefix = bool((mask == (torch.arange(mask.shape[1]) < n_atoms.unsqueeze(-1))).all())
        groups = [torch.nonzero(n_atoms == n).flatten() for n in torch.unique(n_atoms).tolist()] if prefix else [None]
        for rows in groups:
            k = slice(None) if rows is None else rows
            width = mask.shape[1] if rows is None else int(n_atoms[rows[0]])
            frac[k, :width], evals[k] = self._integrate_with_retries(
                species[k, :width], mask[k, :width], lattice[k], z[k], cond_emb[k], steps, generator)
        out = []
        for b in range(len(species)):
            m = mask[b]
            out.append({"atomic_numbers": species[b][m].numpy(), "frac_coords": frac[b][m].double().numpy(),
                        "lattice": lattice[b].double().numpy(), "spacegroup": int(spacegroups[b]),
                        "network_evals": int(evals[b])})
        return out

    def _integrate_with_retries(self, species: Tensor, mask: Tensor, lattice: Tensor, z: Tensor, cond_emb: Tensor,
                                steps: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(frac [B, N, 3], network evaluations [B]): K Euler steps, then re-integration (new x_0) of the crystals
        with atoms closer than 0.5 Å, at most cfg.coordinate_retries times, then at most cfg.plain_retries more
        without anti-annealing. Anti-annealing can send two atoms of a rare crystal to one site from every x_0
        (Perov-5: 14 of 10,000 after 10 retries); plain Euler does not. The plain retries draw from their own
        generator, so every other crystal, in this batch and later ones, is unchanged."""
        anneal = self.cfg.velocity_anneal
        frac = self.coords.integrate(species, mask, lattice, z, cond_emb, steps, generator, anneal)
        evals = torch.full((len(species),), steps)
        plain = None
        if self.cfg.plain_retries and generator is not None:
            plain = torch.Generator().manual_seed(generator.initial_seed() + 1)
        plan = [(generator, anneal)] * self.cfg.coordinate_retries + [(plain, 0.0)] * self.cfg.plain_retries
        for draws, scale in plan:
            bad = torch.nonzero(min_image_distance(frac, lattice, mask) < MIN_DISTANCE_ANGSTROM).flatten()
            if not len(bad):
                break
            frac[bad] = self.coords.integrate(species[bad], mask[bad], lattice[bad], z[bad], cond_emb[bad], steps,
                                              draws, scale)
            evals[bad] += steps
        return frac, evals

    @torch.no_grad()
    def sample(self, n: int, condition=None, n_steps: int | None = None,
               generator: torch.Generator | None = None, batch_size: int = 2000) -> list[dict]:
        """n crystals: dicts with atomic_numbers, frac_coords [N, 3], lattice [3, 3] (Å) and the spacegroup
        condition used. condition: None (space groups drawn from the training frequencies), an int space group,
        or a sequence of n space groups."""
        if condition is None:
            spacegroups = self.draw_spacegroups(n, generator)
        elif isinstance(condition, (int, np.integer)):
            spacegroups = torch.full((n,), int(condition), dtype=torch.long)
        else:
            spacegroups = torch.as_tensor(list(condition), dtype=torch.long)
        if spacegroups.numel() and (spacegroups.min() < 1 or spacegroups.max() > N_SPACEGROUPS):
            raise ValueError("space groups must lie in 1..230")
        out: list[dict] = []
        for start in range(0, n, batch_size):
            sg = spacegroups[start: start + batch_size]
            z_g, z_t = self.flow.sample(len(sg), sg - 1, generator=generator)
            out.extend(self.decode(z_g, z_t, sg, n_steps, generator))
        return out


def min_image_distance(frac: Tensor, lattice: Tensor, mask: Tensor) -> Tensor:
    """Smallest interatomic distance per crystal [B] (Å) under the rounding minimum image (exact for the short
    distances that matter here unless the cell is very skewed); +inf for one-atom crystals."""
    delta = frac.unsqueeze(1) - frac.unsqueeze(2)
    dist = ((delta - torch.round(delta)) @ lattice.unsqueeze(1)).norm(dim=-1)
    pair = mask.unsqueeze(1) & mask.unsqueeze(2) & ~torch.eye(frac.shape[1], dtype=torch.bool).unsqueeze(0)
    return dist.masked_fill(~pair, math.inf).flatten(1).min(-1).values


def parameter_counts(model: AutoPeriGNN) -> dict[str, int]:
    parts = ("encoder", "composition", "lattice", "coords", "flow", "condition", "species_embedding")
    counts = {p: sum(x.numel() for x in getattr(model, p).parameters()) for p in parts}
    counts["total"] = sum(x.numel() for x in model.parameters())
    return counts


__all__ = ["AutoPeriGNN", "dataset_statistics", "batch_from_frame", "collate", "parameter_counts", "LOSS_TERMS",
           "CONSTRAINT_KINDS"]
