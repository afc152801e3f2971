"""Evaluation metrics for generated crystals (CDVAE protocol): validity, property distributions, coverage,
uniqueness and novelty."""

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
from autoperi.metrics.matching import MATCHER_TOLERANCES, composition_coverage, novelty, uniqueness
from autoperi.metrics.validity import composition_validity, structure_validity, validity_rates, validity_table

__all__ = [
    "COVERAGE_CUTOFFS",
    "MATCHER_TOLERANCES",
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
