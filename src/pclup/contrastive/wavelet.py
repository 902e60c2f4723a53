"""One-level orthonormal Haar wavelet transform: the "frequency space" of PCL-SR (PCL-METHOD §1.3).

The released code uses ``pytorch_wavelets.DWTForward(J=1, wave="haar", mode="reflect")``. These functions
reproduce it exactly (checked against pytorch_wavelets 1.3.0, which follows PyWavelets' ``dwt2``), without
the dependency. For a 2x2 block of pixels::

    a b        LL = (a + b + c + d) / 2
    c d        LH = (a + b - c - d) / 2    low-pass along width, high-pass along height: horizontal edges
               HL = (a - b + c - d) / 2    high-pass along width, low-pass along height: vertical edges
               HH = (a - b - c + d) / 2    diagonal detail

``LH``, ``HL``, ``HH`` are pytorch_wavelets' ``yh[0][:, :, 0]``, ``[:, :, 1]``, ``[:, :, 2]`` and PyWavelets'
``cH``, ``cV``, ``cD``, signs included (PyWavelets' Haar detail of a pair ``(x0, x1)`` is ``(x0 - x1)/√2``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["haar_dwt", "haar_idwt", "high_bands"]

# the 2x2 taps [[a, b], [c, d]] of LH, HL, HH (orthonormal: 1/2)
_HIGH_TAPS = (
    ((0.5, 0.5), (-0.5, -0.5)),
    ((0.5, -0.5), (0.5, -0.5)),
    ((0.5, -0.5), (-0.5, 0.5)),
)


def _pad_odd(x: Tensor) -> Tensor:
    """Reflect-pad one row at the bottom / one column at the right where the size is odd.

    pytorch_wavelets' ``mode="reflect"`` pads Haar by one sample at the end of an odd axis, with
    whole-sample reflection (the padded row equals row ``H-2``), which is ``F.pad(mode="reflect")``.
    """
    pad_h = x.shape[-2] % 2
    pad_w = x.shape[-1] % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def haar_dwt(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One level of the orthonormal 2-D Haar transform.

    Args:
        x: ``(B, C, H, W)`` floating tensor, any range. An odd ``H`` (``W``) is first padded by one row
            (column) at the bottom (right) by reflection, as pytorch_wavelets' ``mode="reflect"``; this needs
            ``H >= 2`` (``W >= 2``).

    Returns:
        ``(ll, lh, hl, hh)``, each ``(B, C, ceil(H/2), ceil(W/2))``. The transform is orthonormal, so for even
        sizes the four bands hold exactly the energy (sum of squares) of ``x``.
    """
    if x.dim() != 4:
        raise ValueError(f"haar_dwt expects (B, C, H, W), got shape {tuple(x.shape)}")
    x = _pad_odd(x)
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    # two butterflies instead of four 4-term sums: 8 adds instead of 12
    top_sum, top_diff = a + b, a - b
    bot_sum, bot_diff = c + d, c - d
    ll = (top_sum + bot_sum) * 0.5
    lh = (top_sum - bot_sum) * 0.5
    hl = (top_diff + bot_diff) * 0.5
    hh = (top_diff - bot_diff) * 0.5
    return ll, lh, hl, hh


def haar_idwt(ll: Tensor, lh: Tensor, hl: Tensor, hh: Tensor) -> Tensor:
    """Inverse of :func:`haar_dwt`.

    Args:
        ll, lh, hl, hh: ``(B, C, h, w)`` bands, same shape.

    Returns:
        ``(B, C, 2h, 2w)``. For an input of even size this is exactly the image that was transformed. For an
        odd-sized input it is the reflect-padded image: crop ``[..., :H, :W]`` to get the original back.
    """
    if not (ll.shape == lh.shape == hl.shape == hh.shape):
        raise ValueError(f"bands differ in shape: {[tuple(t.shape) for t in (ll, lh, hl, hh)]}")
    top_sum = (ll + lh) * 0.5  # (a + b) / 2
    bot_sum = (ll - lh) * 0.5  # (c + d) / 2
    top_diff = (hl + hh) * 0.5  # (a - b) / 2
    bot_diff = (hl - hh) * 0.5  # (c - d) / 2
    b_, c_, h, w = ll.shape
    out = ll.new_empty(b_, c_, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = top_sum + top_diff
    out[..., 0::2, 1::2] = top_sum - top_diff
    out[..., 1::2, 0::2] = bot_sum + bot_diff
    out[..., 1::2, 1::2] = bot_sum - bot_diff
    return out


def high_bands(x: Tensor) -> Tensor:
    """The embedding network's input: ``cat(LH, HL, HH)`` along channels, LL dropped (PCL-METHOD §1.3).

    Args:
        x: ``(B, C, H, W)`` image, float, ``[0, 1]`` in pclup (the bands are not normalised, as in the
            released code).

    Returns:
        ``(B, 3C, ceil(H/2), ceil(W/2))``, band-major: channels ``[LH_0..LH_{C-1}, HL_0.., HH_0..]``
        (9 channels for RGB), the released code's ``torch.cat((LH, HL, HH), 1)``.
    """
    if x.dim() != 4:
        raise ValueError(f"high_bands expects (B, C, H, W), got shape {tuple(x.shape)}")
    # One 2x2 stride-2 convolution instead of haar_dwt's strided slices: the same numbers, but its
    # backward (this runs on the SR output with gradient every step) is one op instead of a dozen
    # zero-fills and strided adds, which cost as much as the first conv block of the embedding net.
    channels = x.shape[1]
    weight = x.new_zeros(3 * channels, channels, 2, 2)
    taps = x.new_tensor(_HIGH_TAPS)  # (3, 2, 2)
    for c in range(channels):
        weight[c::channels, c] = taps
    return F.conv2d(_pad_odd(x), weight, stride=2)
