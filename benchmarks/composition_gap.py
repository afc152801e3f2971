"""Where the composition-validity gap of a checkpoint comes from → reports/benchmarks/composition_gap.json.

Three compositions per crystal, scored with the evaluation's SMACT validity:
- the real crystal's (the ceiling: the oracle's validity);
- decoded from its own posterior latent (μ, and z ~ q(z | crystal)): what the encoder and composition decoder
  lose in reconstruction (also the exact reduced-formula match rate);
- drawn from the flow prior (as `composition_temperature.py` draws them): what the prior's mismatch with the
  aggregate posterior adds.
Held-out (val) crystals by default; `--train N` adds a seeded subset of N training crystals (a gap that is the same
on train is underfitting, not overfitting). Posteriors come from the refinement's cache (`models/<dataset>/
posteriors.pt`, computed on first use).

Usage: python -m benchmarks.composition_gap [--dataset mp20_bt] [--n-prior 2000] [--train 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from autoperi.config import load_params
from autoperi.metrics.validity import composition_validity
from autoperi.training.checkpoint import build_autoperi_model, read_checkpoint
from autoperi.training.refine import cached_posteriors
from benchmarks.composition_temperature import composition_from_slots, draw_compositions

REPO = Path(__file__).resolve().parents[1]


def rates(decoded: list, true: list) -> dict:
    """SMACT validity (%) of decoded and true compositions and the exact reduced-formula match rate (%)."""
    return {"decoded_valid": round(100.0 * float(np.mean([composition_validity(c) for c in decoded])), 2),
            "true_valid": round(100.0 * float(np.mean([composition_validity(c) for c in true])), 2),
            "exact_formula": round(100.0 * float(np.mean([d.reduced_formula == t.reduced_formula
                                                          for d, t in zip(decoded, true, strict=True)])), 2),
            "n": len(true)}


@torch.no_grad()
def posterior_decodes(model, groups: dict, sample: bool, seed: int, limit: int | None = None) -> dict:
    """`rates` of compositions decoded from the posterior of each crystal in `groups` (`posterior_groups` form):
    z = μ, or z ~ q(z | crystal) with `sample`; `limit`: a seeded subset of that many crystals."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    total = sum(len(g["mu"]) for g in groups.values())
    keep = set(rng.permutation(total)[:limit].tolist()) if limit is not None and limit < total else None
    decoded, true, offset = [], [], 0
    for g in groups.values():
        rows = torch.arange(len(g["mu"]))
        if keep is not None:
            rows = torch.tensor([r for r in range(len(g["mu"])) if offset + r in keep], dtype=torch.long)
        offset += len(g["mu"])
        if not len(rows):
            continue
        z = g["mu"][rows]
        if sample:
            z = z + torch.randn(z.shape, generator=generator) * torch.exp(0.5 * g["logvar"][rows])
        species, _ = model.decode_composition(z, model.condition(g["spacegroup"][rows] - 1), generator)
        decoded += [composition_from_slots(row) for row in species.tolist()]
        true += [composition_from_slots(row) for row in g["species"][rows].tolist()]
    return rates(decoded, true)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mp20_bt")
    parser.add_argument("--n-prior", type=int, default=2000)
    parser.add_argument("--train", type=int, default=3000, help="training crystals to score too (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "reports" / "benchmarks" / "composition_gap.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml")
    seed = params.evaluation.seed
    best = params.path(params.train.models_dir) / args.dataset / "best.pt"
    state = read_checkpoint(best)
    meta = {k: v for k, v in state.items() if k not in ("model_state", "joint_coords_state", "refinement")}
    model = build_autoperi_model(meta)
    model.load_state_dict(state["model_state"])
    model.eval()
    start = time.perf_counter()
    train, val = cached_posteriors(params, args.dataset, state, model, best.parent / "posteriors.pt")
    out = {"dataset": args.dataset, "checkpoint_sha256_16": hashlib.sha256(best.read_bytes()).hexdigest()[:16],
           "seed": seed, "machine": f"{platform.machine()} {os.cpu_count()} CPU cores"}
    out["val"] = {"posterior_mean": posterior_decodes(model, val, False, seed),
                  "posterior_sample": posterior_decodes(model, val, True, seed)}
    if args.train:
        out["train"] = {"posterior_mean": posterior_decodes(model, train, False, seed, args.train),
                        "posterior_sample": posterior_decodes(model, train, True, seed, args.train)}
    prior = draw_compositions(model, args.n_prior, seed)
    out["prior"] = {"decoded_valid": round(100.0 * float(np.mean([composition_validity(c) for c in prior])), 2),
                    "n": len(prior)}
    out["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out, indent=1))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
