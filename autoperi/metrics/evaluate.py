"""`evaluate_samples`: every metric of the evaluation suite on one model's samples, in the CDVAE protocol.

Writes `reports/metrics/<dataset>/<model>.json` (the shared schema, METRIC_KEYS first) and a per-structure table
`<model>.csv`. Per-structure scores and match results are cached under `.cache/<model>/` next to them, keyed by
sample name + content hash, so a killed evaluation resumes. Definitions: docs/evaluation.md.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Structure
from scipy.spatial.distance import cdist

from autoperi.config import Params
from autoperi.data.readers import RefusedInput, read_structures
from autoperi.metrics.coverage import STRUCTURE_FINGERPRINT_LENGTH, coverage
from autoperi.metrics.distributions import frechet_distance, wasserstein_property
from autoperi.metrics.fastmatch import match_samples
from autoperi.metrics.matching import MATCHER_TOLERANCES, composition_coverage
from autoperi.metrics.references import (
    COMPOSITION_FINGERPRINT_LENGTH,
    References,
    build_references,
    magpie_scaler,
)
from autoperi.metrics.samples import (
    LATTICE_COLUMNS,
    ScoreCache,
    cached_scores,
    fingerprint_matrix,
    screen_sample,
    structure_key,
)
from autoperi.metrics.stability_step import run_stability

METRIC_KEYS = (
    "dataset", "model", "protocol", "n_samples", "struct_validity", "comp_validity", "cov_recall", "cov_precision",
    "wdist_density", "wdist_num_elems", "wdist_formation_energy", "uniqueness", "novelty", "composition_coverage",
    "frechet_props", "frechet_embedding", "stability",
)  # fmt: skip
PROTOCOLS = ("cdvae",)


def load_samples(samples, max_atoms: int = 500, max_lattice_length_angstrom: float = 1000.0):
    """(names, structures or None, refusals {name: RefusedInput}) from a path (folder, extxyz, CSV with `cif`),
    a list of Structures (named sample_<i>) or a list of (name, Structure) pairs. Nothing is dropped silently."""
    if isinstance(samples, (str, Path)):
        items = read_structures(samples)
        if not items:
            raise ValueError(f"{samples}: no structure files found")
    else:
        items = [(x if isinstance(x, tuple) else (f"sample_{i}", x)) for i, x in enumerate(samples)]
    names, structures, refused = [], [], {}
    for name, item in items:
        if not isinstance(item, RefusedInput):
            try:
                screen_sample(item, max_atoms, max_lattice_length_angstrom)
            except RefusedInput as exc:
                item = exc
        names.append(name)
        structures.append(None if isinstance(item, RefusedInput) else item)
        if isinstance(item, RefusedInput):
            refused[name] = item
    return names, structures, refused


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("pymatgen", "matminer", "smact", "chgnet", "autoperi", "scipy", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    try:
        out["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def _surrogate_energies(params: Params, dataset: str, structures: Sequence[Structure]):
    """Surrogate formation energies (eV/atom), or (None, reason) when the model or the checkpoint is absent."""
    checkpoint = params.path(params.train.models_dir) / dataset / "surrogate.pt"
    if not checkpoint.exists():
        return None, f"not available: {checkpoint} does not exist"
    try:
        from autoperi.model.surrogate import predict_formation_energy
    except ImportError as exc:
        return None, f"not available: {exc}"
    return np.asarray(predict_formation_energy(list(structures), checkpoint), dtype=float), f"surrogate {checkpoint}"


def _percent(mask) -> float | None:
    mask = np.asarray(mask, dtype=bool)
    return 100.0 * float(mask.mean()) if mask.size else None


def _nearest_distances(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per query row, distance to the nearest finite candidate row (NaN for a failed query)."""
    out = np.full(len(queries), np.nan)
    ok_q, ok_c = np.isfinite(queries).all(axis=1), np.isfinite(candidates).all(axis=1)
    if ok_q.any() and ok_c.any():
        cand = candidates[ok_c]
        rows = np.flatnonzero(ok_q)
        for a in range(0, len(rows), 2048):  # bounded memory: 2048 x n_reference distances at a time
            out[rows[a : a + 2048]] = cdist(queries[rows[a : a + 2048]], cand).min(axis=1)
    return out


