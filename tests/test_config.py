"""Training configuration: flags over file over defaults, unknown keys rejected, TOML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pclup.config import TrainConfig, config_from_mapping, load_config, resolve_config, to_toml
from pclup.errors import UsageError
from pclup.training.schedule import lr_at


def test_flags_override_file_override_base(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('arch = "rcan"\nsteps = 10\nlr = 1e-3\npcl_layers = [2, 4]\n')
    cfg = resolve_config(path, {"steps": 20}, base={"lr": 5e-5, "steps": 5, "out": "runs/ft"})
    assert (cfg.arch, cfg.steps, cfg.lr, cfg.out, cfg.pcl_layers) == ("rcan", 20, 1e-3, "runs/ft", (2, 4))


def test_unknown_keys_and_bad_values_are_one_line_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("stpes = 10\n")
    with pytest.raises(UsageError) as e:
        resolve_config(path, {})
    assert "stpes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="loss 'l2'"):
        config_from_mapping({"loss": "l2"})
    (tmp_path / "bad.toml").write_text("steps = = 3")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = TrainConfig(data=("a", "b"), loss="l1", milestones=(10, 20), val_set=None, init="x/y",
                      arch_args={"n_feats": 8, "depths": (2, 2)})
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    assert resolve_config(path, {}) == cfg


def test_schedules() -> None:
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr=0.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(55, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == pytest.approx(0.0)
    step = TrainConfig(steps=100, lr=1.0, schedule="multistep", milestones=(50, 80), gamma=0.5)
    assert [lr_at(s, step) for s in (0, 49, 50, 80, 99)] == [1.0, 1.0, 0.5, 0.25, 0.25]
