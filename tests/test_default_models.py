"""The models shipped inside the package: present, small, loadable offline, used by default, and as good
as promised (FSRCNN's published figures on Set5 and Set14; the other sets are in docs/results.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import data_dir
from pclup.bench import benchmark
from pclup.errors import ModelFileError
from pclup.weights import Pretrained, default_model_name, list_pretrained, load_model
from pclup.weights.catalogue import PACKAGE_DIR
from pclup.weights.loader import _load_pretrained

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = [p for p in list_pretrained() if p.packaged]
# FSRCNN (Dong et al. 2016), PSNR on Y, as tabulated by later papers.
FSRCNN = {
    2: {"Set5": 37.00, "Set14": 32.63},
    3: {"Set5": 33.16, "Set14": 29.43},
    4: {"Set5": 30.72, "Set14": 27.61},
}


def _data_dir() -> Path:
    return data_dir("Set14")


@pytest.mark.parametrize(
    ("scale", "name"),
    [(None, "default-x4"), (1, "default-x2"), (1.5, "default-x2"), (2, "default-x2"), (2.0000001, "default-x3"),
     (2.5, "default-x3"), (3, "default-x3"), (3.5, "default-x4"), (4, "default-x4"), (8, "default-x4")],
)
def test_default_model_for_each_output_scale(scale: float | None, name: str) -> None:
    assert default_model_name(scale) == name


def test_every_default_is_packaged_and_all_fit_in_12_mb() -> None:
    names = {p.name for p in PACKAGED}
    assert {"default-x2", "default-x3", "default-x4"} <= names
    total = 0
    for p in PACKAGED:
        folder = p.folder()
        assert {f.name for f in folder.iterdir()} >= {"config.json", "model.safetensors", "README.md"}, folder
        total += sum(f.stat().st_size for f in folder.iterdir())
        card = (folder / "README.md").read_text()
        assert "## Bench" in card and "## How it was trained" in card and "```toml" in card, p.name
    assert total <= 12e6, f"packaged models take {total / 1e6:.1f} MB"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_default_loads_at_each_scale(scale: int) -> None:
    loaded = load_model("default", scale=scale)
    assert loaded.scale == scale and loaded.name == f"default-x{scale}"
    assert loaded.source == f"pclup:{PACKAGE_DIR}/default-x{scale}"
    assert loaded.arch.name == "compact"


def test_a_packaged_model_without_its_files_is_a_clear_error() -> None:
    missing = Pretrained(name="no-such-packaged", variant="compact", scale=4, repo_id="", filename="model.safetensors",
                         layout="package")
    with pytest.raises(ModelFileError, match="no-such-packaged.*missing"):
        _load_pretrained(missing)


@pytest.mark.slow
def test_upscale_with_no_model_flag_uses_the_default_offline(tmp_path: Path) -> None:
    """Acceptance: `pclup upscale IMG -s 4` in a process whose Hub cache is empty and offline."""
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(src)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf"),
           "HF_HUB_CACHE": str(tmp_path / "empty-hf" / "hub")}
    for scale, model in (("4", "default-x4"), ("3", "default-x3"), ("1.5", "default-x2")):
        run = subprocess.run([sys.executable, "-m", "pclup", "upscale", str(src), "-s", scale, "--json", "-q",
                              "-o", str(tmp_path / f"out{scale}.png")], capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["model"] == model, summary
        with Image.open(tmp_path / f"out{scale}.png") as im:
            assert im.size == (round(20 * float(scale)), round(24 * float(scale)))
    assert not (tmp_path / "empty-hf" / "hub").exists() or not any((tmp_path / "empty-hf" / "hub").iterdir())


@pytest.mark.slow
def test_models_command_lists_the_defaults_as_local() -> None:
    run = subprocess.run([sys.executable, "-m", "pclup", "models", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = {m["name"]: m for m in json.loads(run.stdout)["models"]}
    for scale in (2, 3, 4):
        assert rows[f"default-x{scale}"]["local"] is True
        assert rows[f"default-x{scale}"]["source"] == f"pclup:{PACKAGE_DIR}/default-x{scale}"


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_defaults_match_fsrcnn_on_set5_and_set14(scale: int) -> None:
    """Acceptance (in part; B100 and Urban100 take minutes and are in docs/results.md)."""
    report = benchmark([f"default-x{scale}"], ["Set5", "Set14"], [scale], data_dir=_data_dir())
    for r in report.results:
        assert r.psnr >= FSRCNN[scale][r.dataset], (r.dataset, r.psnr)


@pytest.mark.slow
def test_the_edsr_s_pcl_built_in_loads_and_beats_the_default_x4_on_set5_and_set14() -> None:
    """Acceptance (in part; B100 and Urban100 take minutes on a CPU and are in docs/results.md)."""
    loaded = load_model("edsr-s-pcl-x4")
    assert loaded.arch.name == "edsr" and loaded.scale == 4
    assert loaded.source == f"pclup:{PACKAGE_DIR}/edsr-s-pcl-x4"
    report = benchmark(["edsr-s-pcl-x4", "default-x4"], ["Set5", "Set14"], [4], data_dir=_data_dir())
    psnr = {(r.model, r.dataset): r.psnr for r in report.results}
    for s in ("Set5", "Set14"):
        assert psnr[("edsr-s-pcl-x4", s)] > psnr[("default-x4", s)], (s, psnr)


@pytest.mark.slow
def test_the_wheel_carries_the_packaged_models(tmp_path: Path) -> None:
    """A non-editable install (pip install pclup, pipx) gets the weights: they are package data."""
    pytest.importorskip("setuptools")
    import zipfile

    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("pclup-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for p in PACKAGED:
        for file in ("config.json", "model.safetensors", "README.md"):
            assert f"pclup/{PACKAGE_DIR}/{p.name}/{file}" in names
