"""Coordinate-decoder refinement: more flow-matching updates for the one part that limits the samples.

Why: on mp20_bt the coordinate decoder, given a test crystal's own species, lattice, space group and posterior
latent, puts 6 % of 100 crystals above P1 (the crystals themselves: 98.7 %) and reproduces 15 % of them
(StructureMatcher, CDVAE tolerances); composition and lattice come out right far more often
(`benchmarks/symmetry.py`). Joint training gives the decoder few updates for its cost: every step runs the encoder,
the flow and all decoders on batches padded to their largest crystal.

How: every part but `model.coords` is frozen. The encoder's posterior (μ, log σ²) of each training crystal is
computed once; each step draws z = μ + σ·ε (the latents the decoder saw in training), x_0, t, and trains the
decoder's reconstruction terms (w_coords · flow matching + w_bonds · bonds, as in `AutoPeriGNN.loss`, with its
OT pairing; the physics terms, weighted 0.01 / 0.1 there, are left out). Batches hold crystals of one atom count
(no padding: the pair tensors scale with N²) and about `atoms_per_batch` atoms. The validation loss (fixed draws)
picks the best weights.

Device: the posteriors are computed once on the CPU (graphs need pymatgen's neighbour lists) and cached beside the
checkpoint (`posteriors.pt`, keyed by the encoder's weights, the data hash and the split settings); the decoder
steps then run on `device` ("cpu", or "cuda" where a GPU is lent), which needs only torch and the model code.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch_geometric.utils import to_dense_batch

from autoperi.losses import vae
from autoperi.model.coordinates import interpolate, pair_by_species


def posterior_groups(model, items: list, batch_size: int = 256) -> dict[int, dict[str, torch.Tensor]]:
    """Dense tensors of `items` (PyG Data from `batch_from_frame`) grouped by atom count n:
    {n: {species [G, n], frac [G, n, 3], lattice [G, 3, 3], spacegroup [G], mu, logvar [G, latent]}}; frac and
    lattice in the model's dtype (what the decoder sees)."""
    from autoperi.model.autoperi_gnn import collate

    dtype = model.condition.weight.dtype
    parts: dict[int, list[dict]] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = collate(items[start: start + batch_size])
            mu, logvar, _ = model.encoder(batch, batch.num_graphs)
            species, mask = to_dense_batch(batch.atomic_numbers, batch.batch, fill_value=0,
                                           batch_size=batch.num_graphs)
            frac, _ = to_dense_batch(batch.frac_coords, batch.batch, batch_size=batch.num_graphs)
            n_atoms = mask.sum(1)
            for b in range(batch.num_graphs):
                n = int(n_atoms[b])
                parts.setdefault(n, []).append({
                    "species": species[b, :n], "frac": frac[b, :n].to(dtype), "lattice": batch.lattice[b].to(dtype),
                    "spacegroup": batch.spacegroup.view(-1)[b], "mu": mu[b], "logvar": logvar[b]})
    return {n: {k: torch.stack([r[k] for r in rows]) for k in rows[0]} for n, rows in sorted(parts.items())}


def groups_to(groups: dict, device) -> dict:
    return {n: {k: v.to(device) for k, v in g.items()} for n, g in groups.items()}


