"""Training configuration: flags over file over defaults, unknown keys rejected, TOML round trip, the flat
form of earlier versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pclup.config import OptimConfig, config_from_mapping, load_config, resolve_config, to_toml
from pclup.errors import UsageError
from pclup.training.schedule import lr_at


def test_flags_override_file_override_base(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('arch = "rcan"\nsteps = 10\nlr = 1e-3\npcl_layers = [2, 4]\n')
    cfg = resolve_config(path, {"steps": 20}, base={"lr": 5e-5, "steps": 5, "out": "runs/ft"})
    settings = (cfg.model.arch, cfg.optim.steps, cfg.optim.lr, cfg.run.out, cfg.loss.layers)
    assert settings == ("rcan", 20, 1e-3, "runs/ft", (2, 4))


def test_unknown_keys_and_bad_values_are_one_line_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("stpes = 10\n")
    with pytest.raises(UsageError) as e:
        resolve_config(path, {})
    assert "stpes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="loss 'l3'"):
        config_from_mapping({"loss": "l3"})
    (tmp_path / "bad.toml").write_text("steps = = 3")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = config_from_mapping(dict(data=("a", "b"), loss="l1", milestones=(10, 20), val_set=None,
                                   init="x/y", arch_args={"n_feats": 8, "depths": (2, 2)}))
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert resolve_config(path, {}) == cfg


def test_schedules() -> None:
    cfg = OptimConfig(steps=100, lr=1.0, warmup_steps=10, min_lr=0.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(55, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == pytest.approx(0.0)
    step = OptimConfig(steps=100, lr=1.0, schedule="multistep", milestones=(50, 80), gamma=0.5)
    assert [lr_at(s, step) for s in (0, 49, 50, 80, 99)] == [1.0, 1.0, 0.5, 0.25, 0.25]


ROOT = Path(__file__).resolve().parents[1]


def test_nested_is_written_and_flat_and_nested_read_alike(tmp_path: Path) -> None:
    flat = {"data": ["a"], "arch": "rcan", "loss": "l1", "pcl_weight": 0.5, "steps": 7, "seed": 3,
            "arch_args": {"n_feats": 8}}
    nested = {"data": {"folders": ["a"]}, "model": {"arch": "rcan", "arch_args": {"n_feats": 8}},
              "loss": {"kind": "l1", "weight": 0.5}, "optim": {"steps": 7}, "run": {"seed": 3}}
    cfg = config_from_mapping(flat)
    assert config_from_mapping(nested) == cfg
    assert (cfg.data.folders, cfg.loss.kind, cfg.loss.weight) == (("a",), "l1", 0.5)
    assert cfg.model.arch_args == {"n_feats": 8}
    text = to_toml(cfg)
    assert text.startswith("[data]\nfolders = [\"a\"]\n") and "[model.arch_args]\nn_feats = 8\n" in text
    assert "\n[optim]\nsteps = 7\n" in text
    (tmp_path / "c.toml").write_text(text)
    assert resolve_config(tmp_path / "c.toml", {"steps": 9}).optim.steps == 9  # flags over nested keys


def test_a_run_from_a_model_does_not_record_the_arch() -> None:
    text = to_toml(config_from_mapping({"init": "default-x2", "arch": "rcan"}))
    assert 'init = "default-x2"' in text and "arch =" not in text
    assert 'arch = "rcan"' in to_toml(config_from_mapping({"arch": "rcan"}))


def test_errors_name_the_key_as_written(tmp_path: Path) -> None:
    for values, key in (
        ({"optim": {"steps": "ten"}}, "optim.steps"), ({"steps": "ten"}, "steps"),
        ({"run": {"log_every": 0}}, "run.log_every"), ({"log_every": 0}, "log_every"),
        ({"loss": {"layers": [9]}}, "loss.layers"), ({"pcl_layers": [9]}, "pcl_layers"),
        ({"optim": {"stpes": 1}}, "optim.stpes"), ({"steps": 1, "optim": {"steps": 2}}, "steps"),
    ):
        with pytest.raises(UsageError) as e:
            config_from_mapping(values)
        assert f" {key}" in str(e.value) and "\n" not in str(e.value), values


def test_shipped_recipes_and_model_card_recipes_load() -> None:
    import tomllib

    recipes = sorted((ROOT / "recipes").glob("*.toml"))
    cards = sorted((ROOT / "src" / "pclup" / "pretrained").glob("*/config.json"))
    assert recipes and cards
    for path in recipes:
        assert resolve_config(path, {}).data.scale in (2, 3, 4), path
        # a recipe's result must not depend on whether the CPU it lands on computes bf16 natively
        assert load_config(path).get("precision") in ("fp32", "bf16"), f"{path} does not pin its precision"
    from pclup.data.degrade import load_degradation

    for path in sorted((ROOT / "recipes" / "degradations").glob("*.toml")):
        assert load_degradation(path) is not None, path
    for path in cards:
        recipe = json.loads(path.read_text())["metadata"]["recipe"]
        cfg = config_from_mapping(tomllib.loads(recipe), str(path))
        assert cfg.model.init and config_from_mapping(tomllib.loads(to_toml(cfg))) == cfg, path


def test_positives_and_negatives_apart_and_the_old_samples_as_both(tmp_path: Path) -> None:
    cfg = config_from_mapping({"pcl_positives": 0, "pcl_negatives": 5})
    assert (cfg.loss.positives, cfg.loss.negatives) == (0, 5)
    old = tmp_path / "old.toml"
    old.write_text("pcl_samples = 3\nsteps = 2\n")
    cfg = config_from_mapping(load_config(old))
    assert (cfg.loss.positives, cfg.loss.negatives) == (3, 3)
    cfg = config_from_mapping({"loss": {"samples": 1}})
    assert (cfg.loss.positives, cfg.loss.negatives) == (1, 1)
    text = to_toml(cfg)
    assert "positives = 1\nnegatives = 1\n" in text and "samples" not in text
    with pytest.raises(UsageError, match="pcl_samples and loss.positives are the same setting"):
        config_from_mapping({"pcl_samples": 2, "loss": {"positives": 1}})
    with pytest.raises(UsageError, match="pcl_negatives must be >= 0"):
        config_from_mapping({"pcl_negatives": -1})


def test_the_embedding_blocks_the_config_allows_are_the_networks() -> None:
    from pclup.config import EMBEDDING_BLOCKS
    from pclup.contrastive.embedding import NUM_BLOCKS

    assert EMBEDDING_BLOCKS == NUM_BLOCKS
