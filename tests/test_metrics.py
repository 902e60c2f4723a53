"""Tests of pclup.metrics: MATLAB-convention Y channel, PSNR, SSIM and the paper protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pclup.imresize import mod_crop
from pclup.metrics import ROUND_Y_DEFAULT, evaluate_pair, psnr, rgb_to_y, ssim, ssim_torch


def _images(seed: int = 0, shape=(40, 48, 3)) -> tuple[np.ndarray, np.ndarray]:
    """A structured uint8 image and a noisy, slightly shifted copy of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] + np.array([0, 20, -20])
    hr = np.clip(base + rng.normal(0, 10, shape), 0, 255).round().astype(np.uint8)
    sr = np.clip(hr.astype(np.float64) + rng.normal(2, 12, shape), 0, 255).round().astype(np.uint8)
    return sr, hr


# --------------------------------------------------------------------------------------------
# Y channel


def test_rgb_to_y_known_colours():
    colours = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = rgb_to_y(colours)
    # 16 + (65.481 R + 128.553 G + 24.966 B) / 255; the coefficients sum to 219, so white is 235.
    expected = [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]
    np.testing.assert_allclose(y[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rgb_to_y(colours, round_y=True)[0], [235, 16, 81, 145, 41])


def test_rgb_to_y_float_input_and_grey():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_y(img), rgb_to_y(img.astype(np.float32)))
    grey = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(grey), 16 + 219 * grey.astype(np.float64) / 255, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rgb_to_y(grey), rgb_to_y(np.repeat(grey[..., None], 3, axis=2)))
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((4, 4, 2), dtype=np.uint8))


def test_round_y_rounds_half_away():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    y = rgb_to_y(img)
    rounded = rgb_to_y(img, round_y=True)
    np.testing.assert_array_equal(rounded, np.floor(y + 0.5))  # Y > 0: half away = half up
    assert np.all(rounded == np.round(rounded))


# --------------------------------------------------------------------------------------------
# mod_crop


def test_mod_crop():
    img = np.zeros((13, 10, 3), dtype=np.uint8)
    assert mod_crop(img, 4).shape == (12, 8, 3)
    assert mod_crop(img, 3).shape == (12, 9, 3)
    assert mod_crop(img, 1).shape == (13, 10, 3)
    img2 = np.arange(13 * 10).reshape(13, 10)
    np.testing.assert_array_equal(mod_crop(img2, 4), img2[:12, :8])  # keeps the top-left corner
    with pytest.raises(ValueError):
        mod_crop(img, 0)


# --------------------------------------------------------------------------------------------
# PSNR


def test_psnr_by_hand():
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr + 5
    # All channels: MSE = 25, PSNR = 10 log10(255^2 / 25) = 34.1514 dB.
    assert psnr(sr, hr, border=0, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    # Y: a shift of 5 in R, G and B shifts Y by 5 * 219 / 255.
    assert psnr(sr, hr, border=0) == pytest.approx(20 * math.log10(255 / (5 * 219 / 255)), abs=1e-10)
    # round_y: Y(100) = 101.882 -> 102 and Y(105) = 106.176 -> 106: a difference of exactly 4.
    assert psnr(sr, hr, border=0, round_y=True) == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-12)
    # data_range
    expected = 10 * math.log10(1 / 25)
    assert psnr(sr, hr, 0, y_channel=False, data_range=1.0) == pytest.approx(expected, abs=1e-12)


def test_psnr_border_crop():
    hr = np.full((20, 24, 3), 50, dtype=np.uint8)
    sr = hr.copy()
    sr[:3] = 0
    sr[:, -3:] = 255
    assert psnr(sr, hr, border=3) == math.inf
    assert psnr(sr, hr, border=2) < 20
    # a single wrong pixel inside the border-cropped area: MSE = d^2 / n
    sr2 = hr.copy()
    sr2[10, 10] = 60
    n = (20 - 8) * (24 - 8)
    d = 10 * 219 / 255
    assert psnr(sr2, hr, border=4) == pytest.approx(10 * math.log10(255**2 * n / d**2), abs=1e-9)


