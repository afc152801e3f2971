"""A gallery of a few sample crystals (the baselines notebook shows the random ones)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def crystal_gallery(samples_path: str | Path, path: str | Path, n: int = 4, seed: int = 0, title: str = "") -> Path:
    """Draw `n` seeded random frames of an extxyz samples file (ASE's `plot_atoms`, a 2x2x1 view along c, tilted),
    each titled with its formula, space group and source row from the frame info. Saved to `path` (PNG)."""
    from ase.io import read
    from ase.visualize.plot import plot_atoms

    frames = read(samples_path, index=":")
    if not frames:
        raise ValueError(f"{samples_path}: no frames to draw")
    chosen = np.sort(np.random.default_rng(seed).choice(len(frames), size=min(n, len(frames)), replace=False))
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 3.8), squeeze=False)
    for ax, index in zip(axes[0], chosen, strict=True):
        atoms = frames[index]
        plot_atoms(atoms.repeat((2, 2, 1)), ax, rotation="10x,-10y,0z", radii=0.6)
        info = atoms.info
        ax.set_title(
            f"{atoms.get_chemical_formula()}  SG {info.get('spacegroup', '?')}\nfrom {info.get('source_id', '?')}",
            fontsize=8,
        )
        ax.set_axis_off()
    fig.suptitle(title or str(samples_path))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
