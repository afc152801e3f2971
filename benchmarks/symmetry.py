"""Why COV-R falls short where it does: symmetry of the samples and which half of the coverage test fails
→ reports/benchmarks/symmetry.json.

Per dataset: the share of crystals above P1 (spglib through pymatgen, symprec 0.1 Å, CDVAE's and
`autoperi generate --symmetrize`'s tolerance) for seeded test rows, for the pipeline's samples
(`reports/samples/<dataset>/<model>.extxyz`) and for fresh samples of the shipped checkpoint at several Euler step
counts; and COV-R split into its two conditions (a test crystal has a sample within the structure-fingerprint cutoff;
within the composition cutoff), from the evaluation's score cache, at growing subsets of the samples.

Usage: python benchmarks/symmetry.py [--datasets perov_5 mp20_bt carbon_24] [--n 300] [--steps 10 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.spatial.distance import cdist
from tqdm.auto import tqdm

from autoperi.config import load_params
from autoperi.data.preprocess import record_to_structure
from autoperi.data.registry import load_processed
from autoperi.data.sources import sha256_of
from autoperi.metrics.evaluate import load_samples
from autoperi.metrics.figures import sample_fingerprints
from autoperi.metrics.references import build_references
from autoperi.sampling.sampler import generate, load_model, samples_to_structures

REPO = Path(__file__).resolve().parents[1]
SYMPREC = 0.1


def above_p1(structures, desc: str) -> float:
    """Percent of `structures` whose space group at SYMPREC is not P1 (a failed search counts as P1)."""
    found = []
    for s in tqdm(structures, desc=desc, leave=False):
        try:
            found.append(SpacegroupAnalyzer(s, symprec=SYMPREC).get_space_group_number() > 1)
        except Exception:  # spglib gives up on some distorted cells: no symmetry found
            found.append(False)
    return round(100.0 * float(np.mean(found)), 1)


def recall_split(params, dataset: str, model: str, sizes=(250, 500, 1000)) -> dict:
    """COV-R and its two conditions (structure-only, composition-only) on seeded subsets of the scored samples."""
    refs = build_references(params, dataset)
    struct_cut, comp_cut = refs.cutoffs
    samples = params.path(params.evaluation.samples_dir) / dataset / f"{model}.extxyz"
    gen_struct, gen_comp = sample_fingerprints(params, dataset, model, samples)
    ok = np.isfinite(gen_struct).all(1) & np.isfinite(gen_comp).all(1)
    d_struct = cdist(refs.test_struct_fps, gen_struct[ok])
    d_comp = cdist(refs.test_comp_fps, gen_comp[ok])
    rng = np.random.default_rng(0)
    out = {}
    for size in [s for s in sizes if s < ok.sum()] + [int(ok.sum())]:
        cols = rng.choice(int(ok.sum()), size, replace=False)
        s_ok, c_ok = d_struct[:, cols].min(1) <= struct_cut, d_comp[:, cols].min(1) <= comp_cut
        out[str(size)] = {"cov_recall": round(100 * float((s_ok & c_ok).mean()), 2),
                          "structure_only": round(100 * float(s_ok.mean()), 2),
                          "composition_only": round(100 * float(c_ok.mean()), 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["perov_5", "mp20_bt", "carbon_24"])
    parser.add_argument("--models", nargs="+", default=["autoperi", "oracle", "random"],
                        help="rows whose scored samples get the COV-R split")
    parser.add_argument("--n", type=int, default=300, help="crystals per symmetry count")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 40], help="Euler steps of the fresh samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/symmetry.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    tables = load_processed(params, args.datasets)
    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.exists() else {"datasets": {}}  # other datasets kept
    report.update(machine=f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}",
                  symprec_angstrom=SYMPREC, n_per_count=args.n)
    for dataset in args.datasets:
        test = tables[dataset][tables[dataset]["split"] == "test"]
        rows = test.sample(min(args.n, len(test)), random_state=0).to_dict("records")
        entry = {"test_above_p1": above_p1([record_to_structure(r) for r in rows], f"{dataset} test")}
        path = params.path(params.evaluation.samples_dir) / dataset / "autoperi.extxyz"
        _, stored, _ = load_samples(path)
        stored = [s for s in stored if s is not None][: args.n]
        entry["pipeline_samples_above_p1"] = above_p1(stored, f"{dataset} samples")
        checkpoint = params.path(params.train.models_dir) / dataset / "best.pt"
        model, _ = load_model(checkpoint)
        entry["checkpoint_sha256"] = sha256_of(checkpoint)
        entry["fresh_samples_above_p1_by_steps"] = {
            str(k): above_p1(samples_to_structures(generate(model, args.n, n_steps=k, seed=1))[0], f"{dataset} K={k}")
            for k in args.steps
        }
        entry["cov_recall_split"] = {m: recall_split(params, dataset, m) for m in args.models}
        report["datasets"][dataset] = entry
        print(dataset, json.dumps(entry))
        out_path.write_text(json.dumps(report, indent=1) + "\n")  # after every dataset: nothing measured is lost
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
