"""Structural and compositional validity of generated crystals (CDVAE evaluation protocol).

CDVAE (Xie et al., ICLR 2022) counts a crystal as valid when it is valid both structurally (no two atoms closer
than 0.5 Å, cell volume >= 0.1 Å³) and compositionally (charge neutral under SMACT oxidation states with anions
more electronegative than cations, or all metals).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from functools import lru_cache, reduce
from math import gcd

import numpy as np
import pandas as pd
import smact
from pymatgen.core import Composition, Structure
from smact.screening import pauling_test

from autoperi.graphs.neighbors import min_pair_distance

OXIDATION_STATE_SETS = ("default", "smact14")
# Above this many oxidation-state assignments (product over elements of their state counts) a composition is counted
# invalid instead of enumerated: real compositions stay far below it (5 elements x 8 states = 32,768), while an
# untrained generator's 10-element cells would take hours (CDVAE's loop has no such bound and hangs on them).
MAX_OXIDATION_ASSIGNMENTS = 1_000_000


def structure_validity(structure: Structure, cutoff_angstrom: float = 0.5, min_volume_angstrom3: float = 0.1) -> bool:
    """True iff every interatomic distance is >= `cutoff_angstrom` (Å) and the cell volume is >= `min_volume_angstrom3`.

    Distances include all periodic images, also an atom and its own image (so a lattice vector shorter than the
    cutoff makes a one-atom cell invalid). CDVAE used pymatgen's `distance_matrix` with its diagonal masked, which
    only compares distinct sites, so it never flags an atom too close to its own image.
    """
    if structure.volume < min_volume_angstrom3:
        return False
    if len(structure) == 0:
        return False
    shortest = min_pair_distance(structure.frac_coords, structure.lattice.matrix, probe_angstrom=cutoff_angstrom)
    return bool(shortest >= cutoff_angstrom)


@lru_cache(maxsize=256)
def _element_data(symbol: str, oxidation_state_set: str) -> tuple[tuple[int, ...], float | None]:
    """(oxidation states, Pauling electronegativity) of one element from SMACT's tables; no states if unknown."""
    try:
        element = smact.Element(symbol)
    except (KeyError, NameError):
        return (), None
    states = element.oxidation_states if oxidation_state_set == "default" else element.oxidation_states_smact14
    return tuple(states or ()), element.pauling_eneg


def _integer_counts(composition: Composition) -> dict[str, int]:
    counts = {}
    for element, amount in composition.element_composition.items():
        if abs(amount - round(amount)) > 1e-6 or round(amount) <= 0:
            raise ValueError(f"composition {composition} has a non-integer amount of {element}: {amount}")
        counts[element.symbol] = int(round(amount))
    return counts


def composition_validity(composition: Composition | str, oxidation_state_set: str = "default") -> bool:
    """CDVAE's SMACT validity of a composition with integer element counts.

    Protocol (CDVAE's `smact_validity`, written for SMACT 4):
      1. counts n_i are divided by their gcd;
      2. a single element is valid; a composition made only of elements in `smact.metals` is valid (alloy);
      3. otherwise valid iff some assignment q_i, one oxidation state per element drawn from that element's SMACT
         list, is charge neutral, sum_i n_i q_i == 0 (exact integer test), and passes
         `smact.screening.pauling_test(q, electronegativities)` (every cation strictly less electronegative than
         every anion). If an element has no Pauling electronegativity the test counts as passed, as in CDVAE
         (old SMACT raised TypeError there, which CDVAE caught as "okay"; SMACT 4 returns False instead).

    CDVAE called `neutral_ratios(q, stoichs=[(n_i,)], threshold=max(n))`; with `stoichs` given the threshold is
    unused and the only ratio tried is the gcd-reduced counts themselves, so that call is exactly the test in 3.
    More than `MAX_OXIDATION_ASSIGNMENTS` assignments to try (only seen for many-element, untrained-model
    compositions) counts as invalid rather than being enumerated.
    An element with no oxidation states (noble gases He, Ne, Ar, Rn; Pm, At, Fr, Ra, Es-Lr in SMACT 4's default
    list) makes a non-alloy composition invalid.

    oxidation_state_set: "default" is `smact.Element(sym).oxidation_states` (the ICSD-2024 list in SMACT >= 3);
    "smact14" is `oxidation_states_smact14`, the list SMACT 2.x used as its default when CDVAE was published.
    """
    if oxidation_state_set not in OXIDATION_STATE_SETS:
        raise ValueError(f"oxidation_state_set must be one of {OXIDATION_STATE_SETS}, got {oxidation_state_set!r}")
    if isinstance(composition, str):
        composition = Composition(composition)
    counts = _integer_counts(composition)
    if not counts:
        return False
    symbols = sorted(counts)
    divisor = reduce(gcd, counts.values())
    stoichs = [counts[s] // divisor for s in symbols]
    if len(symbols) == 1:
        return True
    if all(s in smact.metals for s in symbols):
        return True

    data = [_element_data(s, oxidation_state_set) for s in symbols]
    if math.prod(len(ox) for ox, _ in data) > MAX_OXIDATION_ASSIGNMENTS:
        return False
    electronegativities = [eneg for _, eneg in data]
    eneg_missing = any(eneg is None for eneg in electronegativities)
    for states in itertools.product(*(ox for ox, _ in data)):
        if sum(n * q for n, q in zip(stoichs, states, strict=True)) != 0:
            continue
        if eneg_missing or pauling_test(states, electronegativities):
            return True
    return False


def validity_table(structures: Iterable[Structure], cutoff_angstrom: float = 0.5) -> pd.DataFrame:
    """One row per structure: `struct_valid`, `comp_valid` (default SMACT list) and `valid` (both)."""
    rows = []
    for structure in structures:
        struct_ok = structure_validity(structure, cutoff_angstrom=cutoff_angstrom)
        comp_ok = composition_validity(structure.composition)
        rows.append((struct_ok, comp_ok, struct_ok and comp_ok))
    return pd.DataFrame(rows, columns=["struct_valid", "comp_valid", "valid"], dtype=bool)


def validity_rates(table: pd.DataFrame) -> dict[str, float]:
    """Percentages (0-100) of valid rows per column of a `validity_table`."""
    return {column: 100.0 * float(np.mean(table[column])) if len(table) else float("nan") for column in table}
