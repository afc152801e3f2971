"""Reference rows of every evaluation table: oracle (held-out real crystals), memorization (training crystals)
and random (symmetric pyxtal crystals with training compositions). Names load their submodule on first use."""

from autoperi.lazy import lazy_exports

_EXPORTS = {
    "KINDS": "build",
    "build_baseline": "build",
    "oracle_holdout_ids": "build",
    "report_path": "build",
    "samples_path": "build",
    "holdout_ids": "references",
    "memorization_draw": "references",
    "novelty_exclusions": "references",
    "oracle_draw": "references",
    "without_novelty_ids": "references",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
