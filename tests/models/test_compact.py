"""Compact: shapes, cost budget against EDSR-S, key layout detection."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from pclup.models import compact, edsr, nlsn
from pclup.models.compact import Compact, CompactConfig
from pclup.models.edsr import EDSR, EDSRConfig

REPO = Path(__file__).resolve().parents[2]


def _flops() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pclup_bench_flops", REPO / "benchmarks" / "flops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (7, 9), (16, 13)])
def test_output_shape(scale: int, size: tuple[int, int]) -> None:
    model = Compact(CompactConfig(scale=scale)).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert y.dtype == torch.float32


def test_zero_residual_is_nearest_upscale() -> None:
    model = Compact(CompactConfig(scale=3)).eval()
    torch.nn.init.zeros_(model.exit.weight)
    torch.nn.init.zeros_(model.exit.bias)
    x = torch.rand(1, 3, 5, 4)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), x.repeat_interleave(3, 2).repeat_interleave(3, 3))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_at_most_a_tenth_of_edsr_s(scale: int) -> None:
    flops = _flops()
    ours = flops.macs_per_pixel(Compact(CompactConfig(scale=scale)), size=16)
    ref = flops.macs_per_pixel(EDSR(EDSRConfig(scale=scale)), size=16)
    assert ours <= ref / 10, (ours, ref)
    if scale == 4:
        assert ref == pytest.approx(1.98e6, rel=0.01)  # EDSR-S x4: ~1.98M MACs per LR pixel
        assert ours == 139_968  # the candidate 'plain64x3' measured in docs/compact-architecture.md


def test_parameters() -> None:
    assert sum(p.numel() for p in Compact(CompactConfig(scale=4)).parameters()) == 140_528


@pytest.mark.parametrize(
    "config",
    [CompactConfig(), CompactConfig(scale=2, n_feats=16, n_convs=3, n_colors=1), CompactConfig(3, 24, 0)],
)
def test_detect_infer_config_round_trip(config: CompactConfig) -> None:
    sd = Compact(config).state_dict()
    assert compact.detect(sd)
    assert compact.infer_config(sd) == config
    model = Compact(compact.infer_config(sd))
    model.load_state_dict(sd, strict=True)


def test_no_collision_with_other_layouts() -> None:
    sd = Compact(CompactConfig()).state_dict()
    assert not edsr.detect(sd) and not nlsn.detect(sd)
    with torch.device("meta"):
        edsr_sd = EDSR(EDSRConfig()).state_dict()
    assert not compact.detect(edsr_sd)
    # Real-ESRGAN SRVGGNetCompact layout: body.0 conv, body.1 PReLU, ..., no 'entry'/'exit'
    srvgg = {
        "body.0.weight": torch.zeros(64, 3, 3, 3),
        "body.1.weight": torch.zeros(64),
        "body.2.weight": torch.zeros(48, 64, 3, 3),
    }
    assert not compact.detect(srvgg)


def test_variant_and_spec() -> None:
    (variant,) = compact.VARIANTS
    assert variant.name == "compact" and variant.arch == compact.SPEC.name == "compact"
    config = compact.SPEC.make_config(scale=4, **dict(variant.args))
    assert isinstance(compact.SPEC.build(config), Compact)
