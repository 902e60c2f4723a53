"""RRDBNet (ESRGAN / Real-ESRGAN): equality with spandrel's ESRGAN for its three key layouts, inference of
the hyper-parameters, and the command line on a tiny foreign .pth (info, upscale, finetune)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import _peers
from conftest import tiny_model
from pclup.cli import app
from pclup.models import edsr, rrdbnet, swinir
from pclup.models.rrdbnet import RRDBNetConfig
from pclup.weights import canonicalize, model_from_state_dict

runner = CliRunner()

# (our scale, spandrel's network scale, pixel-unshuffle factor, unshuffle flag)
CASES = [
    (1, 4, 4, True),  # Real-ESRGAN x1
    (2, 4, 2, True),  # RealESRGAN_x2plus
    (4, 4, None, True),  # RealESRGAN_x4plus, BSRGAN, 4x-UltraSharp
    (8, 8, None, True),  # community 8x ESRGAN models
    (2, 2, None, False),  # old ESRGAN x2: one upsampling conv
    (1, 1, None, False),  # old ESRGAN x1: none
]
FEAT, BLOCKS, GROW = 8, 2, 32  # spandrel's RRDB has a fixed growth of 32 channels


def _old_to_basicsr(old: dict[str, torch.Tensor], bsrgan: bool = False) -> dict[str, torch.Tensor]:
    """spandrel's (old ESRGAN) keys as BasicSR's or, with ``bsrgan``, BSRGAN/RealSR's (test-side mapping)."""
    last = max(int(k.split(".")[1]) for k in old)
    n_up = (last - 4) // 3
    names = {0: "conv_first", last - 2: "HRconv" if bsrgan else "conv_hr", last: "conv_last"}
    for i in range(1, n_up + 1):
        names[3 * i] = f"upconv{i}" if bsrgan else f"conv_up{i}"
    out = {}
    for key, value in old.items():
        if m := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(\w+)$", key):
            i, j, k, kind = m.groups()
            name = f"RRDB_trunk.{i}.RDB{j}" if bsrgan else f"body.{i}.rdb{j}"
            out[f"{name}.conv{k}.{kind}"] = value
        elif m := re.match(r"model\.1\.sub\.(\d+)\.(\w+)$", key):
            out[f"{'trunk_conv' if bsrgan else 'conv_body'}.{m.group(2)}"] = value
        else:
            index, kind = key.split(".")[1:]
            out[f"{names[int(index)]}.{kind}"] = value
    return out


def _spandrel_old(net_scale: int, factor: int | None, seed: int) -> dict[str, torch.Tensor]:
    arch = _peers.import_spandrel_arch("ESRGAN", "RRDB")
    torch.manual_seed(seed)
    peer = arch.RRDBNet(in_nc=3 * (factor or 1) ** 2, out_nc=3, num_filters=FEAT, num_blocks=BLOCKS,
                        scale=net_scale, shuffle_factor=factor)
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return {k: v.clone() for k, v in peer.state_dict().items()}


@pytest.mark.parametrize("layout", ["old", "basicsr", "bsrgan"])
@pytest.mark.parametrize(("scale", "net_scale", "factor", "unshuffle"), CASES)
def test_equals_spandrel(layout: str, scale: int, net_scale: int, factor: int | None, unshuffle: bool,
                         tmp_path: Path) -> None:
    old = _spandrel_old(net_scale, factor, seed=scale)
    state = old if layout == "old" else _old_to_basicsr(old, bsrgan=layout == "bsrgan")
    path = tmp_path / "net.pth"
    torch.save({"params_ema": state} if layout == "basicsr" else state, path)
    spandrel_esrgan = importlib.import_module("spandrel.architectures.ESRGAN")
    peer = spandrel_esrgan.ESRGANArch().load(dict(state)).model.eval()
    ours = model_from_state_dict(canonicalize(torch.load(path, weights_only=True)), str(path))
    expected = RRDBNetConfig(
        scale=scale, num_feat=FEAT, num_block=BLOCKS, num_grow_ch=GROW, unshuffle=unshuffle
    )
    assert ours.config == expected
    for size in ((16, 12), (13, 7)):  # odd sizes: both pad (reflect) before unshuffling, then crop
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y, reference = ours(x), peer(x)
        diff = (reference - y).abs().max().item()
        assert y.shape == (1, 3, size[0] * scale, size[1] * scale)
        assert reference.std().item() > 0.02  # outputs far from constant: the comparison means something
        assert diff <= 1e-5, (layout, scale, diff)


