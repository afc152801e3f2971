"""The random reference row: symmetric random crystals from pyxtal with training compositions and atom counts.

Each crystal copies the composition and primitive-cell atom counts of a seeded random training row and takes a
space group drawn from the training set's space-group distribution. Groups whose Wyckoff positions cannot hold
those counts are redrawn (counted as `incompatible`); pyxtal failures are redrawn too (counted as `failed`), and so
are crystals whose random positions happen to have an extra lattice translation, so that their primitive cell holds
fewer atoms than asked (counted as `reduced`). After
`max_group_draws` draws, or once a crystal has used `time_limit_s`, it falls back to P1 (always compatible); a
crystal that fails even there is a bad row: reported, not written, never silently dropped.

Work is split into fixed chunks of `CHUNK` crystals, each with its own numpy generator seeded by (seed, chunk
index), so the output is the same serially and on any number of dask workers.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pymatgen.core import Element, Lattice, Structure

from autoperi.data.preprocess import standardize

CHUNK = 25  # crystals per task; fixed so results do not depend on the number of workers
STANDARDIZE_SYMPREC = 1e-3  # pyxtal positions are exact: a tight tolerance keeps the generated geometry as is


class CellReduced(ValueError):
    """The random crystal has an accidental lattice translation: its primitive cell holds fewer atoms than asked."""


@dataclass(frozen=True)
class RandomSettings:
    seed: int = 0
    max_group_draws: int = 20  # space-group draws before falling back to P1
    time_limit_s: float = 20.0  # soft per-crystal limit: checked between pyxtal calls
    pyxtal_max_count: int = 10  # pyxtal's own attempts per call (placement retries inside one space group)
    volume_factor: float = 1.1  # pyxtal's volume factor over the sum of atomic volumes (its default)


@lru_cache(maxsize=256)
def _group(number: int):
    from pyxtal.symmetry import Group

    return Group(number)


def composition_of(atomic_numbers) -> tuple[list[str], list[int]]:
    """Element symbols (sorted by Z) and their counts in a cell."""
    counts = Counter(int(z) for z in atomic_numbers)
    zs = sorted(counts)
    return [Element.from_Z(z).symbol for z in zs], [counts[z] for z in zs]


def compatible(space_group: int, counts: list[int]) -> bool:
    """Can `space_group`'s Wyckoff positions hold `counts` atoms per primitive cell? pyxtal counts atoms in the
    conventional cell, so the primitive counts are multiplied by the group's centring multiplicity."""
    group = _group(space_group)
    return bool(group.check_compatible([c * group.cellsize() for c in counts])[0])


def pyxtal_crystal(
    species: list[str], counts: list[int], space_group: int, rng: np.random.Generator, settings: RandomSettings
) -> Structure:
    """One random crystal of `space_group` with `counts` atoms per primitive cell, as its standard primitive cell
    (Niggli-reduced, like the processed data). Raises whatever pyxtal raises when it cannot place the atoms."""
    from pyxtal import pyxtal

    crystal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystal.from_random(
            3,
            space_group,
            species,
            counts,
            factor=settings.volume_factor,
            conventional=False,  # counts are per primitive cell; pyxtal multiplies by the centring
            max_count=settings.pyxtal_max_count,
            random_state=rng,  # a Generator advances between pyxtal's attempts (an int would repeat them)
        )
        conventional = crystal.to_pymatgen()
    lattice, frac, numbers, _ = standardize(conventional, STANDARDIZE_SYMPREC)
    if len(numbers) != sum(counts):
        raise CellReduced(f"primitive cell has {len(numbers)} atoms, {sum(counts)} requested")
    return Structure(Lattice(lattice), numbers, frac)


def random_crystal(
    species: list[str],
    counts: list[int],
    group_distribution: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    settings: RandomSettings,
) -> tuple[Structure | None, dict]:
    """A random crystal with this composition, in a space group drawn from `group_distribution` (space-group
    numbers and their probabilities among the training rows). Returns (structure or None, record)."""
    groups, probabilities = group_distribution
    start = time.perf_counter()
    record = {"incompatible": 0, "failed": 0, "reduced": 0, "fallback_p1": False, "error": ""}
    for draw in range(settings.max_group_draws + 1):
        out_of_time = time.perf_counter() - start > settings.time_limit_s
        if draw == settings.max_group_draws or out_of_time:
            group, record["fallback_p1"] = 1, True
        else:
            group = int(rng.choice(groups, p=probabilities))
            if not compatible(group, counts):
                record["incompatible"] += 1
                continue
        try:
            structure = pyxtal_crystal(species, counts, group, rng, settings)
        except Exception as exc:  # pyxtal raises RuntimeError, ValueError, ... when placement fails
            record["reduced" if isinstance(exc, CellReduced) else "failed"] += 1
            record["error"] = f"{type(exc).__name__}: {exc}"[:160]
            if record["fallback_p1"]:
                break
            continue
        record.update(spacegroup=group, wall_s=time.perf_counter() - start, error="")
        return structure, record
    record.update(spacegroup=None, wall_s=time.perf_counter() - start)
    return None, record


