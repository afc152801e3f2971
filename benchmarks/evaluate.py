"""CDVAE-protocol evaluation of N Perov-5 samples, fast path vs a plain serial loop → reports/benchmarks/evaluate.json.

Samples: N real Perov-5 crystals drawn (seeded, without replacement) from the train + val splits, so fingerprints and
matching are realistic and nothing is shared with the cached test-split reference fingerprints (no cache hit is
possible: each sample is fingerprinted from scratch). They are scored as if generated (no relaxation, no CHGNet
embedding, no surrogate: the CDVAE-protocol columns plus uniqueness / novelty / composition coverage / Fréchet).

- fast: `evaluate_samples` on a `dask_client(None, workers)` LocalCluster, fresh sample cache; the reference data
  (test fingerprints, train + val index) are built beforehand and timed separately (`references_wall_s`, from a
  cold build if this run had to build them, else from `fingerprints_meta.json` of the build that made the cache).
- serial: the bare metric functions in a Python loop (no cache, no dask, no pre-filters beyond matching.py's own
  formula grouping), timed on the first `--serial-n` samples and extrapolated linearly to N (said in the JSON);
  a plain implementation also fingerprints the test split every time (CDVAE does), so its time is added, from the
  per-structure fingerprint time measured here.

Besides wall times (which depend on what else the shared machine runs; its load average is recorded), the CPU
seconds of this process and the dask workers are reported: `cpu_s` (fast path) and `serial_measured_cpu_s`.

Usage: nice python benchmarks/evaluate.py [--n 10000] [--serial-n 300] [--workers 2] [--profile default] [--params P]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from autoperi.config import load_params
from autoperi.data.preprocess import record_to_structure
from autoperi.data.registry import load_processed
from autoperi.metrics.coverage import composition_fingerprint, coverage, structure_fingerprint
from autoperi.metrics.distributions import density_and_nelements, wasserstein_property
from autoperi.metrics.evaluate import evaluate_samples
from autoperi.metrics.matching import composition_coverage, novelty, uniqueness
from autoperi.metrics.references import build_references, magpie_scaler, reference_dir
from autoperi.metrics.validity import composition_validity, structure_validity
from autoperi.parallel import dask_client

REPO = Path(__file__).resolve().parents[1]
DATASET = "perov_5"


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def _cpu_seconds(client) -> float:
    """CPU seconds used so far by this process and every dask worker process (load-independent cost)."""
    workers = client.run(time.process_time) if client is not None else {}
    return time.process_time() + sum(workers.values())


def serial_loop(samples, refs, train_structures, scaler) -> dict:
    """The plain implementation on `samples`; seconds per step."""
    means, stds = scaler
    times = {}
    t0 = time.perf_counter()
    struct_ok = [structure_validity(s) for s in samples]
    comp_ok = [composition_validity(s.composition) for s in samples]
    times["validity"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    struct_fps = [structure_fingerprint(s) for s in samples]
    comp_fps = [composition_fingerprint(s.composition, means, stds) for s in samples]
    times["fingerprints"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cutoffs = refs.cutoffs
    coverage(struct_fps, comp_fps, refs.test_struct_fps, refs.test_comp_fps, *cutoffs)
    valid = [s for s, a, b in zip(samples, struct_ok, comp_ok, strict=True) if a and b]
    props = density_and_nelements(valid)
    wasserstein_property(props["density"], refs.test["density"])
    wasserstein_property(props["n_elements"], refs.test["n_elements"])
    composition_coverage(samples, refs.test["reduced_formula"])
    times["coverage_distributions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for tol in ("cdvae", "mattergen"):
        uniqueness(valid, tol)
    times["uniqueness"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for tol in ("cdvae", "mattergen"):
        novelty(valid, train_structures, tol)
    times["novelty"] = time.perf_counter() - t0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--serial-n", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--out", default=str(REPO / "reports" / "benchmarks" / "evaluate.json"))
    args = parser.parse_args()

    params = load_params(args.params, args.profile)
    evaluation = dataclasses.replace(params.evaluation, n_samples=args.n, frechet_embedding=False, stability_n=0)
    work = REPO / "reports" / "benchmarks" / ".evaluate_work"
    params = dataclasses.replace(params, evaluation=dataclasses.replace(evaluation, metrics_dir=str(work)))
    report = {"machine_start": machine(), "dataset": DATASET, "protocol": "cdvae (no relaxation, no embedding)"}

    table = load_processed(params, [DATASET])[DATASET]
    pool = table[table["split"].isin(["train", "val"])]
    rows = np.sort(np.random.default_rng(0).choice(len(pool), size=min(args.n, len(pool)), replace=False))
    samples = [record_to_structure(r) for r in pool.iloc[rows].to_dict("records")]
    report["samples"] = f"{len(samples)} crystals drawn (seed 0, no replacement) from perov_5 train + val"

    cached = (reference_dir(params, DATASET) / "fingerprints_meta.json").exists()
    t0 = time.perf_counter()
    with dask_client(None, args.workers) as client:
        refs = build_references(params, DATASET, client=client)
    report["references_wall_s"] = round(time.perf_counter() - t0, 2)
    report["references_were_cached"] = cached
    report["references"] = refs.details

    shutil.rmtree(work, ignore_errors=True)
    with dask_client(None, args.workers) as client:
        cpu0 = _cpu_seconds(client)
        t0 = time.perf_counter()
        result = evaluate_samples(samples, DATASET, "benchmark", params, client=client, references=refs)
        wall = time.perf_counter() - t0
        report["cpu_s"] = round(_cpu_seconds(client) - cpu0, 1)
    report.update(n_samples=len(samples), wall_s=round(wall, 2), workers=args.workers, fast_steps_s=result["wall_s"])
    shown = ("struct_validity", "comp_validity", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems",
             "uniqueness", "novelty")  # fmt: skip
    report["fast_metrics"] = {k: result[k] for k in shown}
    print(f"fast: {len(samples)} samples in {wall:.1f} s", flush=True)

    n_serial = min(args.serial_n, len(samples))
    train_structures = [refs.train_structure(k) for k in range(len(refs.train))]
    cpu0 = time.process_time()
    steps = serial_loop(samples[:n_serial], refs, train_structures, magpie_scaler(params))
    report["serial_measured_cpu_s"] = round(time.process_time() - cpu0, 1)
    scale = len(samples) / n_serial
    per_test_fp = steps["fingerprints"] / n_serial  # plain code fingerprints the test split on every run
    serial = {k: v * scale for k, v in steps.items()}
    serial["test_fingerprints"] = per_test_fp * len(refs.test)
    report.update(
        serial_wall_s=round(sum(serial.values()), 1),
        serial_measured_n=n_serial,
        serial_measured_steps_s={k: round(v, 2) for k, v in steps.items()},
        serial_extrapolated=n_serial < len(samples),
        serial_steps_s={k: round(v, 1) for k, v in serial.items()},
        serial_note=f"measured on the first {n_serial} samples, scaled by {scale:.1f} (linear; uniqueness is "
        "linear here because Perov-5 formulas rarely repeat); test-split fingerprints added at the measured "
        "per-structure fingerprint time",
        machine_end=machine(),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: report[k] for k in ("n_samples", "wall_s", "serial_wall_s")}))


if __name__ == "__main__":
    main()
