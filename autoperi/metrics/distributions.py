"""Distribution-level metrics: 1-D Wasserstein distances of properties and the Fréchet distance of feature sets.

CDVAE reports the earth mover's (1-Wasserstein) distance between the density (g/cm³) and the number-of-elements
distributions of generated and reference crystals; the Fréchet distance compares whole property vectors, as FID does
for images.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from scipy.linalg import LinAlgWarning, sqrtm
from scipy.stats import wasserstein_distance


def wasserstein_property(generated_values: Iterable[float], reference_values: Iterable[float]) -> float:
    """1-Wasserstein distance between two empirical 1-D distributions (same units as the values).

    Uses `scipy.stats.wasserstein_distance` with equal weights; non-finite values are dropped first (CDVAE computes
    it over valid generated crystals only, so callers should pass those).
    """
    gen = np.asarray(list(generated_values), dtype=float)
    ref = np.asarray(list(reference_values), dtype=float)
    gen, ref = gen[np.isfinite(gen)], ref[np.isfinite(ref)]
    if gen.size == 0 or ref.size == 0:
        raise ValueError("wasserstein_property needs at least one finite value on each side")
    return float(wasserstein_distance(gen, ref))


def density_and_nelements(structures: Iterable[Structure]) -> pd.DataFrame:
    """Columns `density` (g/cm³, `Structure.density`) and `n_elements` (number of distinct elements)."""
    rows = [(float(s.density), len(s.composition.elements)) for s in structures]
    return pd.DataFrame(rows, columns=["density", "n_elements"]).astype({"density": float, "n_elements": int})


def _as_samples(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be [n >= 2, d] samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def frechet_distance(x_generated: np.ndarray, x_reference: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two sample sets [n, d] and [m, d] (squared feature units).

    F = ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), with mu the sample means, S the unbiased sample covariances
    (`np.cov`, ddof=1) and (S1 S2)^{1/2} from `scipy.linalg.sqrtm`, of which only the real part is kept (round-off
    can leave tiny imaginary parts). If that square root is not finite (near-singular covariances), it is recomputed
    as sqrtm((S1 + eps I)(S2 + eps I)). 1-D inputs are treated as d = 1. For d = 1 this is (m1 - m2)² + (s1 - s2)².
    Round-off can make F slightly negative (about -1e-15) for identical sets; it is not clipped.
    """
    x1 = _as_samples(x_generated, "x_generated")
    x2 = _as_samples(x_reference, "x_reference")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"feature dimensions differ: {x1.shape[1]} vs {x2.shape[1]}")
    mu1, mu2 = x1.mean(axis=0), x2.mean(axis=0)
    s1 = np.atleast_2d(np.cov(x1, rowvar=False))
    s2 = np.atleast_2d(np.cov(x2, rowvar=False))
    # Constant features (e.g. all angles 90 degrees in a cubic set) make S singular; scipy then warns, though the
    # root of a PSD product stays well defined; the eps fallback covers results that are not finite.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        covmean = sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            offset = eps * np.eye(s1.shape[0])
            covmean = sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


LATTICE_PROPERTY_COLUMNS = ("a", "b", "c", "alpha", "beta", "gamma", "volume_per_atom")


def lattice_property_matrix(
    structures: Sequence[Structure], formation_energies: Sequence[float] | None = None
) -> np.ndarray:
    """Rows [formation energy (if given), a, b, c (Å), alpha, beta, gamma (degrees), volume per atom (Å³)].

    Lattice parameters are those of the cell as stored (no reduction), so callers comparing sets should pass cells
    in one convention (e.g. Niggli-reduced). Returns [n, 8] with formation energies, [n, 7] without.
    """
    rows = [[*s.lattice.abc, *s.lattice.angles, s.volume / len(s)] for s in structures]
    matrix = np.asarray(rows, dtype=float).reshape(len(rows), len(LATTICE_PROPERTY_COLUMNS))
    if formation_energies is None:
        return matrix
    energies = np.asarray(formation_energies, dtype=float)
    if energies.shape != (len(rows),):
        raise ValueError(f"need one formation energy per structure, got {energies.shape} for {len(rows)}")
    return np.column_stack([energies, matrix])
