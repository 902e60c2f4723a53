"""Haar DWT: the conventions of pytorch_wavelets' DWTForward(J=1, wave="haar", mode="reflect")."""

from __future__ import annotations

import pytest
import torch

from pclup.contrastive import haar_dwt, haar_idwt, high_bands


def test_two_by_two_block_by_hand() -> None:
    # a b / c d = 1 2 / 3 5 ; values from pytorch_wavelets 1.3.0: LL 5.5, yh (-2.5, -1.5, 0.5)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    ll, lh, hl, hh = haar_dwt(x)
    assert ll.item() == 5.5
    assert (lh.item(), hl.item(), hh.item()) == (-2.5, -1.5, 0.5)
    assert high_bands(x).flatten().tolist() == [-2.5, -1.5, 0.5]


def test_perfect_reconstruction() -> None:
    x = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bands = haar_dwt(x)
    assert all(b.shape == (2, 3, 4, 5) for b in bands)
    torch.testing.assert_close(haar_idwt(*bands), x, rtol=0, atol=1e-12)


def test_energy_is_conserved() -> None:
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    energy = sum(float(b.square().sum()) for b in haar_dwt(x))
    assert energy == pytest.approx(float(x.square().sum()), rel=1e-12)


def test_constant_image_has_no_high_bands() -> None:
    x = torch.full((1, 3, 6, 8), 0.7)
    ll, lh, hl, hh = haar_dwt(x)
    torch.testing.assert_close(ll, torch.full_like(ll, 1.4))
    for band in (lh, hl, hh):
        assert band.abs().max() < 1e-6
    assert high_bands(x).abs().max() < 1e-6


def test_band_orientation() -> None:
    rows = torch.arange(8.0).view(1, 1, 8, 1).expand(1, 1, 8, 8)  # varies along height only
    _, lh, hl, hh = haar_dwt(rows)
    assert lh.abs().min() > 0 and hl.abs().max() == 0 and hh.abs().max() == 0
    _, lh, hl, hh = haar_dwt(rows.transpose(-1, -2))  # varies along width only
    assert hl.abs().min() > 0 and lh.abs().max() == 0 and hh.abs().max() == 0


@pytest.mark.parametrize("size", [(8, 8), (7, 10), (5, 3)])
def test_high_bands_layout(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    _, lh, hl, hh = haar_dwt(x)
    out = high_bands(x)  # a strided convolution, checked against the slicing transform
    assert out.shape == (2, 9, (size[0] + 1) // 2, (size[1] + 1) // 2)
    torch.testing.assert_close(out, torch.cat((lh, hl, hh), 1))
    torch.testing.assert_close(high_bands(x.contiguous(memory_format=torch.channels_last)), out)


def test_odd_sizes_pad_by_reflection() -> None:
    x = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    padded = torch.cat((x, x[..., -2:-1, :]), dim=-2)  # row H-2 repeated below
    padded = torch.cat((padded, padded[..., -2:-1]), dim=-1)  # column W-2 repeated on the right
    bands = haar_dwt(x)
    assert bands[0].shape == (1, 2, 3, 4)
    for b, ref in zip(bands, haar_dwt(padded), strict=True):
        torch.testing.assert_close(b, ref)
    torch.testing.assert_close(haar_idwt(*bands)[..., :5, :7], x)
