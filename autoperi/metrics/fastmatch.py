"""Uniqueness and novelty of many samples at once: exactly the answers of `matching.uniqueness` /
`matching.novelty`, computed group by group and fanned out with dask.

Exact pre-filters (a pair in different groups is never passed to StructureMatcher.fit, because fit would say no):
1. reduced formula: the matcher's species comparator rejects pairs whose reduced formulas differ;
2. number of sites of the matcher's own Niggli-reduced primitive cell (`samples.matcher_primitive_sites`): without
   `attempt_supercell`, fit returns False when the reduced cells have different site counts. For carbon, where
   every formula is "C", this is the filter that splits the references into ~12 groups.
Speed-up without changing answers: every structure is reduced once (`StructureMatcher._get_reduced_structure`, what
fit does on each call) and pairs are fitted with `skip_structure_reduction=True` (3-5x faster per pair on
carbon_24, identical results; tests/metrics/test_evaluate.py compares with the brute-force functions).
A fingerprint-distance pre-filter was measured and rejected: with CDVAE's tolerances, matching carbon_24 pairs lie
up to 2.05 apart in CrystalNN-fingerprint space, beyond the median distance of non-matching pairs (0.72), so it
would change the answer (docs/evaluation.md).

Within a group, samples are visited in input order and compared with earlier representatives / references in their
original order, so labels and matched reference indices are those of the brute-force functions.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher

from autoperi.metrics.matching import MATCHER_TOLERANCES, _matcher
from autoperi.parallel import fan_out

# Tasks are packed to roughly this many candidate pairs, so that dask gets neither one huge nor 10^4 tiny tasks.
PAIRS_PER_TASK = 4000


def _reduced(structure):
    """The cell StructureMatcher.fit compares (Niggli, then primitive), computed once per structure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StructureMatcher._get_reduced_structure(structure, True, True)


def _match_task(payload) -> dict:
    """One task: several groups; per tolerance, uniqueness labels and the first matching reference of each sample."""
    from autoperi.data.preprocess import record_to_structure

    groups, tolerances = payload
    reduced = [
        (
            [(i, _reduced(s)) for i, s in group["samples"]],
            [(j, _reduced(record_to_structure(rec))) for j, rec in group["references"]],
        )
        for group in groups
    ]
    out = {}
    for tol in tolerances:
        matcher = _matcher(tol)

        def fit(a, b, matcher=matcher):
            return matcher.fit(a, b, skip_structure_reduction=True)

        labels, matched = {}, {}
        for samples, references in reduced:
            representatives = []
            for i, structure in samples:
                label = next((r for r, rs in representatives if fit(rs, structure)), None)
                if label is None:
                    representatives.append((i, structure))
                    label = i
                labels[i] = label
                matched[i] = next((j for j, ref in references if fit(ref, structure)), -1)
        out[tol] = (labels, matched)
    return out


def match_samples(
    structures: Sequence,
    group_keys: Sequence,
    reference_records: Sequence[dict],
    reference_group_keys: Sequence,
    tolerances: Sequence[str] = tuple(MATCHER_TOLERANCES),
    client=None,
    desc: str | None = None,
    sample_keys: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, dict[str, list[int]]]:
    """Uniqueness labels and novelty matches of `structures` (None entries are skipped: label and match -1).

    group_keys[i] / reference_group_keys[j]: (reduced formula, matcher primitive site count); reference_records:
    processed rows (lattice, atomic_numbers, frac_coords) turned into Structures inside the tasks.
    Returns {tolerance: {"labels": [...], "matched": [...]}} with labels[i] = index of the first earlier sample that
    i duplicates (i if new) and matched[i] = index of the first matching reference (-1 if novel), as
    `matching.uniqueness` / `matching.novelty` would give on the non-None samples.
    With `cache_dir` (and `sample_keys`, content keys of the samples), each finished task is stored there under a
    hash of its samples, references and settings, and a rerun only computes the missing tasks (resume).
    """
    n = len(structures)
    by_key_samples: dict = defaultdict(list)
    for i, (structure, key) in enumerate(zip(structures, group_keys, strict=True)):
        if structure is not None:
            by_key_samples[key].append(i)
    by_key_refs: dict = defaultdict(list)
    for j, key in enumerate(reference_group_keys):
        if key in by_key_samples:
            by_key_refs[key].append(j)

    # Pack groups into tasks of about `target` candidate pairs: at most PAIRS_PER_TASK, and small enough that there
    # are ~16 tasks for the workers to share (many one-crystal formula groups would otherwise form a single task).
    costs = {key: len(m) * (len(m) + len(by_key_refs.get(key, []))) for key, m in by_key_samples.items()}
    target = min(PAIRS_PER_TASK, max(1, sum(costs.values()) // 16))
    tasks, current, cost = [], [], 0
    for key, members in by_key_samples.items():
        current.append(
            {
                "samples": [(i, structures[i]) for i in members],
                "references": [(j, reference_records[j]) for j in by_key_refs.get(key, [])],
            }
        )
        cost += costs[key]
        if cost >= target:
            tasks.append(current)
            current, cost = [], 0
    if current:
        tasks.append(current)

    payloads = [(t, tuple(tolerances)) for t in tasks]
    results: list = [None] * len(payloads)
    files: list = [None] * len(payloads)
    if cache_dir is not None:
        if sample_keys is None:
            raise ValueError("cache_dir needs sample_keys")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        for k, task in enumerate(tasks):
            digest = hashlib.sha1(repr(tuple(tolerances)).encode())
            for group in task:
                digest.update(repr([(i, sample_keys[i]) for i, _ in group["samples"]]).encode())
                digest.update(repr([j for j, _ in group["references"]]).encode())
            files[k] = Path(cache_dir) / f"match-{digest.hexdigest()[:20]}.pkl"
            if files[k].exists():
                results[k] = pickle.loads(files[k].read_bytes())
    todo = [k for k in range(len(payloads)) if results[k] is None]

    def store(index: int, result: dict) -> None:
        k = todo[index]
        results[k] = result
        if files[k] is not None:
            tmp = files[k].with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(result))
            tmp.rename(files[k])

    fan_out(_match_task, [payloads[k] for k in todo], client=client, desc=desc, on_result=store)
    out = {tol: {"labels": [-1] * n, "matched": [-1] * n} for tol in tolerances}
    for result in results:
        for tol, (labels, matched) in result.items():
            for i, label in labels.items():
                out[tol]["labels"][i] = label
                out[tol]["matched"][i] = matched[i]
    return out
