"""Layers shared by the EDSR family (EDSR, RCAN, HAN, NLSN).

Names and nesting follow EDSR-PyTorch (github.com/sanghyun-son/EDSR-PyTorch, MIT) so that the authors'
published checkpoints load with their own key names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor, nn

from .registry import SRConfig, SRModel

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
"""Mean colour of DIV2K's training images, which every EDSR-family network subtracts from its input."""


def conv3x3(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> nn.Conv2d:
    """A 'same' convolution (EDSR-PyTorch's ``default_conv``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Adds (``sign=1``) or subtracts (``sign=-1``) the dataset mean colour, as a fixed 1x1 convolution.

    A convolution rather than a buffer because the published checkpoints store it as ``weight``/``bias``.
    Its parameters never train.
    """

    def __init__(
        self, rgb_range: float, sign: int = -1, rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN
    ) -> None:
        channels = len(rgb_mean)
        super().__init__(channels, channels, kernel_size=1)
        assert self.bias is not None  # a Conv2d has one unless built with bias=False
        with torch.no_grad():
            self.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean))
        self.requires_grad_(False)


class ResBlock(nn.Module):
    """conv-ReLU-conv with a scaled identity shortcut (EDSR). Keys: ``body.0``, ``body.2``."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            conv3x3(n_feats, n_feats, kernel_size),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: (conv to 4F, shuffle 2) per factor 2, or (conv to 9F, shuffle 3) for x3."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:  # a power of two
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported (2^n or 3)")
        super().__init__(*layers)


def seq_len(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    """Number of consecutive integer children ``prefix.0``, ``prefix.1``, ... among the keys."""
    keys = list(state_dict)
    indices = set()
    start = prefix + "."
    for key in keys:
        if key.startswith(start):
            head = key[len(start) :].split(".", 1)[0]
            if head.isdigit():
                indices.add(int(head))
    n = 0
    while n in indices:
        n += 1
    return n


def upsampler_scale(state_dict: Mapping[str, Tensor], prefix: str, n_feats: int) -> int:
    """The scale of an :class:`Upsampler` stored under ``prefix`` (its convs at even indices)."""
    start = prefix + "."
    convs = [state_dict[k] for k in sorted(state_dict) if k.startswith(start) and k.endswith(".weight")]
    if len(convs) == 1 and convs[0].shape[0] == 9 * n_feats:
        return 3
    if convs and all(c.shape[0] == 4 * n_feats for c in convs):
        return 2 ** len(convs)
    raise ValueError(f"cannot read the scale from '{prefix}'")


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (RCAN's ``CALayer``). Keys: ``conv_du.0``, ``conv_du.2``.

    Global average pool, 1x1 conv down by ``reduction``, ReLU, 1x1 conv back up, sigmoid; the result
    rescales each input channel.
    """

    def __init__(self, n_feats: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = n_feats // reduction
        if hidden < 1:
            raise ValueError(f"reduction {reduction} leaves no channels of {n_feats}")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(n_feats, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, n_feats, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel attention block (RCAN, HAN): conv-ReLU-conv-attention plus the identity.

    Keys: ``body.0``, ``body.2`` (convs), ``body.3.conv_du.*`` (attention). The authors' code accepts a
    ``res_scale`` but never applies it; here it scales the residual, which is the same thing at 1.
    """

    def __init__(
        self, n_feats: int, reduction: int = 16, kernel_size: int = 3, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            conv3x3(n_feats, n_feats, kernel_size),
            ChannelAttention(n_feats, reduction),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return x + res


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a closing conv, with a shortcut around them all (RCAN, HAN).

    Keys: ``body.0`` ... ``body.{n-1}`` (RCABs), ``body.{n}`` (the conv).
    """

    def __init__(
        self,
        n_feats: int,
        n_resblocks: int,
        reduction: int = 16,
        kernel_size: int = 3,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(n_feats, reduction, kernel_size, res_scale) for _ in range(n_resblocks)],
            conv3x3(n_feats, n_feats, kernel_size),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class MeanShiftConfig(SRConfig, Protocol):
    """The fields :class:`MeanShiftedSR` reads from its subclasses' configs."""

    @property
    def rgb_range(self) -> float: ...
    @property
    def mean_shift(self) -> bool: ...


class MeanShiftedSR(SRModel):
    """The forward pass EDSR, RCAN, HAN and NLSN share (EDSR-PyTorch's): scale the [0, 1] input to
    [0, rgb_range], subtract the dataset mean, ``head``, ``trunk`` with the long skip, ``tail``, add the mean
    back, scale back to [0, 1]. Subclasses build ``head``, ``body``, ``tail`` (and ``sub_mean``/``add_mean``
    when ``config.mean_shift``) and may override ``trunk``."""

    config: MeanShiftConfig
    sub_mean: nn.Module
    add_mean: nn.Module
    head: nn.Module
    body: nn.Module
    tail: nn.Module

    def trunk(self, x: Tensor) -> Tensor:
        """Deep features (before the long skip) from shallow features ``x``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        c = self.config
        x = x * c.rgb_range
        if c.mean_shift:
            x = self.sub_mean(x)
        x = self.head(x)
        x = self.tail(self.trunk(x) + x)
        if c.mean_shift:
            x = self.add_mean(x)
        return x / c.rgb_range
