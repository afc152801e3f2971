"""CHGNet stability throughput and a check of the elemental references → reports/benchmarks/chgnet_stability.json.

1. Single points per second (`chgnet_energies`, batch 64) on N random processed structures per dataset.
2. Seconds per relaxation (`relax_structures`, FIRE, fmax 0.1, ≤ 500 steps) of M structures per dataset, each
   rattled (0.1 Å Gaussian site noise, ±5 % random axial strain) so that it does not start at a minimum.
3. Formation-energy check of the elemental references: for mp20_bt rows with a DFT formation energy,
   E_f(CHGNet) = E(CHGNet single point) - sum_j x_j mu_j with the CHGNet elemental references mu_j, compared with
   the dataset's DFT E_f (MAE, mean signed error). A least-squares fit of the residual on the atomic fractions gives,
   per element, the shift of mu_j that would best reproduce the DFT formation energies: large values flag an
   elemental reference that sits too high or too low (or a CHGNet/DFT correction difference for that element).

Runs with one torch thread (`load_chgnet`). Usage:
  python benchmarks/chgnet_stability.py [--n-single 500] [--n-relax 6] [--n-check 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from autoperi.config import Params
from autoperi.data.preprocess import record_to_structure
from autoperi.metrics.hull import elemental_references
from autoperi.metrics.stability import chgnet_energies, load_chgnet, relax_structures

REPO = Path(__file__).resolve().parents[1]


def throughput(frame: pd.DataFrame, n_single: int, n_relax: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = frame.sample(min(n_single, len(frame)), random_state=seed).to_dict("records")
    structures = [record_to_structure(r) for r in rows]
    t0 = time.perf_counter()
    energies = chgnet_energies(structures)
    single_s = time.perf_counter() - t0
    rattled = []
    for s in structures[:n_relax]:
        r = s.copy()
        r.perturb(0.1)
        r.apply_strain(rng.uniform(-0.05, 0.05, 3))
        rattled.append(r)
    t0 = time.perf_counter()
    table = relax_structures(rattled, desc=None)
    relax_s = time.perf_counter() - t0
    return dict(
        n_single=len(structures),
        mean_atoms=float(np.mean([len(s) for s in structures])),
        single_points_per_s=len(structures) / single_s,
        n_nan=int(np.isnan(energies).sum()),
        n_relax=len(rattled),
        relax_s_per_structure=relax_s / max(len(rattled), 1),
        relax_steps=table.n_steps.tolist(),
        relax_converged=table.converged.tolist(),
        relax_rmsd_angstrom=[round(x, 3) for x in table.rmsd_angstrom],
        relax_s_per_step=relax_s / max(int(table.n_steps.sum()), 1),
    )


def formation_energy_check(frame: pd.DataFrame, refs_path: Path, n_check: int, seed: int) -> dict:
    frame = frame[np.isfinite(frame.formation_energy_per_atom)].sample(n_check, random_state=seed)
    structures = [record_to_structure(r) for r in frame.to_dict("records")]
    energies = chgnet_energies(structures)
    elements = sorted({el.symbol for s in structures for el in s.composition.elements})
    mu = {s: r["energy_per_atom"] for s, r in elemental_references(elements, refs_path).items()}
    fractions = np.array([[s.composition.get_atomic_fraction(e) for e in elements] for s in structures])
    e_form = energies - fractions @ np.array([mu[e] for e in elements])
    residual = e_form - frame.formation_energy_per_atom.to_numpy()
    ok = np.isfinite(residual)
    shift, *_ = np.linalg.lstsq(fractions[ok], residual[ok], rcond=None)
    order = np.argsort(-np.abs(shift))
    counts = (fractions[ok] > 0).sum(axis=0)
    return dict(
        n=int(ok.sum()),
        mae_ev_per_atom=float(np.abs(residual[ok]).mean()),
        mean_signed_error_ev_per_atom=float(residual[ok].mean()),
        mae_after_shift_ev_per_atom=float(np.abs(residual[ok] - fractions[ok] @ shift).mean()),
        largest_shifts_ev_per_atom={elements[i]: round(float(-shift[i]), 3) for i in order[:15] if counts[i] >= 20},
        note="shift = how much lower (negative: higher) mu_j would have to be to match DFT E_f on average",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-single", type=int, default=500)
    parser.add_argument("--n-relax", type=int, default=6)
    parser.add_argument("--n-check", type=int, default=3000)
    parser.add_argument("--datasets", nargs="+", default=["perov_5", "mp20_bt", "carbon_24"])
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/chgnet_stability.json"))
    args = parser.parse_args()
    params = Params(profile="default", root=REPO)
    import torch

    load_chgnet()
    out = dict(
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)",
        torch_threads=torch.get_num_threads(),
        load_average_start=os.getloadavg(),
        datasets={},
    )
    processed = params.path(params.data.processed_dir)
    for name in args.datasets:
        frame = pd.read_parquet(processed / f"{name}.parquet")
        out["datasets"][name] = throughput(frame, args.n_single, args.n_relax, params.evaluation.seed)
        print(name, json.dumps(out["datasets"][name]), flush=True)
    if args.n_check and "mp20_bt" in args.datasets:
        frame = pd.read_parquet(processed / "mp20_bt.parquet")
        refs = params.path(params.evaluation.references_dir) / "chgnet_elements.json"
        out["formation_energy_check_mp20_bt"] = formation_energy_check(frame, refs, args.n_check, 0)
        print(json.dumps(out["formation_energy_check_mp20_bt"]), flush=True)
    out["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
