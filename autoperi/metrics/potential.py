"""CHGNet, the one machine-learned potential of the evaluation suite: energies, embeddings and relaxations.

CHGNet 0.3.0 (Deng et al., Nat. Mach. Intell. 2023; weights ship in the `chgnet` wheel, nothing is downloaded) was
trained on the Materials Project trajectory set (PBE/PBE+U), so its energies are comparable with each other, not
with the datasets' own DFT numbers. Everything stability-related in `autoperi.metrics` uses only these functions, so
generated and reference energies always come from the same model.

Speed: single points run under `torch.no_grad()` (CHGNet's own `predict_graph` keeps the autograd graph even for
task "e"; dropping it made 200 Perov-5 single points ~5x faster on this 2-core VM), and torch uses one thread per
process (`load_chgnet`), because parallelism comes from dask worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure

# A relaxed cell whose volume changed by more than this factor (either way) has exploded or collapsed.
MAX_VOLUME_RATIO = 5.0
# After relaxation, no two atoms may be closer than this (Å); the CDVAE validity threshold.
MIN_DISTANCE_ANGSTROM = 0.5


@functools.lru_cache(maxsize=1)
def load_chgnet(threads: int = 1):
    """The pretrained CHGNet 0.3.0 on CPU, loaded once per process (cached); torch limited to `threads` threads."""
    import torch
    from chgnet.model.model import CHGNet

    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    model.eval()
    return model


def _predict(structures: Sequence[Structure], batch_size: int, crystal_feas: bool) -> list[dict | None]:
    """CHGNet energy (and crystal features) per structure; None where CHGNet fails on that structure.

    A batch that raises is retried one structure at a time, so one bad structure costs only itself.
    """
    import torch

    model = load_chgnet()
    model.graph_converter.set_isolated_atom_response("ignore")
    out: list[dict | None] = [None] * len(structures)

    def run(indices):
        graphs = [model.graph_converter(structures[i]) for i in indices]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preds = model.predict_graph(graphs, task="e", return_crystal_feas=crystal_feas, batch_size=len(graphs))
        return [preds] if isinstance(preds, dict) else preds

    for start in range(0, len(structures), batch_size):
        indices = list(range(start, min(start + batch_size, len(structures))))
        try:
            for i, pred in zip(indices, run(indices), strict=True):
                out[i] = pred
        except Exception:
            for i in indices:
                try:
                    out[i] = run([i])[0]
                except Exception:
                    out[i] = None
    return out


def chgnet_energies(structures: Sequence[Structure], batch_size: int = 64) -> np.ndarray:
    """CHGNet single-point energies, eV/atom, shape [n]; NaN where CHGNet cannot evaluate a structure.

    CHGNet 0.3.0 is intensive (`model.is_intensive`): `predict_graph(...)["e"]` is already per atom.
    """
    preds = _predict(list(structures), batch_size, crystal_feas=False)
    return np.array([float(p["e"]) if p is not None else math.nan for p in preds], dtype=float)


def chgnet_embeddings(structures: Sequence[Structure], batch_size: int = 64) -> np.ndarray:
    """Crystal-level CHGNet embedding, shape [n, 64]: the mean over sites of the last-layer atom features.

    CHGNet's `crystal_fea` (from `return_crystal_feas=True`) is the *sum* of the final atom features for the 0.3.0
    model (`GraphPooling(average=False)`, mlp_first), which doubles for a 2x supercell; dividing by the number of
    atoms gives a feature that does not depend on the cell chosen. Rows are NaN where CHGNet fails.
    """
    model = load_chgnet()
    dim = int(model.model_args.get("atom_fea_dim", 64))
    structures = list(structures)
    preds = _predict(structures, batch_size, crystal_feas=True)
    average = getattr(model.pooling, "average", False)
    rows = []
    for structure, pred in zip(structures, preds, strict=True):
        if pred is None:
            rows.append(None)
            continue
        fea = np.asarray(pred["crystal_fea"], dtype=float)
        rows.append(fea if average else fea / len(structure))
    return np.stack([r if r is not None else np.full(dim, math.nan) for r in rows]) if rows else np.zeros((0, dim))


@functools.lru_cache(maxsize=1)
def _calculator():
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNetCalculator(model=load_chgnet(), use_device="cpu", on_isolated_atoms="error")


def relax_structure(structure: Structure, fmax: float = 0.1, max_steps: int = 500, relax_cell: bool = True) -> dict:
    """CHGNet relaxation of one crystal with ASE's FIRE, positions and (by default) cell via `FrechetCellFilter`.

    The protocol of CHGNet's own `StructOptimizer` (FIRE + FrechetCellFilter), written out so the optimizer's
    convergence flag and step count are kept. Never raises: returns a dict with
      converged        True when max force (and cell force) ≤ fmax eV/Å within max_steps and no check failed
      n_steps          optimizer steps taken
      energy_per_atom  final CHGNet energy, eV/atom (NaN if none)
      initial_energy_per_atom  CHGNet energy of the input, eV/atom
      error            '' or the reason: an exception (e.g. isolated atoms: no neighbour within CHGNet's 6 Å),
                       non-finite energy/forces, volume changed > MAX_VOLUME_RATIO-fold, atoms closer than 0.5 Å
      relaxed          the final Structure (None if the relaxation never started)
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    load_chgnet()  # sets the thread count in this process
    result = dict(converged=False, n_steps=0, energy_per_atom=math.nan, initial_energy_per_atom=math.nan, error="")
    result["relaxed"] = None
    n = len(structure)
    with warnings.catch_warnings():  # CHGNet warns on every call about a tensor it converts; noise here
        warnings.simplefilter("ignore")
        try:
            calc = _calculator()
            calc.model.graph_converter.set_isolated_atom_response("error")
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = calc
            result["initial_energy_per_atom"] = float(atoms.get_potential_energy()) / n
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            optimizer = FIRE(target, logfile=None)
            converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
            result["n_steps"] = int(optimizer.nsteps)
            energy = float(atoms.get_potential_energy()) / n
            result["energy_per_atom"] = energy
            relaxed = AseAtomsAdaptor.get_structure(atoms)
            for key in list(relaxed.site_properties):
                relaxed.remove_site_property(key)
            result["relaxed"] = relaxed
            ratio = relaxed.volume / structure.volume
            forces = atoms.get_forces()
            if not (math.isfinite(energy) and np.isfinite(forces).all()):
                result["error"] = "non-finite energy or forces"
            elif not (1 / MAX_VOLUME_RATIO <= ratio <= MAX_VOLUME_RATIO):
                result["error"] = f"exploded: volume changed {ratio:.3g}-fold"
            elif _min_distance(relaxed) < MIN_DISTANCE_ANGSTROM:
                result["error"] = f"collapsed: atoms closer than {MIN_DISTANCE_ANGSTROM} Å"
            result["converged"] = converged and not result["error"]
        except Exception as exc:  # a generated crystal may break the potential; that is a result, not a crash
            result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def _min_distance(structure: Structure) -> float:
    from autoperi.graphs.neighbors import min_pair_distance

    return float(min_pair_distance(structure.frac_coords, structure.lattice.matrix, MIN_DISTANCE_ANGSTROM + 0.5))
