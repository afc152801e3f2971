"""Ablations (notebook 06): variants of AutoPeri-GNN that each switch one part off, trained on the same budget and
scored by the evaluation suite on the same protocol as every other row.

`params.ablations.variants` maps a name to overrides of the `model` section. A variant that changes only how the
model samples (`SAMPLING_KEYS`) reuses the first variant's checkpoint; any other variant is trained for
`ablations.epochs` (the same for all; a wall-clock cap, `ablations.max_minutes`, would let the machine's load decide
the epochs), seeded like the main run, resumable. Each variant's samples go
to `<reports_dir>/<dataset>/<variant>.extxyz` and are scored by `evaluate_samples` (same references, same
`ablations.stability_n` CHGNet relaxations), so a difference between rows is the variant's and nothing else.
A rerun reuses a variant's row from `summary.json` when its checkpoint (sha256), overrides and sampling/scoring
settings are unchanged and its samples are on disk (`reusable_row`), so a stopped run redoes only what it had not
finished.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from autoperi.config import SAMPLING_KEYS, ModelConfig, Params, ParamsError, override_model

SHOWN = ("struct_validity", "comp_validity", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems",
         "uniqueness", "novelty")  # fmt: skip


def variant_model_config(params: Params, name: str, overrides: dict) -> ModelConfig:
    """`params.model` for the ablation dataset with the variant's overrides; an unknown key is refused with the
    variant's name."""
    from autoperi.training.runner import model_for

    base = model_for(params.model, params.ablations.dataset)
    if overrides.get("composition_decoder", base.composition_decoder) != "autoregressive":
        base = dataclasses.replace(base, distinct_element_head=False)  # the head belongs to that decoder
    return override_model(base, overrides, f"ablations.variants.{name}")


def variant_train_config(params: Params):
    """The `train` section every trained variant uses: one epoch count and cap for all, no per-dataset budgets,
    no decoder refinement."""
    cfg = params.ablations
    return dataclasses.replace(params.train, epochs=cfg.epochs or params.train.epochs, max_minutes=cfg.max_minutes,
                               max_minutes_by_dataset=None, refine_minutes_by_dataset=None)


def plan(params: Params) -> list[dict]:
    """One entry per variant: name, overrides, its model config, whether it trains, and which checkpoint it samples
    from. Unknown override keys are refused here, before anything runs."""
    cfg = params.ablations
    if not cfg.variants:
        raise ParamsError("params.yaml ablations.variants is empty")
    names = list(cfg.variants)
    models_dir = params.path(cfg.models_dir) / cfg.dataset
    out = []
    for name in names:
        overrides = dict(cfg.variants[name] or {})
        model = variant_model_config(params, name, overrides)
        trains = name == names[0] or not set(overrides) <= SAMPLING_KEYS
        source = name if trains else names[0]
        out.append({"name": name, "overrides": overrides, "model": model, "trains": trains,
                    "checkpoint": models_dir / source / "best.pt"})
    return out


def reusable_row(previous: dict | None, name: str, overrides: dict, checkpoint_sha256: str, settings: dict,
                 out_dir: Path) -> dict | None:
    """The variant's row from an earlier run when nothing that made it has changed: same checkpoint bytes, same
    overrides, same `settings` (n_samples, stability_n, seed, sample steps) and its samples still on disk; else None."""
    row = (previous or {}).get("variants", {}).get(name)
    if not row or row.get("checkpoint_sha256") != checkpoint_sha256 or row.get("overrides") != overrides:
        return None
    if row.get("settings") != settings or not (out_dir / f"{name}.extxyz").is_file():
        return None
    return row


