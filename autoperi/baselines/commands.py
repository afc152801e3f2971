"""`autoperi baselines`: write the oracle / memorization / random samples of a dataset (registered by cli.py)."""

from __future__ import annotations

import json

KIND_CHOICES = ("oracle", "memorization", "random")


def cmd_baselines(args) -> int:
    from autoperi.baselines import build_baseline
    from autoperi.config import load_params
    from autoperi.parallel import dask_client

    params = load_params(args.params, args.profile)
    kinds = [args.kind] if args.kind else list(KIND_CHOICES)
    workers = params.evaluation.workers if args.workers is None else args.workers
    for kind in kinds:
        # Only the random crystals are slow enough to be worth a cluster.
        scheduler = params.evaluation.scheduler if kind == "random" else None
        with dask_client(scheduler, workers if kind == "random" else 0) as client:
            report = build_baseline(params, args.dataset, kind, n=args.n, seed=args.seed, client=client)
        shown = {k: v for k, v in report.items() if k not in ("source_ids", "failed_rows")}
        print(json.dumps(shown, indent=2, default=str))
    return 0


def register(sub) -> None:
    """Add `autoperi baselines --dataset D [--kind oracle|memorization|random] [--n N]`."""
    p = sub.add_parser("baselines", help="write the reference rows' samples to reports/samples/<dataset>/<kind>.extxyz")
    p.add_argument("--dataset", required=True, help="processed dataset name, e.g. perov_5")
    p.add_argument("--kind", choices=KIND_CHOICES, default=None, help="one baseline (default: all three)")
    p.add_argument("--n", type=int, default=None, help="samples (default: evaluation.n_samples)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: evaluation.seed)")
    p.add_argument("--workers", type=int, default=None, help="dask workers for the random crystals; 0 = serial")
    p.set_defaults(func=cmd_baselines)
