"""Figures of the processed datasets (the data notebook shows them; the data stage saves and logs them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pymatgen.core import Element

from autoperi.graphs.neighbors import neighbor_list

ENERGY_COLUMNS = ("formation_energy_per_atom", "heat_of_formation", "heat_of_formation_cmr", "energy_per_atom")


def summary_table(summary: dict) -> pd.DataFrame:
    """summary.json → one row per dataset: raw, kept, skipped by reason, split sizes."""
    rows = []
    for name, rep in summary["datasets"].items():
        row = {"dataset": name, "n_raw": rep["n_raw"], "n_kept": rep["n_kept"]}
        row.update({f"skipped:{k}": v for k, v in rep["skipped"].items()})
        row.update({f"excluded:{k}": v for k, v in rep.get("excluded", {}).items()})
        row.update({f"split:{k}": v for k, v in rep["splits"]["original"].items()})
        comp = rep["splits"]["composition"]
        row["composition split"] = (
            "/".join(str(comp.get(k, 0)) for k in ("train", "val", "test")) if isinstance(comp, dict) else "n/a"
        )
        row["volume outside range"] = rep["volume_filter"]["outside_range"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset").fillna(0)


def _hist_panel(frames: dict, column: str, xlabel: str, bins=40, logy=False, discrete=False):
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, frame in frames.items():
        values = frame[column].dropna().to_numpy()
        if values.size == 0:
            continue
        edges = np.arange(values.min() - 0.5, values.max() + 1.5) if discrete else bins
        ax.hist(values, bins=edges, histtype="step", density=True, label=name, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def _table_position(z: int) -> tuple[int, int]:
    """(row, column) of element Z in an 18-column periodic table, f-block in rows 8 and 9."""
    if 57 <= z <= 71:
        return 8, z - 57 + 3
    if 89 <= z <= 103:
        return 9, z - 89 + 3
    el = Element.from_Z(z)
    return el.row, el.group


def element_heatmap(frames: dict):
    """Share of crystals containing each element, over all given datasets, on the periodic table."""
    counts, total = Counter(), 0
    for frame in frames.values():
        total += len(frame)
        for elements in frame["elements"]:
            counts.update(elements)
    grid = np.full((10, 19), np.nan)
    fig, ax = plt.subplots(figsize=(11, 5.2))
    for z in range(1, 104):
        row, col = _table_position(z)
        symbol = Element.from_Z(z).symbol
        grid[row, col] = counts.get(symbol, 0) / max(total, 1) * 100
        ax.text(col, row, symbol, ha="center", va="center", fontsize=7)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0)
    ax.set_xlim(0.5, 18.5)
    ax.set_ylim(9.5, 0.5)
    ax.axis("off")
    fig.colorbar(image, ax=ax, shrink=0.7, label="% of crystals containing the element")
    ax.set_title("Element frequency (all datasets shown)")
    fig.tight_layout()
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def crystal_system_bars(frames: dict):
    systems = ["triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(frames), 1)
    for k, (name, frame) in enumerate(frames.items()):
        share = frame["crystal_system"].value_counts(normalize=True).reindex(systems).fillna(0)
        ax.bar(np.arange(len(systems)) + k * width, share.to_numpy() * 100, width, label=name)
    ax.set_xticks(np.arange(len(systems)) + 0.4 - width / 2, systems, rotation=30)
    ax.set_ylabel("% of crystals")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    plt.close(fig)  # displayed once where returned (the inline backend would show it again)
    return fig


def neighbor_counts(frame: pd.DataFrame, cutoff_angstrom: float, sample: int = 300, seed: int = 0) -> np.ndarray:
    """Neighbours per atom within the cutoff, on a seeded sample of crystals."""
    rows = frame.sample(min(sample, len(frame)), random_state=seed)
    counts = []
    for _, row in rows.iterrows():
        edge_index, _, _ = neighbor_list(
            np.reshape(row["frac_coords"], (-1, 3)), np.reshape(row["lattice"], (3, 3)), cutoff_angstrom
        )
        counts.append(np.bincount(edge_index[0], minlength=row["n_atoms"]))
    return np.concatenate(counts) if counts else np.array([])


def save_data_figures(frames: dict, folder: Path, cutoff_angstrom: float) -> dict[str, Path]:
    """Write every data figure as PNG into `folder`; returns {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "atoms_per_cell": _hist_panel(frames, "n_atoms", "atoms per primitive cell", discrete=True),
        "volume_per_atom": _hist_panel(frames, "volume_per_atom", "volume per atom (Å³)"),
        "density": _hist_panel(frames, "density", "density (g/cm³)"),
        "n_elements": _hist_panel(frames, "n_elements", "number of elements", discrete=True),
        "elements": element_heatmap(frames),
        "crystal_systems": crystal_system_bars(frames),
        "space_groups": _hist_panel(frames, "spacegroup", "space group number", bins=np.arange(0.5, 231.5), logy=True),
    }
    energies = {}
    for name, frame in frames.items():
        column = next((c for c in ENERGY_COLUMNS if c in frame and frame[c].notna().any()), None)
        if column:
            energies[f"{name} ({column})"] = pd.DataFrame({"energy": pd.to_numeric(frame[column], errors="coerce")})
    if energies:
        figures["energies"] = _hist_panel(energies, "energy", "energy per atom as given by the source (eV)")
    nbrs = {name: pd.DataFrame({"n": neighbor_counts(f, cutoff_angstrom)}) for name, f in frames.items()}
    figures["neighbors"] = _hist_panel(nbrs, "n", f"neighbours per atom within {cutoff_angstrom:g} Å", bins=40)
    paths = {}
    for name, fig in figures.items():
        paths[name] = folder / f"{name}.png"
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)
    return paths
