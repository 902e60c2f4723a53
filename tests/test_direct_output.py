"""The common upscale path writes the model's output straight into the integer image, band by band: the
result is the same, bit for bit, as going through the whole float32 output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_model
from pclup import images
from pclup.inference.tiling import run_tiled
from pclup.inference.upscale import Upscaler, upscale_image
from pclup.weights import LoadedModel


def _photo(h: int, w: int, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(1)
    top = 65535 if dtype == np.uint16 else 255
    return rng.integers(0, top + 1, (h, w, 3)).astype(dtype)


@pytest.mark.parametrize("tile", [0, 16, 24])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_direct_path_equals_the_float_path(tile: int, dtype: type) -> None:
    torch.manual_seed(0)
    up = Upscaler(LoadedModel(tiny_model("compact", 2).eval(), "tiny", "test"), device="cpu", precision="fp32",
                  tile=tile, tile_overlap=6)
    pixels = _photo(45, 61, dtype)
    direct = upscale_image(up, images.Image(pixels=pixels, format="PNG")).pixels
    y = up.upscale_tensor(images.to_tensor(pixels), None)
    assert np.array_equal(direct, images.from_tensor(y, dtype, channels=3))
    assert direct.shape == (90, 122, 3) and direct.dtype == dtype


def test_bands_reach_the_sink_in_order_and_cover_the_output_once() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    x = torch.rand(1, 3, 70, 53)
    whole = run_tiled(lambda t: conv(t).detach(), x, 2, 17, 5, torch.device("cpu"))
    assert whole is not None
    bands: list[tuple[int, torch.Tensor]] = []
    run_tiled(lambda t: conv(t).detach(), x, 2, 17, 5, torch.device("cpu"),
              sink=lambda top, rows: bands.append((top, rows.clone())))
    assert len(bands) > 2
    assert [top for top, _ in bands] == sorted(top for top, _ in bands)
    assert torch.equal(torch.cat([rows for _, rows in bands], 2), whole)
    assert bands[0][0] == 0 and sum(rows.shape[2] for _, rows in bands) == 140


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_quantize_into_equals_from_tensor(layout: torch.memory_format, dtype: type) -> None:
    """Bit for bit, NaN, infinities and values outside [0, 1] included, in either memory layout."""
    t = torch.rand(1, 3, 17, 23, generator=torch.Generator().manual_seed(2)) * 1.4 - 0.2
    t[0, 0, 0, :4] = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.5 / 255])
    t = t.contiguous(memory_format=layout)
    expected = images.from_tensor(t.clone(), dtype)
    out = np.full((17, 23, 3), 7, dtype)
    images.quantize_into(t, out)
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="shape"):
        images.quantize_into(torch.rand(1, 3, 4, 4), np.empty((4, 5, 3), np.uint8))


def test_progress_counts_every_tile_of_one_large_image() -> None:
    """Per-tile progress (what the progress bar's percentage and ETA come from): one call per tile, in
    order, ending at the total."""
    torch.manual_seed(0)
    up = Upscaler(LoadedModel(tiny_model("compact", 2).eval(), "tiny", "test"), device="cpu", precision="fp32",
                  tile=16, tile_overlap=4)
    seen: list[tuple[int, int]] = []
    upscale_image(up, images.Image(pixels=_photo(45, 61, np.uint8), format="PNG"),
                  progress=lambda done, total: seen.append((done, total)))
    total = seen[0][1]
    assert total > 4
    assert seen == [(i, total) for i in range(1, total + 1)]
