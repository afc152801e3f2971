"""AutoPeri-GNN sampling throughput → reports/benchmarks/sampling.json.

For each dataset with a shipped checkpoint (`models/<dataset>/best.pt`): wall time to draw n crystals and turn them
into pymatgen Structures (flow prior + decoders + K Euler steps of the coordinate decoder, in batches of 2,000),
structures per second, and network evaluations per sample (K coordinate-decoder passes; the flow and the one-shot
decoders run once per crystal and are reported separately). Anchors' sampling cost, from their papers: CDVAE 50
noise levels x 100 Langevin steps = 5,000 evaluations, DiffCSP 1,000 steps, MatterGen 1,000 steps + 1 corrector
step each.

Usage: python benchmarks/sampling.py [--datasets perov_5 mp20_bt carbon_24] [--n 10000] [--threads 2]
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
from autoperi.sampling.sampler import (
    configure_sampling,
    load_model,
    sampling_settings,
    sampling_speed,
)

REPO = Path(__file__).resolve().parents[1]
ANCHORS = {
    "cdvae": {"network_evals_per_sample": 5000, "note": "50 noise levels x 100 annealed Langevin steps"},
    "diffcsp": {"network_evals_per_sample": 1000, "note": "1,000 reverse diffusion steps"},
    "mattergen": {"network_evals_per_sample": 2000, "note": "1,000 predictor steps + 1 corrector step each"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["perov_5", "mp20_bt", "carbon_24"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None,
                        help="Euler steps (default: evaluation.sampling.<dataset>.sample_steps, else the model's)")
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/sampling.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    report.update({
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "threads": args.threads,
        "anchors": ANCHORS,
    })
    results = report.setdefault("datasets", {})
    for dataset in args.datasets:
        checkpoint = REPO / "models" / dataset / "best.pt"
        if not checkpoint.exists():
            print(f"{dataset}: no checkpoint at {checkpoint}, skipped")
            continue
        model, meta = load_model(checkpoint)
        configure_sampling(model, sampling_settings(params, dataset))
        sampling_speed(model, 200, n_steps=args.steps)  # warm-up; None: the configured sample_steps
        start, load = time.time(), os.getloadavg()
        result = sampling_speed(model, args.n, n_steps=args.steps)
        result.update(measured_at_unix=start, load_average_at_start=load, threads=args.threads,
                      sampling_settings=sampling_settings(params, dataset))
        result["checkpoint"] = {"path": str(checkpoint.relative_to(REPO)), "sha256": sha256_of(checkpoint),
                                "epoch": (meta.get("progress") or {}).get("epoch"),
                                "git_commit": (meta.get("code_version") or {}).get("git_commit")}
        results[dataset] = result
        print(dataset, json.dumps(result))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2) + "\n")  # after every dataset: nothing measured is lost


if __name__ == "__main__":
    main()
