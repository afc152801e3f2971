"""Evaluation metrics for generated crystals (CDVAE protocol): validity, property distributions, coverage,
uniqueness and novelty; `evaluate_samples` runs them all on one model's samples (docs/evaluation.md). Names load
their submodule on first use; the coverage function is `autoperi.metrics.coverage.coverage` (the package
attribute `coverage` is that submodule)."""

from autoperi.lazy import lazy_exports

_EXPORTS = {
    "COVERAGE_CUTOFFS": "coverage",
    "composition_fingerprint": "coverage",
    "load_magpie_scaler": "coverage",
    "structure_fingerprint": "coverage",
    "density_and_nelements": "distributions",
    "frechet_distance": "distributions",
    "lattice_property_matrix": "distributions",
    "wasserstein_property": "distributions",
    "METRIC_KEYS": "evaluate",
    "evaluate_samples": "evaluate",
    "load_samples": "evaluate",
    "match_samples": "fastmatch",
    "MATCHER_TOLERANCES": "matching",
    "composition_coverage": "matching",
    "novelty": "matching",
    "uniqueness": "matching",
    "References": "references",
    "build_references": "references",
    "coverage_family": "references",
    "screen_sample": "samples",
    "structure_key": "samples",
    "composition_validity": "validity",
    "structure_validity": "validity",
    "validity_rates": "validity",
    "validity_table": "validity",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
