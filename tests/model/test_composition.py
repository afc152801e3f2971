"""Composition decoders: the autoregressive one is causal, its sampler agrees with its teacher-forced logits, and it
learns element correlations that independent slots cannot (the mp20_bt failure: mixed elements)."""

from __future__ import annotations

import pytest
import torch

from autoperi.model.decoders import COMPOSITION_DECODERS, distinct_count
from tests.model.helpers import randomize

LATENT, COND, HIDDEN, MAX_ATOMS, N_ELEMENTS, SLOTS = 4, 2, 16, 6, 5, 6


def decoder(kind: str = "autoregressive", seed: int = 0, **options):
    torch.manual_seed(seed)
    model = COMPOSITION_DECODERS[kind](LATENT, COND, HIDDEN, MAX_ATOMS, N_ELEMENTS, SLOTS, **options)
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


def multinomial_draw(seed: int):
    generator = torch.Generator().manual_seed(seed)

    def draw(logits):
        flat = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).view(logits.shape[:-1])

    return draw


def pin_k(model, k: int) -> None:
    """The distinct-element head always draws k."""
    with torch.no_grad():
        model.n_distinct[-1].weight.zero_()
        model.n_distinct[-1].bias.copy_(torch.where(torch.arange(SLOTS + 1) == k, 50.0, 0.0))


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
    with torch.no_grad():
        picks = model.sample_slots(torch.zeros(2000, LATENT), torch.zeros(2000, COND), torch.full((2000,), 2),
                                   multinomial_draw(0))
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



def test_distinct_count_by_hand():
    targets = torch.tensor([[0, 0, 3, -100, -100, -100], [4, 1, 4, 1, 2, 0], [2, -100, -100, -100, -100, -100]])
    assert distinct_count(targets).tolist() == [2, 4, 1]


def n_distinct(picks, n_atoms):
    return torch.tensor([len(set(p[:n].tolist())) for p, n in zip(picks, n_atoms, strict=True)])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_constrained_decoding_places_exactly_the_drawn_number_of_elements(k):
    """The k-head is pinned to k (bias); random slot logits would otherwise give ~min(N, 5) distinct elements. Every
    crystal with N ≥ k atoms must come out with exactly k distinct elements."""
    model = decoder(distinct_head=True)
    pin_k(model, k)
    z, cond, n_atoms, _ = inputs(batch=300)
    n_atoms = torch.randint(1, MAX_ATOMS + 1, (300,), generator=torch.Generator().manual_seed(3))
    picks = model.sample_slots(z, cond, n_atoms, multinomial_draw(0))
    got = n_distinct(picks, n_atoms)
    assert (got[n_atoms >= k] == k).all()
    assert (got <= n_atoms).all()  # k > N is never drawn
    free = decoder(distinct_head=False).sample_slots(z, cond, n_atoms, multinomial_draw(0))
    assert (n_distinct(free, n_atoms) > k).any()  # not vacuous


@pytest.mark.parametrize("kind, options", [("slots", {}), ("autoregressive", {}),
                                           ("autoregressive", {"distinct_head": True})])
def test_log_likelihood_sums_to_the_count_probability(kind, options):
    """Σ over all element sequences of length N of exp(log p(N, s)) = p(N): the factorisation is normalised and
    `log_likelihood` scores it (structure prediction ranks latents with it); with the distinct head it is the
    distribution the constrained sampler draws from."""
    import itertools

    model = decoder(kind, **options)
    z, cond, _, _ = inputs(batch=2)
    with torch.no_grad():
        p_n = torch.softmax(model.count_logits(z, cond), -1)
        for n in (1, 2, 3):
            sequences = torch.tensor(list(itertools.product(range(N_ELEMENTS), repeat=n)))
            targets = torch.full((len(sequences), SLOTS), -100)
            targets[:, :n] = sequences
            for b in range(2):
                ll = model.log_likelihood(z[b : b + 1].expand(len(sequences), -1),
                                          cond[b : b + 1].expand(len(sequences), -1), targets)
                torch.testing.assert_close(ll.exp().sum(), p_n[b, n], rtol=1e-4, atol=1e-6)


def test_constrained_log_likelihood_scores_what_the_constrained_decoding_draws():
    """Empirical frequencies of the constrained decoding's sequences agree with exp(log_likelihood)."""
    model = decoder(distinct_head=True)
    n = 20000
    z, cond = torch.zeros(1, LATENT).expand(n, -1), torch.zeros(1, COND).expand(n, -1)
    with torch.no_grad():
        picks = model.sample_slots(z, cond, torch.full((n,), 2), multinomial_draw(0), rejection_tries=0)
        sequences, counts = picks.unique(dim=0, return_counts=True)
        targets = torch.full((len(sequences), SLOTS), -100)
        targets[:, :2] = sequences
        p_n = torch.softmax(model.count_logits(z[:1], cond[:1]), -1)[0, 2]
        p = model.log_likelihood(z[: len(sequences)], cond[: len(sequences)], targets).exp() / p_n
    assert float(p.sum()) > 0.99  # the sampler's support is where the likelihood lives
    torch.testing.assert_close(counts / n, p, atol=0.01, rtol=0)


def test_distinct_head_needs_the_autoregressive_decoder():
    from autoperi.model.autoperi_gnn import AutoPeriGNN
    from tests.model.helpers import small_config

    with pytest.raises(ValueError, match="distinct_element_head"):
        AutoPeriGNN(small_config(composition_decoder="slots", distinct_element_head=True),
                    {"elements": [1, 8], "max_atoms": 4, "length_mean": [0.0] * 3, "length_std": [1.0] * 3})


def test_rejection_sampling_draws_the_autoregressive_model_conditioned_on_k():
    """With k pinned to 1 and N = 2, accepted draws are AA-type sequences with frequencies p_AR(s) / Σ_{AA} p_AR;
    the constrained decoding instead picks A from slot 1's marginal (a different distribution: the test can fail)."""
    model = decoder(distinct_head=True)
    pin_k(model, 1)
    n = 20000
    z, cond, n_atoms = torch.zeros(1, LATENT).expand(n, -1), torch.zeros(1, COND).expand(n, -1), torch.full((n,), 2)
    with torch.no_grad():
        picks = model.sample_slots(z, cond, n_atoms, multinomial_draw(0), rejection_tries=200)
        assert (picks[:, 0] == picks[:, 1]).all()
        freq = torch.bincount(picks[:, 0], minlength=N_ELEMENTS) / n
        same = torch.arange(N_ELEMENTS).unsqueeze(1).expand(-1, 2)
        targets = torch.full((N_ELEMENTS, SLOTS), -100)
        targets[:, :2] = same
        plain = decoder()  # the same weights without the head: p_AR of each AA sequence
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("n_distinct")})
        p_ar = plain.log_likelihood(z[:N_ELEMENTS], cond[:N_ELEMENTS], targets).exp()
        expected = p_ar / p_ar.sum()
        constrained = model.sample_slots(z, cond, n_atoms, multinomial_draw(1), rejection_tries=0)
        freq_constrained = torch.bincount(constrained[:, 0], minlength=N_ELEMENTS) / n
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    assert (freq_constrained - expected).abs().max() > 0.03  # the biased fallback differs measurably
