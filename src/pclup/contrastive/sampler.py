"""Positive and negative samples for the contrastive loss (docs/method.md, "Positives and hard negatives").

* positives: ``[HR] + K`` sharpened copies of HR (PIL/kornia Sharpness, a factor per image and copy);
* negatives: ``[bicubic-upsampled LR] + K`` anisotropic Gaussian blurs of HR (one kernel per copy, shared
  by the batch, as the released ``--gpu_blur`` path).

Everything random comes from the ``torch.Generator`` passed in, so a seed fixes the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..images.arrays import jpeg

__all__ = [
    "FrequencySampler",
    "gaussian_blur",
    "gaussian_kernel1d",
    "quantize",
    "quantize_",
    "sharpen",
    "upsample_bicubic",
]

LEVELS = 255
"""8-bit quantisation: samples are rounded to multiples of 1/255, as the released ``utility.quantize``."""

SHARPNESS_KERNEL = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))
"""PIL's ImageFilter.SMOOTH kernel (divided by its sum, 13): the 'degenerate' image of Sharpness."""


def quantize(x: Tensor) -> Tensor:
    """Round ``[0, 1]`` values to 8-bit levels: ``round(clamp(x, 0, 1) * 255) / 255``."""
    return quantize_(x.clone())


def quantize_(x: Tensor) -> Tensor:
    """In-place :func:`quantize`."""
    return x.mul_(LEVELS).clamp_(0, LEVELS).round_().div_(LEVELS)


def sharpen(x: Tensor, factors: Tensor, *, out: Tensor | None = None) -> Tensor:
    """PIL ``ImageEnhance.Sharpness`` (as ``kornia.enhance.sharpness``), several factors at once.

    ``out = S + f * (x - S)`` where ``S`` is ``x`` convolved with ``[[1,1,1],[1,5,1],[1,1,1]]/13`` inside the
    image and ``S = x`` on the one-pixel border (so the border is unchanged); the result is clamped to
    ``[0, 1]``. ``f < 1`` blurs slightly, ``f = 1`` is the identity, ``f > 1`` sharpens.

    Args:
        x: ``(B, C, H, W)`` float in ``[0, 1]``, ``H, W >= 3``.
        factors: ``(K, B)``: factor of copy ``k`` of image ``b``; on any device.
        out: optional ``(K, B, C, H, W)`` tensor to write the result into.

    Returns:
        ``(K, B, C, H, W)`` in ``[0, 1]`` (``out`` when given).
    """
    channels = x.shape[1]
    kernel = x.new_tensor(SHARPNESS_KERNEL).div_(13).expand(channels, 1, 3, 3)
    # S is the same for every factor: one depthwise conv, then K blends x + (f - 1) * (x - S)
    detail = torch.zeros_like(x)
    detail[..., 1:-1, 1:-1] = x[..., 1:-1, 1:-1] - F.conv2d(x, kernel, groups=channels)
    gain = (factors.to(device=x.device, dtype=x.dtype) - 1).view(*factors.shape, 1, 1, 1)
    if out is None:
        return torch.addcmul(x.unsqueeze(0), gain, detail.unsqueeze(0)).clamp_(0, 1)
    return torch.addcmul(x.unsqueeze(0), gain, detail.unsqueeze(0), out=out).clamp_(0, 1)


