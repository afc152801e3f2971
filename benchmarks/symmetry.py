"""Why COV-R falls short where it does: symmetry of the samples and which half of the coverage test fails
→ reports/benchmarks/symmetry.json.

Per dataset: the share of crystals above P1 (spglib through pymatgen, symprec 0.1 Å, CDVAE's and
`autoperi generate --symmetrize`'s tolerance) for seeded test rows, for the pipeline's samples
(`reports/samples/<dataset>/<model>.extxyz`) and for fresh samples of the shipped checkpoint at several Euler step
counts; and COV-R split into its two conditions (a test crystal has a sample within the structure-fingerprint cutoff;
within the composition cutoff), from the evaluation's score cache, at growing subsets of the samples; and, for the
bars' row (`--gap-model`, default the 10,000-sample `autoperi_10k`), the test crystals it leaves uncovered: by
failed condition, by number of sites, by space group (symprec 0.1 Å), and how far past the structure cutoff they lie.

Usage: python benchmarks/symmetry.py [--datasets perov_5 mp20_bt carbon_24] [--n 300] [--steps 10 40]
       [--gap-model autoperi_10k] [--gap-only]   (--gap-only: the uncovered-crystal breakdown alone, cached scores)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from tqdm.auto import tqdm

from autoperi.config import load_params
from autoperi.data.preprocess import record_to_structure
from autoperi.data.registry import load_processed
from autoperi.data.sources import sha256_of
from autoperi.metrics.coverage import nearest_to_references
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
    gen_struct, gen_comp = gen_struct[ok], gen_comp[ok]
    rng = np.random.default_rng(0)
    out = {}
    for size in [s for s in sizes if s < ok.sum()] + [int(ok.sum())]:
        cols = rng.choice(int(ok.sum()), size, replace=False)
        d_struct, d_comp = nearest_to_references(gen_struct[cols], gen_comp[cols], refs.test_struct_fps,
                                                 refs.test_comp_fps)
        s_ok, c_ok = d_struct <= struct_cut, d_comp <= comp_cut
        out[str(size)] = {"cov_recall": round(100 * float((s_ok & c_ok).mean()), 2),
                          "structure_only": round(100 * float(s_ok.mean()), 2),
                          "composition_only": round(100 * float(c_ok.mean()), 2)}
    return out


def space_group(structure) -> str:
    try:
        return SpacegroupAnalyzer(structure, symprec=SYMPREC).get_space_group_symbol()
    except Exception:  # spglib gives up on some distorted cells
        return "P1 (search failed)"


def uncovered(params, dataset: str, model: str, top: int = 12) -> dict:
    """The test crystals `model`'s scored samples leave uncovered (CDVAE COV-R), broken down by cause and kind."""
    params = dataclasses.replace(params, evaluation=dataclasses.replace(params.evaluation, n_samples=None))  # all rows
    refs = build_references(params, dataset)
    struct_cut, comp_cut = refs.cutoffs
    samples = params.path(params.evaluation.samples_dir) / dataset / f"{model}.extxyz"
    gen_struct, gen_comp = sample_fingerprints(params, dataset, model, samples, cached_only=True)
    d_struct, d_comp = nearest_to_references(gen_struct, gen_comp, refs.test_struct_fps, refs.test_comp_fps)
    s_ok, c_ok = d_struct <= struct_cut, d_comp <= comp_cut
    missed = np.flatnonzero(~(s_ok & c_ok))
    tests = [refs.test_structure(k) for k in range(len(refs.test))]
    sites = np.array([len(t) for t in tests])
    group_of = {k: space_group(tests[k]) for k in tqdm(missed, desc=f"{dataset} uncovered", leave=False)}
    groups = Counter(group_of.values())
    past = d_struct[missed][~s_ok[missed] & np.isfinite(d_struct[missed])]
    by_sites = {}
    for n in sorted(set(sites[missed].tolist())):
        by_sites[str(n)] = {"uncovered": int((sites[missed] == n).sum()), "test": int((sites == n).sum())}
    return {
        "model": model, "n_generated": int(len(gen_struct)), "n_test": int(len(d_struct)),
        "cov_recall": round(100 * float((s_ok & c_ok).mean()), 2), "n_uncovered": int(len(missed)),
        "structure_condition_failed": int((~s_ok[missed]).sum()),
        "composition_condition_failed": int((~c_ok[missed]).sum()),
        "structure_distance_of_structure_misses": {
            q: round(float(np.quantile(past, v)), 3) for q, v in (("p10", 0.1), ("median", 0.5), ("p90", 0.9))
        } if len(past) else None,
        "structure_cutoff": struct_cut,
        "by_sites": by_sites,
        "top_space_groups": dict(groups.most_common(top)),
        "closest_misses": [
            {"formula": refs.test["reduced_formula"].iloc[k], "sites": int(sites[k]),
             "space_group": group_of[k], "d_struct": round(float(d_struct[k]), 3),
             "d_comp": round(float(d_comp[k]), 3)}
            for k in missed[np.argsort(d_struct[missed])][:top]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["perov_5", "mp20_bt", "carbon_24"])
    parser.add_argument("--models", nargs="+", default=["autoperi", "oracle", "random"],
                        help="rows whose scored samples get the COV-R split")
    parser.add_argument("--n", type=int, default=300, help="crystals per symmetry count")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 40], help="Euler steps of the fresh samples")
    parser.add_argument("--gap-model", default="autoperi_10k", help="row whose uncovered test crystals are broken down")
    parser.add_argument("--gap-only", action="store_true", help="only the uncovered-crystal breakdown")
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
        entry = report["datasets"].setdefault(dataset, {})
        gap_samples = params.path(params.evaluation.samples_dir) / dataset / f"{args.gap_model}.extxyz"
        if gap_samples.exists():
            entry["uncovered"] = uncovered(params, dataset, args.gap_model)
        if args.gap_only:
            print(dataset, json.dumps(entry.get("uncovered")))
            out_path.write_text(json.dumps(report, indent=1) + "\n")
            continue
        test = tables[dataset][tables[dataset]["split"] == "test"]
        rows = test.sample(min(args.n, len(test)), random_state=0).to_dict("records")
        entry["test_above_p1"] = above_p1([record_to_structure(r) for r in rows], f"{dataset} test")
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
        print(dataset, json.dumps(entry))
        out_path.write_text(json.dumps(report, indent=1) + "\n")  # after every dataset: nothing measured is lost
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
