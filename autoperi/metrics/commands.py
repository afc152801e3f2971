"""`autoperi evaluate`, `autoperi evaluate-checkpoint` and `autoperi references` (registered by autoperi/cli.py):
thin wrappers over `autoperi.sampling.sampler.generate`, `autoperi.metrics.evaluate.evaluate_samples` and
`autoperi.metrics.references.build_references`."""

from __future__ import annotations

import dataclasses
import sys

SHOWN = ("n_samples", "n_refused", "struct_validity", "comp_validity", "cov_recall", "cov_precision", "wdist_density",
         "wdist_num_elems", "wdist_formation_energy", "uniqueness", "novelty", "uniqueness_mattergen",
         "novelty_mattergen", "composition_coverage", "frechet_props", "frechet_embedding")  # fmt: skip


def _params_with(args):
    from autoperi.config import load_params

    params = load_params(args.params, args.profile)
    changes = {}
    if getattr(args, "scheduler", None) is not None:
        changes["scheduler"] = args.scheduler
    if getattr(args, "workers", None) is not None:
        changes["workers"] = args.workers
    if getattr(args, "n_samples", None) is not None:
        changes["n_samples"] = args.n_samples
    if changes:
        params = dataclasses.replace(params, evaluation=dataclasses.replace(params.evaluation, **changes))
    return params


