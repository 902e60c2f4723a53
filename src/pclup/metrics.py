"""PSNR and SSIM as the super-resolution papers compute them (MATLAB conventions).

Conventions, all as in the MATLAB evaluation scripts behind the published tables:

* Images are ``(H, W, 3)`` RGB arrays with values in ``[0, 255]``: ``uint8``, or float (any float
  dtype, read as float64) already on the 0-255 scale. Float inputs are *not* clipped or rounded.
  Grey images, ``(H, W)`` or ``(H, W, 1)``, are first turned into RGB by repeating the channel
  (what ``cat(3, im, im, im)`` does in MATLAB), so their Y is ``16 + 219 * v / 255``, not ``v``.
* Y channel: MATLAB's ``rgb2ycbcr`` luma for 0-255 RGB,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, in ``[16, 235]``. Two conventions exist
  in the published numbers, chosen with ``round_y``:

  - ``round_y=False``: Y as a float, what ``rgb2ycbcr(im2double(im)) * 255`` gives (EDSR, RCAN and
    most recent papers' ``Evaluate_PSNR_SSIM.m``, VDSR's scripts);
  - ``round_y=True``: Y rounded half away from zero to an integer, what ``rgb2ycbcr`` gives on a
    ``uint8`` image (SRCNN-era scripts).

* ``border`` pixels are cut from every side before anything is computed (papers use
  ``border = scale``).
* PSNR: ``10 log10(data_range^2 / MSE)`` over all remaining pixels (and channels when
  ``y_channel=False``); ``inf`` for identical images.
* SSIM: Wang et al. 2004 / their ``ssim_index.m``: an 11x11 Gaussian window with sigma 1.5
  (``fspecial('gaussian', 11, 1.5)``), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, ``'valid'``
  filtering (no padding, so the map is 10 pixels smaller each way), population (not sample)
  variances, and the mean of the SSIM map. No automatic downsampling (the later ``ssim.m``
  downsamples large images; the SR scripts do not). With ``y_channel=False`` the SSIM of each
  channel is computed and averaged. Computed in float64 with a separable ``conv2d``; see
  :func:`ssim_torch` for tensors already on a device.

:func:`evaluate_pair` bundles the paper protocol: HR mod-cropped to the scale, border = scale, Y.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .imresize import mod_crop, round_half_away

__all__ = [
    "ROUND_Y_DEFAULT",
    "evaluate_pair",
    "psnr",
    "rgb_to_y",
    "ssim",
    "ssim_torch",
]

#: The ``round_y`` that :func:`evaluate_pair` uses unless told otherwise. ``True`` because it
#: reproduces the published bicubic baseline best: Set5 x4 with MATLAB-exact uint8 LR and bicubic
#: SR gives 28.416 dB / 0.8101 with rounded Y and 28.429 dB / 0.8111 without (published: 28.42 /
#: 0.8104, which came from resizing the rounded Y channel alone, SRCNN's protocol).
ROUND_Y_DEFAULT = True

# MATLAB rgb2ycbcr: origT(1, :) = [65.481 128.553 24.966], origOffset(1) = 16; for uint8 input
# T = (1/255) * origT and the result is imlincomb(T(1,1), R, T(1,2), G, T(1,3), B, 16).
_Y_COEFFS = (65.481 * (1 / 255), 128.553 * (1 / 255), 24.966 * (1 / 255))
_Y_OFFSET = 16.0

_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def _as_float_image(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be uint8 or float in [0, 255], got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be (H, W), (H, W, 1) or (H, W, 3), got shape {arr.shape}")
    return arr.astype(np.float64)


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] != 3:
        raise ValueError(f"expected 3 channels for the Y channel, got shape {arr.shape}")
    return arr


def rgb_to_y(img: np.ndarray, round_y: bool = False) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of a 0-255 RGB image.

    Args:
        img: ``(H, W, 3)`` RGB, ``uint8`` or float on the 0-255 scale (grey ``(H, W)`` or
            ``(H, W, 1)`` is repeated to RGB first).
        round_y: round to integers, half away from zero, and saturate to ``[0, 255]``, as
            ``rgb2ycbcr`` on ``uint8`` does. ``False`` keeps the float value, as on doubles.

    Returns:
        ``(H, W)`` float64 array ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``: white is 235,
        black 16.
    """
    rgb = _to_rgb(_as_float_image(img, "img"))
    c0, c1, c2 = _Y_COEFFS
    y = c0 * rgb[:, :, 0] + c1 * rgb[:, :, 1] + c2 * rgb[:, :, 2] + _Y_OFFSET
    if round_y:
        y = np.clip(round_half_away(torch.from_numpy(y)).numpy(), 0, 255)
    return y


