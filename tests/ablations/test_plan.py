"""Ablation plan: which variants train, which reuse the full model's checkpoint, and refused overrides."""

import dataclasses

import pytest

from autoperi.ablations import SAMPLING_KEYS, plan, variant_model_config
from autoperi.config import ParamsError


def _with_variants(params, variants):
    return dataclasses.replace(params, ablations=dataclasses.replace(params.ablations, variants=variants))


def test_sampling_only_variants_reuse_the_first_variants_checkpoint(params):
    local = _with_variants(params, {"full": {}, "no_physics": {"w_ef": 0.0, "w_rdf": 0.0},
                                    "one_shot": {"sample_steps": 1, "coordinate_retries": 0}})
    items = {item["name"]: item for item in plan(local)}
    assert [n for n, i in items.items() if i["trains"]] == ["full", "no_physics"]
    assert items["one_shot"]["checkpoint"] == items["full"]["checkpoint"]
    assert items["no_physics"]["checkpoint"].parent.name == "no_physics"
    assert items["full"]["checkpoint"].parts[-3:] == (params.ablations.dataset, "full", "best.pt")


def test_the_first_variant_always_trains_even_with_sampling_overrides(params):
    items = plan(_with_variants(params, {"k1": {"sample_steps": 1}, "k5": {"sample_steps": 5}}))
    assert [i["trains"] for i in items] == [True, False]
    assert {"sample_steps"} <= SAMPLING_KEYS


def test_overrides_reach_the_model_config_and_unknown_keys_are_refused(params):
    cfg = variant_model_config(params, "no_physics", {"w_ef": 0.0, "w_rdf": 0.0})
    assert (cfg.w_ef, cfg.w_rdf) == (0.0, 0.0) and cfg.hidden_dim == params.model.hidden_dim
    with pytest.raises(ParamsError, match="ablations.variants.typo: unknown model key"):
        plan(_with_variants(params, {"full": {}, "typo": {"w_physics": 0.0}}))
    with pytest.raises(ParamsError, match="empty"):
        plan(_with_variants(params, {}))


def test_repo_variants_are_valid_for_every_profile(params):
    from autoperi.config import load_params

    for profile in ("smoke", "default", "paper"):
        items = plan(load_params(params.root / "params.yaml", profile))
        assert items[0]["name"] == "full" and items[0]["trains"]
        assert any(not i["trains"] for i in items)


def test_ablation_dataset_gets_its_model_overrides_and_a_slot_variant_drops_the_distinct_head(params):
    local = dataclasses.replace(
        params, model=dataclasses.replace(params.model, composition_decoder="autoregressive",
                                          by_dataset={"mp20_bt": {"distinct_element_head": True}}),
        ablations=dataclasses.replace(params.ablations, dataset="mp20_bt"))
    full = variant_model_config(local, "full", {})
    assert full.distinct_element_head and full.by_dataset is None
    slots = variant_model_config(local, "slots", {"composition_decoder": "slots"})
    assert slots.composition_decoder == "slots" and not slots.distinct_element_head


def test_a_rerun_reuses_a_row_only_when_checkpoint_overrides_settings_and_samples_are_unchanged(tmp_path):
    from autoperi.ablations import reusable_row

    settings = {"n_samples": 16, "stability_n": 0, "seed": 0, "sample_steps": 10}
    row = {"overrides": {"w_flow": 0.0}, "checkpoint_sha256": "abc", "settings": settings, "cov_recall": 50.0}
    previous = {"variants": {"no_flow_prior": row}}
    args = ("no_flow_prior", {"w_flow": 0.0}, "abc", settings, tmp_path)
    assert reusable_row(previous, *args) is None  # samples not on disk
    (tmp_path / "no_flow_prior.extxyz").write_text("")
    assert reusable_row(previous, *args) == row
    assert reusable_row(previous, "no_flow_prior", {"w_flow": 0.0}, "abd", settings, tmp_path) is None  # retrained
    assert reusable_row(previous, "no_flow_prior", {"w_flow": 0.5}, "abc", settings, tmp_path) is None
    assert reusable_row(previous, "no_flow_prior", {"w_flow": 0.0}, "abc", {**settings, "n_samples": 32},
                        tmp_path) is None
    assert reusable_row(None, *args) is None and reusable_row(previous, "full", *args[1:]) is None
    del row["checkpoint_sha256"]  # rows of runs before the hash was recorded are redone
    assert reusable_row(previous, *args) is None


