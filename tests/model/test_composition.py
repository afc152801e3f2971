"""Composition decoders: the autoregressive one is causal, its sampler agrees with its teacher-forced logits, and it
learns element correlations that independent slots cannot (the mp20_bt failure: mixed elements)."""

from __future__ import annotations

import pytest
import torch

from autoperi.model.decoders import COMPOSITION_DECODERS
from tests.model.helpers import randomize

LATENT, COND, HIDDEN, MAX_ATOMS, N_ELEMENTS, SLOTS = 4, 2, 16, 6, 5, 6


def decoder(kind: str = "autoregressive", seed: int = 0):
    torch.manual_seed(seed)
    model = COMPOSITION_DECODERS[kind](LATENT, COND, HIDDEN, MAX_ATOMS, N_ELEMENTS, SLOTS)
    randomize(model, seed)
    return model


def inputs(batch: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z, cond = torch.randn(batch, LATENT, generator=g), torch.randn(batch, COND, generator=g)
    n_atoms = torch.randint(2, MAX_ATOMS + 1, (batch,), generator=g)
    targets = torch.randint(0, N_ELEMENTS, (batch, SLOTS), generator=g)
    return z, cond, n_atoms, torch.where(torch.arange(SLOTS) < n_atoms.unsqueeze(1), targets, -100)


def test_slot_k_reads_only_earlier_slots():
    model = decoder()
    z, cond, n_atoms, targets = inputs()
    base = model.slot_loss_logits(z, cond, n_atoms, targets)
    for k in range(1, SLOTS):
        changed = targets.clone()
        changed[:, k:] = (changed[:, k:].clamp_min(0) + 1) % N_ELEMENTS
        out = model.slot_loss_logits(z, cond, n_atoms, changed)
        torch.testing.assert_close(out[:, : k + 1], base[:, : k + 1])  # slot k predicted before seeing slot k
        if k + 1 < SLOTS:  # ... and slot k + 1 after it
            assert (out[:, k + 1] - base[:, k + 1]).abs().max() > 1e-4


def test_greedy_sampling_matches_teacher_forced_argmax():
    """The slot-by-slot sampler and the teacher-forced loss path are one model: feeding the greedy samples back as
    targets must reproduce them as the argmax at every slot."""
    model = decoder()
    z, cond, n_atoms, _ = inputs(batch=12)
    picks = model.sample_slots(z, cond, n_atoms, lambda logits: logits.argmax(-1))
    assert picks.shape == (12, int(n_atoms.max()))
    padded = torch.full((12, SLOTS), -100)
    padded[:, : picks.shape[1]] = picks
    logits = model.slot_loss_logits(z, cond, n_atoms, padded)
    assert torch.equal(logits[:, : picks.shape[1]].argmax(-1), picks)


def fit(kind: str, steps: int = 300) -> torch.nn.Module:
    """Two equally likely compositions A2 and B2 behind one latent: p(A, A) = p(B, B) = 1/2, p(A, B) = 0."""
    model = COMPOSITION_DECODERS[kind](LATENT, COND, HIDDEN, MAX_ATOMS, N_ELEMENTS, SLOTS)
    torch.manual_seed(0)
    z, cond, n_atoms = torch.zeros(64, LATENT), torch.zeros(64, COND), torch.full((64,), 2)
    targets = torch.full((64, SLOTS), -100)
    targets[:32, :2], targets[32:, :2] = 0, 1
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        logits = model.slot_loss_logits(z, cond, n_atoms, targets)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("kind, mixed_range", [("autoregressive", (0.0, 0.03)), ("slots", (0.4, 0.6))])
def test_only_the_autoregressive_decoder_keeps_elements_together(kind, mixed_range):
    model = fit(kind)
    generator = torch.Generator().manual_seed(0)

    def draw(logits):
        flat = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(logits.shape[:-1])

    with torch.no_grad():
        picks = model.sample_slots(torch.zeros(2000, LATENT), torch.zeros(2000, COND), torch.full((2000,), 2), draw)
    mixed = float((picks[:, 0] != picks[:, 1]).float().mean())
    assert mixed_range[0] <= mixed <= mixed_range[1], mixed
    assert set(picks.unique().tolist()) <= {0, 1}


def test_unknown_decoder_name_is_refused():
    from autoperi.model.autoperi_gnn import AutoPeriGNN
    from tests.model.helpers import small_config

    with pytest.raises(ValueError, match="composition_decoder"):
        AutoPeriGNN(small_config(composition_decoder="transformer"), {"elements": [1, 8], "max_atoms": 4,
                                                                      "length_mean": [0.0] * 3,
                                                                      "length_std": [1.0] * 3})