def gaussian_kernel1d(size: int, sigma: float, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1-D Gaussian taps ``exp(-t^2 / (2 sigma^2))``, ``t = -(size//2) .. size//2`` (kornia's)."""
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def gaussian_blur(x: Tensor, size: tuple[int, int], sigma: tuple[float, float]) -> Tensor:
    """Axis-aligned anisotropic Gaussian blur with reflect padding (``kornia.filters.gaussian_blur2d``).

    Args:
        x: ``(B, C, H, W)`` float; ``H > size[0] // 2`` and ``W > size[1] // 2`` (reflect padding).
        size: odd kernel sizes ``(height, width)``.
        sigma: standard deviations ``(vertical, horizontal)``, in pixels.

    Returns:
        ``(B, C, H, W)``. Two depthwise 1-D convolutions (separable), not one 2-D one. Channels-last input
        is about 2x faster on CPU (oneDNN's depthwise kernels).
    """
    channels = x.shape[1]
    (ky, kx), (sy, sx) = size, sigma
    gy = gaussian_kernel1d(ky, sy, dtype=x.dtype).to(x.device).view(1, 1, ky, 1).expand(channels, 1, ky, 1)
    gx = gaussian_kernel1d(kx, sx, dtype=x.dtype).to(x.device).view(1, 1, 1, kx).expand(channels, 1, 1, kx)
    # padding each axis just before its pass: padding both at once and slicing costs two layout copies
    x = F.conv2d(F.pad(x, (0, 0, ky // 2, ky // 2), mode="reflect"), gy, groups=channels)
    return F.conv2d(F.pad(x, (kx // 2, kx // 2, 0, 0), mode="reflect"), gx, groups=channels)


def upsample_bicubic(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic upsampling of the LR input to the HR size, clamped to ``[0, 1]`` (negative #0).

    ``align_corners=False`` (pixel-centre alignment, the convention the LR was made with), whereas the
    released code uses ``align_corners=True``, which maps the corner pixel centres onto each other and so
    stretches the image by ``(4H - 1) / (4H - 4)`` at x4: up to 1.5 HR pixels of misalignment at the border
    of a 192-px patch, an extra and unintended difference from HR and SR.
    """
    if lr.device.type == "cpu":
        lr = lr.contiguous()  # torch's CPU bicubic is about 2x slower on channels-last input
    return F.interpolate(lr, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)


@dataclass(frozen=True, kw_only=True)
class FrequencySampler:
    """How positives and negatives are drawn (defaults: the released scripts').

    Args:
        k: number of sharpened positives and of blurred negatives (``mcl_neg``, 3), unless set apart:
        positives: number of sharpened copies of HR (``None``: ``k``; 0: HR is the only positive).
        negatives: number of blurred copies of HR (``None``: ``k``; 0: the bicubic LR is the only negative).
        sharpness: factor range ``[lo, hi)``, one factor per image and copy (``--sharp_value 0.5
            --sharp_range 2.5``: ``U[0.5, 3.0)``; about 20% of the factors are below 1 and blur a little).
        blur_sizes: odd kernel sizes, drawn independently for height and width.
        blur_sigma: standard-deviation range ``[lo, hi)``, drawn independently for each axis.
        quantize: round the generated samples (sharpened and blurred) to 8-bit levels, as the released
            code. HR and the bicubic-upsampled LR are not quantised, as there.
        degraded: real-world negatives: each blurred copy of HR also gets Gaussian noise (standard
            deviation drawn from ``noise_sigma``, in 8-bit levels, per image and copy) and is then JPEG
            compressed (quality drawn from ``jpeg_quality``, per image and copy, Pillow's encoder). Its
            draws come after the blur's, so the blurs are the same as without it. With a degradation
            pipeline the bicubic-upsampled LR (negative #0) is the degraded input itself.
    """

    k: int = 3
    positives: int | None = None
    negatives: int | None = None
    sharpness: tuple[float, float] = (0.5, 3.0)
    blur_sizes: tuple[int, ...] = (3, 5, 7, 9, 11)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    quantize: bool = True
    degraded: bool = False
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    jpeg_quality: tuple[float, float] = (30.0, 95.0)

    def __post_init__(self) -> None:
        for name in ("k", "positives", "negatives"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.sharpness[0] <= self.sharpness[1]:
            raise ValueError(f"sharpness range {self.sharpness} is empty")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma range {self.blur_sigma} must be positive and non-empty")
        if not self.blur_sizes or any(s < 1 or s % 2 == 0 for s in self.blur_sizes):
            raise ValueError(f"blur_sizes must be odd and positive, got {self.blur_sizes}")

    @property
    def counts(self) -> tuple[int, int]:
        """``(P, N)``: the sharpened positives and the blurred negatives drawn (HR and bicubic LR besides)."""
        return (self.k if self.positives is None else self.positives,
                self.k if self.negatives is None else self.negatives)

    def sample(self, hr: Tensor, lr: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw the positives and negatives of one batch.

        Args:
            hr: ``(B, C, H, W)`` float, ``[0, 1]``; ``H, W > max(blur_sizes) // 2`` and ``>= 3``.
            lr: ``(B, C, h, w)`` float, ``[0, 1]``: the network's input, upsampled here to ``(H, W)``.
            generator: the only source of randomness (its own device, usually CPU); the results are on
                ``hr``'s device.

        Returns:
            ``(pos, neg)``, ``(P+1, B, C, H, W)`` and ``(N+1, B, C, H, W)`` (:attr:`counts`), float in
            ``[0, 1]``, no gradient:
            ``pos[0] = hr`` (the same values), ``pos[1:]`` sharpened; ``neg[0]`` the bicubic-upsampled ``lr``,
            ``neg[1:]`` blurred. One tensor each, so the trainer can embed them in a single forward.
        """
        if hr.dim() != 4 or lr.dim() != 4 or hr.shape[:2] != lr.shape[:2]:
            raise ValueError(f"hr {tuple(hr.shape)} and lr {tuple(lr.shape)} must be (B, C, ., .) alike")
        batch = hr.shape[0]
        n_pos, n_neg = self.counts
        hr = hr.detach()
        gdev = generator.device
        # all draws first, in a fixed order, on the generator's device (P = N = k: the draws of one k)
        lo, hi = self.sharpness
        factors = torch.rand(n_pos, batch, generator=generator, device=gdev) * (hi - lo) + lo
        size_idx = torch.randint(len(self.blur_sizes), (n_neg, 2), generator=generator, device=gdev).tolist()
        s_lo, s_hi = self.blur_sigma
        sigmas = (
            torch.rand(n_neg, 2, generator=generator, device=gdev, dtype=torch.float64) * (s_hi - s_lo)
            + s_lo
        ).tolist()
        if self.degraded and n_neg:
            n_lo, n_hi = self.noise_sigma
            q_lo, q_hi = self.jpeg_quality
            draw = dict(generator=generator, device=gdev, dtype=torch.float64)
            levels = torch.rand(n_neg, batch, **draw) * (n_hi - n_lo) + n_lo  # type: ignore[call-overload]
            qualities = (torch.rand(n_neg, batch, **draw) * (q_hi - q_lo) + q_lo).tolist()  # type: ignore[call-overload]
            noise = torch.randn((n_neg, *hr.shape), generator=generator, device=gdev)

        pos = hr.new_empty(n_pos + 1, *hr.shape)
        neg = hr.new_empty(n_neg + 1, *hr.shape)
        pos[0] = hr
        neg[0] = upsample_bicubic(lr.detach().to(hr.dtype), (hr.shape[-2], hr.shape[-1]))
        if n_pos or n_neg:
            # depthwise convolutions run about 2x faster channels-last on CPU (oneDNN)
            src = hr.contiguous(memory_format=torch.channels_last) if hr.device.type == "cpu" else hr
            if n_pos:
                sharpen(src, factors, out=pos[1:])
            for j, ((iy, ix), sigma) in enumerate(zip(size_idx, sigmas, strict=True)):
                size = (self.blur_sizes[iy], self.blur_sizes[ix])
                neg[j + 1] = gaussian_blur(src, size, (sigma[0], sigma[1]))
            if self.degraded and n_neg:
                scale = (levels / LEVELS).to(device=hr.device, dtype=hr.dtype).view(n_neg, batch, 1, 1, 1)
                neg[1:].addcmul_(noise.to(device=hr.device, dtype=hr.dtype), scale).clamp_(0, 1)
                for j in range(n_neg):
                    for b in range(batch):
                        neg[j + 1, b] = jpeg(neg[j + 1, b : b + 1].float().cpu(), qualities[j][b])[0].to(neg)
            if self.quantize:
                # both already lie in [0, 1] (clamped; convex combinations): no clamp pass needed
                pos[1:].mul_(LEVELS).round_().div_(LEVELS)
                neg[1:].mul_(LEVELS).round_().div_(LEVELS)
        return pos, neg
