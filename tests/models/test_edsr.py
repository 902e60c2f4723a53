"""EDSR: equality with super-image's EdsrModel, the official layout, parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import _peers
from pclup.models import count_parameters, create_model
from pclup.models.edsr import EDSR, EDSRConfig, detect, infer_config
from pclup.weights import canonicalize, model_from_state_dict, super_image_overrides

SMALL = {"n_resblocks": 3, "n_feats": 16}


@pytest.mark.parametrize("scale", [2, 4])
def test_equals_super_image(scale: int, tmp_path: Path) -> None:
    si = _peers.import_super_image()
    torch.manual_seed(scale)
    peer = si.EdsrModel(si.EdsrConfig(scale=scale, res_scale=1, **SMALL)).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    # super-image saves through nn.DataParallel: every key carries 'module.'
    path = tmp_path / f"pytorch_model_{scale}x.pt"
    torch.save({f"module.{k}": v for k, v in peer.state_dict().items()}, path)
    state = canonicalize(torch.load(path, weights_only=True))
    ours = model_from_state_dict(state, str(path), super_image_overrides({"res_scale": 1}, "edsr", "t"))
    assert ours.config == EDSRConfig(scale=scale, rgb_range=1.0, mean_shift=False, **SMALL)
    x = torch.rand(1, 3, 17, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (peer(x) - ours(x)).abs().max().item()
    assert diff <= 1e-5


def test_official_edsr_pytorch_convention() -> None:
    """EDSR-PyTorch computes on [0, 255] and subtracts the DIV2K mean; our default config does the same."""
    torch.manual_seed(0)
    model = EDSR(EDSRConfig(scale=2, **SMALL)).eval()
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        manual = model.add_mean(model.tail(model.body(model.head(model.sub_mean(x * 255))) + model.head(model.sub_mean(x * 255)))) / 255
        assert torch.allclose(model(x), manual, atol=1e-6)
    assert model.sub_mean.bias[0].item() == pytest.approx(-0.4488 * 255)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_detect_and_infer(scale: int) -> None:
    with torch.device("meta"):
        state = create_model("edsr-l", scale=scale).state_dict()
    assert detect(state)
    config = infer_config(state)
    assert (config.scale, config.n_resblocks, config.n_feats, config.res_scale) == (scale, 32, 256, 0.1)


@pytest.mark.parametrize(("scale", "baseline"), [(2, 1_370e3), (3, 1_555e3), (4, 1_518e3)])
def test_parameter_counts_match_the_paper(scale: int, baseline: float) -> None:
    # EDSR paper, Table 1: baseline 1.5M, EDSR 43M (x4). The per-scale baseline counts (1,370K / 1,555K /
    # 1,518K) are those the lightweight-SR papers tabulate for EDSR-baseline (e.g. IMDN, Hui et al. 2019).
    with torch.device("meta"):
        small = count_parameters(create_model("edsr-s", scale=scale))
        large = count_parameters(create_model("edsr-l", scale=4))
    assert abs(small - baseline) / baseline < 0.01
    assert abs(large - 43e6) / 43e6 < 0.01  # 43,089,947
