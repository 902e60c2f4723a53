"""Tiled inference equals untiled inference; the tile plan and blend weights are a partition of unity."""

from __future__ import annotations

import pytest
import torch

from pclup.inference.tiling import Span, axis_weights, plan_axis, run_tiled
from pclup.inference.upscale import Upscaler
from pclup.weights import LoadedModel
from pclup.models import create_model


@pytest.mark.parametrize("length", [1, 7, 13, 64, 65, 100, 257])
@pytest.mark.parametrize(("tile", "overlap"), [(8, 4), (16, 2), (33, 8), (64, 16), (64, 0)])
@pytest.mark.parametrize("scale", [1, 3])
def test_weights_sum_to_one_everywhere(length: int, tile: int, overlap: int, scale: int) -> None:
    spans = plan_axis(length, tile, overlap)
    assert spans[0].start == 0 and spans[-1].stop == length
    assert all(b.start > a.start and b.start <= a.stop for a, b in zip(spans, spans[1:]))
    total = torch.zeros(length * scale)
    for i, s in enumerate(spans):
        total[s.start * scale : s.stop * scale] += axis_weights(spans, i, scale)
    assert torch.allclose(total, torch.ones_like(total))


def test_plan_overlaps_at_least_the_request() -> None:
    spans = plan_axis(300, 64, 16)
    assert all(a.stop - b.start >= 16 for a, b in zip(spans, spans[1:]))
    assert plan_axis(50, 64, 16) == [Span(0, 50)]


def test_run_tiled_is_exact_for_a_pointwise_network() -> None:
    """With no spatial context, tiles must reproduce the untiled result to float precision."""
    x = torch.rand(1, 3, 37, 53)
    forward = lambda t: torch.nn.functional.interpolate(t * 2 - 0.5, scale_factor=2, mode="nearest")  # noqa: E731
    whole = forward(x)
    tiled = run_tiled(forward, x, 2, 16, 6, torch.device("cpu"))
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_edsr_s_tiled_equals_untiled() -> None:
    """Acceptance: EDSR-S on a 300x200 image, 64-pixel tiles vs untiled, max |diff| <= 1/255."""
    torch.manual_seed(0)
    loaded = LoadedModel(create_model("edsr-s", scale=4).eval(), "edsr-s", "random weights")
    x = torch.rand(1, 3, 200, 300, generator=torch.Generator().manual_seed(0))
    whole = Upscaler(loaded, device="cpu", precision="fp32", tile=0).upscale_tensor(x)
    tiled = Upscaler(loaded, device="cpu", precision="fp32", tile=64).upscale_tensor(x)
    assert whole.shape == tiled.shape == (1, 3, 800, 1200)
    assert (whole - tiled).abs().max().item() <= 1 / 255


def test_sizes_smaller_than_a_tile_and_odd_sizes() -> None:
    loaded = LoadedModel(create_model("edsr", scale=2, n_resblocks=1, n_feats=8).eval(), "tiny", "random")
    up = Upscaler(loaded, device="cpu", precision="fp32", tile=16, tile_overlap=4)
    for h, w in [(1, 1), (5, 40), (17, 3), (33, 33)]:
        assert up.upscale_tensor(torch.rand(1, 3, h, w)).shape == (1, 3, 2 * h, 2 * w)


@pytest.mark.parametrize(("scale", "size"), [(1, (10, 14)), (1.5, (15, 21)), (3, (30, 42)), (4, (40, 56)), (5, (50, 70))])
def test_any_output_scale(scale: float, size: tuple[int, int]) -> None:
    loaded = LoadedModel(create_model("edsr", scale=2, n_resblocks=1, n_feats=8).eval(), "tiny", "random")
    y = Upscaler(loaded, device="cpu", precision="fp32", tile=0).upscale_tensor(torch.rand(1, 3, 10, 14), scale)
    assert y.shape[-2:] == size and 0 <= y.min() and y.max() <= 1


def test_tta_of_an_equivariant_network_is_the_plain_result() -> None:
    class Nearest(torch.nn.Module):
        config = create_model("edsr", scale=2, n_resblocks=1, n_feats=8).config

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    loaded = LoadedModel(Nearest(), "nearest", "test")
    x = torch.rand(1, 3, 21, 30)
    plain = Upscaler(loaded, device="cpu", precision="fp32", tile=0).upscale_tensor(x)
    tta = Upscaler(loaded, device="cpu", precision="fp32", tile=16, tta=True).upscale_tensor(x)
    assert torch.allclose(plain, tta, atol=1e-6)


def test_out_of_memory_halves_the_tile() -> None:
    class Fussy(torch.nn.Module):
        config = create_model("edsr", scale=2, n_resblocks=1, n_feats=8).config

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            if t.shape[-1] > 20:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    up = Upscaler(LoadedModel(Fussy(), "fussy", "test"), device="cpu", precision="fp32", tile=64)
    y = up.upscale_tensor(torch.rand(1, 3, 40, 40))
    assert y.shape == (1, 3, 80, 80) and up.tile == 16
