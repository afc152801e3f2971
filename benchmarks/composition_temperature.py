"""Composition validity against diversity as the species temperature changes
→ reports/benchmarks/composition_temperature.json.

The composition decoder draws the atom count and each slot's element at `model.species_temperature` (1.0 = the
trained distribution). A lower temperature sharpens the draws; this measures, on compositions alone (flow prior →
composition decoder, no coordinates), what that buys in SMACT composition validity and what it costs in distinct
and novel formulas and in coverage of the test formulas, so the sampling setting can be chosen from numbers.

The same for the flow's base distribution scaled towards its mode (`--prior-scales`).

Usage: python benchmarks/composition_temperature.py [--dataset mp20_bt] [--n 2000] [--temperatures 1.0 0.7 0.5 0.3 0]
       [--prior-scales 1.0 0.8 0.6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Composition
from tqdm.auto import tqdm

from autoperi.baselines.random_crystals import composition_of
from autoperi.config import load_params
from autoperi.data.registry import load_processed
from autoperi.metrics.distributions import wasserstein_property
from autoperi.metrics.matching import composition_coverage
from autoperi.metrics.validity import composition_validity
from autoperi.sampling.sampler import load_model

REPO = Path(__file__).resolve().parents[1]


def composition_from_slots(atomic_numbers) -> Composition:
    """The composition of a decoder's slot row; 0 = a padding slot."""
    return Composition(dict(zip(*composition_of([z for z in atomic_numbers if z]), strict=True)))


@torch.no_grad()
def draw_compositions(model, n: int, seed: int, prior_scale: float = 1.0) -> list[Composition]:
    """n compositions from the flow prior and the composition decoder (space groups from the training frequencies);
    `prior_scale` < 1 draws the flow's Gaussian base from N(0, prior_scale²) (latents nearer the mode)."""
    generator = torch.Generator().manual_seed(seed)
    spacegroups = model.draw_spacegroups(n, generator)
    u_g = prior_scale * torch.randn(n, model.flow.gauss_dim, generator=generator)
    u_t = (2.0 * torch.rand(n, model.flow.torus_dim, generator=generator) - 1.0) * torch.pi
    z_g, _, _ = model.flow(u_g, u_t, spacegroups - 1)
    species, _ = model.decode_composition(z_g[:, : model.cfg.latent_dim], model.condition(spacegroups - 1), generator)
    return [composition_from_slots(row.tolist()) for row in species]


def score(compositions: list[Composition], test: pd.DataFrame, train_formulas: set[str]) -> dict:
    """Composition-only scores against `test` (the processed table's `reduced_formula` and `n_elements` columns)."""
    formulas = [c.reduced_formula for c in compositions]
    n_elements = [len(c.elements) for c in compositions]
    return {
        "comp_validity": round(100.0 * float(np.mean([composition_validity(c) for c in compositions])), 2),
        "distinct_elements_mean": round(float(np.mean(n_elements)), 3),
        "wdist_num_elems": round(wasserstein_property(n_elements, test["n_elements"]), 4),
        "unique_formulas": round(100.0 * len(set(formulas)) / len(formulas), 2),
        "novel_formulas": round(100.0 * float(np.mean([f not in train_formulas for f in formulas])), 2),
        "test_formula_coverage": round(composition_coverage(compositions, test["reduced_formula"]), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mp20_bt")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3, 0.0])
    parser.add_argument("--prior-scales", type=float, nargs="+", default=[1.0, 0.8, 0.6],
                        help="flow base scales, each at species temperature 1.0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "reports" / "benchmarks" / "composition_temperature.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    frame = load_processed(params, [args.dataset])[args.dataset]
    test = frame[frame["split"] == "test"]
    train_formulas = set(frame.loc[frame["split"].isin(["train", "val"]), "reduced_formula"])
    model, _ = load_model(params.path(params.train.models_dir) / args.dataset / "best.pt")
    rows = {}
    for temperature in tqdm(args.temperatures, desc="temperatures"):
        model.cfg = dataclasses.replace(model.cfg, species_temperature=temperature)
        start = time.perf_counter()
        compositions = draw_compositions(model, args.n, params.evaluation.seed)
        rows[str(temperature)] = {**score(compositions, test, train_formulas),
                                  "draw_s": round(time.perf_counter() - start, 1)}
        print(temperature, rows[str(temperature)], flush=True)
    model.cfg = dataclasses.replace(model.cfg, species_temperature=1.0)
    scales = {}
    for scale in tqdm(args.prior_scales, desc="prior scales"):
        scales[str(scale)] = score(draw_compositions(model, args.n, params.evaluation.seed, scale), test,
                                   train_formulas)
        print("prior scale", scale, scales[str(scale)], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dataset": args.dataset, "n": args.n, "seed": params.evaluation.seed,
                               "machine": f"{platform.machine()} {os.cpu_count()} CPU cores",
                               "test_formulas": int(test["reduced_formula"].nunique()),
                               "temperatures": rows, "prior_scales": scales}, indent=1) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
