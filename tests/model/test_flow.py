"""LatentFlow and its splines: exact inverse, log-determinant against autograd, the circle's seam, normalisation,
and a short conditional fit that has to find each condition's clusters."""

from __future__ import annotations

import math

import pytest
import torch

from autoperi.model.flow import LatentFlow
from autoperi.model.splines import circular_rq_spline, tailed_rq_spline, wrap_angle

PI = math.pi


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wrapped_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return wrap_angle(a - b).abs()


def random_flow(gauss_dim=3, torus_dim=3, n_conditions=4, context_dim=2, scale=1.0, seed=0) -> LatentFlow:
    """A flow well away from its identity initialisation: the zero-initialised output layers redrawn, so spline
    bins, slopes, scales, shifts and rotations are all O(scale) and depend on the inputs."""
    torch.manual_seed(seed)
    flow = LatentFlow(
        gauss_dim, torus_dim, n_conditions, n_layers=6, hidden_dim=16, n_bins=6, cond_dim=4, context_dim=context_dim
    ).double()
    with torch.no_grad():
        for layer in flow.layers:
            layer.net[-1].weight.normal_(0.0, scale / 4.0)  # hidden_dim 16: output std ~ scale
            layer.net[-1].bias.normal_(0.0, scale)
    return flow


def random_inputs(flow: LatentFlow, n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    u_g = 1.5 * torch.randn(n, flow.gauss_dim, generator=g, dtype=torch.float64)
    u_t = (2 * torch.rand(n, flow.torus_dim, generator=g, dtype=torch.float64) - 1) * PI
    cond = torch.randint(0, flow.n_conditions, (n,), generator=g)
    context = torch.randn(n, flow.context_dim, generator=g, dtype=torch.float64) if flow.context_dim else None
    return u_g, u_t, cond, context


def test_starts_as_identity():
    flow = LatentFlow(3, 3, 7).double()
    u_g, u_t, cond, _ = random_inputs(flow, 20)
    z_g, z_t, log_det = flow(u_g, u_t, cond)
    assert torch.allclose(z_g, u_g, atol=1e-12) and torch.allclose(z_t, u_t, atol=1e-12)
    assert log_det.abs().max() < 1e-12


@pytest.mark.parametrize(
    ("gauss_dim", "torus_dim", "context_dim"), [(3, 3, 2), (4, 3, 0), (0, 2, 1), (2, 0, 0), (1, 1, 0)]
)
def test_inverse_is_exact(gauss_dim, torus_dim, context_dim):
    flow = random_flow(gauss_dim, torus_dim, context_dim=context_dim)
    u_g, u_t, cond, context = random_inputs(flow, 256)
    z_g, z_t, log_det_forward = flow(u_g, u_t, cond, context)
    assert wrapped_difference(torch.cat([z_g, z_t], -1), torch.cat([u_g, u_t], -1)).mean() > 0.2  # not the identity
    back_g, back_t, log_det_inverse = flow.inverse(z_g, z_t, cond, context)
    errors = torch.cat([(back_g - u_g).abs(), wrapped_difference(back_t, u_t)], dim=-1)  # angles: on the circle
    assert errors.max() <= 1e-5
    assert (log_det_forward + log_det_inverse).abs().max() <= 1e-6


def test_inverse_is_accurate_in_float32():
    flow = random_flow(3, 3, context_dim=2, scale=0.5).float()
    u_g, u_t, cond, context = (t.float() if t.is_floating_point() else t for t in random_inputs(flow, 4096))
    with torch.no_grad():
        z_g, z_t, log_det_forward = flow(u_g, u_t, cond, context)
        back_g, back_t, log_det_inverse = flow.inverse(z_g, z_t, cond, context)
    assert z_g.dtype == torch.float32 and log_det_forward.abs().mean() > 1.0
    errors = torch.cat([(back_g - u_g).abs(), wrapped_difference(back_t, u_t)], dim=-1)
    assert errors.max() <= 1e-4 and (log_det_forward + log_det_inverse).abs().max() <= 1e-3


def full_map(flow, cond, context, inverse):
    """(x_g, x_t) concatenated -> output concatenated, one sample, for autograd's Jacobian."""

    def f(x):
        x = x[None]
        a, b = x[:, : flow.gauss_dim], x[:, flow.gauss_dim :]
        out = (flow.inverse if inverse else flow)(a, b, cond[None], None if context is None else context[None])
        return torch.cat(out[:2], dim=-1)[0]

    return f


@pytest.mark.parametrize("inverse", [False, True])
def test_log_det_matches_autograd_jacobian(inverse):
    flow = random_flow(3, 3, context_dim=2)
    x_g, x_t, cond, context = random_inputs(flow, 6, seed=3)
    _, _, log_det = (flow.inverse if inverse else flow)(x_g, x_t, cond, context)
    for i in range(len(cond)):
        x = torch.cat([x_g[i], x_t[i]])
        jacobian = torch.autograd.functional.jacobian(full_map(flow, cond[i], context[i], inverse), x)
        assert jacobian.shape == (6, 6)
        _, log_abs_det = torch.linalg.slogdet(jacobian)
        assert abs(log_abs_det.item() - log_det[i].item()) < 1e-7, i
    assert log_det.abs().min() > 1e-2  # not trivially zero


def test_torus_outputs_stay_on_torus_even_at_the_seam():
    flow = random_flow(2, 3, context_dim=0, scale=1.0)
    edges = torch.tensor(
        [-PI, PI, math.nextafter(PI, 0.0), math.nextafter(-PI, 0.0), 3 * PI, -7.5], dtype=torch.float64
    )
    u_t = edges[torch.randint(0, len(edges), (512, 3), generator=torch.Generator().manual_seed(0))]
    u_g = torch.randn(512, 2, dtype=torch.float64)
    cond = torch.randint(0, 4, (512,))
    for dtype in (torch.float64, torch.float32):
        flow_d = flow.to(dtype)
        for direction in (flow_d.forward, flow_d.inverse):
            _, z_t, log_det = direction(u_g.to(dtype), u_t.to(dtype), cond)
            assert ((z_t >= -PI) & (z_t < PI)).all() and torch.isfinite(log_det).all()
    sampled_g, sampled_t = flow.double().sample(2000, 1, generator=torch.Generator().manual_seed(0))
    assert ((sampled_t >= -PI) & (sampled_t < PI)).all() and torch.isfinite(sampled_g).all()


def test_flow_is_continuous_across_the_seam():
    """u_t = -pi and u_t -> pi from below are one point of the circle: same output and same log-determinant."""
    flow = random_flow(2, 2, context_dim=0, scale=1.0)
    u_g = torch.randn(64, 2, dtype=torch.float64)
    cond = torch.randint(0, 4, (64,))
    for dim in range(2):
        at_minus = (2 * torch.rand(64, 2, dtype=torch.float64) - 1) * PI
        below_plus = at_minus.clone()
        at_minus[:, dim], below_plus[:, dim] = -PI, PI - 1e-9
        for direction in (flow.forward, flow.inverse):
            g1, t1, ld1 = direction(u_g, at_minus, cond)
            g2, t2, ld2 = direction(u_g, below_plus, cond)
            assert (g1 - g2).abs().max() < 1e-6 and wrapped_difference(t1, t2).max() < 1e-6
            assert (ld1 - ld2).abs().max() < 1e-6


def test_circular_spline_matches_value_and_slope_at_the_ends():
    torch.manual_seed(0)
    widths, heights, derivatives = (torch.randn(50, 1, 7, dtype=torch.float64) for _ in range(3))
    ends = torch.tensor([-PI, PI], dtype=torch.float64).expand(50, 2)
    values, log_slopes = circular_rq_spline(
        ends, widths.expand(50, 2, 7), heights.expand(50, 2, 7), derivatives.expand(50, 2, 7)
    )
    assert torch.allclose(values, ends, atol=1e-12)  # ends are fixed points, so -pi and pi glue together
    assert torch.allclose(log_slopes[:, 0], log_slopes[:, 1], atol=1e-12)  # same slope from both sides
    # the returned slope is autograd's one-sided derivative at each end (bin 0 at -pi, bin K - 1 at pi)
    points = ends.clone().requires_grad_(True)
    out, _ = circular_rq_spline(points, widths.expand(50, 2, 7), heights.expand(50, 2, 7), derivatives.expand(50, 2, 7))
    (slopes,) = torch.autograd.grad(out.sum(), points)
    assert torch.allclose(slopes.log(), log_slopes, atol=1e-10)
    # and everywhere else
    points = ((2 * torch.rand(50, 2, dtype=torch.float64) - 1) * PI).requires_grad_(True)
    out, log_slopes_inside = circular_rq_spline(
        points, widths.expand(50, 2, 7), heights.expand(50, 2, 7), derivatives.expand(50, 2, 7)
    )
    (slopes,) = torch.autograd.grad(out.sum(), points)
    assert torch.allclose(slopes.log(), log_slopes_inside, atol=1e-10)
    assert (log_slopes.exp() - 1).abs().max() > 0.1  # end slopes really were randomised away from 1


def test_tailed_spline_is_monotonic_and_identity_outside():
    torch.manual_seed(1)
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None]
    params = [torch.randn(1, 1, 5, dtype=torch.float64).expand(4001, 1, 5) for _ in range(2)]
    derivatives = torch.randn(1, 1, 4, dtype=torch.float64).expand(4001, 1, 4)
    y, log_slope = tailed_rq_spline(x, *params, derivatives, bound=5.0)
    assert (y.diff(dim=0) > 0).all()
    outside = x.abs() > 5
    assert torch.equal(y[outside], x[outside]) and (log_slope[outside] == 0).all()
    back, log_slope_back = tailed_rq_spline(y, *params, derivatives, bound=5.0, inverse=True)
    assert (back - x).abs().max() < 1e-10 and (log_slope + log_slope_back).abs().max() < 1e-10
    x.requires_grad_(True)
    y, log_slope = tailed_rq_spline(x, *params, derivatives, bound=5.0)
    (slope,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(slope.log(), log_slope, atol=1e-10)
    assert (log_slope.abs() > 0.1).float().mean() > 0.3  # the spline is far from the identity inside


@pytest.mark.parametrize(("gauss_dim", "tolerance"), [(0, 1e-4), (1, 1e-2)])
def test_density_integrates_to_one(gauss_dim, tolerance):
    """Riemann sum of exp(log_prob) over [-pi, pi) (times x in [-10, 10] for the Gaussian dim), per condition and
    context; the grids resolve the density of a moderately deformed flow (peakier ones need finer grids)."""
    flow = random_flow(gauss_dim, 1, n_conditions=3, context_dim=1, scale=0.3)
    n_angles = 4000 if gauss_dim == 0 else 360
    angles = torch.linspace(-PI, PI, n_angles + 1, dtype=torch.float64)[:-1]
    for cond in range(3):
        if gauss_dim == 0:
            z_g, z_t, cell = torch.zeros(n_angles, 0, dtype=torch.float64), angles[:, None], 2 * PI / n_angles
        else:
            grid_g, grid_t = torch.meshgrid(torch.linspace(-10, 10, 201, dtype=torch.float64), angles, indexing="ij")
            z_g, z_t, cell = grid_g.reshape(-1, 1), grid_t.reshape(-1, 1), (2 * PI / n_angles) * 0.1
        context = torch.full((len(z_t), 1), 0.7 * cond - 0.5, dtype=torch.float64)
        with torch.no_grad():
            log_p = flow.log_prob(z_g, z_t, cond, context)
        total = (log_p.exp().sum() * cell).item()
        assert abs(total - 1.0) < tolerance, (cond, total)
        assert log_p.max() - log_p.min() > 2.0  # the density is not the flat base


def toy_batch(n: int, cond: torch.Tensor, generator: torch.Generator):
    """Condition 0: angles near (1, -2), Gaussian at (-2, 1); condition 1: angles near (-2.8, 2.5) (close to the
    seam), Gaussian at (2, -1). Returns samples and their true log-density."""
    centres_t = torch.tensor([[1.0, -2.0], [-2.8, 2.5]])
    centres_g = torch.tensor([[-2.0, 1.0], [2.0, -1.0]])
    kappa, sigma = 8.0, 0.5
    von_mises = torch.distributions.VonMises(centres_t[cond], torch.full((n, 2), kappa))
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))  # VonMises samples from the global RNG
    z_t = wrap_angle(von_mises.sample())
    z_g = centres_g[cond] + sigma * torch.randn(n, 2, generator=generator)
    normal = torch.distributions.Normal(centres_g[cond], sigma)
    true_log_p = von_mises.log_prob(z_t).sum(-1) + normal.log_prob(z_g).sum(-1)
    return z_g, z_t, true_log_p


