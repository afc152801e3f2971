"""Plain-Euler retries after the anti-annealed ones → reports/benchmarks/plain_retries.json.

Draws the same seeded `n` crystals of a checkpoint with the pipeline's sampling settings (`evaluation.sampling`),
once as configured and once with `plain_retries` more re-integrations without anti-annealing, and records for each
how many samples fail structure validity (`autoperi.metrics.validity.structure_validity`: a pair under 0.5 Å,
periodic images included, or a cell under 0.1 Å^3), the
network evaluations, and which samples differ between the two (the plain retries draw from their own random stream,
so only crystals that were still overlapping may change). No scoring: the pipeline's evaluation does that once the
setting is adopted.

Usage: python benchmarks/plain_retries.py [--dataset perov_5] [--n 10000] [--plain-retries 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from autoperi.config import load_params
from autoperi.metrics.validity import structure_validity
from autoperi.sampling.sampler import configure_sampling, generate, load_model, sampling_settings, to_structure

REPO = Path(__file__).resolve().parents[1]


def draw(checkpoint: Path, settings: dict, n: int, seed: int) -> tuple[list[dict], float]:
    model, _ = load_model(checkpoint)
    configure_sampling(model, settings)
    start = time.perf_counter()
    samples = generate(model, n, seed=seed)
    return samples, time.perf_counter() - start


def invalid(samples: list[dict]) -> list[int]:
    return [i for i, s in enumerate(samples) if not structure_validity(to_structure(s))]


def same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in ("atomic_numbers", "frac_coords", "lattice"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="perov_5")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--plain-retries", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/plain_retries.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml", "default")
    checkpoint = REPO / params.train.models_dir / args.dataset / "best.pt"
    settings = sampling_settings(params, args.dataset)
    rows, drawn = {}, {}
    for label, extra in (("pipeline", {}), ("plain_retries", {"plain_retries": args.plain_retries})):
        samples, wall = draw(checkpoint, {**settings, **extra}, args.n, params.evaluation.seed)
        evals = np.array([s["network_evals"] for s in samples])
        bad = invalid(samples)
        drawn[label] = samples
        rows[label] = {"settings": {**settings, **extra}, "n_invalid": len(bad), "invalid": bad,
                       "struct_validity": 100.0 * (1 - len(bad) / len(samples)),
                       "network_evals_per_sample": float(evals.mean()), "network_evals_max": int(evals.max()),
                       "sampling_s": round(wall, 1)}
        print(label, json.dumps({k: v for k, v in rows[label].items() if k != "invalid"}), flush=True)
    changed = [i for i, (a, b) in enumerate(zip(drawn["pipeline"], drawn["plain_retries"], strict=True))
               if not same(a, b)]
    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    report[args.dataset] = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "protocol": f"{args.n} samples, seed {params.evaluation.seed}, structure validity as in the evaluation suite "
                    "(every pair >= 0.5 Å with periodic images, volume >= 0.1 Å^3)",
        "checkpoint": str(checkpoint.relative_to(REPO)), "rows": rows,
        "changed_samples": changed, "n_changed": len(changed)}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(changed)} samples differ; -> {out_path}")


if __name__ == "__main__":
    main()
