"""``pclup convert --layout spandrel``: one weights file that spandrel (chaiNNer's loader) loads with the
same output as pclup, for every architecture of ours that spandrel knows; a one-line usage error for the
others."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from _peers import _SPANDREL_OPTIONAL, _import_peer
from pclup.cli import app
from pclup.errors import UsageError
from pclup.models import create_model
from pclup.weights import export_spandrel, load_model, read_state_dict, save_pretrained

runner = CliRunner()
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def spandrel() -> ModuleType:
    return _import_peer("spandrel", _SPANDREL_OPTIONAL)


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and biases everywhere but the fixed mean shift (zero-initialised biases would hide a
    wrong bias rescaling)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "mean" not in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model.eval()


def _max_diff(spandrel: ModuleType, model: Any, path: Path) -> float:
    descriptor = spandrel.ModelLoader().load_from_file(path)
    assert descriptor.scale == model.config.scale
    channels = int(getattr(model.config, "n_colors", getattr(model.config, "in_chans", 3)))
    x = torch.rand(1, channels, 13, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x)
        # spandrel's network takes [0, 1] like ours; its RCAN scales its input in place: give it a copy
        theirs = descriptor.model.eval()(x.clone())
    assert theirs.shape == ours.shape
    return float((ours - theirs).abs().max())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_packaged_compact_models(spandrel: ModuleType, tmp_path: Path, scale: int) -> None:
    out = tmp_path / f"default-x{scale}.safetensors"
    result = runner.invoke(app, ["convert", f"default-x{scale}", str(out), "--layout", "spandrel"])
    assert result.exit_code == 0, result.output
    descriptor = spandrel.ModelLoader().load_from_file(out)
    assert type(descriptor.architecture).__name__ == "CompactArch"
    assert _max_diff(spandrel, load_model(f"default-x{scale}").model, out) <= TOLERANCE


RCAN = {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}


@pytest.mark.parametrize(
    ("kind", "scale", "args"),
    [
        ("rcan", 4, RCAN),  # the authors' convention: [0, 255], mean shift
        ("rcan", 3, {**RCAN, "rgb_range": 1.0}),  # super-image's: folded into the weights
        ("rcan", 2, {**RCAN, "mean_shift": False}),  # spandrel's norm=False: [0, 1]
        ("rcan", 2, {**RCAN, "mean_shift": False, "rgb_range": 255.0}),
        ("rcan", 2, {**RCAN, "res_scale": 0.1}),  # spandrel ignores res_scale: folded in
        ("swinir", 2, {"depths": (2, 2), "num_heads": (2, 2), "embed_dim": 16, "window_size": 4,
                       "img_size": 16, "upsampler": "pixelshuffle"}),
        ("swinir", 3, {"depths": (2,), "num_heads": (2,), "embed_dim": 16, "window_size": 4, "img_size": 16,
                       "upsampler": "pixelshuffledirect"}),
        ("swinir", 4, {"depths": (2,), "num_heads": (2,), "embed_dim": 16, "window_size": 4, "img_size": 16,
                       "upsampler": "nearest+conv", "in_chans": 1}),
        ("rrdbnet", 4, {"num_feat": 16, "num_block": 2}),
        ("rrdbnet", 2, {"num_feat": 16, "num_block": 1}),  # pixel-unshuffle, odd input size
        ("rrdbnet", 1, {"num_feat": 16, "num_block": 1, "unshuffle": False}),
    ],
)
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_random_models_match_spandrel(
    spandrel: ModuleType, tmp_path: Path, kind: str, scale: int, args: dict[str, Any], suffix: str
) -> None:
    model = _randomised(create_model(kind, scale=scale, **args))
    path = export_spandrel(model, tmp_path / f"net{suffix}")
    assert _max_diff(spandrel, model, path) <= TOLERANCE


def test_pth_is_a_plain_state_dict(tmp_path: Path) -> None:
    model = create_model("rcan", scale=2, **RCAN)
    path = export_spandrel(model, tmp_path / "net.pth")
    state = torch.load(path, weights_only=True)  # no pickled classes
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(read_state_dict(path)) == set(state)


@pytest.mark.parametrize(
    ("kind", "args", "expect"),
    [
        ("edsr", {"n_resblocks": 1, "n_feats": 8}, "has no EDSR architecture"),
        ("han", {**RCAN, "n_resgroups": 1}, "has no HAN architecture"),
        ("nlsn", {"n_resblocks": 1, "n_feats": 8}, "has no NLSN architecture"),
        ("compact", {"n_feats": 8, "n_convs": 1, "act_type": "relu"}, "it always builds PReLU"),
        ("swinir", {"depths": (2,), "num_heads": (2,), "embed_dim": 16, "img_range": 255.0}, "img_range"),
        ("swinir", {"depths": (2,), "num_heads": (2,), "embed_dim": 16, "num_feat": 32}, "num_feat 32"),
        ("rrdbnet", {"num_feat": 8, "num_block": 1, "num_grow_ch": 16}, "num_grow_ch 16"),
    ],
)
def test_what_spandrel_cannot_load_is_a_usage_error(
    tmp_path: Path, kind: str, args: dict[str, Any], expect: str
) -> None:
    with pytest.raises(UsageError, match=expect) as info:
        export_spandrel(create_model(kind, scale=2, **args), tmp_path / "net.safetensors")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_rrdbnet_x3_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="x3 RRDBNet"):
        export_spandrel(create_model("rrdbnet", scale=3, num_feat=8, num_block=1), tmp_path / "n.pth")


def test_cli_refuses_overwrite_bad_suffix_and_edsr(tmp_path: Path) -> None:
    out = tmp_path / "x2.pth"
    args = ["convert", "default-x2", str(out), "--layout", "spandrel"]
    assert runner.invoke(app, args).exit_code == 0
    before = out.read_bytes()
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert out.read_bytes() == before  # deterministic
    result = runner.invoke(app, ["convert", "default-x2", str(tmp_path / "x2"), "--layout", "spandrel"])
    assert result.exit_code == 2 and ".safetensors or .pth" in result.output
    result = runner.invoke(app, ["convert", "default-x2", str(tmp_path / "o"), "--layout", "onnx"])
    assert result.exit_code == 2 and "pclup or spandrel" in result.output
    edsr = save_pretrained(create_model("edsr", scale=2, n_resblocks=1, n_feats=8), tmp_path / "edsr")
    result = runner.invoke(app, ["convert", str(edsr), str(tmp_path / "e.pth"), "--layout", "spandrel"])
    assert result.exit_code == 2 and "no EDSR architecture" in result.output
    assert not (tmp_path / "e.pth").exists()


def test_half_stores_float16_that_spandrel_loads(spandrel: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "x4.safetensors"
    result = runner.invoke(app, ["convert", "default-x4", str(out), "--layout", "spandrel", "--half"])
    assert result.exit_code == 0, result.output
    assert {v.dtype for v in read_state_dict(out).values()} == {torch.float16}
    assert _max_diff(spandrel, load_model("default-x4").model, out) <= 1e-2  # float16 weights
