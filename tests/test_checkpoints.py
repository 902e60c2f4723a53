from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_model

from pclup.errors import IncompatibleCheckpointError, UnknownModelError
from pclup.models import get_arch
from pclup.weights import load_model
from pclup.weights.foreign import canonicalize, detect_arch, load_foreign


def test_canonicalize_prefers_ema_and_strips_prefixes() -> None:
    a, b = torch.zeros(2), torch.ones(2)
    assert torch.equal(canonicalize({"params": {"x": a}, "params_ema": {"x": b}})["x"], b)
    assert set(canonicalize({"state_dict": {"module.x": a, "module.y": a}, "epoch": 3})) == {"x", "y"}
    assert set(canonicalize({"_orig_mod.module.x": a})) == {"x"}
    assert set(canonicalize({"only": {"x": a}})) == {"x"}
    with pytest.raises(IncompatibleCheckpointError, match="no tensors"):
        canonicalize({"epoch": 3})


def test_unknown_architecture_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"params": {"encoder.conv.weight": torch.zeros(4, 3, 3, 3)}}, path)
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_foreign(path)
    message = str(e.value)
    assert "\n" not in message and "mystery.pth" in message and "unknown architecture" in message


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_edsr_layout_is_detected(scale: int, tmp_path: Path) -> None:
    model = tiny_model("edsr", scale).eval()
    path = tmp_path / f"edsr_x{scale}.pt"
    torch.save(model.state_dict(), path)  # EDSR-PyTorch saves the bare state dict
    loaded = load_model(str(path))
    assert loaded.arch.name == "edsr" and loaded.scale == scale
    assert loaded.model.config == model.config
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_basicsr_params_ema_file_and_bare_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny_model("edsr", 4).eval()
    torch.save({"params": {k: torch.zeros_like(v) for k, v in model.state_dict().items()},
                "params_ema": model.state_dict()}, tmp_path / "net_g_1000.pth")
    save_file(model.state_dict(), str(tmp_path / "bare.safetensors"))
    x = torch.rand(1, 3, 6, 6)
    for name in ("net_g_1000.pth", "bare.safetensors"):
        loaded = load_model(str(tmp_path / name)).model
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x)), name


def test_super_image_folder(tmp_path: Path) -> None:
    model = tiny_model("edsr", 2).eval()
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "EDSR", "n_resblocks": 2, "n_feats": 8, "res_scale": 1, "rgb_range": 255, "data_parallel": True}
    ))
    for s in (2, 4):
        m = tiny_model("edsr", s)
        torch.save({f"module.{k}": v for k, v in m.state_dict().items()}, tmp_path / f"pytorch_model_{s}x.pt")
    assert load_model(str(tmp_path)).scale == 4
    loaded = load_model(str(tmp_path), scale=2)
    assert loaded.scale == 2
    assert loaded.model.config.mean_shift is False and loaded.model.config.rgb_range == 1.0
    with pytest.raises(Exception, match="no x3 weights"):
        load_model(str(tmp_path), scale=3)
    del model


def test_detection_order_is_unambiguous() -> None:
    """Every architecture's own layout is detected as itself and as nothing registered before it."""
    from pclup.models import list_archs

    for name in (spec.name for spec in list_archs()):  # an architecture without a tiny config fails here
        state = tiny_model(name, 2).state_dict()
        assert detect_arch(state).name == name


def test_unknown_model_name_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError) as e:
        load_model("edsr-s-x5")
    assert "did you mean: edsr-s-x2" in str(e.value) or "did you mean: edsr-s-x" in str(e.value)
    assert get_arch("edsr").name == "edsr"
