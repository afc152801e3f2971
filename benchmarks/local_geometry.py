"""Bond lengths and coordination of samples against real crystals → reports/benchmarks/local_geometry.json.

COV-P asks for a sample whose CrystalNN environment lies within the cutoff of a test crystal's, so a model that
gets the density right but the bonds wrong scores low. This measures the local geometry directly, per crystal:
the nearest-neighbour distance of each atom divided by the sum of the two covalent radii (ASE's table; 1.0 is a
covalent bond, C-C: 1.52 Å) — its median and minimum over the atoms — and the mean coordination number within
`bond_factor` times that sum. Samples (extxyz files) and the test split are summarised by atom count, so a size
group's mismatch shows. Neighbours come from the project's one neighbour list (`autoperi.graphs.neighbors`).

Usage: python benchmarks/local_geometry.py [--dataset carbon_24] [--samples reports/samples/carbon_24/autoperi.extxyz
       other.extxyz ...] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from ase.data import covalent_radii

from autoperi.config import load_params
from autoperi.data.preprocess import record_to_structure
from autoperi.graphs.neighbors import neighbor_list
from autoperi.metrics.evaluate import load_samples
from autoperi.metrics.validity import structure_validity

REPO = Path(__file__).resolve().parents[1]
SEARCH_ANGSTROM = 4.0  # every atom of a valid crystal has a neighbour this close


def local_geometry(atomic_numbers, frac_coords, lattice, bond_factor: float = 1.2) -> dict:
    """Per crystal: median / minimum over atoms of (nearest-neighbour distance / sum of covalent radii), and the
    mean number of neighbours within `bond_factor` x that sum. An atom with no neighbour within 4 Å counts as NaN."""
    numbers = np.asarray(atomic_numbers, dtype=int)
    (i, j), _, dist = neighbor_list(frac_coords, lattice, SEARCH_ANGSTROM)
    ratio = dist / (covalent_radii[numbers[i]] + covalent_radii[numbers[j]])
    nearest = np.full(len(numbers), np.nan)
    np.fmin.at(nearest, i, ratio)
    coordination = np.bincount(i[ratio <= bond_factor], minlength=len(numbers))
    return {"n_atoms": len(numbers), "nn_ratio_median": float(np.nanmedian(nearest)),
            "nn_ratio_min": float(np.nanmin(nearest)), "coordination": float(coordination.mean())}


def summarize(rows: pd.DataFrame) -> dict:
    """Medians over crystals, overall and per atom count."""
    columns = ["nn_ratio_median", "nn_ratio_min", "coordination"]
    by_size = rows.groupby("n_atoms")[columns].median().round(4)
    by_size.insert(0, "n", rows.groupby("n_atoms").size())
    return {"n": len(rows), **rows[columns].median().round(4).to_dict(),
            "by_n_atoms": {str(k): v for k, v in by_size.to_dict("index").items()}}


def of(structures, bond_factor: float) -> pd.DataFrame:
    """`local_geometry` of each structurally valid structure (the protocol's test; a collapsed cell would make the
    4 Å search enumerate millions of images). Refused inputs (None) and invalid ones are skipped."""
    return pd.DataFrame([local_geometry(s.atomic_numbers, s.frac_coords, s.lattice.matrix, bond_factor)
                         for s in structures if s is not None and structure_validity(s)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="carbon_24")
    parser.add_argument("--samples", nargs="*", default=None, help="default: reports/samples/<dataset>/autoperi.extxyz")
    parser.add_argument("--n", type=int, default=1000, help="first n samples and a seeded n of the test split")
    parser.add_argument("--bond-factor", type=float, default=1.2)
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/local_geometry.json"))
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    from autoperi.data.registry import load_processed

    table = load_processed(params, [args.dataset])[args.dataset]
    test = table[table["split"] == "test"]
    test = test.iloc[np.sort(np.random.default_rng(0).permutation(len(test))[: args.n])]
    entry = {"protocol": f"test split: seeded {len(test)} crystals; samples: the structurally valid ones of the first "
                         f"{args.n} of each file; "
                         f"nearest-neighbour distance / (r_cov,i + r_cov,j), coordination within {args.bond_factor} x",
             "test": summarize(of([record_to_structure(r) for r in test.to_dict("records")], args.bond_factor))}
    for path in args.samples or [f"reports/samples/{args.dataset}/autoperi.extxyz"]:
        _, structures, _ = load_samples(REPO / path)
        entry[os.path.relpath(REPO / path, REPO)] = summarize(of(structures[: args.n], args.bond_factor))
    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    report[args.dataset] = entry  # the other datasets' entries are kept
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in entry.items():
        if key != "protocol":
            print(key, {k: v for k, v in value.items() if k != "by_n_atoms"})


if __name__ == "__main__":
    main()
