"""Figures of the evaluation: generated vs test distributions, E_hull histograms, coverage-vs-cutoff curves.

Generated-side values come from the per-structure tables `reports/metrics/<dataset>/<model>.csv` that
`evaluate_samples` writes (density, n_elements, Niggli a, b, c, alpha, beta, gamma, nn_struct_dist, nn_comp_dist,
e_hull); test-side values from the processed test split. Coverage curves recompute CDVAE's COV-R / COV-P at every
structure cutoff from nearest-neighbour distances (composition cutoff fixed at the dataset's value): precision needs
only the per-structure table; recall needs the generated fingerprints as well (`sample_fingerprints`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

DISTRIBUTION_PANELS = (
    ("density", "density (g/cm³)"),
    ("n_elements", "number of elements"),
    ("a", "a (Å)"),
    ("b", "b (Å)"),
    ("c", "c (Å)"),
    ("alpha", "α (°)"),
    ("beta", "β (°)"),
    ("gamma", "γ (°)"),
)


def reference_properties(table: pd.DataFrame) -> pd.DataFrame:
    """density, n_elements and Niggli lattice parameters of the processed table's test rows (their stored cells
    are Niggli-reduced already, as `evaluate_samples` reduces the samples)."""
    from pymatgen.core import Lattice

    test = table[table["split"] == "test"]
    lattices = [Lattice(np.asarray(m, dtype=float).reshape(3, 3)) for m in test["lattice"]]
    out = pd.DataFrame([[*lat.abc, *lat.angles] for lat in lattices], columns=["a", "b", "c", "alpha", "beta", "gamma"])
    out.insert(0, "n_elements", test["n_elements"].to_numpy(dtype=int))
    out.insert(0, "density", test["density"].to_numpy(dtype=float))
    return out


def read_per_structure(metrics_dir: str | Path, dataset: str, models: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per-structure tables of the models that have one (scored rows only: refused inputs are left out)."""
    out = {}
    for model in models:
        path = Path(metrics_dir) / dataset / f"{model}.csv"
        if path.exists():
            frame = pd.read_csv(path, low_memory=False)
            out[model] = frame[frame["status"] == "ok"] if "status" in frame else frame
    return out


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def distribution_figure(
    generated: Mapping[str, pd.DataFrame], test: pd.DataFrame, path: str | Path, title: str = ""
) -> Path:
    """One panel per property of DISTRIBUTION_PANELS: test set (filled) against each model (step histograms),
    normalised to densities; bins span the 0.5-99.5 percentiles of all values (so one absurd sample does not
    flatten the rest); #elements uses integer bins. Saved to `path` (PNG)."""
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for ax, (column, label) in zip(axes.ravel(), DISTRIBUTION_PANELS, strict=True):
        ref = _finite(test[column])
        sides = {name: _finite(frame[column]) for name, frame in generated.items() if column in frame}
        values = np.concatenate([ref, *sides.values()]) if len(ref) else np.zeros(1)
        if column == "n_elements":
            bins = np.arange(0.5, max(values.max(), 1) + 1.5)
        else:
            low, high = np.percentile(values, [0.5, 99.5])
            bins = np.linspace(low, high if high > low else low + 1.0, 41)
        ax.hist(ref, bins=bins, density=True, color="0.75", label="test set")
        for name, vals in sides.items():
            ax.hist(np.clip(vals, bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.6, label=name)
        ax.set_xlabel(label)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title or "generated vs test distributions")
    fig.tight_layout()
    return _save(fig, path)


