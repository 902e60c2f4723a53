"""The network side of images: pixels to tensors and back, the alpha channel's own path, 8 bits.

Alpha: the network sees colour only. :func:`prepare_rgb_for_alpha` fills the colour under fully
transparent pixels from nearby visible ones (a pull-push pyramid), so that neither the network nor
any resize mixes the arbitrary colour hidden there (often black) into the visible edge: that mixing
is what gives the dark fringes users report. The alternative, upscaling premultiplied colour and
dividing by the upscaled alpha, feeds the network dark-edged colour it was never trained on and
amplifies noise where alpha is small. The alpha channel itself is resized by
:func:`upscale_alpha` (bicubic, clamped).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage

from .depth import max_value, to_uint8

__all__ = [
    "from_tensor", "jpeg", "max_value", "prepare_rgb_for_alpha", "to_tensor", "to_uint8", "upscale_alpha",
]


def to_tensor(pixels: np.ndarray, *, expand_gray: bool = True) -> torch.Tensor:
    """Turn pixels into a network input.

    Args:
        pixels: (H, W, C) or (H, W) array, uint8 (divided by 255), uint16 (divided by 65535) or
            float32 (taken as is, expected in [0, 1]).
        expand_gray: repeat a single grey channel into 3, as colour models expect. Remember
            ``pixels.shape[2]`` and pass it as ``channels`` to :func:`from_tensor` to get grey back.

    Returns:
        (1, C, H, W) float32 CPU tensor in [0, 1], C = 3 for grey input when ``expand_gray``.
    """
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    if arr.ndim != 3:
        raise ValueError(f"pixels must be (H, W) or (H, W, C), got shape {pixels.shape}")
    scale = max_value(arr.dtype)
    x = arr.astype(np.float32)
    if scale != 1.0:
        np.divide(x, np.float32(scale), out=x)
    t = torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0)
    if expand_gray and t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.contiguous()


def from_tensor(
    t: torch.Tensor, dtype: np.dtype[Any] | type = np.uint8, *, channels: int | None = None
) -> np.ndarray:
    """Turn a network output back into pixels.

    Args:
        t: (1, C, H, W) or (C, H, W) tensor in [0, 1], any float dtype and device. NaN becomes 0;
            values are clamped to [0, 1].
        dtype: ``np.uint8``, ``np.uint16`` (scaled by 255 / 65535 and rounded to nearest) or
            ``np.float32``.
        channels: the channel count wanted; 1 averages a 3-channel output back to grey.

    Returns:
        (H, W, C) contiguous array of ``dtype`` on the CPU.
    """
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a batch of one, got shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f"expected (1, C, H, W) or (C, H, W), got shape {tuple(t.shape)}")
    t = t.detach()
    if channels == 1 and t.shape[0] != 1:
        t = t.float().mean(dim=0, keepdim=True)
    dt = np.dtype(dtype)
    scale = max_value(dt)
    c, h, w = t.shape
    out = np.empty((h, w, c), dtype=dt)
    # strip by strip: a full-size float copy of a large output would double the peak memory
    rows = max(1, (1 << 22) // max(1, w * c))
    for top in range(0, h, rows):
        x = torch.nan_to_num(t[:, top : top + rows].to("cpu", torch.float32), nan=0.0).clamp_(0.0, 1.0)
        if dt != np.float32:
            x = x.mul_(scale).round_()
        out[top : top + rows] = x.permute(1, 2, 0).numpy().astype(dt)
    return out


def quantize_into(t: torch.Tensor, out: np.ndarray) -> None:
    """:func:`from_tensor` into an existing array, the same values bit for bit, using ``t`` as scratch.

    Args:
        t: ``(1, C, H, W)`` float32 CPU tensor in [0, 1] (NaN becomes 0, values are clamped); overwritten.
        out: ``(H, W, C)`` uint8 or uint16 array (C-contiguous rows) that receives the pixels.
    """
    if t.ndim != 4 or t.shape[0] != 1 or t.dtype != torch.float32 or t.device.type != "cpu":
        raise ValueError(f"expected a (1, C, H, W) float32 CPU tensor, got {tuple(t.shape)} {t.dtype}")
    hwc = (t.shape[2], t.shape[3], t.shape[1])
    if out.shape != hwc:
        raise ValueError(f"out has shape {out.shape}, the tensor holds {hwc}")
    if out.dtype != np.uint8 or not out.flags.c_contiguous:  # uint16: numpy casts (torch's uint16 is thin)
        out[...] = from_tensor(t, out.dtype)
        return
    # in place, one pass each: NaN -> 0, clamp, scale, round; then one cast straight into the pixels
    t = torch.nan_to_num_(t, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    torch.from_numpy(out).copy_(t[0].permute(1, 2, 0))


def upscale_alpha(alpha: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize an alpha channel on its own path: bicubic (antialiased when shrinking), clamped.

    Args:
        alpha: (H, W) array, uint8, uint16 or float32 in [0, 1].
        out_h: output height.
        out_w: output width.

    Returns:
        (out_h, out_w) array of the same dtype. Memory: two float32 copies of the output.
    """
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be (H, W), got shape {alpha.shape}")
    scale = max_value(alpha.dtype)
    x = torch.from_numpy(alpha.astype(np.float32))[None, None]
    if scale != 1.0:
        x = x / scale
    y = F.interpolate(x, size=(out_h, out_w), mode="bicubic", align_corners=False, antialias=True)
    y = y.clamp_(0.0, 1.0)[0, 0]
    if alpha.dtype == np.float32:
        return np.ascontiguousarray(y.numpy())
    return y.mul_(scale).round_().to(torch.int32).numpy().astype(alpha.dtype)