def test_identical_images():
    _, hr = _images()
    assert psnr(hr, hr, 4) == math.inf
    assert psnr(hr, hr, 4, y_channel=False) == math.inf
    assert ssim(hr, hr, 4) == pytest.approx(1.0, abs=1e-12)
    assert ssim(hr, hr, 4, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_shape_mismatch_and_bad_border():
    sr, hr = _images()
    with pytest.raises(ValueError):
        psnr(sr[:-1], hr, 4)
    with pytest.raises(ValueError):
        psnr(sr, hr, 20)
    with pytest.raises(ValueError):
        ssim(sr, hr, 15)  # 10 x 18 left: smaller than the 11 x 11 window
    with pytest.raises(TypeError):
        psnr(sr.astype(np.int32), hr, 4)


# --------------------------------------------------------------------------------------------
# SSIM


def test_ssim_of_constant_images_by_hand():
    # Constant images: every window has sigma = 0, so SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    a = np.full((30, 30), 100.0)
    b = np.full((30, 30), 120.0)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert ssim(a, b, 0, y_channel=False) == pytest.approx(expected, abs=1e-12)


def test_ssim_map_is_valid_filtered():
    sr, hr = _images()
    y1 = torch.from_numpy(rgb_to_y(sr))
    y2 = torch.from_numpy(rgb_to_y(hr))
    assert ssim_torch(y1, y2, return_map=True).shape == (40 - 10, 48 - 10)


@pytest.mark.parametrize("round_y", [False, True])
@pytest.mark.parametrize("border", [0, 4])
def test_ssim_matches_skimage(round_y, border):
    metrics = pytest.importorskip("skimage.metrics")
    sr, hr = _images(3)
    ya = rgb_to_y(sr, round_y=round_y)
    yb = rgb_to_y(hr, round_y=round_y)
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    expected = metrics.structural_similarity(
        ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(sr, hr, border, round_y=round_y) == pytest.approx(expected, abs=1e-6)
    assert float(ssim_torch(torch.from_numpy(ya.copy()), torch.from_numpy(yb.copy()))) == pytest.approx(
        expected, abs=1e-6
    )


def test_ssim_rgb_matches_skimage_channel_mean():
    metrics = pytest.importorskip("skimage.metrics")
    sr, hr = _images(4)
    expected = metrics.structural_similarity(
        sr.astype(np.float64),
        hr.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    assert ssim(sr, hr, 0, y_channel=False) == pytest.approx(expected, abs=1e-6)


def test_ssim_torch_batched_and_float32():
    sr, hr = _images(5)
    a = torch.from_numpy(np.stack([rgb_to_y(sr), rgb_to_y(hr)]))
    b = torch.from_numpy(np.stack([rgb_to_y(hr), rgb_to_y(hr)]))
    batch = ssim_torch(a, b)
    assert batch.shape == (2,)
    assert float(batch[0]) == pytest.approx(ssim(sr, hr, 0), abs=1e-12)
    assert float(batch[1]) == pytest.approx(1.0, abs=1e-12)
    assert float(ssim_torch(a.float(), b.float())[0]) == pytest.approx(float(batch[0]), abs=1e-4)


# --------------------------------------------------------------------------------------------
# The paper protocol


@pytest.mark.parametrize("round_y", [False, True])
def test_evaluate_pair(round_y):
    sr, hr = _images(6, shape=(42, 51, 3))  # not multiples of 4
    hr_c = mod_crop(hr, 4)
    sr_c = sr[:40, :48]
    p, s = evaluate_pair(sr_c, hr, 4, round_y=round_y)
    assert p == pytest.approx(psnr(sr_c, hr_c, 4, round_y=round_y), abs=1e-12)
    assert s == pytest.approx(ssim(sr_c, hr_c, 4, round_y=round_y), abs=1e-12)
    assert evaluate_pair(sr_c, hr_c, 4, round_y=round_y) == (p, s)  # an already cropped HR is fine
    with pytest.raises(ValueError):
        evaluate_pair(sr, hr, 4)


def test_evaluate_pair_default_and_conventions_differ():
    sr, hr = _images(7)
    assert evaluate_pair(sr, hr, 2) == evaluate_pair(sr, hr, 2, round_y=ROUND_Y_DEFAULT)
    assert evaluate_pair(sr, hr, 2, round_y=True) != evaluate_pair(sr, hr, 2, round_y=False)


def test_evaluate_pair_grey_is_repeated_to_rgb():
    sr, hr = _images(8)
    g_sr, g_hr = sr[..., 1], hr[..., 1]
    rgb = evaluate_pair(np.repeat(g_sr[..., None], 3, 2), np.repeat(g_hr[..., None], 3, 2), 4)
    assert evaluate_pair(g_sr, g_hr, 4) == rgb