def ehull_figure(generated: Mapping[str, pd.DataFrame], path: str | Path, title: str = "") -> Path | None:
    """Histogram of E_hull (eV/atom, CHGNet energies against the dataset's own CHGNet hull) for every model with
    relaxed structures; None (nothing written) when no table has an E_hull value."""
    sides = {name: _finite(f["e_hull"]) for name, f in generated.items() if "e_hull" in f}
    sides = {name: v for name, v in sides.items() if len(v)}
    if not sides:
        return None
    values = np.concatenate(list(sides.values()))
    high = max(np.percentile(values, 99), 0.3)
    bins = np.linspace(min(values.min(), 0.0), high, 50)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, vals in sides.items():
        ax.hist(np.clip(vals, bins[0], bins[-1]), bins=bins, histtype="step", lw=1.6, label=f"{name} (n={len(vals)})")
    for threshold in (0.0, 0.1):
        ax.axvline(threshold, color="0.4", ls="--", lw=0.8)
    ax.set_xlabel("E_hull (eV/atom; CHGNet, self-consistent hull)")
    ax.set_ylabel("structures")
    ax.legend(fontsize=8)
    ax.set_title(title or "energy above hull of relaxed samples")
    fig.tight_layout()
    return _save(fig, path)


def _nearest(queries: np.ndarray, candidates: np.ndarray, block: int = 2048) -> np.ndarray:
    """Distance from each query row to its nearest candidate row; inf for a failed (non-finite) query or when no
    candidate is finite (failed fingerprints are never neighbours, as in `autoperi.metrics.coverage`)."""
    ok_q = np.all(np.isfinite(queries), axis=1)
    cand = candidates[np.all(np.isfinite(candidates), axis=1)]
    out = np.full(len(queries), np.inf)
    if len(cand) == 0:
        return out
    rows = np.flatnonzero(ok_q)
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        out[chunk] = cdist(queries[chunk], cand).min(axis=1)
    return out


def coverage_curves(
    gen_struct: np.ndarray,
    gen_comp: np.ndarray,
    ref_struct: np.ndarray,
    ref_comp: np.ndarray,
    struct_cutoffs: Sequence[float],
    comp_cutoff: float,
    n_generated_total: int | None = None,
) -> pd.DataFrame:
    """COV-R and COV-P (percent) at each structure cutoff, the composition cutoff fixed; the same definition as
    `autoperi.metrics.coverage.coverage` (independent minima, failed fingerprints never covered, COV-P over all
    generated samples), from nearest distances computed once."""
    gen_ok = np.all(np.isfinite(gen_struct), axis=1) & np.all(np.isfinite(gen_comp), axis=1)
    ref_ok = np.all(np.isfinite(ref_struct), axis=1) & np.all(np.isfinite(ref_comp), axis=1)
    nan_gen_s = np.where(gen_ok[:, None], gen_struct, np.nan)
    nan_gen_c = np.where(gen_ok[:, None], gen_comp, np.nan)
    nan_ref_s = np.where(ref_ok[:, None], ref_struct, np.nan)
    nan_ref_c = np.where(ref_ok[:, None], ref_comp, np.nan)
    recall_s, recall_c = _nearest(nan_ref_s, nan_gen_s), _nearest(nan_ref_c, nan_gen_c)
    precision_s, precision_c = _nearest(nan_gen_s, nan_ref_s), _nearest(nan_gen_c, nan_ref_c)
    n_total = len(gen_struct) if n_generated_total is None else int(n_generated_total)
    rows = []
    for cutoff in struct_cutoffs:
        recalled = (recall_s <= cutoff) & (recall_c <= comp_cutoff)
        precise = (precision_s <= cutoff) & (precision_c <= comp_cutoff)
        rows.append((float(cutoff), 100.0 * recalled.sum() / len(ref_struct), 100.0 * precise.sum() / n_total))
    return pd.DataFrame(rows, columns=["struct_cutoff", "cov_recall", "cov_precision"])


