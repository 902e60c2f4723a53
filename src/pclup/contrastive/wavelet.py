"""One-level orthonormal Haar wavelet transform: the "frequency space" of PCL-SR (docs/method.md).

The released code uses ``pytorch_wavelets.DWTForward(J=1, wave="haar", mode="reflect")``. :func:`high_bands`
reproduces its three high bands exactly (checked against pytorch_wavelets 1.3.0, which follows PyWavelets'
``dwt2``), without the dependency. For a 2x2 block of pixels::

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

__all__ = ["high_bands"]

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


def high_bands(x: Tensor) -> Tensor:
    """The embedding network's input: ``cat(LH, HL, HH)`` along channels, LL dropped (docs/method.md).

    Args:
        x: ``(B, C, H, W)`` image, float, ``[0, 1]`` in pclup (the bands are not normalised, as in the
            released code).

    Returns:
        ``(B, 3C, ceil(H/2), ceil(W/2))``, band-major: channels ``[LH_0..LH_{C-1}, HL_0.., HH_0..]``
        (9 channels for RGB), the released code's ``torch.cat((LH, HL, HH), 1)``.
    """
    if x.dim() != 4:
        raise ValueError(f"high_bands expects (B, C, H, W), got shape {tuple(x.shape)}")
    # One 2x2 stride-2 convolution instead of the four strided slices of the formulas above: the same
    # numbers, but its backward (this runs on the SR output with gradient every step) is one op instead of
    # a dozen zero-fills and strided adds, which cost as much as the first conv block of the embedding net.
    channels = x.shape[1]
    weight = x.new_zeros(3 * channels, channels, 2, 2)
    taps = x.new_tensor(_HIGH_TAPS)  # (3, 2, 2)
    for c in range(channels):
        weight[c::channels, c] = taps
    return F.conv2d(_pad_odd(x), weight, stride=2)
