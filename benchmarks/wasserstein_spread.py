"""How much the protocol's W distances move between draws of one model → reports/benchmarks/wasserstein_spread.json.

CDVAE's W(density) and W(#elements) use 1,000 valid samples, so a row carries the noise of one such draw. From a
row scored at 10,000 samples (the per-sample table `reports/metrics/<dataset>/<model>.csv` that `autoperi evaluate`
writes), this takes disjoint seeded subsets of `evaluation.n_wasserstein` valid samples and scores each against
the test split exactly as the evaluation does (`wasserstein_property`, the same reference columns), giving the
spread a single row hides; the W over all valid samples stands beside it.

Usage: python benchmarks/wasserstein_spread.py [--datasets perov_5 mp20_bt] [--model autoperi_10k]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from autoperi.config import load_params
from autoperi.metrics.distributions import wasserstein_property
from autoperi.metrics.references import build_references

REPO = Path(__file__).resolve().parents[1]
COLUMNS = {"wdist_density": "density", "wdist_num_elems": "n_elements"}


def spread(table: pd.DataFrame, reference: pd.DataFrame, subset_size: int, seed: int = 0) -> dict:
    """W of each disjoint `subset_size` draw of the valid rows of `table` against `reference`, summarised."""
    valid = np.flatnonzero(table["valid"].to_numpy(dtype=bool))
    n_subsets = len(valid) // subset_size
    if n_subsets < 2:
        raise ValueError(f"{len(valid)} valid samples give fewer than two disjoint subsets of {subset_size}")
    draws = np.random.default_rng(seed).permutation(valid)[: n_subsets * subset_size].reshape(n_subsets, -1)
    out = {"n_valid": int(len(valid)), "subset_size": subset_size, "n_subsets": n_subsets}
    for key, column in COLUMNS.items():
        values, ref = table[column].to_numpy(dtype=float), reference[column]
        per_subset = [wasserstein_property(values[rows], ref) for rows in draws]
        out[key] = {"all_valid": round(wasserstein_property(values[valid], ref), 4),
                    "subsets_mean": round(float(np.mean(per_subset)), 4),
                    "subsets_std": round(float(np.std(per_subset, ddof=1)), 4),
                    "subsets_min": round(float(np.min(per_subset)), 4),
                    "subsets_max": round(float(np.max(per_subset)), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["perov_5", "mp20_bt"])
    parser.add_argument("--model", default="autoperi_10k", help="row scored on many samples")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--out", default=str(REPO / "reports" / "benchmarks" / "wasserstein_spread.json"))
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml", args.profile)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    results = previous.get("datasets", {}) if previous.get("model") == args.model else {}  # other datasets kept
    for dataset in args.datasets:
        table_path = params.path(params.evaluation.metrics_dir) / dataset / f"{args.model}.csv"
        row = json.loads(table_path.with_suffix(".json").read_text())
        result = spread(pd.read_csv(table_path), build_references(params, dataset).test,
                        params.evaluation.n_wasserstein, seed=params.evaluation.seed)
        result["row"] = {key: row.get(key) for key in COLUMNS}  # the pipeline's own W: its seeded subset
        results[dataset] = result
        print(dataset, json.dumps(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "machine": platform.processor() or platform.machine(),
                               "datasets": results}, indent=1) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