def group_batches(groups: dict, atoms_per_batch: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """One epoch: (atom count, row indices) batches of ≤ atoms_per_batch atoms, shuffled within and across groups."""
    out = []
    for n, g in groups.items():
        size = max(1, atoms_per_batch // n)
        order = rng.permutation(len(g["mu"]))
        out.extend((n, order[i: i + size]) for i in range(0, len(order), size))
    return [out[i] for i in rng.permutation(len(out))]


def decoder_loss(model, g: dict, rows, generator: torch.Generator | None = None) -> torch.Tensor:
    """The coordinate decoder's reconstruction terms on rows of one group (all crystals with n atoms)."""
    cfg, dtype, device = model.cfg, model.condition.weight.dtype, g["mu"].device
    rows = torch.as_tensor(rows, device=device)
    species, x1 = g["species"][rows], g["frac"][rows].to(dtype)
    lattice = g["lattice"][rows].to(dtype)
    mask = torch.ones(species.shape, dtype=torch.bool, device=device)
    eps = torch.randn(g["mu"][rows].shape, generator=generator, dtype=dtype, device=device)
    z = g["mu"][rows] + eps * torch.exp(0.5 * g["logvar"][rows])
    with torch.no_grad():
        cond = model.condition(g["spacegroup"][rows] - 1)
    t = torch.rand(len(rows), generator=generator, dtype=dtype, device=device)
    x0 = torch.rand(x1.shape, generator=generator, dtype=dtype, device=device)
    if cfg.ot_pairing:
        x0 = pair_by_species(x0, x1, species, mask, lattice)
    xt, target = interpolate(x0, x1, t.view(-1, 1, 1))
    velocity, bond_logits = model.coords(xt, t, species, mask, lattice, z, cond)
    maskf = mask.to(dtype)
    bonds = vae.bond_targets(x1, lattice, species, mask, model.radii)
    return (cfg.w_coords * vae.flow_matching_loss(velocity, target, maskf)
            + cfg.w_bonds * vae.bond_loss(bond_logits, bonds, mask))


def validation_loss(model, groups: dict, atoms_per_batch: int, seed: int = 0) -> float:
    """Mean decoder loss over every validation crystal with fixed (z, x_0, t) draws: comparable across calls (on one
    device: CUDA draws other numbers than the CPU)."""
    device = next(iter(groups.values()))["mu"].device
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    model.coords.eval()
    with torch.no_grad():
        for n, rows in group_batches(groups, atoms_per_batch, np.random.default_rng(seed)):
            total += float(decoder_loss(model, groups[n], rows, generator)) * len(rows)
            count += len(rows)
    return total / max(count, 1)


def refine_coordinates(model, train_items: list, val_items: list, minutes: float, lr: float = 3e-4,
                       atoms_per_batch: int = 1024, seed: int = 0, validate_every_s: float = 300.0,
                       progress: bool = True, on_improved=None, device: str = "cpu",
                       posteriors: tuple[dict, dict] | None = None) -> dict:
    """Train `model.coords` alone for `minutes` (wall clock) on `train_items`; the weights with the lowest
    validation loss are kept in `model` (returned on the CPU) and `on_improved(model, history)` is called each time
    they improve. `posteriors`: (train, val) from `posterior_groups`, computed here when None. Returns {history:
    [...], best_val_loss, steps, crystals_per_s, wall_s, device}."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    if posteriors is None:
        if not train_items or not val_items:
            raise ValueError(f"refinement needs train and val crystals, got {len(train_items)} and {len(val_items)}")
        posteriors = posterior_groups(model, train_items), posterior_groups(model, val_items)
    encode_s = time.perf_counter() - start
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    model.to(device)
    train, val = groups_to(posteriors[0], device), groups_to(posteriors[1], device)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("coords."))
    decoder_params = list(model.coords.parameters())
    optimizer = torch.optim.AdamW(decoder_params, lr=lr)
    history: list[dict] = []

    def cpu_copy() -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.coords.state_dict().items()}

    best, best_state = math.inf, cpu_copy()

    def validate(steps: int, **extra) -> None:
        nonlocal best, best_state
        current = validation_loss(model, val, atoms_per_batch, seed)
        history.append({"step": steps, "wall_s": round(time.perf_counter() - start, 1), "val_loss": current, **extra})
        if current < best:
            best, best_state = current, cpu_copy()
            if on_improved is not None and steps:
                on_improved(model, history)

    validate(0)
    budget_s, steps, crystals, last_val = 60.0 * minutes, 0, 0, time.perf_counter()
    bar = tqdm(desc="refine coords", unit="crystal", disable=not progress, mininterval=10)
    while time.perf_counter() - start < budget_s:
        for n, rows in group_batches(train, atoms_per_batch, rng):
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s:
                break
            model.coords.train()
            for group in optimizer.param_groups:  # cosine decay over the wall-clock budget
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget_s)))
            loss = decoder_loss(model, train[n], rows)
            if not torch.isfinite(loss):
                continue  # a non-finite batch is skipped, not applied
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder_params, 1.0)
            optimizer.step()
            steps, crystals = steps + 1, crystals + len(rows)
            bar.update(len(rows))
            if time.perf_counter() - last_val >= validate_every_s:
                last_val = time.perf_counter()
                validate(steps, train_loss=float(loss.detach()))
    bar.close()
    validate(steps)
    model.to("cpu")
    model.coords.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    wall = time.perf_counter() - start
    return {"history": history, "best_val_loss": best, "steps": steps, "encode_s": round(encode_s, 1),
            "crystals_per_s": round(crystals / max(wall - encode_s, 1e-9), 1), "wall_s": round(wall, 1),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}


def posterior_cache_key(state: dict, dataset: str, params) -> str:
    """sha256 of what the cached posteriors depend on: the encoder's weights, the data hash, the split and graph
    settings."""
    import dataclasses
    import hashlib
    import json

    digest = hashlib.sha256()
    for name in sorted(k for k in state["model_state"] if k.startswith("encoder.")):
        digest.update(name.encode())
        digest.update(state["model_state"][name].cpu().numpy().tobytes())
    split = {k: getattr(params.train, k) for k in ("seed", "val_fraction", "max_train_rows", "max_val_rows")}
    digest.update(json.dumps([dataset, state.get("data_hash"), split, dataclasses.asdict(params.graphs)],
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cached_posteriors(params, dataset: str, state: dict, model, cache_path, frame=None) -> tuple[dict, dict]:
    """(train, val) posterior groups of `dataset` under `model`'s encoder, read from `cache_path` when its key
    matches (`posterior_cache_key`), else computed from the processed table (or `frame`) and written there."""
    from pathlib import Path

    cache_path = Path(cache_path)
    key = posterior_cache_key(state, dataset, params)
    if cache_path.exists():
        cached = torch.load(cache_path, weights_only=True)
        if cached.get("key") == key:
            return cached["train"], cached["val"]
    from autoperi.data.registry import load_processed
    from autoperi.model.autoperi_gnn import batch_from_frame
    from autoperi.training.runner import drop_unknown_elements, select_splits

    frame = load_processed(params, [dataset])[dataset] if frame is None else frame
    train, val = select_splits(frame, params.train)
    val, _ = drop_unknown_elements(val, model.stats["elements"])
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"refinement needs train and val crystals, got {len(train)} and {len(val)}")
    cutoff = model.cfg.encoder_cutoff_angstrom
    groups = tuple(posterior_groups(model, batch_from_frame(rows, params.graphs, cutoff_angstrom=cutoff))
                   for rows in (train, val))
    tmp = cache_path.with_suffix(".tmp")
    torch.save({"key": key, "train": groups[0], "val": groups[1]}, tmp)
    tmp.replace(cache_path)
    return groups


def refine_best(params, dataset: str, out_dir, minutes: float, threads: int = 1, progress: bool = True,
                frame=None, device: str = "cpu", **kwargs) -> dict:
    """Refine the coordinate decoder of `<out_dir>/best.pt` for `minutes` on `device`, always starting from the
    joint-training weights: the refined checkpoint keeps their coordinate decoder (the only part refinement moves)
    as `joint_coords_state` beside the refined `model_state`, so a rerun with another budget starts from the same
    weights, and one with the same budget (and device) is reused. Splits as `train_dataset` selects them (val for
    model selection); their encoder posteriors are cached in `<out_dir>/posteriors.pt`, so a GPU machine without
    the data needs only that file. The history lands in the checkpoint and in `history.json` under `refinement`.
    `frame`: the processed table (default: `load_processed`). Returns that entry. A stopped refinement starts again
    from the joint weights (its budget is minutes, not a resumable schedule)."""
    import json
    from pathlib import Path

    from autoperi.training.checkpoint import build_autoperi_model, code_version, read_checkpoint, save_checkpoint

    out_dir = Path(out_dir)
    best = out_dir / "best.pt"
    state = read_checkpoint(best)
    done = state.get("refinement")
    if (done and done.get("complete") and float(done["minutes"]) == float(minutes)
            and (done.get("device", "cpu") == "cpu") == (torch.device(device).type == "cpu")):
        if progress:
            print(f"{best}: coordinate decoder already refined for {minutes} minutes; reused", flush=True)
        return done
    torch.set_num_threads(threads)
    joint_coords = state.get("joint_coords_state") or {k: v for k, v in state["model_state"].items()
                                                       if k.startswith("coords.")}
    joint = {**state["model_state"], **joint_coords}
    meta = {k: v for k, v in state.items() if k not in ("model_state", "joint_coords_state", "optimizer_state",
                                                        "scheduler_state", "rng", "refinement")}
    model = build_autoperi_model(meta)
    model.load_state_dict(joint)
    started = time.perf_counter()
    posteriors = cached_posteriors(params, dataset, state, model, out_dir / "posteriors.pt", frame=frame)
    encode_s = round(time.perf_counter() - started, 1)  # ~0 when read from the cache

    def entry(history, result=None) -> dict:
        # complete: False while running (best weights so far); a stopped refinement restarts from the joint weights
        extra = {k: v for k, v in (result or {}).items() if k != "history"}
        return {"minutes": minutes, "complete": result is not None, "history": list(history),
                "code_version": code_version(), **extra}

    def write(current, history, result=None) -> None:
        weights = {k: v.detach().cpu() for k, v in current.state_dict().items()}
        save_checkpoint({**meta, "model_state": weights, "joint_coords_state": joint_coords,
                         "refinement": entry(history, result)}, best)

    result = {**refine_coordinates(model, [], [], minutes, on_improved=write, progress=progress, device=device,
                                   posteriors=posteriors, **kwargs), "encode_s": encode_s}
    write(model, result["history"], result)
    history_path = out_dir / "history.json"
    if history_path.exists():
        run = json.loads(history_path.read_text())
        run["refinement"] = entry(result["history"], result)
        history_path.write_text(json.dumps(run, indent=1) + "\n")
    return entry(result["history"], result)
