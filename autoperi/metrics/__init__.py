"""Evaluation metrics for generated crystals (CDVAE protocol): validity, property distributions, coverage,
uniqueness and novelty; `evaluate_samples` runs them all on one model's samples (docs/evaluation.md)."""

from autoperi.metrics.coverage import (
    COVERAGE_CUTOFFS,
    composition_fingerprint,
    coverage,
    load_magpie_scaler,
    structure_fingerprint,
)
from autoperi.metrics.distributions import (
    density_and_nelements,
    frechet_distance,
    lattice_property_matrix,
    wasserstein_property,
)
from autoperi.metrics.evaluate import METRIC_KEYS, evaluate_samples, load_samples
from autoperi.metrics.fastmatch import match_samples
from autoperi.metrics.matching import MATCHER_TOLERANCES, composition_coverage, novelty, uniqueness
from autoperi.metrics.references import References, build_references, coverage_family
from autoperi.metrics.samples import screen_sample, structure_key
from autoperi.metrics.validity import composition_validity, structure_validity, validity_rates, validity_table

__all__ = [
    "COVERAGE_CUTOFFS",
    "MATCHER_TOLERANCES",
    "METRIC_KEYS",
    "References",
    "build_references",
    "coverage_family",
    "evaluate_samples",
    "load_samples",
    "match_samples",
    "screen_sample",
    "structure_key",
    "composition_coverage",
    "composition_fingerprint",
    "composition_validity",
    "coverage",
    "density_and_nelements",
    "frechet_distance",
    "lattice_property_matrix",
    "load_magpie_scaler",
    "novelty",
    "structure_fingerprint",
    "structure_validity",
    "uniqueness",
    "validity_rates",
    "validity_table",
    "wasserstein_property",
]