def test_x3_equals_spandrel() -> None:
    """x3 (nearest x3, one conv): spandrel builds it but reads such weights as x2, as we do; built here."""
    old = _spandrel_old(3, None, seed=3)
    arch = _peers.import_spandrel_arch("ESRGAN", "RRDB")
    peer = arch.RRDBNet(in_nc=3, out_nc=3, num_filters=FEAT, num_blocks=BLOCKS, scale=3).eval()
    peer.load_state_dict(old)
    config = RRDBNetConfig(scale=3, num_feat=FEAT, num_block=BLOCKS, num_grow_ch=GROW)
    ours = rrdbnet.RRDBNet(config).eval()
    ours.load_state_dict(rrdbnet.import_foreign(canonicalize(old), config))
    assert rrdbnet.infer_config(canonicalize(old)).scale == 2
    x = torch.rand(1, 3, 11, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y, reference = ours(x), peer(x)
    assert y.shape == (1, 3, 33, 21)
    assert (reference - y).abs().max().item() <= 1e-5


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
@pytest.mark.parametrize("unshuffle", [True, False])
@pytest.mark.parametrize("colours", [1, 3])
def test_infer_config_round_trip(scale: int, unshuffle: bool, colours: int) -> None:
    config = RRDBNetConfig(scale=scale, num_feat=8, num_block=3, num_grow_ch=4, n_colors=colours,
                           unshuffle=unshuffle or scale >= 4)
    state = rrdbnet.RRDBNet(config).state_dict()
    assert rrdbnet.detect(state)
    assert rrdbnet.infer_config(state) == config
    assert not edsr.detect(state) and not swinir.detect(state)


def test_tiny_model_and_variants() -> None:
    model = tiny_model("rrdbnet", 2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 10, 12)
        assert model(torch.rand(1, 3, 1, 1)).shape == (1, 3, 2, 2)  # too small to reflect: replicated
    with torch.device("meta"):  # RealESRGAN_x4plus: 16.7M parameters
        assert sum(p.numel() for p in rrdbnet.SPEC.build(RRDBNetConfig()).parameters()) == 16_697_987


def test_esrgan_plus_and_bad_shapes_are_refused() -> None:
    state = rrdbnet.RRDBNet(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4)).state_dict()
    assert not rrdbnet.detect({**state, "body.0.rdb1.conv1x1.weight": torch.zeros(1)})
    with pytest.raises(ValueError):
        rrdbnet.infer_config({**state, "conv_first.weight": torch.zeros(8, 5, 3, 3)})
    with pytest.raises(ValueError):
        rrdbnet.infer_config({k: v for k, v in state.items() if not k.startswith("conv_up1.")})


def _tiny_pth(tmp_path: Path, scale: int = 2) -> Path:
    path = tmp_path / "tiny_esrgan.pth"
    torch.save({"params_ema": tiny_model("rrdbnet", scale).state_dict()}, path)
    return path


def test_cli_info_and_upscale(tmp_path: Path) -> None:
    path = _tiny_pth(tmp_path)
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["architecture"] == "rrdbnet"
    assert "num_block" in result.output and "num_grow_ch" in result.output
    pixels = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    out = str(tmp_path / "out.png")
    result = runner.invoke(app, ["upscale", str(tmp_path / "in.png"), "-m", str(path), "-o", out])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (14, 18)


@pytest.mark.slow
def test_cli_finetune(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)).save(data / f"{i}.png")
    path = _tiny_pth(tmp_path)
    args = ["finetune", "--data", str(data), "-m", str(path), "-s", "2", "--steps", "2", "--batch-size", "2",
            "--patch-size", "8", "--val-set", "none", "--loss", "l1", "--precision", "fp32",
            "--out", str(tmp_path / "ft")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ft").is_dir()
