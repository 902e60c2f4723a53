"""RCAN: equality with spandrel's RCAN on its own state dicts, parameter count, checkpoint detection."""

from __future__ import annotations


import pytest
import torch

import _peers
from pclup.models import count_parameters, edsr, han, rcan

SMALL = {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}


def _randomize(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights everywhere except the fixed mean shift; returns the state dict ("the checkpoint")."""
    gen = torch.Generator().manual_seed(seed)
    sd = {
        k: v if k.startswith(("sub_mean.", "add_mean.")) else torch.randn(v.shape, generator=gen) * 0.1
        for k, v in module.state_dict().items()
    }
    module.load_state_dict(sd, strict=True)
    return sd


def _spandrel_rcan() -> type:
    return _peers.import_spandrel_arch("RCAN").RCAN


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("norm", [True, False])
def test_matches_spandrel(scale: int, norm: bool) -> None:
    peer = _spandrel_rcan()(scale=scale, norm=norm, **SMALL).eval()
    sd = _randomize(peer, seed=scale)
    assert rcan.detect(sd)
    config = rcan.infer_config(sd)
    assert config == rcan.RCANConfig(
        scale=scale, **SMALL, mean_shift=norm, rgb_range=255.0 if norm else 1.0
    )
    ours = rcan.RCAN(config).eval()
    ours.load_state_dict(sd, strict=True)
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = peer(x.clone())  # spandrel scales its input in place; it takes [0, 1] like us
        got = ours(x)
    assert got.shape == (2, 3, 11 * scale, 9 * scale)
    assert (got - expected).abs().max().item() <= 1e-5


def test_paper_parameter_count() -> None:
    with torch.device("meta"):  # shapes only: no weight initialisation, no memory
        n = count_parameters(rcan.RCAN(rcan.RCANConfig(scale=4)))
    n_peer = sum(p.numel() for p in _spandrel_rcan()(scale=4).parameters())  # its MeanShift: CPU only
    assert n == 15_592_379  # the commonly reported x4 count (mean-shift convs included)
    assert abs(n - 15.6e6) / 15.6e6 < 0.01
    assert n == n_peer


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("mean_shift", [True, False])
def test_detect_infer_round_trip(scale: int, mean_shift: bool) -> None:
    rgb_range = 255.0 if mean_shift else 1.0
    config = rcan.RCANConfig(scale=scale, **SMALL, mean_shift=mean_shift, rgb_range=rgb_range)
    sd = rcan.RCAN(config).state_dict()
    assert ("sub_mean.weight" in sd) == mean_shift
    assert rcan.detect(sd)
    assert rcan.infer_config(sd) == config
    assert not han.detect(sd)
    assert not edsr.detect(sd)


def test_not_detected_on_other_layouts() -> None:
    han_sd = han.HAN(han.HANConfig(scale=2, **SMALL)).state_dict()
    assert not rcan.detect(han_sd)
    edsr_sd = edsr.EDSR(edsr.EDSRConfig(scale=2, n_resblocks=2, n_feats=16)).state_dict()
    assert not rcan.detect(edsr_sd)


def test_super_image_layouts() -> None:
    si = _peers.import_super_image()
    plain = si.RcanModel(si.RcanConfig(scale=2, **SMALL, bam=False)).state_dict()
    assert rcan.detect(plain)
    config = rcan.infer_config(plain)
    assert config == rcan.RCANConfig(scale=2, **SMALL)
    rcan.RCAN(config).load_state_dict(plain, strict=True)
    # rcan-bam replaces channel attention with a different module: not this layout
    assert not rcan.detect(si.RcanModel(si.RcanConfig(scale=2, **SMALL, bam=True)).state_dict())


def test_super_image_input_convention() -> None:
    """super-image feeds [0, 1] straight into sub_mean: rgb_range=1 with the stored mean-shift weights."""
    si = _peers.import_super_image()
    peer = si.RcanModel(si.RcanConfig(scale=2, **SMALL, bam=False)).eval()  # rgb_range 255 in sub_mean
    sd = _randomize(peer, seed=3)
    ours = rcan.RCAN(rcan.RCANConfig(scale=2, **SMALL, rgb_range=1.0)).eval()
    ours.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max().item() <= 1e-5


def test_variant_and_spec() -> None:
    (variant,) = rcan.VARIANTS
    config = rcan.SPEC.make_config(scale=4, **dict(variant.args))
    assert config == rcan.RCANConfig(scale=4)
    assert rcan.SPEC.name == "rcan" and not rcan.SPEC.supports_fp16
