"""Figures and tables of the DFT stage (the notebook calls these; no plotting code lives in the notebook)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def convergence_table(path: str | Path) -> pd.DataFrame:
    """Rows of reports/dft/convergence.json: structure, scan, value, errors vs the largest setting (meV/atom)."""
    rows = json.loads(Path(path).read_text())["rows"]
    columns = ["structure", "scan", "value", "n_kpts", "d_energy_per_atom_mev", "d_formation_mev", "wall_s"]
    return pd.DataFrame(rows)[[c for c in columns if c in rows[0]]]


def plot_convergence(table: pd.DataFrame, out_path: str | Path | None = None, tol_total: float = 5.0,
                     tol_formation: float = 15.0):
    """|ΔE/atom| and |ΔE_f/atom| (meV, vs the largest setting) against cutoff and against k-point density."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, scan, label in [(axes[0], "cutoff_ev", "plane-wave cutoff (eV)"),
                            (axes[1], "kpt_density", "k-point density (Å⁻¹)")]:
        part = table[table["scan"] == scan]
        for name, rows in part.groupby("structure"):
            ax.plot(rows["value"], rows["d_energy_per_atom_mev"].abs() + 1e-2, "o-", label=f"{name}: E/atom")
            if "d_formation_mev" in rows:
                ax.plot(rows["value"], rows["d_formation_mev"].abs() + 1e-2, "s--", label=f"{name}: E_f/atom")
        ax.axhline(tol_total, color="grey", lw=0.8)
        ax.axhline(tol_formation, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("|error| vs largest setting (meV/atom)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_path, dpi=120)
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def load_source(out_dir: str | Path, dataset: str, source: str) -> tuple[dict | None, pd.DataFrame | None]:
    """(summary dict, formation-energy table) of one run, or (None, None) when it has not run."""
    folder = Path(out_dir) / dataset
    summary_path, table_path = folder / f"{source}.json", folder / source / "formation_energies.csv"
    if not summary_path.exists():
        return None, None
    table = pd.read_csv(table_path) if table_path.exists() else None
    return json.loads(summary_path.read_text()), table


def plot_parity(tables: dict[str, pd.DataFrame], column: str, label: str, out_path: str | Path | None = None):
    """DFT E_f (x) against `column` (y) for each run; MAE and N in the legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    lo, hi = np.inf, -np.inf
    for name, table in tables.items():
        if table is None or column not in table:
            continue
        ok = table[np.isfinite(table["dft_ef"]) & np.isfinite(table[column])]
        if not len(ok):
            continue
        mae = float((ok[column] - ok["dft_ef"]).abs().mean())
        ax.scatter(ok["dft_ef"], ok[column], s=14, label=f"{name}: MAE {mae:.3f} eV/atom (N={len(ok)})")
        lo, hi = min(lo, ok["dft_ef"].min(), ok[column].min()), max(hi, ok["dft_ef"].max(), ok[column].max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.legend(fontsize=7)
    ax.set_xlabel("GPAW PBE E_f (eV/atom)")
    ax.set_ylabel(label)
    fig.tight_layout()
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_path, dpi=120)
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def failure_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """Submitted, converged and failed counts by reason, one row per run."""
    rows = []
    for name, s in summaries.items():
        if s is None:
            continue
        rows.append({"run": name, "n_submitted": s["n_submitted"], "n_scf_converged": s["n_scf_converged"],
                     "n_with_E_f": s["n_with_formation_energy"],
                     **{f"failed: {k}": v for k, v in s["n_failed"].items()},
                     "largest_cell_ran": s.get("largest_cell_ran")})
    return pd.DataFrame(rows).fillna(0)


def timing_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Median and max seconds (one core) per converged single point, by atoms per cell and spin."""
    frames = [t.assign(run=name) for name, t in tables.items() if t is not None and len(t)]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames)
    table = table[table["status"] == "ok"]
    columns = [c for c in ("wall_s", "cpu_s") if c in table]
    return table.groupby(["n_atoms", "spin"])[columns].agg(["count", "median", "max"]).round(1)


def metrics_for_mlflow(summary: dict) -> dict[str, float]:
    """The numeric top-level entries of a summary (MLflow metrics)."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and np.isfinite(value):
            out[key] = float(value)
    for reason, count in (summary.get("n_failed") or {}).items():
        out[f"n_failed_{reason.split(':')[0]}"] = out.get(f"n_failed_{reason.split(':')[0]}", 0.0) + float(count)
    return out
