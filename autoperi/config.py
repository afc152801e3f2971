"""Typed view of `params.yaml`: one frozen dataclass per section, profiles laid over the base.

This is the only module that reads `params.yaml`; everything else receives these objects.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class DataConfig:
    mirror_dir: str = "../shared/data"
    raw_dir: str = "data/raw"
    processed_dir: str = "data/processed"
    reports_dir: str = "reports/data"
    datasets: tuple[str, ...] = ("perov_5",)
    max_rows_per_split: int | None = None
    max_atoms: int = 64
    min_distance_angstrom: float = 0.5
    max_lattice_length_angstrom: float = 100.0
    volume_range_angstrom3: tuple[float, float] | None = (50.0, 500.0)
    volume_per_atom_range_angstrom3: tuple[float, float] | None = None
    volume_filter_applies_to: tuple[str, ...] = ("perovskites",)
    symprec: float = 0.1
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42
    workers: int = 2


@dataclass(frozen=True)
class GraphConfig:
    cutoff_angstrom: float = 8.0
    rbf_count: int = 32
    rbf_sigma_angstrom: float = 0.5
    max_atomic_number: int = 100


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_dir: str = "mlruns/artifacts"


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation suite (issue: evaluation). Owner: autoperi/metrics."""

    datasets: tuple[str, ...] = ("perov_5", "mp20_bt", "carbon_24")
    models: tuple[str, ...] = ("oracle", "memorization", "random")
    samples_dir: str = "reports/samples"          # <dataset>/<model>.extxyz written by generate/baselines
    metrics_dir: str = "reports/metrics"          # <dataset>/<model>.json + .csv
    references_dir: str = "data/references"       # cached reference fingerprints and hulls (DVC output)
    n_samples: int = 10000                        # samples scored per model (CDVAE protocol: 10,000)
    sampling: dict | None = None                  # dataset → sampling settings of the model config (sample_steps, ...)
    n_wasserstein: int = 1000                     # valid samples for the Wasserstein distances (CDVAE: 1,000)
    max_reference: int | None = None              # cap on reference rows (quick profiles); null = all
    stability_n: int = 0                          # CHGNet relaxations per model (0 = skip stability)
    relax_fmax_ev_per_angstrom: float = 0.1
    relax_max_steps: int = 500
    hull_max_reference: int | None = None         # cap on structures entering each dataset's CHGNet hull
    scheduler: str | None = None                  # dask address tcp://HOST:PORT; null = a LocalCluster
    workers: int = 2
    seed: int = 0
    frechet_embedding: bool = True                # Fréchet distance on CHGNet crystal embeddings
    max_atoms: int = 500                          # samples with more sites are refused (too_many_atoms)
    max_lattice_length_angstrom: float = 1000.0   # samples with a longer lattice vector are refused (bad_lattice)
    chunk_size: int = 64                          # structures per fingerprint task (and per cache part)
    # `evaluate_checkpoint@<dataset>`: the shipped checkpoint sampled and scored at the bars' sample count (CDVAE:
    # 10,000) in every profile, beside the cheaper `n_samples` rows
    checkpoint_datasets: tuple[str, ...] = ("perov_5", "mp20_bt")
    checkpoint_model: str = "autoperi_10k"        # row name: reports/{samples,metrics}/<dataset>/<name>.*
    checkpoint_n_samples: int = 10000
    checkpoint_stability_n_by_dataset: dict | None = None  # CHGNet relaxations for that row, e.g. {mp20_bt: 200};
                                                           # unlisted: none (S.U.N. then stays on the autoperi row)


@dataclass(frozen=True)
class DftConfig:
    """GPAW validation (issue: DFT). Owner: autoperi/dft."""

    datasets: tuple[str, ...] = ("perov_5", "mp20_bt")
    sources: tuple[str, ...] = ("oracle", "random")
    out_dir: str = "reports/dft"
    reference_dir: str = "reports/dft/references"  # elemental references, cached per protocol and element
    n_structures: int = 100                        # seeded random subset of valid structures per (dataset, source)
    n_relax: int = 10                              # of those (smallest first), GPAW-relaxed from the CHGNet relaxation
    seed: int = 100
    scheduler: str | None = None
    workers: int = 2                               # dask worker processes, one GPAW task (1 thread) each
    timeout_s: float = 1800.0                      # wall-time limit per GPAW task (single point or relaxation)
    max_atoms: int = 20                            # larger cells are recorded as failures (too_large), not run
    cutoff_ev: float = 500.0                       # plane-wave cutoff (convergence test: reports/dft/convergence.json)
    kpt_density: float = 3.0                       # Monkhorst-Pack k-points per Å⁻¹ (GPAW kpts density)
    smearing_ev: float = 0.1                       # Fermi-Dirac width
    scf_maxiter: int = 120
    relax_fmax: float = 0.05                       # eV/Å, GPAW relaxation (FrechetCellFilter + BFGS)
    relax_steps: int = 30