def prepare_rgb_for_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Fill the colour under fully transparent pixels from nearby visible colour.

    Run this on the colour before it goes through the network (or any resize) so that the colour
    hidden under transparent pixels, often black, cannot bleed into the visible edge as a dark
    halo. Pixels with alpha > 0 keep their colour bit for bit; those with alpha = 0 get a smooth
    extrapolation of the visible colours around them, by a pull-push pyramid: halve the image
    repeatedly averaging colour weighted by alpha, then come back up, filling each level's
    uncovered pixels from the bilinearly upsampled coarser level.

    Args:
        rgb: (H, W, C) array, C = 1 or 3, uint8, uint16 or float32.
        alpha: (H, W) array of the same scale (uint8 / uint16 / float32 in [0, 1]).

    Returns:
        A new (H, W, C) array of ``rgb``'s dtype. Memory: about 1.5 float32 copies of ``rgb``.
    """
    if rgb.ndim != 3 or alpha.shape != rgb.shape[:2]:
        raise ValueError(f"rgb (H, W, C) and alpha (H, W) must match, got {rgb.shape} and {alpha.shape}")
    hole = alpha == 0
    out = rgb.copy()
    if not hole.any() or hole.all():
        return out
    c = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    w = torch.from_numpy(alpha.astype(np.float32) / np.float32(max_value(alpha.dtype)))[None, None]
    fill = _pull_push_fill(c, w.clamp_(0.0, 1.0))[0].permute(1, 2, 0)
    if rgb.dtype != np.float32:
        fill = fill.round_().clamp_(0.0, max_value(rgb.dtype))
    out[hole] = fill.numpy()[hole].astype(rgb.dtype)
    return out


def _pull_push_fill(c: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Colour for the pixels of weight 0.

    Args:
        c: (1, C, H, W) colour.
        w: (1, 1, H, W) weight in [0, 1] (alpha).

    Returns:
        (1, C, H, W): at weight-0 pixels, the colour pulled from the visible ones around them
        (elsewhere a smoothed colour, not meant to be used).
    """
    levels = [(c, w)]
    while c.shape[-2] > 1 or c.shape[-1] > 1:
        h, wd = c.shape[-2:]
        pad = (0, wd % 2, 0, h % 2)
        sum_cw = F.avg_pool2d(F.pad(c * w, pad), 2)
        sum_w = F.avg_pool2d(F.pad(w, pad), 2)
        c = torch.where(sum_w > 0, sum_cw / sum_w.clamp_min(1e-12), torch.zeros_like(sum_cw))
        w = (sum_w * 4).clamp_(max=1.0)
        levels.append((c, w))
    filled = levels[-1][0]
    for i in range(len(levels) - 2, -1, -1):
        c, w = levels[i]
        h, wd = c.shape[-2:]
        up = F.interpolate(filled, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :wd]
        # At the finest level the holes have weight 0, so the blend would just give `up`.
        filled = up if i == 0 else w * c + (1 - w) * up
    return filled


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """``x`` (``(1, 3, H, W)`` in ``[0, 1]``) rounded to 8 bits, compressed by Pillow's JPEG encoder at
    ``round(quality)`` (1-95; 4:2:0) and decoded again; the dtype of ``x``."""
    q = int(min(95, max(1, round(quality))))
    a = x[0].mul(255).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buf = io.BytesIO()
    PILImage.fromarray(a, "RGB").save(buf, format="JPEG", quality=q)
    buf.seek(0)
    with PILImage.open(buf) as im:
        out = np.asarray(im.convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).unsqueeze(0).to(x.dtype).div(255)
