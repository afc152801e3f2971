"""Checkpoints that `torch.load(weights_only=True)` reads: tensors and plain containers only.

A checkpoint is one dict (`FORMAT` below): model state, and for `last.pt` also optimizer, scheduler, every
process's RNG states and the loop's progress; plus the config sections as plain dicts, the model's data
statistics, a data hash (sha256 of the training ids and the params that shape the model) and the code version
(git commit, autoperi and torch versions). Writes are atomic (temp file + rename), so a process killed while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

import autoperi
from autoperi.tracking.provenance import git_commit

FORMAT = "autoperi-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used here: wrong format, or trained on other data or params."""


def to_plain(value, where: str = "checkpoint"):
    """Recursively turn `value` into what the weights-only unpickler accepts, or raise naming the offending key.

    numpy arrays → tensors, numpy scalars → Python numbers, Paths → str, dataclasses → dicts, tuples kept.
    """
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, (torch.Size, torch.dtype)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    for plain in (bool, int, float, str):  # subclasses (np.float64, torch's TorchVersion) pickle as their class
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value), where)
    if isinstance(value, dict):
        return {to_plain(k, where): to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a weights-only checkpoint")


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` (made plain) to `path` atomically: a temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(to_plain(state), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, loaded with `weights_only=True` (no arbitrary code runs)."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an autoperi checkpoint (format {state.get('format')!r}, want {FORMAT})")
    return state


# --- RNG states as tensors and lists --------------------------------------------------------------------------


def rng_state() -> dict:
    """Python, numpy and torch (CPU) RNG states in weights-only form."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt_state), gauss],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: dict) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch; call before building a model so its initial weights are reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- provenance -------------------------------------------------------------------------------------------------


def code_version(root: str | Path | None = None) -> dict:
    """git commit of the repo holding the package (`-dirty` if tracked files changed), autoperi and torch versions,
    and `source_hash()` of the training code (what resuming checks)."""
    root = Path(root) if root else Path(autoperi.__file__).resolve().parents[1]
    commit = git_commit(root)
    return {
        "git_commit": commit,
        "autoperi_version": autoperi.__version__,
        "torch_version": torch.__version__,
        "source_sha256": source_hash(),
    }


# the code that decides a training trajectory: a resumed run must run the same code as the run it continues
TRAINING_SOURCES = (
    "model",
    "losses",
    "graphs",
    "training/loop.py",
    "training/checkpoint.py",
    "training/distributed.py",
)


def source_hash(sources: Iterable[str] = TRAINING_SOURCES) -> str:
    """sha256 over the bytes of the package's .py files under `sources` (paths inside autoperi/), sorted by path.

    Unlike the git commit it ignores commits and edits elsewhere in the repository."""
    package = Path(autoperi.__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sources:
        target = package / source
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target] if target.exists() else []
        for file in files:
            digest.update(str(file.relative_to(package)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def data_hash(train_ids: Iterable, config: dict) -> str:
    """sha256 over the training ids (in order) and the config sections that shape the model (JSON, sorted keys)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(i) for i in train_ids]).encode())
    digest.update(json.dumps(to_json(config), sort_keys=True).encode())
    return digest.hexdigest()


def to_json(value):
    """Plain config → JSON-able (tuples as lists); used for hashing and history files."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


# --- loading a trained model --------------------------------------------------------------------------------------


def build_autoperi_model(meta: dict) -> torch.nn.Module:
    """The default model builder: `AutoPeriGNN(ModelConfig(**config["model"]), stats)`."""
    from autoperi.config import ModelConfig
    from autoperi.model.autoperi_gnn import AutoPeriGNN

    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"]["model"].items() if k in fields}
    return AutoPeriGNN(ModelConfig(**model_cfg), meta["stats"])


def load_checkpoint(
    path: str | Path, build_model: Callable[[dict], torch.nn.Module] | None = None
) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode with the checkpoint's weights, meta) — meta is the checkpoint without the state dicts.

    `build_model(meta)` constructs the untrained module (default: AutoPeriGNN from `meta["config"]["model"]` and
    `meta["stats"]`). Loading uses `weights_only=True`.
    """
    state = read_checkpoint(path)
    meta = {k: v for k, v in state.items() if k not in ("model_state", "optimizer_state", "scheduler_state", "rng")}
    model = (build_model or build_autoperi_model)(meta)
    model.load_state_dict(state["model_state"])
    model.eval()
    return model, meta