def _show(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_evaluate(args) -> int:
    from pathlib import Path

    params = _params_with(args)
    samples = Path(args.samples)
    if not samples.exists():
        print(f"autoperi evaluate: {samples} does not exist", file=sys.stderr)
        return 2
    model = args.model or (samples.stem if samples.is_file() else samples.name)
    return _score(params, samples, args.dataset, model, args.stability, args.protocol, args.out)


def cmd_evaluate_checkpoint(args) -> int:
    """Sample `evaluation.checkpoint_n_samples` crystals from a checkpoint and score them as one row."""
    import torch

    from autoperi.sampling.sampler import (
        configure_sampling,
        generate,
        load_model,
        sampling_settings,
        write_samples,
    )

    params = _params_with(args)
    cfg = params.evaluation
    n = args.n or cfg.checkpoint_n_samples
    checkpoint = args.checkpoint or params.path(params.train.models_dir) / args.dataset / "best.pt"
    model_name = args.model or cfg.checkpoint_model
    torch.set_num_threads(args.threads)
    try:
        model, meta = load_model(checkpoint)
    except FileNotFoundError as exc:
        print(f"autoperi evaluate-checkpoint: {exc}", file=sys.stderr)
        return 2
    trained_on = meta.get("config", {}).get("dataset")
    if trained_on not in (None, args.dataset):
        print(f"autoperi evaluate-checkpoint: {checkpoint} was trained on {trained_on!r}, not {args.dataset!r}",
              file=sys.stderr)
        return 2
    out = params.path(cfg.samples_dir) / args.dataset / f"{model_name}.extxyz"
    configure_sampling(model, sampling_settings(params, args.dataset))
    samples = generate(model, n, seed=cfg.seed, progress=_progress(n, f"{args.dataset} samples"))
    write_samples(samples, out)
    print(f"{len(samples)} samples of {checkpoint} ({model.cfg.sample_steps} Euler steps) -> {out}")
    params = dataclasses.replace(params, evaluation=dataclasses.replace(cfg, n_samples=n))
    by_dataset = cfg.checkpoint_stability_n_by_dataset or {}
    stability = by_dataset.get(args.dataset, 0) if args.stability is None else args.stability
    return _score(params, out, args.dataset, model_name, stability, "cdvae", None)


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc)

    def update(done: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _score(params, samples, dataset: str, model: str, stability, protocol: str, out_dir) -> int:
    from pathlib import Path

    from autoperi.metrics.evaluate import evaluate_samples
    from autoperi.parallel import dask_client

    cfg = params.evaluation
    references = None
    if model == "oracle":  # the pipeline's oracle: its own crystals leave its novelty reference, as in 07_evaluation
        from autoperi.baselines import oracle_holdout_ids, without_novelty_ids
        from autoperi.metrics.references import build_references

        own = oracle_holdout_ids(params, dataset)
        references = without_novelty_ids(build_references(params, dataset), own)
    with dask_client(cfg.scheduler, cfg.workers) as client:
        try:
            result = evaluate_samples(samples, dataset, model, params, client=client, stability_n=stability,
                                      protocol=protocol, out_dir=out_dir, references=references)  # fmt: skip
        except ValueError as exc:
            print(f"autoperi evaluate: {exc}", file=sys.stderr)
            return 2
    print(f"{dataset} / {model} ({result['protocol']} protocol)")
    for key in SHOWN:
        print(f"  {key:24s} {_show(result.get(key))}")
    for key, value in result["stability"].items():
        print(f"  stability.{key:14s} {_show(value)}")
    if result["n_refused"]:
        print(f"  refused by reason: {result['refused_by_reason']}")
    out = Path(out_dir) if out_dir else params.path(cfg.metrics_dir) / dataset
    print(f"  -> {out / (model + '.json')}, {out / (model + '.csv')} ({result['wall_s']['total']:.1f} s)")
    return 0


def cmd_references(args) -> int:
    from autoperi.metrics.references import build_references
    from autoperi.metrics.stability_step import stability_module
    from autoperi.parallel import dask_client

    params = _params_with(args)
    cfg = params.evaluation
    datasets = [args.dataset] if args.dataset else list(cfg.datasets)
    for dataset in datasets:
        with dask_client(cfg.scheduler, cfg.workers) as client:
            refs = build_references(params, dataset, client=client)
        d = refs.details
        print(f"{dataset}: {d['n_test']} test fingerprints ({d['n_test_fingerprint_failed']} failed), "
              f"{d['n_train_val']} novelty references, {d['wall_s']}")  # fmt: skip
        if args.hull and cfg.stability_n == 0:
            print(f"{dataset}: CHGNet hull not built (evaluation.stability_n = 0: no E_hull is computed)")
        elif args.hull:
            module, note = stability_module()
            if module is None:
                print(f"{dataset}: CHGNet hull skipped ({note})")
                continue
            hull = module.reference_hull(params, dataset)
            print(f"{dataset}: CHGNet reference hull ready ({type(hull).__name__})")
    return 0


def register(sub) -> None:
    """Add `autoperi evaluate SAMPLES --dataset D ...` and `autoperi references [--dataset D]`."""
    p = sub.add_parser("evaluate", help="score samples (CIF folder, extxyz, CSV with `cif`) against a dataset")
    p.add_argument("samples", help="folder of CIF/POSCAR/extxyz files, an extxyz file, or a CSV with a `cif` column")
    p.add_argument("--dataset", required=True, help="processed dataset name, e.g. perov_5")
    p.add_argument("--model", default=None, help="name for the outputs (default: the file or folder name)")
    p.add_argument("--protocol", default="cdvae", choices=["cdvae"], help="evaluation protocol")
    p.add_argument("--stability", type=int, default=None, help="CHGNet relaxations (default: evaluation.stability_n)")
    p.add_argument("--scheduler", default=None, help="dask scheduler tcp://HOST:PORT (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers; 0 = serial")
    p.add_argument("--n-samples", type=int, default=None, help="score at most N readable samples")
    p.add_argument("--out", default=None, help="output folder (default: <metrics_dir>/<dataset>)")
    p.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("evaluate-checkpoint",
                       help="sample a checkpoint (evaluation.checkpoint_n_samples crystals) and score them as one row")
    c.add_argument("--dataset", required=True, help="the dataset the checkpoint was trained on, e.g. perov_5")
    c.add_argument("--checkpoint", default=None, help="default: <train.models_dir>/<dataset>/best.pt")
    c.add_argument("--n", type=int, default=None, help="samples (default: evaluation.checkpoint_n_samples)")
    c.add_argument("--model", default=None, help="row name (default: evaluation.checkpoint_model)")
    c.add_argument("--stability", type=int, default=None,
                   help="CHGNet relaxations (default: evaluation.checkpoint_stability_n_by_dataset)")
    c.add_argument("--threads", type=int, default=2, help="torch threads for sampling")
    c.add_argument("--scheduler", default=None, help="dask scheduler tcp://HOST:PORT (default: a LocalCluster)")
    c.add_argument("--workers", type=int, default=None, help="LocalCluster workers; 0 = serial")
    c.set_defaults(func=cmd_evaluate_checkpoint)

    r = sub.add_parser("references", help="build and cache the reference fingerprints (and CHGNet hull)")
    r.add_argument("--dataset", default=None, help="one dataset (default: evaluation.datasets)")
    r.add_argument("--no-hull", dest="hull", action="store_false", help="skip the CHGNet reference hull")
    r.add_argument("--scheduler", default=None, help="dask scheduler tcp://HOST:PORT")
    r.add_argument("--workers", type=int, default=None, help="LocalCluster workers; 0 = serial")
    r.set_defaults(func=cmd_references)