# ModelConfig keys that change only how a trained model samples (evaluation.sampling; ablation variants that reuse
# a checkpoint)
SAMPLING_KEYS = frozenset({"sample_steps", "coordinate_retries", "plain_retries", "species_temperature",
                           "velocity_anneal"})


@dataclass(frozen=True)
class ModelConfig:
    """AutoPeri-GNN architecture (issue: model). Owner: autoperi/model."""

    hidden_dim: int = 128
    latent_dim: int = 32                          # z_G; the flow also carries the 3 log lengths and 3 torus angles
    cond_dim: int = 32                            # space-group embedding of the decoders
    encoder_layers: int = 3
    encoder_hidden_dim: int = 64
    encoder_cutoff_angstrom: float = 4.5          # periodic neighbour edges of the encoder
    decoder_layers: int = 3                       # pair layers of the coordinate (flow-matching) decoder
    fourier_frequencies: int = 4                  # sin/cos(2πk·Δf), k = 1..F, pair features
    flow_layers: int = 6
    flow_hidden_dim: int = 128
    flow_bins: int = 8
    max_atoms: int = 64
    max_atomic_number: int = 100
    lattice_noise: float = 0.05                   # σ of the noise on the lattice code the flow is fitted to
    lattice_denoise_max: float | None = None      # lattice decoder input noise σ ~ U(lattice_noise, this) per crystal
    sample_steps: int = 10                        # Euler steps of the coordinate decoder (network evals / crystal)
    ot_pairing: bool = False                      # pair x_0 to x_1 atoms of one element by optimal transport
    coord_draws: int = 1                          # flow-matching (x_0, t) draws per crystal per step (one encoder pass)
    coordinate_retries: int = 4                   # re-integrate crystals with atoms < 0.5 Å apart (each: +K evals)
    plain_retries: int = 0                        # then re-integrate those still overlapping without anti-annealing
    species_temperature: float = 1.0              # atom count and slot elements drawn at this temperature (0 = argmax)
    velocity_anneal: float = 0.0                  # sampling: velocity × (1 + s·t) (FlowMM's anti-annealing); 0 = off
    composition_decoder: str = "slots"            # slots: independent elements; autoregressive: slot k sees 1..k-1
    distinct_element_head: bool = False          # autoregressive only: p(k distinct elements | z_G, g), decoding to k
    by_dataset: dict | None = None                # per-dataset overrides of this section, e.g. {mp20_bt: {beta: 0.02}}
    beta: float = 0.01                            # weight of KL(q(z_G|x) || N(0, I))
    w_species: float = 1.0
    w_counts: float = 1.0
    w_lattice: float = 1.0
    w_coords: float = 10.0
    w_bonds: float = 0.1
    w_flow: float = 1.0
    w_ef: float = 0.01                            # surrogate formation-energy penalty (0 = off)
    w_rdf: float = 0.1                            # RDF term under PBC (0 = off)
    ef_threshold: float = 0.0
    physics_max_crystals: int = 32                # crystals of a batch entering the physics terms
    rdf_r_max_angstrom: float = 6.0
    rdf_bins: int = 30
    rdf_sigma_angstrom: float = 0.2
    surrogate_path: str = "models/{dataset}/surrogate.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Training of the model and its surrogate (issue: model). Owner: autoperi/training."""

    datasets: tuple[str, ...] = ("perov_5", "mp20_bt", "carbon_24")
    models_dir: str = "models"                    # checkpoints go to <models_dir>/<dataset>/{best,last}.pt
    surrogate_epochs: int = 60                    # formation-energy surrogate (trained first, its own stage)
    surrogate_patience: int = 8
    surrogate_batch_size: int = 64
    surrogate_max_minutes: float | None = None    # wall-clock budget per dataset (over resumes); null = epochs only
    epochs: int = 100
    batch_size: int = 256                         # global batch per optimizer step (split across processes)
    learning_rate: float = 1e-3
    weight_decay: float = 0.0                     # AdamW
    scheduler: str = "cosine"                     # none | cosine (per step, to min_learning_rate) | plateau
    warmup_steps: int = 0                         # linear warmup of the learning rate (optimizer steps)
    min_learning_rate: float = 1e-5
    plateau_factor: float = 0.5                   # scheduler: plateau
    plateau_patience: int = 5                     # validations without improvement before the lr drops
    grad_clip_norm: float = 1.0                   # 0 = no clipping
    max_nonfinite_steps: int = 10                 # consecutive NaN/Inf losses or gradients before the run stops
    patience: int = 20                            # early stopping: validations without improvement; 0 = off
    min_delta: float = 0.0                        # improvement smaller than this does not count
    val_every: int = 1                            # epochs between validations (and at the last epoch)
    checkpoint_every_steps: int = 0               # also write last.pt every N batches (0: at epoch ends only)
    max_minutes: float | None = None              # wall-clock budget over all sessions of a run; null = none
    max_minutes_by_dataset: dict | None = None    # per-dataset budgets overriding max_minutes, e.g. {mp20_bt: 65}
    refine_minutes_by_dataset: dict | None = None  # coordinate-decoder refinement after training, minutes per
                                                   # dataset (autoperi.training.refine); unlisted: none
    budget_schedule: bool = True                  # with max_minutes: plan the epochs (and cosine) to fit the budget
    max_train_rows: int | None = None             # seeded subset of the train split (quick profiles); null = all
    max_val_rows: int | None = None
    val_fraction: float = 0.1                     # held out of train when a dataset has no val split (carbon_24)
    processes: int = 1                            # >1: `autoperi train` launches torchrun with this many
    resume: bool = True                           # continue from last.pt when it exists (same data and params)
    seed: int = 0
    threads: int = 2                              # torch threads per process


