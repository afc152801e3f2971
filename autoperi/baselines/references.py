"""Oracle and memorization reference rows: real crystals submitted as if they had been generated.

- Oracle: held-out crystals of the same distribution as the training set (the val split), scored against the test
  set — the realistic ceiling of every metric. Datasets without a val split (carbon_24, whose train split is CDVAE's
  val) hold out a seeded part of train instead; that part is listed by `novelty_exclusions` so the evaluation can
  take it out of the novelty reference (else the oracle would score 0 % novelty by construction).
- Memorization: training crystals submitted as samples — what copying the training set scores. It must lose on
  novelty, which is why uniqueness and novelty stand next to every CDVAE-protocol column.

Both draw rows with numpy's `default_rng(seed)`: the same seed gives the same ids on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ORACLE_SPLIT = "val"
TRAIN_SPLIT = "train"
HOLDOUT_MAX_FRACTION = 0.5  # at most half of train is held out where there is no val split


@dataclass
class Draw:
    """Rows picked for one baseline, and how (for the report and the extxyz info)."""

    rows: pd.DataFrame
    source_split: str
    n_requested: int
    replacement: bool
    notes: list[str] = field(default_factory=list)


def _split(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["split"] == name]


def holdout_ids(table: pd.DataFrame, n: int, seed: int) -> list[str]:
    """Ids of the seeded part of the train split held out as oracle where the dataset has no val split.

    Size min(n, floor(HOLDOUT_MAX_FRACTION * n_train)); the first ids of a seeded permutation of the train ids
    sorted by id, so the choice does not depend on the table's row order. Empty when a val split exists.
    """
    if len(_split(table, ORACLE_SPLIT)):
        return []
    train_ids = np.sort(_split(table, TRAIN_SPLIT)["id"].astype(str).to_numpy())
    size = min(int(n), int(HOLDOUT_MAX_FRACTION * len(train_ids)))
    order = np.random.default_rng(seed).permutation(len(train_ids))
    return train_ids[order[:size]].tolist()


def novelty_exclusions(table: pd.DataFrame, n: int, seed: int) -> set[str]:
    """Ids the evaluation must drop from the novelty reference (train + val) so that the oracle is not counted as
    a copy of itself: the held-out part of train on datasets without a val split, empty otherwise."""
    return set(holdout_ids(table, n, seed))


def _sample(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, bool]:
    """n rows without replacement when there are enough, else with replacement (True)."""
    if len(rows) == 0:
        raise ValueError("no rows to draw from")
    replace = n > len(rows)
    index = rng.choice(len(rows), size=n, replace=replace)
    return rows.iloc[np.sort(index) if not replace else index], replace


def oracle_draw(table: pd.DataFrame, n: int, seed: int) -> Draw:
    """n val rows (seeded, without replacement); all of val when it has fewer than n rows; a seeded held-out part
    of train when there is no val split."""
    val = _split(table, ORACLE_SPLIT)
    notes = []
    if len(val) == 0:
        ids = holdout_ids(table, n, seed)
        rows = table[table["id"].astype(str).isin(ids)]
        notes.append(
            f"no {ORACLE_SPLIT} split: held out {len(rows)} of {len(_split(table, TRAIN_SPLIT))} train rows "
            f"(seed {seed}, at most {HOLDOUT_MAX_FRACTION:.0%} of train); memorization draws from the rest and the "
            "evaluation should drop these ids from the novelty reference (novelty_exclusions)"
        )
        source = f"{TRAIN_SPLIT}-holdout"
    elif len(val) <= n:
        rows = val
        source = ORACLE_SPLIT
    else:
        rows, _ = _sample(val, n, np.random.default_rng(seed))
        source = ORACLE_SPLIT
    if len(rows) < n:
        notes.append(f"{len(rows)} rows available, fewer than the {n} requested: all of them are used")
    return Draw(rows=rows, source_split=source, n_requested=n, replacement=False, notes=notes)


def memorization_draw(table: pd.DataFrame, n: int, seed: int) -> Draw:
    """n train rows (seeded; with replacement only when train has fewer than n rows), excluding the oracle
    hold-out on datasets without a val split."""
    train = _split(table, TRAIN_SPLIT)
    excluded = novelty_exclusions(table, n, seed)
    notes = []
    if excluded:
        train = train[~train["id"].astype(str).isin(excluded)]
        notes.append(f"{len(excluded)} train rows held out for the oracle are not drawn")
    # A seed different from the oracle's so the two draws are not correlated where they share a split.
    rows, replace = _sample(train, n, np.random.default_rng([seed, 1]))
    if replace:
        notes.append(f"train has {len(train)} rows, fewer than the {n} requested: drawn with replacement")
    return Draw(rows=rows, source_split=TRAIN_SPLIT, n_requested=n, replacement=replace, notes=notes)


def without_novelty_ids(references, ids):
    """A copy of `references` (autoperi.metrics.references.References) whose novelty reference (its train rows,
    and their fingerprints where kept) lacks `ids`: the oracle's hold-out on datasets without a val split."""
    import dataclasses

    drop = set(map(str, ids))
    keep = ~references.train["id"].astype(str).isin(drop).to_numpy()
    changes = {
        "train": references.train[keep].reset_index(drop=True),
        "details": {**references.details, "novelty_reference_excluded_ids": int((~keep).sum())},
    }
    # Per-train-row arrays (e.g. fingerprints for a pre-filter), when the References of the day carry any.
    for f in dataclasses.fields(references):
        value = getattr(references, f.name)
        if f.name.startswith("train_") and isinstance(value, np.ndarray) and len(value) == len(keep):
            changes[f.name] = value[keep]
    return dataclasses.replace(references, **changes)
