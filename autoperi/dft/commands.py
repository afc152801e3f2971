"""`autoperi dft STRUCTURES --dataset D [--source NAME] [--n N] [--relax] [--scheduler ADDR] [--workers N]`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def cmd_dft(args) -> int:
    from autoperi.config import load_params
    from autoperi.dft.install import GpawMissing, ensure_gpaw

    try:
        ensure_gpaw()
    except GpawMissing as exc:
        print(f"autoperi dft: {exc}", file=sys.stderr)
        return 2
    from autoperi.dft.stage import run_dft_source

    params = load_params(args.params, args.profile)
    if args.max_atoms is not None:
        params = dataclasses.replace(params, dft=dataclasses.replace(params.dft, max_atoms=args.max_atoms))
    if args.structures is None and args.source is None:
        print("autoperi dft: give STRUCTURES or --source (oracle, or a samples file's name)", file=sys.stderr)
        return 2
    oracle = args.structures == "oracle" or (args.structures is None and args.source == "oracle")
    source = args.source or ("oracle" if oracle else Path(args.structures).stem)
    structures = None if oracle else args.structures  # None: the pipeline's reports/samples/<dataset>/<source>.extxyz
    summary = run_dft_source(
        params, args.dataset, source, structures_path=structures, n=args.n,
        relax=args.relax, scheduler=args.scheduler, workers=args.workers,
        surrogate_checkpoint=args.surrogate_checkpoint, with_chgnet=not args.no_chgnet, n_relax=args.n_relax,
        compute=not args.summary_only,
    )
    shown = {k: v for k, v in summary.items() if k not in ("references", "config", "relax_failures")}
    print(json.dumps(shown, indent=1, default=str))
    return 0


def cmd_dft_convergence(args) -> int:
    from autoperi.config import load_params
    from autoperi.dft.protocol import converged_setting
    from autoperi.dft.stage import run_convergence

    result = run_convergence(load_params(args.params, args.profile))
    for row in result["rows"]:
        print(f"{row['structure']:24s} {row['scan']:12s} {row['value']:6g}  dE/atom {row['d_energy_per_atom_mev']:8.1f}"
              f"  dEf/atom {row.get('d_formation_mev', float('nan')):8.1f} meV  {row['wall_s']:.0f} s")
    for scan in ("cutoff_ev", "kpt_density"):
        print(f"converged {scan} (5 meV/atom total, 15 meV/atom formation): {converged_setting(result, scan)}")
    return 0


def register(sub) -> None:
    """Add `autoperi dft` and `autoperi dft-convergence`."""
    conv = sub.add_parser("dft-convergence", help="cutoff and k-point convergence test of the DFT protocol "
                                                  "-> reports/dft/convergence.json")
    conv.set_defaults(func=cmd_dft_convergence)
    p = sub.add_parser("dft", help="GPAW single points (+ relaxations) of structures; resumable; "
                                   "writes reports/dft/<dataset>/<source>.json")
    p.add_argument("structures", nargs="?", default=None,
                   help="'oracle' (the dataset's test split) or a structures file/folder (extxyz, CIFs, POSCARs, "
                        "CSV with a cif column); default: the pipeline's samples of --source")
    p.add_argument("--dataset", required=True, help="dataset the structures belong to, e.g. perov_5")
    p.add_argument("--source", default=None, help="name of the output folder (default: oracle or the file's stem)")
    p.add_argument("--n", type=int, default=None, help="structures (default: dft.n_structures)")
    p.add_argument("--relax", action=argparse.BooleanOptionalAction, default=None,
                   help="also GPAW-relax the dft.n_relax smallest (from CHGNet); default: all but the oracle, whose "
                        "crystals are already DFT-relaxed")
    p.add_argument("--max-atoms", type=int, default=None, help="larger cells are not run (default: dft.max_atoms)")
    p.add_argument("--n-relax", type=int, default=None, help="relaxations with --relax (default: dft.n_relax)")
    p.add_argument("--scheduler", default=None, help="dask scheduler tcp://HOST:PORT (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: dft.workers; 0=serial)")
    p.add_argument("--surrogate-checkpoint", default=None, help="surrogate checkpoint for E_f comparison")
    p.add_argument("--summary-only", action="store_true", help="summarise the records on disk; run nothing")
    p.add_argument("--no-chgnet", action="store_true", help="skip the CHGNet formation-energy comparison")
    p.set_defaults(func=cmd_dft)
