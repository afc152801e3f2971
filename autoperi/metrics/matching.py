"""Uniqueness, novelty and composition coverage of generated crystals, by pymatgen's StructureMatcher.

Two structures are the same crystal when `StructureMatcher(**tolerances).fit` says so. The matcher compares
primitive cells (`primitive_cell=True`) after scaling both to the same volume per atom (`scale=True`), so cell
setting, origin, site order, rotation and isotropic strain do not matter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

# ltol: fractional length tolerance, stol: site tolerance (fraction of (V/n)^(1/3)), angle_tol: degrees.
MATCHER_TOLERANCES: dict[str, dict[str, float]] = {
    "cdvae": dict(ltol=0.3, stol=0.5, angle_tol=10),
    "mattergen": dict(ltol=0.2, stol=0.3, angle_tol=5),
}


def _matcher(tolerances: str | Mapping[str, float]) -> StructureMatcher:
    tol = MATCHER_TOLERANCES[tolerances] if isinstance(tolerances, str) else dict(tolerances)
    return StructureMatcher(**tol)


def _formula(item: Structure | Composition | str) -> str:
    if isinstance(item, Structure):
        return item.composition.reduced_formula
    return Composition(item).reduced_formula


def uniqueness(
    structures: Sequence[Structure], tolerances: str | Mapping[str, float] = "cdvae"
) -> tuple[float, list[int]]:
    """(percent of distinct structures, labels), labels[i] = index of the structure i duplicates, or i if new.

    Structures are visited in order; each is compared with the representatives (first members) of the distinct
    structures found so far with the same reduced formula, and labelled with the first one it matches. Grouping by
    reduced formula is exact, not a heuristic: StructureMatcher's species comparator rejects pairs whose reduced
    formulas differ before any geometry. No volume pre-filter is used, because `scale=True` makes volume per atom
    irrelevant to a match. uniqueness = number of distinct labels / n * 100.
    """
    if len(structures) == 0:
        raise ValueError("uniqueness needs at least one structure")
    matcher = _matcher(tolerances)
    representatives: dict[str, list[int]] = defaultdict(list)
    labels = list(range(len(structures)))
    for i, structure in enumerate(structures):
        group = representatives[_formula(structure)]
        match = next((j for j in group if matcher.fit(structures[j], structure)), None)
        if match is None:
            group.append(i)
        else:
            labels[i] = match
    return 100.0 * len(set(labels)) / len(structures), labels


def novelty(
    structures: Sequence[Structure],
    reference_structures: Sequence[Structure],
    tolerances: str | Mapping[str, float] = "cdvae",
) -> tuple[float, list[int]]:
    """(percent of structures matching no reference, matched reference index per structure, -1 for novel).

    Each structure is compared, in reference order, with the references of the same reduced formula (exact
    pre-grouping, as in `uniqueness`); the first match is reported. novelty = #(-1) / n * 100.
    """
    if len(structures) == 0:
        raise ValueError("novelty needs at least one structure")
    matcher = _matcher(tolerances)
    by_formula: dict[str, list[int]] = defaultdict(list)
    for j, reference in enumerate(reference_structures):
        by_formula[_formula(reference)].append(j)
    matched = []
    for structure in structures:
        candidates = by_formula.get(_formula(structure), [])
        matched.append(next((j for j in candidates if matcher.fit(reference_structures[j], structure)), -1))
    return 100.0 * matched.count(-1) / len(structures), matched


def composition_coverage(
    generated_compositions: Iterable[Composition | Structure | str],
    reference_compositions: Iterable[Composition | Structure | str],
) -> float:
    """Percent of the distinct reduced formulas of the reference set that occur among the generated ones."""
    reference = {_formula(c) for c in reference_compositions}
    if not reference:
        raise ValueError("composition_coverage needs at least one reference composition")
    generated = {_formula(c) for c in generated_compositions}
    return 100.0 * len(reference & generated) / len(reference)
