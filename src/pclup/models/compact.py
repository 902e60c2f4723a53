"""Compact: pclup's small CPU network, a plain stack of 3x3 convolutions with PReLU and a sub-pixel output.

Design after SRVGGNetCompact, the "compact" network of Real-ESRGAN (Wang et al., "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data", ICCV-W 2021, https://arxiv.org/abs/2107.10833;
upstream https://github.com/xinntao/Real-ESRGAN, BSD-3-Clause): no normalisation, no residual blocks, a PReLU
after every convolution but the last, ``PixelShuffle`` to the output size, and the nearest-neighbour upscale
of the input added, so the network only predicts the residual. Independent code with its own key names
(pclup's checkpoints only; Real-ESRGAN's ``body.N`` layout is not loaded).

Chosen on measured quality per CPU time over an FSRCNN-style net, a small residual (EDSR-like) net and
other widths/depths of this design within the same budget: see ``docs/compact-architecture.md`` and
``benchmarks/compact_selection.py``. The default (64 channels, 3 body convolutions) costs 119k / 128k / 140k
convolution MACs per LR pixel at x2 / x3 / x4, 11.5x / 12.2x / 14.2x fewer than EDSR-S at the same scale,
with 120k / 129k / 141k parameters.

State-dict layout (F = ``n_feats``, C = ``n_colors``, s = ``scale``)::

    entry.conv.weight (F,C,3,3), entry.conv.bias (F), entry.act.weight (F)      first conv + PReLU
    trunk.{i}.conv.weight (F,F,3,3), .conv.bias (F), .act.weight (F)            i < n_convs
    exit.weight (C*s*s,F,3,3), exit.bias (C*s*s)                                to sub-pixels

The names (``entry``/``trunk``/``exit``) are chosen not to collide with EDSR/RCAN/NLSN (``head``/``body``/
``tail``), SwinIR (``conv_first``/``layers``) or Real-ESRGAN (``body.N``) layouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import seq_len
from .registry import ArchSpec, SRModel, Variant, arg


@dataclass(frozen=True)
class CompactConfig:
    scale: int = 4
    n_feats: int = arg(64, 1, 4096)
    n_convs: int = arg(3, 0, 128)  # 3x3 F->F convolutions between the entry and the exit convolution
    n_colors: int = arg(3, 1, 4)


class _ConvPReLU(nn.Module):
    """A 3x3 'same' convolution followed by a per-channel PReLU. Keys: ``conv.*``, ``act.weight``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


class Compact(SRModel):
    config: CompactConfig

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        c = config
        if c.scale < 1:
            raise ValueError(f"scale must be positive, got {c.scale}")
        self.config = config
        self.entry = _ConvPReLU(c.n_colors, c.n_feats)
        self.trunk = nn.Sequential(*[_ConvPReLU(c.n_feats, c.n_feats) for _ in range(c.n_convs)])
        self.exit = nn.Conv2d(c.n_feats, c.n_colors * c.scale * c.scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(c.scale)

    def forward(self, x: Tensor) -> Tensor:
        s = self.config.scale
        out = self.shuffle(self.exit(self.trunk(self.entry(x))))
        return out + F.interpolate(x, scale_factor=s, mode="nearest")


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    return all(k in state_dict for k in ("entry.conv.weight", "entry.act.weight", "exit.weight"))


def infer_config(state_dict: Mapping[str, Tensor]) -> CompactConfig:
    entry = state_dict["entry.conv.weight"]
    n_feats, n_colors = int(entry.shape[0]), int(entry.shape[1])
    out = int(state_dict["exit.weight"].shape[0])
    scale = math.isqrt(out // n_colors)
    if scale * scale * n_colors != out:
        raise ValueError(f"exit conv has {out} channels: not {n_colors} x scale^2")
    n_convs = seq_len(state_dict, "trunk")
    return CompactConfig(scale=scale, n_feats=n_feats, n_convs=n_convs, n_colors=n_colors)


SPEC = ArchSpec(
    name="compact",
    config_cls=CompactConfig,
    model_cls=Compact,
    paper="Wang et al., Real-ESRGAN (SRVGGNetCompact design), ICCV-W 2021",
    detect=detect,
    infer_config=infer_config,
    scales=tuple(range(1, 9)),  # PixelShuffle takes any factor; x1 is a restoration (denoise, deblur) model
)

VARIANTS = (
    Variant(
        "compact",
        "compact",
        {"n_feats": 64, "n_convs": 3},
        "plain 3x3 convs + PReLU, 64 ch, 5 convs, for CPUs (>10x fewer MACs than EDSR-S)",
    ),
)