def _prepare(
    sr: np.ndarray, hr: np.ndarray, border: int, y_channel: bool, round_y: bool
) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float_image(sr, "sr")
    b = _as_float_image(hr, "hr")
    if a.shape != b.shape:
        raise ValueError(f"sr and hr differ in shape: {a.shape} vs {b.shape}")
    if int(border) != border or border < 0:
        raise ValueError(f"border must be a non-negative integer, got {border!r}")
    border = int(border)
    if border:  # crop first: Y of the border is never used
        a = a[border:-border, border:-border]
        b = b[border:-border, border:-border]
    if y_channel:
        a = rgb_to_y(a, round_y)
        b = rgb_to_y(b, round_y)
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"nothing left after cutting a border of {border} from shape {sr.shape}")
    return a, b


def psnr(
    sr: np.ndarray,
    hr: np.ndarray,
    border: int,
    y_channel: bool = True,
    data_range: float = 255.0,
    *,
    round_y: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        sr, hr: same-shape ``(H, W, 3)`` (or grey) images, ``uint8`` or float in ``[0, 255]``.
        border: pixels cut from each side first.
        y_channel: compare MATLAB's Y channel (see :func:`rgb_to_y`); ``False`` compares all
            channels as they are.
        data_range: the peak value, 255 for 0-255 data.
        round_y: see :func:`rgb_to_y`.

    Returns:
        PSNR as a float; ``inf`` when the images are identical.
    """
    return _psnr_of(*_prepare(sr, hr, border, y_channel, round_y), data_range)


def _psnr_of(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10 * math.log10(data_range**2 / mse)


def _gaussian_1d(dtype: torch.dtype, device: torch.device | str) -> Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _gaussian_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable 'valid' filtering of ``(..., H, W)`` by ``g`` along H then W, as shifted weighted sums.

    On the CPU this is many times faster than ``conv2d`` in float64 (which has no optimised kernel).
    """
    k = g.numel()
    h, w = x.shape[-2:]
    weights = g.tolist()
    rows = x[..., 0 : h - k + 1, :] * weights[0]
    for i in range(1, k):
        rows.add_(x[..., i : h - k + 1 + i, :], alpha=weights[i])
    out = rows[..., :, 0 : w - k + 1] * weights[0]
    for i in range(1, k):
        out.add_(rows[..., :, i : w - k + 1 + i], alpha=weights[i])
    return out


def ssim_torch(sr_y: Tensor, hr_y: Tensor, data_range: float = 255.0, *, return_map: bool = False) -> Tensor:
    """SSIM of single-channel images as tensors (Wang et al.: 11x11 Gaussian, sigma 1.5, 'valid').

    Args:
        sr_y, hr_y: ``(..., H, W)`` tensors of the same shape, on the ``data_range`` scale (e.g.
            Y in ``[16, 235]`` with ``data_range=255``), already border-cropped; ``H, W >= 11``.
            Any device and float dtype; float64 is recommended (and what :func:`ssim` uses).
        data_range: ``L`` in ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``.
        return_map: return the ``(..., H - 10, W - 10)`` SSIM map instead of its mean.

    Returns:
        ``(...)`` tensor of mean SSIM per image (or the map).
    """
    if sr_y.shape != hr_y.shape:
        raise ValueError(f"sr_y and hr_y differ in shape: {tuple(sr_y.shape)} vs {tuple(hr_y.shape)}")
    if sr_y.dim() < 2 or sr_y.shape[-1] < SSIM_WINDOW or sr_y.shape[-2] < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(sr_y.shape)}"
        )
    dtype = sr_y.dtype if sr_y.is_floating_point() else torch.float64
    a = sr_y.to(dtype)
    b = hr_y.to(dtype=dtype, device=a.device)
    lead = a.shape[:-2]
    h, w = a.shape[-2:]
    a = a.reshape(-1, 1, h, w)
    b = b.reshape(-1, 1, h, w)
    n = a.shape[0]
    g = _gaussian_1d(dtype, a.device)
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=0)
    filt = _gaussian_valid(stack, g)
    mu1, mu2, e11, e22, e12 = filt.split(n, dim=0)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = e12 - mu1_mu2
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    numerator = (2 * mu1_mu2 + c1) * (2 * sigma12 + c2)
    ssim_map = numerator / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    ssim_map = ssim_map.reshape(*lead, h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1)
    if return_map:
        return ssim_map
    return ssim_map.mean(dim=(-2, -1))