@dataclass(frozen=True)
class AblationsConfig:
    """Model variants trained on one budget and scored on one protocol (notebook 06). Owner: autoperi/ablations."""

    dataset: str = "perov_5"
    # name → overrides of the `model` section. A variant that overrides only sampling keys (SAMPLING_KEYS) reuses the
    # first variant's checkpoint instead of training.
    variants: dict = field(default_factory=lambda: {"full": {}})
    epochs: int | None = None                     # epochs per trained variant (train.epochs); null = train.epochs
    max_minutes: float | None = None              # wall-clock cap per trained variant (train.max_minutes); a cap
    # makes the variants' epochs depend on the machine's load, so the profiles compare them at equal epochs instead
    n_samples: int = 1000                         # samples per variant, scored by `evaluate_samples`
    stability_n: int = 0                          # CHGNet relaxations per variant (relaxation success, S.U.N.)
    seed: int = 0
    models_dir: str = "models/ablations"          # <models_dir>/<dataset>/<variant>/{best,last}.pt
    reports_dir: str = "reports/ablations"        # <dataset>/{<variant>.extxyz,<variant>.json,summary.json}


@dataclass(frozen=True)
class Params:
    profile: str
    root: Path  # the folder holding params.yaml; relative paths in the sections resolve against it
    data: DataConfig = field(default_factory=DataConfig)
    graphs: GraphConfig = field(default_factory=GraphConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    dft: DftConfig = field(default_factory=DftConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ablations: AblationsConfig = field(default_factory=AblationsConfig)

    def path(self, relative: str | Path) -> Path:
        """Resolve a path from params.yaml against the repo root."""
        p = Path(relative)
        return p if p.is_absolute() else (self.root / p)

    def as_dict(self) -> dict:
        out = {"profile": self.profile}
        for name in _SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


_SECTIONS = {
    "data": DataConfig,
    "graphs": GraphConfig,
    "tracking": TrackingConfig,
    "evaluation": EvaluationConfig,
    "dft": DftConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "ablations": AblationsConfig,
}


# Lists that dvc.yaml expands into one stage per item (foreach / matrix). DVC reads them from the base sections, not
# from a profile, so a profile may not change them.
STAGE_LISTS = {"train": ("datasets",), "evaluation": ("datasets", "models", "checkpoint_datasets", "checkpoint_model"),
               "dft": ("datasets", "sources")}


class ParamsError(ValueError):
    """params.yaml names a key, section or profile that does not exist, or a value of the wrong shape."""


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _build_section(cls, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def override_model(cfg: ModelConfig, overrides: dict, where: str, exclude: tuple = ()) -> ModelConfig:
    """`cfg` with `overrides` (a params.yaml block named by `where`); an unknown key is refused with that name."""
    known = {f.name for f in dataclasses.fields(ModelConfig)} - set(exclude)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParamsError(f"params.yaml {where}: unknown model key(s) {unknown}")
    return dataclasses.replace(cfg, **overrides)


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> Params:
    """Read params.yaml, lay the profile (default: the file's `profile`) over the base sections."""
    path = Path(path).resolve()
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(raw) - set(_SECTIONS) - {"profile", "profiles"})
    if unknown:
        raise ParamsError(f"{path}: unknown top-level key(s) {unknown}")
    profiles = raw.get("profiles") or {}
    profile = profile or raw.get("profile") or "default"
    if profile not in profiles:
        raise ParamsError(f"{path}: profile {profile!r} not in profiles {sorted(profiles)}")
    base = {name: raw.get(name) or {} for name in _SECTIONS}
    overlay = profiles[profile] or {}
    bad = sorted(set(overlay) - set(_SECTIONS))
    if bad:
        raise ParamsError(f"{path}: profile {profile!r} has unknown section(s) {bad}")
    for section, keys in STAGE_LISTS.items():
        fixed = sorted(set(keys) & set(overlay.get(section) or {}))
        if fixed:
            raise ParamsError(f"{path}: profile {profile!r} sets {section}.{fixed[0]}, which dvc.yaml expands into one "
                              f"stage per item from the base section; change it there")
    merged = _deep_merge(base, overlay)
    sections = {
        name: _build_section(cls, merged[name], f"{path}: [{profile}] {name}") for name, cls in _SECTIONS.items()
    }
    return Params(profile=profile, root=path.parent, **sections)
