"""Haar high bands: the conventions of pytorch_wavelets' DWTForward(J=1, wave="haar", mode="reflect")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pclup.contrastive import high_bands


def _bands(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LH, HL, HH of ``high_bands`` (band-major channels)."""
    out = high_bands(x)
    c = x.shape[1]
    return out[:, :c], out[:, c : 2 * c], out[:, 2 * c :]


def _slicing_reference(x: torch.Tensor) -> torch.Tensor:
    """The module docstring's formulas on the four pixels of each 2x2 block (even sizes)."""
    a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat(((a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2), 1)


def test_two_by_two_block_by_hand() -> None:
    # a b / c d = 1 2 / 3 5 ; values from pytorch_wavelets 1.3.0: LL 5.5, yh (-2.5, -1.5, 0.5)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    assert high_bands(x).flatten().tolist() == [-2.5, -1.5, 0.5]


def test_energy_is_conserved() -> None:
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ll = F.avg_pool2d(x, 2) * 2  # (a + b + c + d) / 2
    energy = float(ll.square().sum()) + float(high_bands(x).square().sum())
    assert energy == pytest.approx(float(x.square().sum()), rel=1e-12)


def test_constant_image_has_no_high_bands() -> None:
    x = torch.full((1, 3, 6, 8), 0.7)
    assert high_bands(x).abs().max() < 1e-6


def test_band_orientation() -> None:
    rows = torch.arange(8.0).view(1, 1, 8, 1).expand(1, 1, 8, 8)  # varies along height only
    lh, hl, hh = _bands(rows)
    assert lh.abs().min() > 0 and hl.abs().max() == 0 and hh.abs().max() == 0
    lh, hl, hh = _bands(rows.transpose(-1, -2))  # varies along width only
    assert hl.abs().min() > 0 and lh.abs().max() == 0 and hh.abs().max() == 0


@pytest.mark.parametrize("size", [(8, 8), (7, 10), (5, 3)])
def test_high_bands_layout(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    out = high_bands(x)  # a strided convolution, checked against the slicing formulas
    assert out.shape == (2, 9, (size[0] + 1) // 2, (size[1] + 1) // 2)
    padded = F.pad(x, (0, size[1] % 2, 0, size[0] % 2), mode="reflect")
    torch.testing.assert_close(out, _slicing_reference(padded))
    torch.testing.assert_close(high_bands(x.contiguous(memory_format=torch.channels_last)), out)


def test_odd_sizes_pad_by_reflection() -> None:
    x = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    padded = torch.cat((x, x[..., -2:-1, :]), dim=-2)  # row H-2 repeated below
    padded = torch.cat((padded, padded[..., -2:-1]), dim=-1)  # column W-2 repeated on the right
    bands = high_bands(x)
    assert bands.shape == (1, 6, 3, 4)
    torch.testing.assert_close(bands, high_bands(padded))
