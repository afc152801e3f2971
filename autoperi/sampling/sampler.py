"""Sampling a trained AutoPeri-GNN: checkpoint → crystals (pymatgen Structures), optional symmetrisation to the
target space group, files through the one writer (`autoperi.sampling.writers`), and the sampling-speed benchmark.

Symmetrisation: spglib (through pymatgen's SpacegroupAnalyzer at a loose symprec) finds the space group of the raw
decoded crystal and returns its refined, then primitive standard, cell; the atoms move onto the Wyckoff positions
of the group it finds. A raw crystal whose detected group is lower than the target is not forced into the target
group; `symmetrize_structure` reports the group found so both raw and symmetrised results can be scored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

DEFAULT_BATCH = 2000


def load_model(checkpoint: str | Path):
    """(AutoPeriGNN in eval mode, checkpoint meta) from a checkpoint written by `autoperi.training.loop.fit`."""
    from autoperi.training.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def sampling_settings(params, dataset: str | None) -> dict:
    """`evaluation.sampling[dataset]`: the sampling settings that replace the checkpoint's for `dataset` (unlisted
    keys and datasets: the checkpoint's). The one place the pipeline, the CLI and the benchmarks take them from."""
    from autoperi.config import SAMPLING_KEYS

    settings = dict((params.evaluation.sampling or {}).get(dataset) or {})
    unknown = sorted(set(settings) - set(SAMPLING_KEYS))
    if unknown:
        raise ValueError(f"params.yaml evaluation.sampling.{dataset}: unknown key(s) {unknown}; sampling keys are "
                         f"{sorted(SAMPLING_KEYS)}")
    return settings


def configure_sampling(model, settings: dict):
    """`model` with `settings` (SAMPLING_KEYS) laid over its config; returns it."""
    import dataclasses

    if settings:
        kinds = {k: type(getattr(model.cfg, k)) for k in settings}
        model.cfg = dataclasses.replace(model.cfg, **{k: kinds[k](v) for k, v in settings.items()})
    return model


def to_structure(sample: dict) -> Structure:
    """A model sample dict (atomic_numbers, frac_coords, lattice) → pymatgen Structure."""
    return Structure(Lattice(np.asarray(sample["lattice"], dtype=float)), [int(z) for z in sample["atomic_numbers"]],
                     np.asarray(sample["frac_coords"], dtype=float), coords_are_cartesian=False)


def symmetrize_structure(structure: Structure, symprec: float = 0.1, angle_tolerance: float = 5.0
                         ) -> tuple[Structure, int]:
    """(primitive standard cell of the refined structure, space group found) at tolerance `symprec` (Å).

    Falls back to the raw structure (and group 1) when spglib finds no symmetry at that tolerance."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        analyzer = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=angle_tolerance)
        refined = analyzer.get_primitive_standard_structure()
        return refined, int(analyzer.get_space_group_number())
    except Exception:  # spglib raises on degenerate cells; the raw structure is then kept unchanged
        return structure, 1


def generate(model, n: int, spacegroup: int | None = None, composition: str | None = None,
             n_steps: int | None = None, seed: int = 0, batch_size: int = DEFAULT_BATCH,
             progress=None) -> list[dict]:
    """n sample dicts from the model: unconditional, for one space group, and/or for one composition (CSP)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the flow's base samples use the global generator where none is passed down
    max_atoms = int(model.stats["max_atoms"])
    batch_size = max(32, min(batch_size, 100000 // max_atoms**2))  # bounds the [B, N, N, hidden] pair tensors
    if composition is None:
        out: list[dict] = []
        for start in range(0, n, batch_size):
            out.extend(model.sample(min(batch_size, n - start), condition=spacegroup, n_steps=n_steps,
                                    generator=generator))
            if progress is not None:
                progress(len(out))
        return out
    from autoperi.sampling.csp import sample_for_composition

    return sample_for_composition(model, composition, n, spacegroup=spacegroup, n_steps=n_steps,
                                  generator=generator, batch_size=batch_size)


def samples_to_structures(samples: Sequence[dict], symmetrize: bool = False, symprec: float = 0.1
                          ) -> tuple[list[Structure], list[dict]]:
    """(Structures, per-structure info for the extxyz comment line: condition, and the group found if symmetrised)."""
    structures, infos = [], []
    for i, sample in enumerate(samples):
        structure = to_structure(sample)
        info = {"sample_id": i, "spacegroup_condition": int(sample.get("spacegroup", 0)),
                "network_evals": int(sample.get("network_evals", 0))}
        if symmetrize:
            structure, found = symmetrize_structure(structure, symprec)
            info["spacegroup_found"] = found
        structures.append(structure)
        infos.append(info)
    return structures, infos


def write_samples(samples: Sequence[dict], path: str | Path, symmetrize: bool = False, cif_dir: str | Path | None = None
                  ) -> Path:
    """Write samples as one extxyz file (and optionally a folder of CIFs) through the project's writer."""
    from autoperi.sampling.writers import write_cifs, write_extxyz

    structures, infos = samples_to_structures(samples, symmetrize=symmetrize)
    if cif_dir is not None:
        write_cifs(structures, cif_dir)
    return write_extxyz(structures, path, info=infos)


def sampling_speed(model, n: int, n_steps: int | None = None, seed: int = 0, batch_size: int = DEFAULT_BATCH
                   ) -> dict:
    """Wall time of `n` samples to pymatgen Structures (network + structure building) and evaluations per sample."""
    start = time.perf_counter()
    samples = generate(model, n, n_steps=n_steps, seed=seed, batch_size=batch_size)
    network_s = time.perf_counter() - start
    samples_to_structures(samples)
    total_s = time.perf_counter() - start
    evals = np.array([s.get("network_evals", n_steps or model.cfg.sample_steps) for s in samples])
    return {"n": n, "wall_s": total_s, "network_s": network_s, "structures_per_s": n / total_s,
            "network_evals_per_sample": float(evals.mean()), "network_evals_max": int(evals.max()),
            "euler_steps": n_steps or model.cfg.sample_steps, "coordinate_retries": model.cfg.coordinate_retries,
            "plain_retries": model.cfg.plain_retries,
            "flow_passes_per_sample": 1, "threads": torch.get_num_threads()}
