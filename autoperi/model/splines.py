"""Monotonic rational-quadratic splines (Durkan et al. 2019), on an interval with linear tails and on the circle.

`rq_spline` is the bare spline on [left, right]; `tailed_rq_spline` is the identity outside [-bound, bound]
(boundary derivatives 1, so the map is C^1 on R); `circular_rq_spline` is a spline on [-pi, pi] whose end
derivatives are one shared value, so it glues into a C^1 diffeomorphism of the circle (Rezende et al. 2020,
"Normalizing flows on tori and spheres", sec. 3.2). Each returns (outputs, log|d out / d in|) elementwise; with
`inverse=True` it maps outputs back and returns the log-derivative of the inverse map.

Unnormalised parameters per element: widths [..., K], heights [..., K], derivatives [..., K + 1] (bare),
[..., K - 1] (tailed: the two ends are fixed to 1) or [..., K] (circular: the two ends share one value).
All zeros gives the identity (equal bins, unit derivatives).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(0 + shift) = 1 - MIN_DERIVATIVE, so an all-zero derivative parameter gives slope exactly 1
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def spline_derivatives(raw: Tensor) -> Tensor:
    """Positive knot derivatives from unconstrained parameters (raw = 0 -> derivative 1)."""
    return MIN_DERIVATIVE + F.softplus(raw + _DERIVATIVE_SHIFT)


def _knots(raw: Tensor, left: float, right: float, min_size: float) -> tuple[Tensor, Tensor]:
    """Knot positions [..., K + 1] from left to right (ends exact) and bin sizes [..., K]."""
    n_bins = raw.shape[-1]
    fractions = min_size + (1.0 - min_size * n_bins) * torch.softmax(raw, dim=-1)
    knots = F.pad(torch.cumsum(fractions, dim=-1), (1, 0))
    knots = left + (right - left) * knots
    knots = torch.cat(
        [torch.full_like(knots[..., :1], left), knots[..., 1:-1], torch.full_like(knots[..., :1], right)], -1
    )
    return knots, knots[..., 1:] - knots[..., :-1]


def rq_spline(
    inputs: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, left: float, right: float, inverse: bool
) -> tuple[Tensor, Tensor]:
    """Monotonic RQ spline on [left, right] onto itself; `derivatives` are the K + 1 positive knot slopes.

    Inputs must lie in [left, right] (the callers clamp or wrap). Returns (outputs, log|derivative|).
    """
    x_knots, bin_widths = _knots(widths, left, right, MIN_BIN_WIDTH)
    y_knots, bin_heights = _knots(heights, left, right, MIN_BIN_HEIGHT)
    search = y_knots if inverse else x_knots
    # bin index = number of interior knots <= input, in 0..K-1
    index = torch.searchsorted(search[..., 1:-1].contiguous(), inputs[..., None].contiguous(), right=True)

    def pick(t: Tensor) -> Tensor:
        return torch.gather(t, -1, index)[..., 0]

    x_k, w_k, y_k, h_k = pick(x_knots), pick(bin_widths), pick(y_knots), pick(bin_heights)
    d_k, d_k1 = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])
    slope = h_k / w_k
    curvature = d_k1 + d_k - 2.0 * slope

    if inverse:
        dy = inputs - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        discriminant = (b.pow(2) - 4.0 * a * c).clamp_min(0.0)
        xi = (2.0 * c / (-b - discriminant.sqrt())).clamp(0.0, 1.0)  # the root in [0, 1], stable form
        outputs = x_k + xi * w_k
    else:
        xi = ((inputs - x_k) / w_k).clamp(0.0, 1.0)
        outputs = y_k + h_k * (slope * xi.pow(2) + d_k * xi * (1.0 - xi)) / (slope + curvature * xi * (1.0 - xi))
    one_minus = 1.0 - xi
    denominator = slope + curvature * xi * one_minus
    numerator = slope.pow(2) * (d_k1 * xi.pow(2) + 2.0 * slope * xi * one_minus + d_k * one_minus.pow(2))
    log_derivative = numerator.log() - 2.0 * denominator.log()  # of the forward map at the (input or output) x
    return outputs, -log_derivative if inverse else log_derivative


def tailed_rq_spline(
    inputs: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """RQ spline on [-bound, bound], identity outside; `derivatives` are the K - 1 interior slopes."""
    ones = torch.ones_like(derivatives[..., :1])
    slopes = torch.cat([ones, spline_derivatives(derivatives), ones], dim=-1)
    inside = (inputs >= -bound) & (inputs <= bound)
    outputs, log_derivative = rq_spline(inputs.clamp(-bound, bound), widths, heights, slopes, -bound, bound, inverse)
    return torch.where(inside, outputs, inputs), torch.where(inside, log_derivative, torch.zeros_like(log_derivative))


def circular_rq_spline(
    inputs: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """RQ spline of the circle: [-pi, pi] onto itself with slope(-pi) = slope(pi); `derivatives` has K values.

    Inputs are angles in [-pi, pi]; the ends are fixed points (-pi -> -pi, pi -> pi), so together with the matching
    end slope the map is a C^1 orientation-preserving diffeomorphism of the circle. Outputs lie in [-pi, pi].
    """
    slopes = spline_derivatives(derivatives)
    slopes = torch.cat([slopes, slopes[..., :1]], dim=-1)
    return rq_spline(inputs.clamp(-math.pi, math.pi), widths, heights, slopes, -math.pi, math.pi, inverse)


def wrap_angle(angles: Tensor) -> Tensor:
    """Angles wrapped into [-pi, pi) (never exactly +pi, also where float rounding of remainder gives 2 pi)."""
    wrapped = torch.remainder(angles + math.pi, 2.0 * math.pi) - math.pi
    return torch.where(wrapped >= math.pi, wrapped - 2.0 * math.pi, wrapped)
