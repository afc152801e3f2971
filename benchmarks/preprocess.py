"""Preprocessing and neighbour-list throughput → reports/benchmarks/preprocess.json.

1. The whole registry of the chosen profile (default: `paper`, every dataset), built into a temporary folder with
   the data stage's own code; wall time, structures, and seconds per step (parse, symmetry, filters, dedup, graphs).
2. Neighbour lists at 8 Å on 2,000 real mp20_bt structures: this project's `neighbor_list` vs pymatgen's
   `Structure.get_neighbor_list` vs vesin, side by side, with a check that the outputs are identical.
3. Symmetry: spglib vs moyopy (used by the pipeline) on 500 of them, time and space-group agreement.
4. The batched path for generated structures (`build_graphs`, many small cells at once) vs one
   `Structure.get_neighbor_list` call per crystal.

Usage: python benchmarks/preprocess.py [--profile paper] [--skip-registry]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from autoperi.config import load_params
from autoperi.data.preprocess import record_to_structure
from autoperi.data.registry import load_processed, preprocess_registry
from autoperi.graphs import build_graph, build_graphs, neighbor_list

REPO = Path(__file__).resolve().parents[1]


def registry_benchmark(params) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = dataclasses.replace(
            params.data,
            raw_dir=str(params.path(params.data.raw_dir)),
            processed_dir=f"{tmp}/processed",
            reports_dir=f"{tmp}/reports",
        )
        p = dataclasses.replace(params, data=data)
        t0 = time.perf_counter()
        summary = preprocess_registry(p)
        wall = time.perf_counter() - t0
        frames = load_processed(p)
        t1 = time.perf_counter()
        n_graphs = 0
        for frame in frames.values():
            for row in frame.itertuples():
                build_graph(
                    row.atomic_numbers,
                    np.reshape(row.frac_coords, (-1, 3)),
                    np.reshape(row.lattice, (3, 3)),
                    params.graphs,
                )
                n_graphs += 1
        graphs_s = time.perf_counter() - t1
    steps = {}
    for rep in summary["datasets"].values():
        for key, value in rep["timings_s"].items():
            steps[key] = round(steps.get(key, 0.0) + value, 2)
    return {
        "profile": params.profile,
        "workers": params.data.workers,
        "wall_s": round(wall, 1),
        "n_structures": int(sum(rep["n_raw"] for rep in summary["datasets"].values())),
        "n_kept": int(sum(rep["n_kept"] for rep in summary["datasets"].values())),
        "structures_per_s": round(sum(rep["n_raw"] for rep in summary["datasets"].values()) / wall, 1),
        "step_cpu_s": steps,  # summed over worker processes (CPU seconds, not wall)
        "graphs_s": round(graphs_s, 1),
        "graphs_n": n_graphs,
        "per_dataset_wall_s": {k: v["wall_s"] for k, v in summary["datasets"].items()},
    }


def _pairs(i, j, shifts, dist):
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, i))
    return np.stack([i, j], 1)[order], shifts[order], dist[order]


def neighbor_benchmark(structures, cutoff: float) -> dict:
    import vesin

    arrays = [(s.frac_coords, s.lattice.matrix) for s in structures]
    t0 = time.perf_counter()
    ours = [neighbor_list(f, lat, cutoff) for f, lat in arrays]
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [s.get_neighbor_list(cutoff) for s in structures]
    ref_s = time.perf_counter() - t0
    nl = vesin.NeighborList(cutoff=cutoff, full_list=True)
    t0 = time.perf_counter()
    ves = [nl.compute(s.cart_coords, s.lattice.matrix, True, "ijSd") for s in structures]
    ves_s = time.perf_counter() - t0
    identical = vesin_identical = True
    for (edge_index, shifts, dist), (i, j, images, d), (vi, vj, vs, vd) in zip(ours, ref, ves, strict=True):
        a = _pairs(edge_index[0], edge_index[1], shifts, dist)
        b = _pairs(i, j, np.rint(images).astype(int), d)
        c = _pairs(vi, vj, vs.astype(int), vd)
        identical &= np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.allclose(a[2], b[2], atol=1e-6)
        vesin_identical &= len(c[0]) == len(a[0]) and np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
    n = len(structures)
    return {
        "n_structures": n,
        "cutoff_angstrom": cutoff,
        "structures_per_s": round(n / ours_s, 1),
        "pymatgen_structures_per_s": round(n / ref_s, 1),
        "speedup": round(ref_s / ours_s, 3),
        "identical": bool(identical),
        "vesin_structures_per_s": round(n / ves_s, 1),
        "vesin_identical": bool(vesin_identical),
    }


def symmetry_benchmark(structures, symprec: float) -> dict:
    """spglib vs moyopy (the pipeline's choice) on the same cells: time and space-group agreement."""
    import moyopy
    import spglib

    cells = [(s.lattice.matrix, s.frac_coords, [x.specie.Z for x in s]) for s in structures]
    t0 = time.perf_counter()
    ref = [spglib.get_symmetry_dataset(c, symprec=symprec).number for c in cells]
    spglib_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = []
    for lattice, frac, numbers in cells:
        cell = moyopy.Cell(basis=lattice.tolist(), positions=frac.tolist(), numbers=numbers)
        ours.append(moyopy.MoyoDataset(cell, symprec=symprec).number)
    moyopy_s = time.perf_counter() - t0
    return {
        "n_structures": len(cells),
        "symprec": symprec,
        "spglib_version": spglib.__version__,
        "moyopy_version": moyopy.__version__,
        "spglib_ms_per_structure": round(spglib_s / len(cells) * 1e3, 2),
        "moyopy_ms_per_structure": round(moyopy_s / len(cells) * 1e3, 2),
        "speedup": round(spglib_s / moyopy_s, 1),
        "same_space_group": round(float(np.mean(np.equal(ref, ours))), 4),
    }


def batched_benchmark(structures, graph_cfg) -> dict:
    triples = [([x.specie.Z for x in s], s.frac_coords, s.lattice.matrix) for s in structures]
    t0 = time.perf_counter()
    batch = build_graphs(triples, graph_cfg)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _, frac, lattice in triples:
        neighbor_list(frac, lattice, graph_cfg.cutoff_angstrom)
    pairs_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [s.get_neighbor_list(graph_cfg.cutoff_angstrom) for s in structures]
    ref_s = time.perf_counter() - t0
    n_ref_edges = sum(len(r[0]) for r in ref)
    return {
        "n_structures": len(structures),
        "n_edges": int(batch.edge_index.shape[1]),
        "structures_per_s": round(len(structures) / batched_s, 1),
        "neighbor_search_structures_per_s": round(len(structures) / pairs_s, 1),
        "pymatgen_structures_per_s": round(len(structures) / ref_s, 1),
        "speedup": round(ref_s / pairs_s, 3),
        "identical_edge_count": int(batch.edge_index.shape[1]) == n_ref_edges,
        "note": "structures_per_s = whole build_graphs (pairs + node features + 32-term RBF on every edge + batch); "
        "speedup compares the pair search alone with pymatgen's get_neighbor_list",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--skip-registry", action="store_true", help="only the neighbour-list measurements")
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/preprocess.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(REPO / "params.yaml", args.profile)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result["machine"] = {
        "cpu_count": __import__("os").cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if not args.skip_registry:
        result["registry"] = registry_benchmark(params)
    frames = (
        load_processed(params, ["mp20_bt"])
        if (params.path(params.data.processed_dir) / "mp20_bt.parquet").exists()
        else {}
    )
    sample = frames["mp20_bt"].sample(2000, random_state=0) if frames else None
    if sample is None:
        raise SystemExit("run the data stage first (data/processed/mp20_bt.parquet is missing)")
    structures = [record_to_structure(r) for _, r in sample.iterrows()]
    result["neighbor_list"] = neighbor_benchmark(structures, params.graphs.cutoff_angstrom)
    result["symmetry"] = symmetry_benchmark(structures[:500], params.data.symprec)
    perov = load_processed(params, ["perov_5"])["perov_5"].sample(2000, random_state=0)
    result["batched"] = batched_benchmark([record_to_structure(r) for _, r in perov.iterrows()], params.graphs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
