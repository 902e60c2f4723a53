"""EDSR: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPR-W 2017.

Key layout of EDSR-PyTorch (github.com/sanghyun-son/EDSR-PyTorch, MIT), which super-image also uses, so
both families of published checkpoints load as they are. EDSR-S is the paper's baseline (16 blocks x 64
channels), EDSR-L the full model (32 x 256, residual scaling 0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from .blocks import MeanShift, MeanShiftedSR, ResBlock, Upsampler, conv3x3, seq_len, upsampler_scale
from .registry import ArchSpec, Variant, arg


@dataclass(frozen=True)
class EDSRConfig:
    scale: int = 4
    n_resblocks: int = arg(16, 1, 128)
    n_feats: int = arg(64, 1, 4096)
    res_scale: float = arg(1.0, 0.0, 10.0)
    n_colors: int = arg(3, 1, 4)
    rgb_range: float = arg(255.0, 0.01, 65535.0)  # the network computes on [0, rgb_range]; EDSR-PyTorch: 255
    # subtract the DIV2K mean at the input, add it back at the output (super-image: off)
    mean_shift: bool = True


class EDSR(MeanShiftedSR):
    config: EDSRConfig

    def __init__(self, config: EDSRConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.sub_mean = MeanShift(c.rgb_range, sign=-1)
        self.add_mean = MeanShift(c.rgb_range, sign=1)
        self.head = nn.Sequential(conv3x3(c.n_colors, c.n_feats))
        self.body = nn.Sequential(
            *[ResBlock(c.n_feats, res_scale=c.res_scale) for _ in range(c.n_resblocks)],
            conv3x3(c.n_feats, c.n_feats),
        )
        self.tail = nn.Sequential(Upsampler(c.scale, c.n_feats), conv3x3(c.n_feats, c.n_colors))


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    return (
        "head.0.weight" in state_dict
        and "body.0.body.0.weight" in state_dict
        and "body.0.body.2.weight" in state_dict
        and "tail.1.weight" in state_dict
        and not any("conv_match" in k or ".attention." in k or "msa." in k for k in state_dict)
    )


def infer_config(state_dict: Mapping[str, Tensor]) -> EDSRConfig:
    head = state_dict["head.0.weight"]
    n_feats, n_colors = int(head.shape[0]), int(head.shape[1])
    n_resblocks = seq_len(state_dict, "body") - 1
    tail = {k: v for k, v in state_dict.items() if k.startswith("tail.0.")}
    scale = upsampler_scale(tail, "tail.0", n_feats)
    # undetectable: the paper's EDSR-L (256 channels) scales residuals by 0.1, the baseline does not
    res_scale = 0.1 if n_feats >= 256 else 1.0
    return EDSRConfig(
        scale=scale, n_resblocks=n_resblocks, n_feats=n_feats, res_scale=res_scale, n_colors=n_colors
    )


SPEC = ArchSpec(
    name="edsr",
    config_cls=EDSRConfig,
    model_cls=EDSR,
    paper="Lim et al., EDSR, CVPR-W 2017",
    detect=detect,
    infer_config=infer_config,
)

VARIANTS = (
    Variant(
        "edsr-s", "edsr", {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
        "EDSR baseline, 16 blocks x 64",
    ),
    Variant("edsr-l", "edsr", {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1}, "EDSR, 32 blocks x 256"),
)
