"""Splits with no reduced composition in two of them (the seed's 70/15/15), seeded and saved as id lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "val", "test")


def composition_split(reduced_formulas: pd.Series, fractions=(0.7, 0.15, 0.15), seed: int = 42) -> pd.Series | None:
    """Assign whole reduced compositions to train/val/test so that no composition spans two splits.

    Compositions are shuffled with `seed`, then filled greedily into the split furthest below its target share of
    structures. Returns a Series of split names aligned with the input, or None when there are fewer than three
    distinct compositions (e.g. Carbon-24: every structure is "C"), where such a split cannot exist.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions {fractions} do not sum to 1")
    counts = reduced_formulas.value_counts(sort=False)
    if len(counts) < 3:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.sort(counts.index.to_numpy()))
    target = np.asarray(fractions) * len(reduced_formulas)
    filled = np.zeros(3)
    assignment = {}
    for formula in order:
        k = int(np.argmax(target - filled))
        assignment[formula] = SPLIT_NAMES[k]
        filled[k] += counts[formula]
    return reduced_formulas.map(assignment)


def write_id_lists(ids: pd.Series, splits: pd.Series, folder: Path, prefix: str) -> dict[str, int]:
    """Write `<prefix>_<split>.txt` (one id a line) for each split present; returns their sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in SPLIT_NAMES + tuple(sorted(set(splits.dropna()) - set(SPLIT_NAMES))):
        chosen = ids[splits == name]
        if len(chosen):
            (folder / f"{prefix}_{name}.txt").write_text("\n".join(chosen.astype(str)) + "\n")
            sizes[name] = int(len(chosen))
    return sizes


def read_id_list(folder: Path, prefix: str, split: str) -> list[str]:
    return (Path(folder) / f"{prefix}_{split}.txt").read_text().split()