def precision_curve(per_structure: pd.DataFrame, struct_cutoffs: Sequence[float], comp_cutoff: float) -> pd.DataFrame:
    """COV-P (percent) at each structure cutoff from a per-structure table's `nn_struct_dist` / `nn_comp_dist`
    (NaN or inf = failed fingerprint = not covered; denominator = every scored row). COV-R is NaN: it needs the
    reference-side distances (`coverage_curves`)."""
    d_struct = per_structure["nn_struct_dist"].to_numpy(dtype=float)
    d_comp = per_structure["nn_comp_dist"].to_numpy(dtype=float)
    comp_ok = np.nan_to_num(d_comp, nan=np.inf) <= comp_cutoff
    d_struct = np.nan_to_num(d_struct, nan=np.inf)
    rows = [(float(c), np.nan, 100.0 * float(((d_struct <= c) & comp_ok).mean())) for c in struct_cutoffs]
    return pd.DataFrame(rows, columns=["struct_cutoff", "cov_recall", "cov_precision"])


def sample_fingerprints(
    params, dataset: str, model: str, samples_path: str | Path, cached_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Generated structure and composition fingerprints [n, 61], [n, 132] of the samples `evaluate_samples`
    scored, read back from its per-structure score cache (`<metrics_dir>/<dataset>/.cache/<model>/scores`):
    nothing is recomputed when the evaluation has run here. Missing ones are computed, as the evaluation would, or
    with `cached_only` raise KeyError (`cached_scores`): the cache is not a stage output, so a fresh clone has none,
    and CrystalNN over 10,000 samples takes hours."""
    from autoperi.metrics.coverage import STRUCTURE_FINGERPRINT_LENGTH
    from autoperi.metrics.evaluate import load_samples
    from autoperi.metrics.references import COMPOSITION_FINGERPRINT_LENGTH, magpie_scaler
    from autoperi.metrics.samples import ScoreCache, cached_scores, fingerprint_matrix, structure_key

    cfg = params.evaluation
    names, structures, _ = load_samples(samples_path, cfg.max_atoms, cfg.max_lattice_length_angstrom)
    accepted = [i for i, s in enumerate(structures) if s is not None][: cfg.n_samples]
    scored = [structures[i] for i in accepted]
    keys = [f"{names[i]}:{structure_key(s)}" for i, s in zip(accepted, scored, strict=True)]
    cache = ScoreCache(params.path(cfg.metrics_dir) / dataset / ".cache" / model / "scores")
    table = cached_scores(
        keys, scored, magpie_scaler(params), cache, None, cfg.chunk_size, compute_missing=not cached_only
    )
    return (
        fingerprint_matrix(table["struct_fp"], STRUCTURE_FINGERPRINT_LENGTH),
        fingerprint_matrix(table["comp_fp"], COMPOSITION_FINGERPRINT_LENGTH),
    )


def coverage_figure(
    curves: Mapping[str, pd.DataFrame], struct_cutoff: float, path: str | Path, title: str = ""
) -> Path:
    """COV-R (left) and COV-P (right) against the structure cutoff, one line per model; the dataset's cutoff is
    marked. A model whose recall is all NaN (no fingerprints to compute it from) is absent from the left panel, and
    when no model has recall only the COV-P panel is drawn."""
    with_recall = {name: c for name, c in curves.items() if c["cov_recall"].notna().any()}
    if with_recall:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        panels = ((left, "COV-R (%)"), (right, "COV-P (%)"))
    else:
        fig, right = plt.subplots(1, 1, figsize=(6, 4))
        panels = ((right, "COV-P (%)"),)
    for name, curve in with_recall.items():
        left.plot(curve["struct_cutoff"], curve["cov_recall"], label=name)
    for name, curve in curves.items():
        right.plot(curve["struct_cutoff"], curve["cov_precision"], label=name)
    for ax, metric in panels:
        ax.axvline(struct_cutoff, color="0.4", ls="--", lw=0.8)
        ax.set_xlabel("structure-fingerprint cutoff")
        ax.set_ylabel(metric)
    right.legend(fontsize=8)
    fig.suptitle(title or "coverage vs structure cutoff (composition cutoff fixed)")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
