"""Training under faults: skipped data, output that cannot be written, SIGTERM, existing run folders,
warm-up that fits the run, finetune's default model, emulated bf16, the TOML writer, file modes and
hostile recipe values. Tiny runs (a 2-layer network, 8-pixel patches) on generated images."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import noise_images
from pclup.cli import app
from pclup.config import TrainConfig, config_from_mapping, resolve_config, to_toml, tomllib
from pclup.errors import PclupError
from pclup.training.checkpoint import load_checkpoint
from pclup.training.loop import train
from pclup.training.schedule import lr_at

runner = CliRunner()
NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return noise_images(tmp_path_factory.mktemp("train"), 40, 44)


def _settings(data: Path, out: Path, **kw: object) -> dict[str, object]:
    """The settings of a tiny run, by their flat names."""
    base = dict(data=(str(data),), arch="compact", arch_args={"n_feats": 8, "n_convs": 1}, scale=2,
                patch_size=8, batch_size=2, steps=3, val_set=None, out=str(out), log_every=1, save_every=1000,
                loss="l1", precision="fp32", lr=1e-3, ema=0.9)
    return {**base, **kw}


def _cfg(data: Path, out: Path, **kw: object) -> TrainConfig:
    return config_from_mapping(_settings(data, out, **kw))


def _recipe(tmp_path: Path, data: Path, **kw: object) -> Path:
    """A TOML recipe of a tiny run (flags may override it), in the flat form of earlier versions: one
    ``key = value`` line per setting."""
    values = _settings(data, tmp_path / "run", **{"steps": 2, **kw})
    rows = [f"{k} = {json.dumps('' if v is None else v)}" for k, v in values.items()
            if not isinstance(v, dict)]
    for name, table in values.items():
        if isinstance(table, dict):
            rows += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(rows) + "\n")
    return path


def _start_model(tmp_path: Path) -> Path:
    from pclup.models import create_model
    from pclup.weights import save_pretrained

    return save_pretrained(create_model("compact", scale=2, n_feats=8, n_convs=1), tmp_path / "start")


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("pclup: error:")]
    assert len(errors) == 1, output
    return errors[0]


def _log(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# --- 1. skipped training images are reported -----------------------------------------------------------


def test_skipped_images_are_named_on_the_terminal_in_the_log_and_card(data: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in data.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "broken.png").write_bytes(b"not an image")
    (mixed / "cut.jpg").write_bytes((data / "0.png").read_bytes()[:60])
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(mixed / "tiny.png")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(_recipe(tmp_path, mixed)), "--out", str(run)])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, result.output
    assert "3 of 6 image files skipped (2 unreadable, 1 smaller than 16 px)" in warning[0]
    assert "broken.png" in warning[0] and "12x10 px" in result.output
    record = _log(run)[0]
    assert record["skipped"] == 3 and record["images"] == 3 and len(record["skipped_files"]) == 3  # type: ignore[arg-type]
    assert any("tiny.png" in f for f in record["skipped_files"])  # type: ignore[union-attr]
    assert [r["step"] for r in _log(run)[1:]] == [1, 2]
    card = (run / "model" / "README.md").read_text()
    assert "3 of 6 image files skipped" in card and "tiny.png" in card


def test_a_folder_of_only_unusable_images_names_the_first_cause(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(bad / "tiny.png")
    result = runner.invoke(app, ["train", "--config", str(_recipe(tmp_path, bad))])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert "no usable training image" in line and "tiny.png: 12x10 px" in line
    assert not (tmp_path / "run").exists()


# --- 2. output that cannot be written ------------------------------------------------------------------


def test_disk_full_at_a_later_checkpoint_keeps_the_last_good_one(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save
    calls = []

    def save(obj: object, f: object, *args: object, **kw: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise NO_SPACE
        real_save(obj, f, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    recipe = _recipe(tmp_path, data, save_every=1, steps=3)
    result = runner.invoke(app, ["train", "--config", str(recipe), "--out", str(run)])
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert f"cannot write checkpoint {run / 'checkpoint'}: No space left on device" in line
    assert f"the last good checkpoint (step 1) is at {run / 'checkpoint'}" in line
    assert load_checkpoint(run).state["step"] == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint", "config.toml", "log.jsonl"]  # no temporary


def test_a_failed_final_save_keeps_the_checkpoint_and_resume_writes_it(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _cfg(data, run, steps=3)

    def block_the_model_folder(info: object) -> None:
        if info.step == 3:  # type: ignore[attr-defined]
            (run / "model").write_text("in the way")  # the model folder cannot be made

    with pytest.raises(PclupError) as e:
        train(cfg, on_step=block_the_model_folder)
    message = str(e.value)
    assert f"cannot write {run / 'model'}" in message and "\n" not in message
    assert f"the last good checkpoint (step 3) is at {run / 'checkpoint'}" in message
    assert f"--resume {run} writes the model" in message
    assert load_checkpoint(run).state["step"] == 3
    (run / "model").unlink()
    steps: list[int] = []
    train(cfg, resume=run, on_step=lambda info: steps.append(info.step))
    assert steps == [] and (run / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_that_cannot_be_a_folder_is_one_line(data: Path, tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" if where == "file" else tmp_path / "afile" / "run"
    result = runner.invoke(app, ["train", "--config", str(_recipe(tmp_path, data)), "--out", str(out)])
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert f"cannot create run folder {out}" in line and "is a file" in line
    assert (tmp_path / "afile").read_text() == "x"


# --- 3. SIGTERM ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_that_resume_continues(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    recipe = _recipe(tmp_path, data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pclup", "train", "--config", str(recipe), "--out", str(run)]
    proc = subprocess.Popen([*command, "--steps", "1000000"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "log.jsonl").is_file() and len((run / "log.jsonl").read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    line = _one_error_line(stderr)
    step = load_checkpoint(run).state["step"]
    assert step >= 3
    assert line == f"pclup: error: terminated; the checkpoint (step {step}) is in {run}: " \
                   f"continue with --resume {run}"
    resume = [sys.executable, "-m", "pclup", "train", "--resume", str(run), "--steps", str(step + 2)]
    resumed = subprocess.run(resume, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from step {step}" in resumed.stderr
    assert [r["step"] for r in _log(run)][-2:] == [step + 1, step + 2]


# --- 4. warm-up fits the run -----------------------------------------------------------------------------


def test_finetune_warm_up_fits_a_short_run_and_is_said(data: Path, tmp_path: Path) -> None:
    start = _start_model(tmp_path)
    args = ["finetune", "--data", str(data), "-m", str(start), "-s", "2", "--batch-size", "2", "--patch-size",
            "8", "--val-set", "none", "--loss", "l1", "--precision", "fp32", "--steps", "20"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "ft")])
    assert result.exit_code == 0, result.output
    assert "20 steps (warm-up 2)" in result.output
    cfg = resolve_config(tmp_path / "ft" / "config.toml", {})
    assert cfg.optim.warmup_steps == 2
    assert max(lr_at(step, cfg.optim) for step in range(20)) == pytest.approx(5e-5)
    result = runner.invoke(app, [*args, "--warmup-steps", "20", "--out", str(tmp_path / "ft2")])
    assert result.exit_code == 2
    assert "warmup_steps (20) must be fewer than steps (20)" in _one_error_line(result.output)


# --- 5. an existing run folder ---------------------------------------------------------------------------


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    recipe = _recipe(tmp_path, data)
    assert runner.invoke(app, ["train", "--config", str(recipe), "--out", str(run)]).exit_code == 0
    (run / "notes.txt").write_text("mine")
    model = (run / "model" / "model.safetensors").read_bytes()
    result = runner.invoke(app, ["train", "--config", str(recipe), "--out", str(run), "--seed", "5"])
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert str(run) in line and "--resume" in line and "--overwrite" in line
    assert (run / "model" / "model.safetensors").read_bytes() == model and len(_log(run)) == 2
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "3", "--overwrite"])
    assert result.exit_code == 2
    assert "--overwrite would delete the checkpoint" in _one_error_line(result.output)
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert f"resuming {run} from step 2" in result.output
    assert [r["step"] for r in _log(run)] == [1, 2, 3]
    result = runner.invoke(app, ["train", "--config", str(recipe), "--out", str(run), "--seed", "5",
                                 "--overwrite"])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in _log(run)] == [1, 2] and "seed = 5\n" in (run / "config.toml").read_text()
    assert (run / "notes.txt").read_text() == "mine"  # only what pclup wrote is replaced
    (run / "model" / "upscaled.png").write_bytes(b"a user's file")
    result = runner.invoke(app, ["train", "--config", str(recipe), "--out", str(run), "--overwrite"])
    assert result.exit_code == 2 and "upscaled.png" in _one_error_line(result.output)
    assert (run / "model" / "upscaled.png").is_file() and (run / "model" / "model.safetensors").is_file()


# --- 6. finetune's default model -------------------------------------------------------------------------


def test_finetune_without_a_model_starts_from_the_default_of_the_scale(data: Path, tmp_path: Path) -> None:
    args = ["finetune", "--data", str(data), "-s", "2", "--steps", "1", "--batch-size", "2", "--patch-size",
            "8", "--val-set", "none", "--loss", "l1", "--out", str(tmp_path / "ft")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no default model" not in result.output and "from default-x2" in result.output
    assert 'init = "default-x2"' in (tmp_path / "ft" / "config.toml").read_text()


# --- 7. emulated bf16 ------------------------------------------------------------------------------------


def test_auto_training_precision_ignores_emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from pclup.device import pick_precision
    from pclup.models import get_arch

    # V100 (compute capability 7.0) emulates bfloat16: torch can make bf16 tensors on it; A100 (8.0) has it
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True, raising=False)
    cuda, edsr = torch.device("cuda"), get_arch("edsr")
    for major, expected in ((7, torch.float32), (8, torch.bfloat16)):
        properties = SimpleNamespace(major=major, minor=0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None, p=properties: p)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, m=major: (m, 0))
        assert pick_precision("auto", cuda, edsr, training=True) == expected, major


# --- 8. the TOML writer ----------------------------------------------------------------------------------


def test_recipes_with_control_characters_read_back() -> None:
    cfg = config_from_mapping(
        dict(data=("a\nb", 'q"uote\\', "tab\there", "\x01\x7f\r\b\f é"), out="x\ny", init="c:\\m")
    )
    text = to_toml(cfg)
    assert config_from_mapping(tomllib.loads(text)) == cfg


# --- 9. file modes ---------------------------------------------------------------------------------------


def test_run_files_follow_the_umask(data: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        train(_cfg(data, tmp_path / "run", steps=2, save_every=1))
    finally:
        os.umask(old)
    written_by_save_pretrained = {"model/model.safetensors", "model/config.json"}
    for path in (tmp_path / "run").rglob("*"):
        name = path.relative_to(tmp_path / "run").as_posix()
        if name not in written_by_save_pretrained:
            assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), name


# --- hostile recipe values -------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    'steps = "ten"', "seed = 1.5", 'channels_last = "yes"', "log_every = 0", "save_every = 0",
    "val_every = 0", "pcl_layers = [9]", "out = 5", "data = 5", 'milestones = ["a"]', "pcl_weight = nan",
    "gamma = -1", "disc_width = 0", "min_lr = -1", "grad_clip = -1",
])
def test_bad_recipe_values_are_one_line_usage_errors(data: Path, tmp_path: Path, line: str) -> None:
    key = line.split(" = ")[0]
    rows = _recipe(tmp_path, data).read_text().splitlines()
    bad = tmp_path / "bad.toml"
    bad.write_text(f"{line}\n" + "\n".join(row for row in rows if not row.startswith(f"{key} = ")) + "\n")
    result = runner.invoke(app, ["train", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert key in _one_error_line(result.output)


def test_arch_args_that_build_no_network_are_one_line_usage_errors(data: Path, tmp_path: Path) -> None:
    text = _recipe(tmp_path, data).read_text().replace("n_feats = 8", "n_feats = -1")
    (tmp_path / "bad.toml").write_text(text)
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "bad.toml")])
    assert result.exit_code == 2, result.output
    assert "n_feats" in _one_error_line(result.output)
