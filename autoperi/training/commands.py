"""`autoperi train`: thin wrapper over `autoperi.training.runner.train_dataset` (registered by autoperi/cli.py);
`autoperi refine`: the coordinate-decoder refinement alone (`autoperi.training.refine.refine_best`).

    autoperi train --dataset perov_5 [--epochs N] [--max-minutes M] [--resume | --no-resume] [--out DIR] [--nproc 2]
    autoperi refine --dataset mp20_bt [--minutes M] [--device cuda]

`--nproc N` (or `train.processes` in params.yaml) relaunches the same command under
`torchrun --standalone --nproc_per_node N` (DDP; gloo on CPU). Launching torchrun yourself works too:
`torchrun --standalone --nproc_per_node 2 -m autoperi.cli train --dataset perov_5`.
"""

from __future__ import annotations

import argparse
import json
import math


def _worker_args(args) -> list[str]:
    """The command line each torchrun process runs (the same command, without relaunching)."""
    out = ["--params", args.params] + (["--profile", args.profile] if args.profile else [])
    out += ["train", "--dataset", args.dataset, "--threads", str(args.threads)]
    if args.epochs is not None:
        out += ["--epochs", str(args.epochs)]
    if args.max_minutes is not None:
        out += ["--max-minutes", str(args.max_minutes)]
    if args.resume is not None:
        out.append("--resume" if args.resume else "--no-resume")
    if args.out:
        out += ["--out", args.out]
    if args.no_mlflow:
        out.append("--no-mlflow")
    return out


def cmd_train(args) -> int:
    import dataclasses

    from autoperi.config import load_params
    from autoperi.training import distributed

    params = load_params(args.params, args.profile)
    nproc = args.nproc or params.train.processes
    # train.threads is the machine's share: split it between the processes unless --threads says otherwise
    threads = args.threads or max(1, params.train.threads // nproc)
    overrides = {"threads": threads}
    if args.max_minutes is not None:  # the command line wins over the per-dataset budgets of params.yaml
        overrides.update(max_minutes=args.max_minutes, max_minutes_by_dataset=None)
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, **overrides))
    if nproc > 1 and not distributed.launched_by_torchrun():
        args.threads = threads
        return distributed.run_torchrun(nproc, _worker_args(args), threads=threads)

    from autoperi.training.runner import train_dataset

    job = distributed.init_distributed()
    try:
        result = train_dataset(
            params,
            args.dataset,
            out_dir=args.out,
            epochs=args.epochs,
            resume=args.resume,
            log_mlflow=not args.no_mlflow,
        )
    finally:
        distributed.shutdown_distributed()
    if job.is_main:
        last = result["history"][-1] if result["history"] else {}
        summary = {
            "dataset": args.dataset,
            "epochs_completed": result["epochs_completed"],
            "stop_reason": result["stop_reason"],
            "best_epoch": result["best_epoch"],
            "best_val_loss": result["best_val_loss"],
            "last_train_loss": last.get("train_loss"),
            "crystals_per_s": last.get("crystals_per_s"),
            "train_minutes": round(result["train_minutes"], 2),
            "skipped_steps": result["skipped_steps"],
            "best": str(result["best"]),
        }
        finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
        print(json.dumps(finite))
    return 0


def register(sub) -> None:
    """Add `autoperi train` to the `autoperi` parser."""
    train = sub.add_parser(
        "train",
        help="train AutoPeri-GNN on a dataset (resumable; --nproc N runs DDP through torchrun)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--dataset", required=True, help="processed dataset, e.g. perov_5")
    train.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    train.add_argument("--max-minutes", type=float, default=None, help="override train.max_minutes (wall budget)")
    group = train.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="resume", action="store_true", default=None, help="continue from last.pt")
    group.add_argument("--no-resume", dest="resume", action="store_false", help="start afresh (overwrites)")
    train.add_argument("--out", default=None, help="output folder (default: <train.models_dir>/<dataset>)")
    train.add_argument("--nproc", type=int, default=None, help="processes (torchrun DDP); default train.processes")
    train.add_argument(
        "--threads", type=int, default=None, help="torch threads per process; default train.threads / processes"
    )
    train.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    train.set_defaults(func=cmd_train)
    register_refine(sub)


def cmd_refine(args) -> int:
    """`autoperi refine`: the coordinate-decoder refinement of a trained checkpoint (autoperi.training.refine)."""
    from pathlib import Path

    from autoperi.config import load_params
    from autoperi.training.refine import refine_best

    params = load_params(args.params, args.profile)
    out = Path(args.out) if args.out else params.path(params.train.models_dir) / args.dataset
    minutes = args.minutes
    if minutes is None:
        minutes = (params.train.refine_minutes_by_dataset or {}).get(args.dataset)
    if not minutes:
        print(f"autoperi refine: no --minutes and no train.refine_minutes_by_dataset entry for {args.dataset}")
        return 2
    extra = {k: v for k, v in (("lr", args.lr), ("atoms_per_batch", args.atoms_per_batch),
                                 ("validate_every_s", args.validate_every_s)) if v is not None}
    entry = refine_best(params, args.dataset, out, minutes, threads=args.threads or params.train.threads,
                        device=args.device, **extra)
    print(json.dumps({k: v for k, v in entry.items() if k != "history"}))
    return 0


def register_refine(sub) -> None:
    refine = sub.add_parser(
        "refine",
        help="refine the coordinate decoder of <models>/<dataset>/best.pt alone (frozen encoder posteriors)",
        description=cmd_refine.__doc__,
    )
    refine.add_argument("--dataset", required=True)
    refine.add_argument("--minutes", type=float, default=None, help="wall budget (default: "
                        "train.refine_minutes_by_dataset)")
    refine.add_argument("--device", default="cpu", help="cpu or cuda (posteriors: <out>/posteriors.pt, cached)")
    refine.add_argument("--out", default=None, help="checkpoint folder (default: <train.models_dir>/<dataset>)")
    refine.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    refine.add_argument("--lr", type=float, default=None)
    refine.add_argument("--atoms-per-batch", type=int, default=None)
    refine.add_argument("--validate-every-s", type=float, default=None)
    refine.set_defaults(func=cmd_refine)