def training_pool(table: pd.DataFrame) -> dict:
    """What the random crystals copy from the training split: ids, compositions and the space-group
    distribution (numbers, probabilities)."""
    train = table[table["split"] == "train"]
    if len(train) == 0:
        raise ValueError("random baseline: the table has no train rows")
    groups, counts = np.unique(train["spacegroup"].astype(int).to_numpy(), return_counts=True)
    return {
        "ids": train["id"].astype(str).tolist(),
        "compositions": [composition_of(z) for z in train["atomic_numbers"]],
        "group_distribution": (groups, counts / counts.sum()),
    }


def chunk_tasks(pool: dict, n: int, settings: RandomSettings) -> list[tuple]:
    """The fixed chunking of n crystals into small picklable tasks for `random_chunk`: each carries its own
    seeded training rows (id, species, counts) and the space-group distribution, not the whole pool."""
    tasks = []
    for chunk_index in range((n + CHUNK - 1) // CHUNK):
        size = min(CHUNK, n - chunk_index * CHUNK)
        rows = np.random.default_rng([settings.seed, 3, chunk_index]).integers(len(pool["ids"]), size=size)
        picked = [(pool["ids"][r], *pool["compositions"][r]) for r in rows]
        tasks.append((chunk_index, picked, pool["group_distribution"], settings))
    return tasks


def random_chunk(task: tuple) -> list[tuple[Structure | None, dict]]:
    """The crystals of one chunk (one dask task): seeded by (seed, chunk index)."""
    chunk_index, picked, group_distribution, settings = task
    rng = np.random.default_rng([settings.seed, 2, chunk_index])
    out = []
    for k, (source_id, species, counts) in enumerate(picked):
        structure, record = random_crystal(species, counts, group_distribution, rng, settings)
        record.update(
            index=chunk_index * CHUNK + k,
            source_id=source_id,
            formula="".join(f"{s}{c}" for s, c in zip(species, counts, strict=True)),
            n_atoms=int(sum(counts)),
        )
        out.append((structure, record))
    return out


def summarize(records: list[dict], wall_s: float, n_built_now: int | None = None) -> dict:
    """Counts for the report: crystals written, bad rows, redraws, P1 fallbacks, timings. `n_built_now`: crystals
    built in the `wall_s` of this run (fewer than all when earlier chunks were resumed from disk)."""
    ok = [r for r in records if r["spacegroup"] is not None]
    per_crystal = np.array([r["wall_s"] for r in records]) if records else np.zeros(0)
    return {
        "n_requested": len(records),
        "n_written": len(ok),
        "n_failed_rows": len(records) - len(ok),
        "failed_rows": [
            {"index": r["index"], "source_id": r["source_id"], "formula": r["formula"], "error": r["error"]}
            for r in records
            if r["spacegroup"] is None
        ],
        "retries_incompatible_group": int(sum(r["incompatible"] for r in records)),
        "retries_pyxtal_failed": int(sum(r["failed"] for r in records)),
        "retries_cell_reduced": int(sum(r["reduced"] for r in records)),
        "fallback_p1": int(sum(r["fallback_p1"] for r in records)),
        "wall_s": round(wall_s, 2),
        "crystals_per_s": round((len(ok) if n_built_now is None else n_built_now) / wall_s, 3) if wall_s > 0 else None,
        "per_crystal_s_median": round(float(np.median(per_crystal)), 4) if len(per_crystal) else None,
        "per_crystal_s_max": round(float(per_crystal.max()), 3) if len(per_crystal) else None,
        # The time limit is checked between pyxtal calls, so one call can overrun it: name the slowest crystals.
        "slowest": [
            {k: r.get(k) for k in ("index", "source_id", "formula", "spacegroup", "wall_s")}
            for r in sorted(records, key=lambda r: -r["wall_s"])[:5]
        ],
    }
