"""Re-integration of crystals with overlapping atoms: anti-annealed retries first, then plain-Euler ones drawn from
their own random stream, so crystals that never overlapped are bit-identical with or without them."""

from __future__ import annotations

import pytest
import torch

from autoperi.model.autoperi_gnn import AutoPeriGNN
from tests.model.helpers import frame_of, raw_structures, small_config

STEPS = 3


@pytest.fixture(scope="module")
def stats():
    from autoperi.model.autoperi_gnn import dataset_statistics

    return dataset_statistics(frame_of(list(raw_structures("perov_5", 4))))


def collapsing_integrator(calls):
    """Like coords.integrate, but crystal 0 (the one with species 0 in the first slot, see below) ends with its
    first two atoms on one site whenever the velocity is anti-annealed; every call consumes its generator."""

    def integrate(species, mask, lattice, z, cond_emb, n_steps, generator=None, anneal=0.0):
        x = torch.rand(mask.shape + (3,), generator=generator, dtype=lattice.dtype)
        collapse = species[:, 0] == 0
        if anneal:
            x[collapse, 1] = x[collapse, 0]
        calls.append((len(species), anneal))
        return x

    return integrate


def run(stats, plain_retries):
    model = AutoPeriGNN(small_config(velocity_anneal=12.0, coordinate_retries=3, plain_retries=plain_retries),
                        stats).eval()
    calls = []
    model.coords.integrate = collapsing_integrator(calls)
    n, width = 4, 5
    species = torch.ones((n, width), dtype=torch.long)
    species[0, 0] = 0
    mask = torch.ones((n, width), dtype=torch.bool)
    lattice = torch.eye(3).expand(n, 3, 3) * 8.0
    z, cond = torch.zeros(n, 4), torch.zeros(n, 4)
    generator = torch.Generator().manual_seed(0)
    frac, evals = model._integrate_with_retries(species, mask, lattice, z, cond, STEPS, generator)
    return frac, evals, calls, generator.get_state()


def test_plain_retries_separate_what_anti_annealing_collapses(stats):
    frac0, evals0, calls0, state0 = run(stats, plain_retries=0)
    frac2, evals2, calls2, state2 = run(stats, plain_retries=2)
    # without plain retries crystal 0 keeps two atoms on one site after all 3 retries
    assert torch.allclose(frac0[0, 0], frac0[0, 1])
    assert evals0.tolist() == [STEPS * 4, STEPS, STEPS, STEPS]
    assert calls0 == [(4, 12.0), (1, 12.0), (1, 12.0), (1, 12.0)]
    # one plain retry separates it; the others are untouched and the main random stream is where it was
    assert not torch.allclose(frac2[0, 0], frac2[0, 1])
    assert evals2.tolist() == [STEPS * 5, STEPS, STEPS, STEPS]
    assert calls2 == calls0 + [(1, 0.0)]
    torch.testing.assert_close(frac2[1:], frac0[1:], rtol=0, atol=0)
    assert torch.equal(state2, state0)