def test_short_conditional_fit_finds_each_conditions_clusters():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    flow = LatentFlow(2, 2, n_conditions=2, n_layers=6, hidden_dim=32, n_bins=8, cond_dim=8)
    optimiser = torch.optim.Adam(flow.parameters(), lr=5e-3)
    cond_eval = torch.arange(1000) % 2
    z_g_eval, z_t_eval, true_eval = toy_batch(1000, cond_eval, generator)
    with torch.no_grad():
        nll_before = -flow.log_prob(z_g_eval, z_t_eval, cond_eval).mean().item()
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, 150)
    for _ in range(150):
        cond = torch.randint(0, 2, (128,), generator=generator)
        z_g, z_t, _ = toy_batch(128, cond, generator)
        loss = -flow.log_prob(z_g, z_t, cond).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        nll_after = -flow.log_prob(z_g_eval, z_t_eval, cond_eval).mean().item()
    true_nll = -true_eval.mean().item()
    assert nll_after < nll_before - 4.0, (nll_before, nll_after)
    assert nll_after < true_nll + 0.25, (nll_after, true_nll)  # close to the entropy of the target
    centres_t = torch.tensor([[1.0, -2.0], [-2.8, 2.5]])
    centres_g = torch.tensor([[-2.0, 1.0], [2.0, -1.0]])
    for c in range(2):
        z_g, z_t = flow.sample(2000, c, generator=torch.Generator().manual_seed(c))
        circular_mean = torch.atan2(torch.sin(z_t).mean(0), torch.cos(z_t).mean(0))
        assert wrapped_difference(circular_mean, centres_t[c]).max() < 0.15, (c, circular_mean)
        assert (z_g.mean(0) - centres_g[c]).abs().max() < 0.15, (c, z_g.mean(0))
        # most samples near their own condition's angles, far fewer near the other condition's
        near_own = (wrapped_difference(z_t, centres_t[c]) < 0.8).all(-1).float().mean()
        near_other = (wrapped_difference(z_t, centres_t[1 - c]) < 0.8).all(-1).float().mean()
        assert near_own > 0.8 and near_other < 0.05, (c, near_own, near_other)