def run_ablations(params: Params, client=None, progress: bool = True) -> dict[str, dict]:
    """Train (or resume) the trained variants, sample every variant, score each; returns name → row and writes
    `<reports_dir>/<dataset>/summary.json` after every variant (a stopped run keeps what it finished)."""
    from autoperi.data.sources import sha256_of
    from autoperi.metrics.evaluate import evaluate_samples
    from autoperi.metrics.references import build_references
    from autoperi.sampling.sampler import configure_sampling, generate, load_model, sampling_settings, write_samples
    from autoperi.training.runner import train_dataset

    cfg = params.ablations
    dataset = cfg.dataset
    out_dir = params.path(cfg.reports_dir) / dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    references = build_references(params, dataset, client)
    summary_path = out_dir / "summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    rows: dict[str, dict] = {}
    for item in plan(params):
        name, overrides = item["name"], item["overrides"]
        variant = dataclasses.replace(params, model=item["model"], train=variant_train_config(params))
        row: dict = {"overrides": overrides, "trained": item["trains"],
                     "checkpoint": str(item["checkpoint"].relative_to(params.root))}
        if item["trains"]:
            result = train_dataset(variant, dataset, out_dir=item["checkpoint"].parent, log_mlflow=False,
                                   progress=progress)
            row.update(epochs=result["epochs_completed"], stop_reason=result["stop_reason"],
                       best_val_loss=result["best_val_loss"], train_minutes=round(result["train_minutes"], 2))
        # the main rows' sampling settings (evaluation.sampling) unless the variant sets its own (one_shot, ...)
        sampling = {**sampling_settings(params, dataset), **{k: v for k, v in overrides.items() if k in SAMPLING_KEYS}}
        steps = sampling.pop("sample_steps", None)
        settings = {"n_samples": cfg.n_samples, "stability_n": cfg.stability_n, "seed": cfg.seed, "sample_steps": steps,
                    **({"sampling": sampling} if sampling else {})}
        digest = sha256_of(item["checkpoint"])
        done = reusable_row(previous, name, overrides, digest, settings, out_dir)
        if done is not None:
            print(f"ablations: {name} unchanged since the last run (checkpoint {digest[:12]}): row reused")
            rows[name] = done
            _write_summary(summary_path, params, rows)
            continue
        row.update(checkpoint_sha256=digest, settings=settings)
        model, _ = load_model(item["checkpoint"])
        configure_sampling(model, sampling)
        start = time.perf_counter()
        samples = generate(model, cfg.n_samples, n_steps=steps, seed=cfg.seed)
        sample_s = time.perf_counter() - start
        path = write_samples(samples, out_dir / f"{name}.extxyz")
        evals = [s["network_evals"] for s in samples]
        row.update(n_samples=len(samples), structures_per_s=round(len(samples) / sample_s, 1),
                   network_evals_per_sample=round(sum(evals) / len(evals), 2))
        metrics = evaluate_samples(path, dataset, name, variant, client=client, stability_n=cfg.stability_n,
                                   references=references, out_dir=out_dir)
        row.update({k: metrics.get(k) for k in SHOWN})
        row["stability"] = metrics.get("stability") or {}
        rows[name] = row
        _write_summary(summary_path, params, rows)
    return rows


def _write_summary(path: Path, params: Params, rows: dict[str, dict]) -> None:
    cfg = params.ablations
    summary = {"dataset": cfg.dataset, "profile": params.profile, "epochs": variant_train_config(params).epochs,
               "max_minutes": cfg.max_minutes,
               "n_samples": cfg.n_samples, "stability_n": cfg.stability_n, "variants": rows}
    path.write_text(json.dumps(summary, indent=2, default=_plain) + "\n")


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars in the evaluation's result
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def ablation_table(rows: dict[str, dict]):
    """One row per variant: the CDVAE-protocol columns, uniqueness / novelty, speed, and CHGNet relaxation success
    and stable rate where `stability_n` > 0."""
    import pandas as pd

    table = pd.DataFrame({name: {**{k: r.get(k) for k in SHOWN},
                                 "relax_success": (r.get("stability") or {}).get("relax_success"),
                                 "stable_0_1": (r.get("stability") or {}).get("stable_0_1"),
                                 "network_evals_per_sample": r.get("network_evals_per_sample"),
                                 "structures_per_s": r.get("structures_per_s"),
                                 "trained": r.get("trained"), "epochs": r.get("epochs")}
                          for name, r in rows.items()}).T
    return table.dropna(axis=1, how="all")


def ablation_figure(table, out_path: str | Path, title: str = ""):
    """Bars per metric (one panel each), one bar per variant; the first variant's value dashed for reference."""
    import matplotlib.pyplot as plt
    import numpy as np

    columns = [c for c in (*SHOWN, "relax_success", "stable_0_1") if c in table.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.1 * len(columns), 2.8), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        values = table[column].astype(float).to_numpy()
        ax.bar(np.arange(len(values)), values, color=[f"C{i}" for i in range(len(values))])
        if np.isfinite(values[0]):
            ax.axhline(values[0], color="k", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(values)), table.index, rotation=60, ha="right", fontsize=7)
        ax.set_title(column, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    return fig