def evaluate_samples(
    samples,
    dataset: str,
    model: str,
    params: Params,
    client=None,
    stability_n: int | None = None,
    protocol: str = "cdvae",
    references: References | None = None,
    out_dir: str | Path | None = None,
    frechet_embedding: bool | None = None,
) -> dict:
    """Score `samples` (see `load_samples`) of `dataset` from `model`; returns the JSON dict it writes.

    The first `evaluation.n_samples` readable samples are scored; refused inputs are counted, never scored.
    `references` defaults to `build_references(params, dataset, client)` (cached). `stability_n` defaults to
    `evaluation.stability_n` (0 skips CHGNet relaxations).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    cfg = params.evaluation
    stability_n = cfg.stability_n if stability_n is None else int(stability_n)
    frechet_embedding = cfg.frechet_embedding if frechet_embedding is None else frechet_embedding
    out_dir = Path(out_dir) if out_dir is not None else params.path(cfg.metrics_dir) / dataset
    cache_dir = out_dir / ".cache" / model
    wall: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        wall[step] = round(now - clock, 3)
        clock = now

    refs = references if references is not None else build_references(params, dataset, client)
    lap("references")
    names, structures, refused = load_samples(samples, cfg.max_atoms, cfg.max_lattice_length_angstrom)
    accepted = [i for i, s in enumerate(structures) if s is not None]
    over_cap = accepted[cfg.n_samples :] if cfg.n_samples is not None else []
    accepted = accepted[: cfg.n_samples] if cfg.n_samples is not None else accepted
    if not accepted:
        reasons = dict(Counter(r.reason for r in refused.values()))
        raise ValueError(f"{dataset}/{model}: no readable samples ({len(refused)} refused: {reasons})")
    scored = [structures[i] for i in accepted]
    keys = [f"{names[i]}:{structure_key(s)}" for i, s in zip(accepted, scored, strict=True)]
    lap("read")

    scaler = magpie_scaler(params)
    table = cached_scores(keys, scored, scaler, ScoreCache(cache_dir / "scores"), client, cfg.chunk_size,
                          desc=f"{model} scores")  # fmt: skip
    table.insert(0, "name", [names[i] for i in accepted])
    n = len(table)
    struct_valid = table["struct_valid"].to_numpy(dtype=bool)
    comp_valid = table["comp_valid"].to_numpy(dtype=bool)
    valid = struct_valid & comp_valid
    gen_struct = fingerprint_matrix(table["struct_fp"], STRUCTURE_FINGERPRINT_LENGTH)
    gen_comp = fingerprint_matrix(table["comp_fp"], COMPOSITION_FINGERPRINT_LENGTH)
    lap("scores")

    struct_cutoff, comp_cutoff = refs.cutoffs
    cov = coverage(gen_struct, gen_comp, refs.test_struct_fps, refs.test_comp_fps, struct_cutoff, comp_cutoff, n)
    table["nn_struct_dist"] = _nearest_distances(gen_struct, refs.test_struct_fps)
    table["nn_comp_dist"] = _nearest_distances(gen_comp, refs.test_comp_fps)
    lap("coverage")

    rng = np.random.default_rng(cfg.seed)
    valid_rows = np.flatnonzero(valid)
    subset = np.sort(rng.choice(valid_rows, size=min(cfg.n_wasserstein, len(valid_rows)), replace=False))
    result = {key: None for key in METRIC_KEYS}
    result.update(dataset=dataset, model=model, protocol=protocol, n_samples=n)
    result.update(struct_validity=_percent(struct_valid), comp_validity=_percent(comp_valid))
    result.update(cov)
    if len(subset):
        for key, column in (("wdist_density", "density"), ("wdist_num_elems", "n_elements")):
            result[key] = wasserstein_property(table[column].to_numpy(dtype=float)[subset], refs.test[column])
    result["composition_coverage"] = composition_coverage(table["reduced_formula"], refs.test["reduced_formula"])
    lap("distributions")

    energy_note = "no valid samples"
    if len(subset):
        test_structures = None
        gen_energy, energy_note = _surrogate_energies(params, dataset, [scored[i] for i in subset])
        if gen_energy is not None:
            test_structures = [refs.test_structure(k) for k in range(len(refs.test))]
            ref_energy, _ = _surrogate_energies(params, dataset, test_structures)
            result["wdist_formation_energy"] = wasserstein_property(gen_energy, ref_energy)
        gen_props = table.loc[subset, list(LATTICE_COLUMNS)].to_numpy(dtype=float)
        ref_props = refs.test[list(LATTICE_COLUMNS)].to_numpy(dtype=float)
        if gen_energy is not None:
            gen_props, ref_props = np.column_stack([gen_energy, gen_props]), np.column_stack([ref_energy, ref_props])
        if len(subset) >= 2:
            result["frechet_props"] = frechet_distance(gen_props, ref_props)
    lap("formation_energy_and_frechet_props")

    embedding_note = "disabled (evaluation.frechet_embedding = false)"
    if frechet_embedding and len(subset) >= 2:
        try:
            from autoperi.metrics import stability
        except ImportError as exc:
            stability, embedding_note = None, f"not available: autoperi.metrics.stability ({exc})"
        if stability is not None and hasattr(stability, "chgnet_embeddings"):
            gen_emb = np.asarray(stability.chgnet_embeddings([scored[i] for i in subset]), dtype=float)
            ref_emb = reference_embeddings(refs, params, stability.chgnet_embeddings)
            result["frechet_embedding"] = frechet_distance(gen_emb, ref_emb)
            embedding_note = f"CHGNet crystal embeddings (dimension {gen_emb.shape[1]})"
        elif stability is not None:
            embedding_note = "not available: autoperi.metrics.stability has no chgnet_embeddings"
    lap("frechet_embedding")

    matches = _uniqueness_and_novelty(table, scored, struct_valid, refs, client, keys, cache_dir)
    n_struct_valid = int(struct_valid.sum())
    for tol, suffix in (("cdvae", ""), ("mattergen", "_mattergen")):
        labels, matched = np.asarray(matches[tol]["labels"]), np.asarray(matches[tol]["matched"])
        if n_struct_valid:
            result[f"uniqueness{suffix}"] = 100.0 * len(set(labels[struct_valid])) / n_struct_valid
            result[f"novelty{suffix}"] = 100.0 * float((matched[struct_valid] == -1).mean())
        table[f"unique_label{suffix}"] = [table["name"][k] if k >= 0 else None for k in labels]
        table[f"matched_train_id{suffix}"] = [refs.train["id"][k] if k >= 0 else None for k in matched]
        table[f"unique{suffix}"] = struct_valid & (labels == np.arange(n))
        table[f"novel{suffix}"] = struct_valid & (matched == -1)
    lap("uniqueness_novelty")

    result["stability"], stability_note = run_stability(
        table, scored, valid, stability_n, params, dataset, client, cache_dir, rng
    )
    lap("stability")

    reasons = Counter(r.reason for r in refused.values())
    result.update(
        n_refused=len(refused),
        refused_by_reason=dict(sorted(reasons.items())),
        n_over_cap=len(over_cap),
        validity=_percent(valid),
        uniqueness_mattergen=result.get("uniqueness_mattergen"),
        novelty_mattergen=result.get("novelty_mattergen"),
        versions=versions(),
        protocol_details=_protocol_details(cfg, refs, n, len(subset), n_struct_valid, energy_note, embedding_note,
                                           stability_note, dataset),
    )  # fmt: skip
    table["status"] = "ok"
    table["valid"] = valid
    refused_rows = pd.DataFrame({"name": list(refused), "status": [f"refused:{r.reason}" for r in refused.values()],
                                 "detail": [r.detail for r in refused.values()]})  # fmt: skip
    per_structure = pd.concat([table.drop(columns=["key", "struct_fp", "comp_fp"]), refused_rows], ignore_index=True)
    front = ["name", "status", "struct_valid", "comp_valid", "valid", "density", "n_elements", "nn_struct_dist",
             "nn_comp_dist", "unique_label", "matched_train_id", "e_hull", "rmsd"]  # fmt: skip
    for column in front:
        if column not in per_structure:
            per_structure[column] = np.nan
    per_structure = per_structure[front + [c for c in per_structure.columns if c not in front]]
    lap("tables")
    result["wall_s"] = {**wall, "total": round(sum(wall.values()), 3)}
    out_dir.mkdir(parents=True, exist_ok=True)
    per_structure.to_csv(out_dir / f"{model}.csv", index=False)
    result = _finite_or_none(result)
    (out_dir / f"{model}.json").write_text(json.dumps(result, indent=2, default=_json_default, allow_nan=False) + "\n")
    return result


def _finite_or_none(value):
    """NaN / inf → None everywhere (JSON has no NaN), numpy scalars → Python."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _json_default(value):
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _uniqueness_and_novelty(table, scored, struct_valid, refs, client, keys, cache_dir):
    group_keys = list(zip(table["reduced_formula"], table["n_prim_sites"].astype(int), strict=True))
    ref_keys = list(zip(refs.train["reduced_formula"], refs.train["n_prim_sites"].astype(int), strict=True))
    records = refs.train[["lattice", "atomic_numbers", "frac_coords"]].to_dict("records")
    return match_samples(
        [s if ok else None for s, ok in zip(scored, struct_valid, strict=True)],
        group_keys,
        records,
        ref_keys,
        tolerances=tuple(MATCHER_TOLERANCES),
        client=client,
        desc="matching",
        sample_keys=keys,
        cache_dir=cache_dir / "matches",
    )


