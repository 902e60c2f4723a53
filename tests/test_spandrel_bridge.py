"""Architectures pclup does not implement, loaded through spandrel: ``info``, ``upscale``, ``bench`` and the
Python API work and match spandrel's own output; ``convert`` and ``finetune`` refuse in one line; without
spandrel the unknown file's error says in one line how to get it.

The network is spandrel's SPAN (pclup has no SPAN), built from spandrel's own class with tiny settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from _peers import _SPANDREL_OPTIONAL, _import_peer, import_spandrel_arch
from pclup.cli import app
from pclup.errors import IncompatibleCheckpointError
from pclup.weights import load_model

runner = CliRunner()
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def spandrel() -> ModuleType:
    return _import_peer("spandrel", _SPANDREL_OPTIONAL)


@pytest.fixture(scope="module")
def span_file(spandrel: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny x2 SPAN (8 features) with random weights, saved as a BasicSR-style ``.pth``."""
    span = import_spandrel_arch("SPAN", "span")
    torch.manual_seed(0)
    net = span.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("span") / "tiny-span-x2.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


@pytest.fixture
def no_spandrel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    yield


def _png(path: Path, size: tuple[int, int] = (13, 11)) -> Path:
    arr = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    PILImage.fromarray(arr, "RGB").save(path)
    return path


def test_load_model_wraps_spandrels_network_and_matches_it(spandrel: ModuleType, span_file: Path) -> None:
    loaded = load_model(str(span_file))
    assert loaded.arch.name == "spandrel:SPAN" and loaded.scale == 2
    assert loaded.model.config.n_colors == 3
    descriptor = spandrel.ModelLoader().load_from_file(span_file)
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = loaded.model(x.clone()), descriptor.eval()(x.clone())
    assert ours.shape == theirs.shape == (1, 3, 26, 34)
    assert float((ours - theirs).abs().max()) <= TOLERANCE


def test_info_names_spandrels_architecture(span_file: Path) -> None:
    result = runner.invoke(app, ["info", str(span_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["architecture"] == "spandrel:SPAN" and data["scale"] == 2
    assert data["config"]["architecture"] == "SPAN" and data["config"]["n_colors"] == 3
    assert data["parameters"] > 0


def test_upscale_matches_spandrel(spandrel: ModuleType, span_file: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["upscale", str(src), "-m", str(span_file), "-o", str(out), "-t", "0"])
    assert result.exit_code == 0, result.output
    got = np.asarray(PILImage.open(out).convert("RGB"), dtype=np.int16)
    descriptor = spandrel.ModelLoader().load_from_file(span_file)
    x = torch.from_numpy(np.asarray(PILImage.open(src).convert("RGB"), dtype=np.float32) / 255)
    with torch.no_grad():
        y = descriptor.eval()(x.permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    want = np.round(y * 255).astype(np.int16)
    assert got.shape == want.shape == (22, 26, 3)
    assert int(np.abs(got - want).max()) <= 1  # 8-bit rounding of the same float output


def test_bench_runs_a_spandrel_model(span_file: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    _png(hr / "a.png", (40, 32))
    report = tmp_path / "bench.json"
    result = runner.invoke(
        app, ["bench", "-m", str(span_file), "--set", str(hr), "-s", "2", "--json", str(report)]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(report.read_text())["results"]
    assert row["model"] == str(span_file) and row["scale"] == 2 and row["images"] == 1
    assert np.isfinite(row["psnr"])


@pytest.mark.parametrize("layout", ["pclup", "spandrel"])
def test_convert_refuses_in_one_line(span_file: Path, tmp_path: Path, layout: str) -> None:
    out = tmp_path / ("out.pth" if layout == "spandrel" else "out")
    result = runner.invoke(app, ["convert", str(span_file), str(out), "--layout", layout])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "spandrel:SPAN" in lines[0] and "its own architectures" in lines[0]
    assert not out.exists()


def test_finetune_refuses_in_one_line(span_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _png(data / "a.png", (32, 32))
    args = ["finetune", "--data", str(data), "-m", str(span_file), "-s", "2", "--steps", "1",
            "--out", str(tmp_path / "ft")]
    result = runner.invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "fine-tunes its own architectures only" in lines[0]
    assert not (tmp_path / "ft").exists()


def test_without_spandrel_the_error_says_how_to_get_it(
    span_file: Path, tmp_path: Path, no_spandrel: None
) -> None:
    with pytest.raises(IncompatibleCheckpointError, match="pip install --no-deps spandrel") as err:
        load_model(str(span_file))
    assert "\n" not in str(err.value) and "unknown architecture" in str(err.value)
    result = runner.invoke(app, ["info", str(span_file)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "pip install --no-deps spandrel" in lines[0]


def test_a_layout_spandrel_does_not_know_either_is_one_line(spandrel: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"nothing.known.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(IncompatibleCheckpointError, match="nor any that spandrel") as err:
        load_model(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_runtime_import_needs_no_torchvision(span_file: Path) -> None:
    """A fresh interpreter: pclup imports spandrel itself (placeholders for a missing torchvision), and
    leaves no torchvision module behind."""
    code = (
        "import sys, importlib.util\n"
        "from pclup.weights import load_model\n"
        f"m = load_model({str(span_file)!r})\n"
        "print(m.arch.name, m.scale)\n"
        "tv = importlib.util.find_spec('torchvision') is not None\n"
        "print('left', tv or not any(n.split('.')[0] == 'torchvision' for n in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["spandrel:SPAN", "2", "left", "True"]
