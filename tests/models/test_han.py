"""HAN: equality with super-image's HanModel (the official HAN layout), parameter count, detection."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

import _peers
from pclup.models import count_parameters, edsr, han, rcan

# super-image (like the authors' code) hard-codes last_conv to 11 * n_feats inputs: 10 groups are required
SMALL = {"n_resgroups": 10, "n_resblocks": 1, "n_feats": 8, "reduction": 4}


@pytest.fixture(scope="module")
def si() -> ModuleType:
    return _peers.import_super_image()


def _randomize(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights everywhere except the fixed mean shift (gammas too, so both attentions act)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {
        k: v if k.startswith(("sub_mean.", "add_mean.")) else torch.randn(v.shape, generator=gen) * 0.1
        for k, v in module.state_dict().items()
    }
    module.load_state_dict(sd, strict=True)
    return sd


def _input(seed: int = 7) -> torch.Tensor:
    return torch.rand(2, 3, 10, 9, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale", [2, 4])
def test_matches_official_convention(si: ModuleType, scale: int) -> None:
    """The authors' convention: the network computes on [0, 255] (super-image model fed x * 255)."""
    peer = si.HanModel(si.HanConfig(scale=scale, rgb_range=255, **SMALL)).eval()
    sd = _randomize(peer, seed=scale)
    assert han.detect(sd)
    config = han.infer_config(sd)
    assert config == han.HANConfig(scale=scale, **SMALL)
    ours = han.HAN(config).eval()
    ours.load_state_dict(sd, strict=True)
    x = _input()
    with torch.no_grad():
        expected = peer(x * 255) / 255
        got = ours(x)
    assert got.shape == (2, 3, 10 * scale, 9 * scale)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("peer_range", [1, 255])
def test_matches_super_image_convention(si: ModuleType, peer_range: int) -> None:
    """super-image feeds [0, 1] straight into sub_mean: rgb_range=1 here, with the stored mean shift."""
    peer = si.HanModel(si.HanConfig(scale=2, rgb_range=peer_range, **SMALL)).eval()
    sd = _randomize(peer, seed=5)
    assert han.infer_config(sd).rgb_range == peer_range  # read from sub_mean's bias
    ours = han.HAN(han.HANConfig(scale=2, rgb_range=1.0, **SMALL)).eval()
    ours.load_state_dict(sd, strict=True)  # sub_mean/add_mean come from the checkpoint
    x = _input(3)
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max().item() <= 1e-5


def test_attention_modules_match(si: ModuleType) -> None:
    """LAM and CSAM alone, on inputs small enough that the layer softmax is not one-hot."""
    from super_image.models.han.modeling_han import CSAM_Module, LAM_Module

    gen = torch.Generator().manual_seed(11)
    x5 = torch.randn(2, 4, 3, 5, 6, generator=gen) * 0.1
    theirs, ours = LAM_Module(3), han.LayerAttention()
    theirs.gamma.data.fill_(0.7)
    ours.gamma.data.fill_(0.7)
    with torch.no_grad():
        assert (ours(x5) - theirs(x5)).abs().max().item() <= 1e-6
    x4 = torch.randn(2, 3, 5, 6, generator=gen)
    theirs_c, ours_c = CSAM_Module(3), han.ChannelSpatialAttention()
    ours_c.load_state_dict({**theirs_c.state_dict(), "gamma": torch.tensor([0.3])})
    theirs_c.gamma.data.fill_(0.3)
    with torch.no_grad():
        assert (ours_c(x4) - theirs_c(x4)).abs().max().item() <= 1e-6


def test_paper_parameter_count(si: ModuleType) -> None:
    with torch.device("meta"):  # shapes only: no weight initialisation, no memory
        n = count_parameters(han.HAN(han.HANConfig(scale=4)))
        n_rcan = count_parameters(rcan.RCAN(rcan.RCANConfig(scale=4)))
    # super-image's MeanShift cannot be built on the meta device
    n_peer = sum(p.numel() for p in si.HanModel(si.HanConfig(scale=4)).parameters())
    assert n == 16_071_769
    assert abs(n - 16.1e6) / 16.1e6 < 0.01
    assert n == n_peer
    # RCAN plus last_conv (11*64 -> 64), last (128 -> 64), the 3x3x3 CSAM conv and two gammas
    assert n - n_rcan == 405_568 + 73_792 + 28 + 2


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("mean_shift", [True, False])
def test_detect_infer_round_trip(scale: int, mean_shift: bool) -> None:
    config = han.HANConfig(
        scale=scale, n_resgroups=3, n_resblocks=2, n_feats=16, reduction=8,
        mean_shift=mean_shift, rgb_range=255.0 if mean_shift else 1.0,
    )
    model = han.HAN(config)
    sd = model.state_dict()
    assert han.detect(sd)
    assert han.infer_config(sd) == config
    assert not rcan.detect(sd)  # HAN contains every RCAN key
    assert not edsr.detect(sd)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 6, 5)).shape == (1, 3, 6 * scale, 5 * scale)


def test_not_detected_on_rcan(si: ModuleType) -> None:
    config = rcan.RCANConfig(scale=2, n_resgroups=2, n_resblocks=1, n_feats=8, reduction=4)
    assert not han.detect(rcan.RCAN(config).state_dict())


def test_bf16_autocast_runs() -> None:
    model = han.HAN(han.HANConfig(scale=2, n_resgroups=2, n_resblocks=1, n_feats=8, reduction=4)).eval()
    _randomize(model, seed=1)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert torch.isfinite(out).all()


def test_variant_and_spec() -> None:
    (variant,) = han.VARIANTS
    assert han.SPEC.make_config(scale=4, **dict(variant.args)) == han.HANConfig(scale=4)
    assert han.SPEC.name == "han" and not han.SPEC.supports_fp16