def test_run_ablations_rerun_redoes_only_variants_whose_checkpoint_changed(params, tmp_path, monkeypatch):
    """The stage's loop with the heavy parts replaced by recorders: a second run with unchanged checkpoints samples
    and scores nothing; retraining one variant redoes that variant and the sampling-only variant reusing it."""
    import json
    from types import SimpleNamespace

    import autoperi.metrics.evaluate as evaluate_mod
    import autoperi.metrics.references as references_mod
    import autoperi.sampling.sampler as sampler_mod
    import autoperi.training.runner as runner_mod
    from autoperi.ablations import run_ablations

    weights = {"full": b"full-1", "no_physics": b"nophys-1"}
    scored = []

    def train(variant, dataset, out_dir, **_):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "best.pt").write_bytes(weights[out_dir.name])
        return {"epochs_completed": 1, "stop_reason": "epochs", "best_val_loss": 1.0, "train_minutes": 0.1}

    def write(samples, path):
        path.write_text("samples")
        return path

    def evaluate(path, dataset, name, *_, **__):
        scored.append(name)
        return {"struct_validity": 100.0, "cov_recall": float(len(scored))}

    monkeypatch.setattr(runner_mod, "train_dataset", train)
    monkeypatch.setattr(references_mod, "build_references", lambda *a, **k: None)
    monkeypatch.setattr(sampler_mod, "load_model", lambda path: (SimpleNamespace(cfg=params.model), None))
    monkeypatch.setattr(sampler_mod, "generate", lambda model, n, **_: [{"network_evals": 10}] * n)
    monkeypatch.setattr(sampler_mod, "write_samples", write)
    monkeypatch.setattr(evaluate_mod, "evaluate_samples", evaluate)
    local = dataclasses.replace(
        _with_variants(params, {"full": {}, "no_physics": {"w_ef": 0.0, "w_rdf": 0.0}, "k1": {"sample_steps": 1}}),
        root=tmp_path,
    )
    first = run_ablations(local, progress=False)
    assert scored == ["full", "no_physics", "k1"] and first["k1"]["cov_recall"] == 3.0
    assert run_ablations(local, progress=False) == first and len(scored) == 3  # nothing redone
    weights["full"] = b"full-2"  # the full model retrained: it and k1 (its checkpoint) are scored again
    third = run_ablations(local, progress=False)
    assert scored[3:] == ["full", "k1"] and third["no_physics"] == first["no_physics"]
    summary_path = tmp_path / local.ablations.reports_dir / local.ablations.dataset / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["variants"]["full"]["cov_recall"] == 4.0


def test_trained_variants_share_one_epoch_count_and_no_per_dataset_budget(params):
    from autoperi.ablations import variant_train_config
    from autoperi.config import load_params

    local = dataclasses.replace(params, ablations=dataclasses.replace(params.ablations, epochs=7, max_minutes=None),
                                train=dataclasses.replace(params.train, max_minutes_by_dataset={"perov_5": 30}))
    train = variant_train_config(local)
    assert (train.epochs, train.max_minutes, train.max_minutes_by_dataset) == (7, None, None)
    unset = dataclasses.replace(local, ablations=dataclasses.replace(local.ablations, epochs=None))
    assert variant_train_config(unset).epochs == params.train.epochs
    # The reviewer's profile compares variants at equal epochs: no wall-clock cap, whose epochs follow the load.
    default = load_params(params.root / "params.yaml", "default")
    assert variant_train_config(default).max_minutes is None and default.ablations.epochs == 20