def reference_embeddings(refs: References, params: Params, embed) -> np.ndarray:
    """CHGNet embeddings of the test reference set, cached in reports/metrics/<dataset>/.cache/ (the evaluation's
    own output: writing into data/references would change the `references` stage's output after it ran)."""
    path = params.path(params.evaluation.metrics_dir) / refs.dataset / ".cache" / "reference_chgnet_embeddings.npz"
    ids = refs.test["id"].astype(str).to_numpy().astype(str)  # a fixed-width unicode array: loads without pickle
    if path.exists():
        try:
            cached = np.load(path, allow_pickle=False)
            if np.array_equal(cached["ids"], ids):
                return cached["embeddings"]
        except ValueError:  # a cache written with object ids by an earlier version: rebuild it
            pass
    embeddings = np.asarray(embed([refs.test_structure(k) for k in range(len(ids))]), dtype=float)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids, embeddings=embeddings)
    return embeddings


def _protocol_details(cfg, refs, n, n_subset, n_struct_valid, energy_note, embedding_note, stability_note, dataset):
    struct_cutoff, comp_cutoff = refs.cutoffs
    return {
        "validity": "over all n_samples scored samples: structure = every interatomic distance >= 0.5 Å (periodic "
        "images, an atom's own image included) and volume >= 0.1 Å^3; composition = CDVAE's SMACT rules "
        "(SMACT default oxidation states, Pauling test); refused inputs are not scored (n_refused)",
        "coverage": f"COV-R/COV-P over all {n} samples vs the {refs.details.get('n_test')} {refs.coverage_split} "
        "crystals; CrystalNN 'ops' site-averaged + CDVAE-scaled Magpie fingerprints; cutoffs struct "
        f"{struct_cutoff} / comp {comp_cutoff} ({refs.details.get('coverage_family')}); independent nearest "
        "neighbours; COV-P denominator counts samples whose fingerprint failed",
        "wasserstein": f"{n_subset} valid samples (seeded choice, seed {cfg.seed}, of at most n_wasserstein = "
        f"{cfg.n_wasserstein}) vs the whole {refs.coverage_split} set; density in g/cm^3, number of elements",
        "formation_energy": energy_note,
        "frechet_props": "Fréchet distance of Gaussians fitted to [formation energy (only when the surrogate is "
        "available), a, b, c (Å), alpha, beta, gamma (deg), volume per atom (Å^3)] of Niggli-reduced cells; the "
        "Wasserstein subset of valid samples vs the test set; formation energy: " + energy_note,
        "frechet_embedding": embedding_note + "; same subset vs the test set",
        "uniqueness_novelty": f"over the {n_struct_valid} structurally valid samples; pymatgen StructureMatcher "
        f"cdvae {MATCHER_TOLERANCES['cdvae']} (uniqueness, novelty) and mattergen {MATCHER_TOLERANCES['mattergen']} "
        f"(*_mattergen); novelty vs {refs.details.get('novelty_reference')} "
        f"({refs.details.get('n_train_val')} crystals); exact pre-filter by reduced formula and matcher "
        "primitive-cell size (both exact)",
        "composition_coverage": "percent of the test set's distinct reduced formulas found among all scored samples",
        "stability": stability_note,
        "max_reference": cfg.max_reference,
        "n_samples_cap": cfg.n_samples,
        "references": refs.details,
    }  # fmt: skip
