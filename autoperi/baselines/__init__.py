"""Reference rows of every evaluation table: oracle (held-out real crystals), memorization (training crystals)
and random (symmetric pyxtal crystals with training compositions)."""

from autoperi.baselines.build import KINDS, build_baseline, oracle_holdout_ids, report_path, samples_path
from autoperi.baselines.references import (
    holdout_ids,
    memorization_draw,
    novelty_exclusions,
    oracle_draw,
    without_novelty_ids,
)

__all__ = [
    "KINDS",
    "build_baseline",
    "holdout_ids",
    "memorization_draw",
    "novelty_exclusions",
    "oracle_holdout_ids",
    "oracle_draw",
    "report_path",
    "samples_path",
    "without_novelty_ids",
]
