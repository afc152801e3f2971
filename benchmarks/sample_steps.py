"""Euler steps of the coordinate decoder against sample quality → reports/benchmarks/sample_steps.json.

The flow-matching coordinate decoder integrates K Euler steps per crystal (K network evaluations, plus retries).
For one checkpoint and its sampling settings (`evaluation.sampling`, or --set) this draws the same seeded `n`
crystals at each K (the flow prior and the one-shot decoders see the same random numbers; only the integration
differs), scores them with the evaluation suite (CDVAE protocol, no relaxations) and records the CDVAE columns,
uniqueness, novelty and the sampling cost, so the settings the pipeline uses are a measured choice. Each K's result
is written as soon as it is scored; samples and per-sample tables go to reports/benchmarks/.sample_steps/
(gitignored). `--reference-split val` scores against the rows training held out for validation instead of the test
split (`build_references(coverage_split="val")`), so a setting can be chosen without looking at the test split.

Usage: python benchmarks/sample_steps.py [--dataset perov_5] [--steps 10 20 40 80] [--n 1000] [--workers 2]
       [--checkpoint PATH] [--set KEY=VALUE ...] [--label NAME]   (another checkpoint or sampling settings,
       reported under NAME) [--reference-split val]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from autoperi.config import load_params
from autoperi.data.sources import sha256_of
from autoperi.metrics.evaluate import evaluate_samples
from autoperi.metrics.references import COVERAGE_SPLITS, build_references
from autoperi.parallel import dask_client
from autoperi.sampling.sampler import (
    configure_sampling,
    generate,
    load_model,
    sampling_settings,
    write_samples,
)

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("struct_validity", "comp_validity", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems",
           "uniqueness", "novelty")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="perov_5")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads while sampling")
    parser.add_argument("--workers", type=int, default=2, help="dask workers while scoring (0 = serial)")
    parser.add_argument("--checkpoint", default=None, help="default: models/<dataset>/best.pt")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="sampling settings of the model config, e.g. velocity_anneal=3 coordinate_retries=10")
    parser.add_argument("--label", default=None, help="key of this run in the report (default: the dataset)")
    parser.add_argument("--reference-split", choices=COVERAGE_SPLITS, default="test",
                        help="coverage / Wasserstein reference: the test split or the rows training held out")
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/sample_steps.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    checkpoint = Path(args.checkpoint).resolve() if args.checkpoint else REPO / "models" / args.dataset / "best.pt"
    model, meta = load_model(checkpoint)
    pipeline = sampling_settings(params, args.dataset)
    pipeline_steps = pipeline.get("sample_steps", model.cfg.sample_steps)
    overrides = {**pipeline, **dict(item.split("=", 1) for item in args.set)}
    overrides.pop("sample_steps", None)  # swept here
    configure_sampling(model, overrides)
    label = args.label or args.dataset
    work = REPO / "reports/benchmarks/.sample_steps" / label
    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    entry = report.setdefault(label, {})
    entry.update({
        "dataset": args.dataset,
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "protocol": f"{args.n} samples, seed {args.seed}, CDVAE protocol (evaluation suite) against the "
                    f"{args.reference_split} rows, no relaxations; the pipeline uses {pipeline_steps} steps",
        "checkpoint": {"path": os.path.relpath(checkpoint, REPO), "sha256": sha256_of(checkpoint),
                       "epoch": (meta.get("progress") or {}).get("epoch"),
                       "refinement_minutes": (meta.get("refinement") or {}).get("minutes")},
        "sampling_settings": {k: getattr(model.cfg, k) for k in overrides},
    })
    rows = entry.setdefault("by_steps", {})
    with dask_client(params.evaluation.scheduler, args.workers) as client:  # one cluster for every K
        references = build_references(params, args.dataset, client, coverage_split=args.reference_split)
        entry["reference"] = {k: references.details[k] for k in ("coverage_reference", "n_test", "n_train_val")}
        for steps in args.steps:
            start = time.perf_counter()
            samples = generate(model, args.n, n_steps=steps, seed=args.seed)
            sampling_s = time.perf_counter() - start
            path = work / f"steps{steps}.extxyz"
            write_samples(samples, path)
            result = evaluate_samples(path, args.dataset, f"steps{steps}", params, client=client, stability_n=0,
                                      references=references, out_dir=work)
            evals = [s.get("network_evals", steps) for s in samples]
            rows[str(steps)] = {**{k: result[k] for k in COLUMNS}, "sampling_s": round(sampling_s, 2),
                                "network_evals_per_sample": round(sum(evals) / len(evals), 2),
                                "load_average": os.getloadavg()[0]}
            print(label, steps, json.dumps(rows[str(steps)]), flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(report, indent=2) + "\n")  # after every K: nothing measured is lost


if __name__ == "__main__":
    main()
