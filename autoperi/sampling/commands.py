"""`autoperi generate`: sample crystals from a trained AutoPeri-GNN checkpoint (registered by autoperi/cli.py)."""

from __future__ import annotations

import json
import sys


def cmd_generate(args) -> int:
    import torch

    from autoperi.sampling.sampler import generate, load_model, write_samples

    torch.set_num_threads(args.threads)
    try:
        model, meta = load_model(args.checkpoint)
    except FileNotFoundError as exc:
        print(f"autoperi generate: {exc}", file=sys.stderr)
        return 2
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


def register(sub) -> None:
    """Add `autoperi generate` to the `autoperi` parser."""
    gen = sub.add_parser("generate", help="sample crystals from a trained AutoPeri-GNN checkpoint")
    gen.add_argument("--checkpoint", required=True, help="models/<dataset>/best.pt")
    gen.add_argument("--n", type=int, default=1000, help="number of crystals")
    gen.add_argument("--out", required=True, help="extxyz file to write")
    gen.add_argument("--space-group", type=int, default=None, help="condition on this space group (1-230)")
    gen.add_argument("--composition", default=None, help="fix the composition, e.g. Ba2Ti2O6 (structure prediction)")
    gen.add_argument("--steps", type=int, default=None, help="Euler steps of the coordinate decoder (default: model's)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--batch-size", type=int, default=2000)
    gen.add_argument("--threads", type=int, default=2)
    gen.add_argument("--symmetrize", action="store_true", help="refine each sample to the space group spglib finds")
    gen.add_argument("--cif-dir", default=None, help="also write one CIF per sample into this folder")
    gen.set_defaults(func=cmd_generate)