def ssim(
    sr: np.ndarray,
    hr: np.ndarray,
    border: int,
    y_channel: bool = True,
    data_range: float = 255.0,
    *,
    round_y: bool = False,
) -> float:
    """Structural similarity (Wang et al. 2004, ``ssim_index.m``), as the SR papers report it.

    Args:
        sr, hr: same-shape ``(H, W, 3)`` (or grey) images, ``uint8`` or float in ``[0, 255]``.
        border: pixels cut from each side first; at least 11x11 must remain.
        y_channel: on MATLAB's Y channel; ``False``: the mean of the per-channel SSIMs.
        data_range: ``L``, 255 for 0-255 data.
        round_y: see :func:`rgb_to_y`.

    Returns:
        Mean SSIM, 1.0 for identical images.
    """
    return _ssim_of(*_prepare(sr, hr, border, y_channel, round_y), data_range)


def _ssim_of(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    ta = torch.from_numpy(np.ascontiguousarray(a))
    tb = torch.from_numpy(np.ascontiguousarray(b))
    if ta.dim() == 3:  # (H, W, C) -> (C, H, W)
        ta = ta.permute(2, 0, 1)
        tb = tb.permute(2, 0, 1)
    return float(ssim_torch(ta, tb, data_range).mean())


def evaluate_pair(
    sr_uint8: np.ndarray, hr_uint8: np.ndarray, scale: int, *, round_y: bool | None = None
) -> tuple[float, float]:
    """PSNR and SSIM with the paper protocol: HR mod-cropped to ``scale``, border ``scale``, Y channel.

    Args:
        sr_uint8: the super-resolved ``(H, W, 3)`` (or grey) ``uint8`` image, the size of the
            mod-cropped HR (e.g. ``scale`` times the LR made from it).
        hr_uint8: the ground truth, ``uint8``, not yet cropped (an already cropped one is fine).
        scale: the upscaling factor.
        round_y: see :func:`rgb_to_y`; defaults to :data:`ROUND_Y_DEFAULT`.

    Returns:
        ``(psnr_db, ssim)``.
    """
    if round_y is None:
        round_y = ROUND_Y_DEFAULT
    hr = mod_crop(np.asarray(hr_uint8), scale)
    sr = np.asarray(sr_uint8)
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(
            f"SR is {sr.shape[1]}x{sr.shape[0]} but the mod-cropped HR is {hr.shape[1]}x{hr.shape[0]}"
        )
    a, b = _prepare(sr, hr, scale, True, round_y)  # Y once, for both metrics
    return _psnr_of(a, b, 255.0), _ssim_of(a, b, 255.0)
