"""`autoperi generate` (sample crystals from a trained AutoPeri-GNN checkpoint) and `autoperi csp` (structure prediction
match rate on a test split); registered by autoperi/cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_generate(args) -> int:
    import torch

    from autoperi.config import load_params
    from autoperi.sampling.sampler import (
        configure_sampling,
        generate,
        load_model,
        sampling_settings,
        write_samples,
    )

    torch.set_num_threads(args.threads)
    try:
        model, meta = load_model(args.checkpoint)
    except FileNotFoundError as exc:
        print(f"autoperi generate: {exc}", file=sys.stderr)
        return 2
    params = load_params(args.params, args.profile) if Path(args.params).exists() else None
    dataset = meta.get("config", {}).get("dataset")
    if params:
        configure_sampling(model, sampling_settings(params, dataset))
    try:
        samples = generate(model, args.n, spacegroup=args.space_group, composition=args.composition,
                           n_steps=args.steps, seed=args.seed, batch_size=args.batch_size)
    except ValueError as exc:
        print(f"autoperi generate: {exc}", file=sys.stderr)
        return 2
    path = write_samples(samples, args.out, symmetrize=args.symmetrize, cif_dir=args.cif_dir)
    print(json.dumps({"n": len(samples), "out": str(path), "checkpoint": str(args.checkpoint),
                      "dataset": meta.get("config", {}).get("dataset"), "steps": args.steps or model.cfg.sample_steps}))
    return 0


def cmd_csp(args) -> int:
    import torch

    from autoperi.config import SAMPLING_KEYS, load_params
    from autoperi.data.registry import load_processed
    from autoperi.sampling.csp import write_csp_report
    from autoperi.sampling.sampler import configure_sampling, load_model, sampling_settings
    from autoperi.training.records import BEST

    torch.set_num_threads(args.threads)
    params = load_params(args.params, args.profile)
    checkpoint = args.checkpoint or params.path(params.train.models_dir) / args.dataset / BEST
    try:
        model, meta = load_model(checkpoint)
    except FileNotFoundError as exc:
        print(f"autoperi csp: {exc}", file=sys.stderr)
        return 2
    configure_sampling(model, sampling_settings(params, args.dataset))
    out = args.out or params.path(params.evaluation.metrics_dir) / args.dataset / "autoperi_csp.json"
    frame = load_processed(params, [args.dataset])[args.dataset]
    epoch = (meta.get("progress") or {}).get("epoch")
    report = write_csp_report(model, frame, out, ks=tuple(args.k), max_compositions=args.max_compositions or None,
                              n_steps=args.steps, seed=args.seed,
                              extra={"checkpoint": str(checkpoint), "checkpoint_epoch": epoch, "threads": args.threads,
                                     "sampling": {k: getattr(model.cfg, k) for k in sorted(SAMPLING_KEYS)}})
    print(json.dumps({"out": str(out), **report["results"]}))
    return 0


def register(sub) -> None:
    """Add `autoperi generate` and `autoperi csp` to the `autoperi` parser."""
    gen = sub.add_parser("generate", help="sample crystals from a trained AutoPeri-GNN checkpoint")
    gen.add_argument("--checkpoint", required=True, help="models/<dataset>/best.pt")
    gen.add_argument("--n", type=int, default=1000, help="number of crystals")
    gen.add_argument("--out", required=True, help="extxyz file to write")
    gen.add_argument("--space-group", type=int, default=None, help="condition on this space group (1-230)")
    gen.add_argument("--composition", default=None, help="fix the composition, e.g. Ba2Ti2O6 (structure prediction)")
    gen.add_argument("--steps", type=int, default=None,
                     help="Euler steps (default: evaluation.sampling.<dataset>.sample_steps, else the model's)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--batch-size", type=int, default=2000)
    gen.add_argument("--threads", type=int, default=2)
    gen.add_argument("--symmetrize", action="store_true", help="refine each sample to the space group spglib finds")
    gen.add_argument("--cif-dir", default=None, help="also write one CIF per sample into this folder")
    gen.set_defaults(func=cmd_generate)

    csp = sub.add_parser("csp", help="crystal structure prediction match rate on a dataset's test split")
    csp.add_argument("--dataset", required=True, help="processed dataset whose test split is predicted, e.g. perov_5")
    csp.add_argument("--checkpoint", default=None, help="default: <train.models_dir>/<dataset>/best.pt")
    csp.add_argument("--params", default="params.yaml")
    csp.add_argument("--max-compositions", type=int, default=100, help="seeded subset of test rows (0 = all)")
    csp.add_argument("--k", type=int, nargs="+", default=[1, 20], help="samples per composition to score")
    csp.add_argument("--steps", type=int, default=None,
                     help="Euler steps (default: evaluation.sampling.<dataset>.sample_steps, else the model's)")
    csp.add_argument("--seed", type=int, default=0)
    csp.add_argument("--threads", type=int, default=2)
    csp.add_argument("--out", default=None, help="default: <evaluation.metrics_dir>/<dataset>/autoperi_csp.json")
    csp.set_defaults(func=cmd_csp)
