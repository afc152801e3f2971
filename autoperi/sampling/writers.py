"""The one writer of structure files: extxyz (all samples in one file) and a folder of CIF files.

Both are read back by pymatgen and ASE, and by `autoperi.data.readers.read_structures` (what `autoperi evaluate` uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter


def write_extxyz(structures: Sequence[Structure], path: str | Path, info: Sequence[dict] | None = None) -> Path:
    """Write every structure as one frame of an extended-XYZ file (pbc=True); `info[i]` is stored in frame i's
    comment line (e.g. space group, sample id). Writes to a temporary file and renames, so a killed run never
    leaves a truncated file under `path`."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, structure in enumerate(structures):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.pbc = True
        if info is not None:
            atoms.info.update(info[i])
        frames.append(atoms)
    tmp = path.with_suffix(path.suffix + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)
    return path


def write_cifs(structures: Sequence[Structure], folder: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """One CIF per structure (`<name>.cif`, default `sample_<i>.cif`) written by pymatgen's CifWriter."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"sample_{i:05d}" for i in range(len(structures))]
    paths = []
    for name, structure in zip(names, structures, strict=True):
        path = folder / f"{name}.cif"
        CifWriter(structure).write_file(path)
        paths.append(path)
    return paths
