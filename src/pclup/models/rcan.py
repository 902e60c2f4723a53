"""RCAN: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
ECCV 2018 (arXiv:1807.02758).

Residual-in-residual trunk: ``n_resgroups`` residual groups, each ``n_resblocks`` residual channel
attention blocks (RCAB) and a conv, with a long shortcut around the whole trunk. Paper model: 10 groups x
20 RCABs x 64 channels, channel-attention reduction 16 (about 15.6 M parameters at x4).

Our own implementation. The state-dict key names and shapes are those of the authors' code,
RCAN-PyTorch (github.com/yulunzhang/RCAN, MIT licence) and EDSR-PyTorch (github.com/sanghyun-son/EDSR-PyTorch,
MIT licence), which spandrel and super-image also follow, so their checkpoints load as they are:
``head.0``, ``body.{g}.body.{b}.body.{0,2}`` (RCAB convs), ``body.{g}.body.{b}.body.3.conv_du.{0,2}``
(channel attention), ``body.{g}.body.{n_resblocks}`` (group conv), ``body.{n_resgroups}`` (trunk conv),
``tail.0.{0,2,...}`` (sub-pixel upsampler), ``tail.1`` (output conv), ``sub_mean`` / ``add_mean``.

Input conventions. The authors (and spandrel) compute on ``[0, 255]`` and subtract the DIV2K mean
(``rgb_range=255, mean_shift=True``; this module scales the ``[0, 1]`` input inside). spandrel's
``norm=False`` layout has no ``sub_mean``/``add_mean`` and computes on ``[0, 1]``
(``rgb_range=1, mean_shift=False``; the two modules are then not built, so such a dict loads strictly).
super-image's RCAN feeds its ``[0, 1]`` input straight into ``sub_mean``; with the stored mean-shift
weights that is ``rgb_range=1, mean_shift=True`` here whatever bias ``sub_mean`` holds. A state dict
cannot tell the two apart: :func:`infer_config` reads ``rgb_range`` from ``sub_mean``'s bias (255 for
both the authors' and super-image's default weights), i.e. it assumes the authors' convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn

from .blocks import (
    DIV2K_RGB_MEAN,
    MeanShift,
    MeanShiftConfig,
    MeanShiftedSR,
    ResidualGroup,
    Upsampler,
    conv3x3,
    seq_len,
    upsampler_scale,
)
from .registry import ArchSpec, StateDict, Variant, arg

# Keys that only HAN has on top of an RCAN trunk (layer attention, channel-spatial attention, fusion convs).
HAN_ONLY_PREFIXES = ("la.", "csa.", "last_conv.", "last.")


@dataclass(frozen=True)
class RCANConfig:
    scale: int = 4
    n_resgroups: int = arg(10, 1, 32)
    n_resblocks: int = arg(20, 1, 128)
    n_feats: int = arg(64, 1, 4096)
    reduction: int = arg(16, 1, 4096)  # channel-attention bottleneck: n_feats // reduction channels
    res_scale: float = arg(1.0, 0.0, 10.0)  # the authors' RCAB ignores it; 1 reproduces their network
    n_colors: int = arg(3, 1, 4)
    rgb_range: float = arg(255.0, 0.01, 65535.0)  # the network computes on [0, rgb_range]; RCAN-PyTorch: 255
    mean_shift: bool = True  # subtract the DIV2K mean at the input, add it back at the output

    def __post_init__(self) -> None:
        check_reduction(self.n_feats, self.reduction)


def check_reduction(n_feats: int, reduction: int) -> None:
    """A bottleneck of ``n_feats // reduction`` channels needs ``reduction <= n_feats``."""
    if reduction > n_feats:
        raise ValueError(f"reduction {reduction} leaves no channels of n_feats {n_feats}")


class TrunkConfig(MeanShiftConfig, Protocol):
    """The fields an RCAN-style trunk is built from (:class:`RCANConfig`, ``HANConfig``)."""

    @property
    def n_resgroups(self) -> int: ...
    @property
    def n_resblocks(self) -> int: ...
    @property
    def n_feats(self) -> int: ...
    @property
    def reduction(self) -> int: ...
    @property
    def res_scale(self) -> float: ...
    @property
    def n_colors(self) -> int: ...


class RCANTrunk(MeanShiftedSR):
    """What RCAN and HAN share: mean shift, ``head``, the residual groups in ``body``, ``tail``.

    ``body`` holds the groups followed by one conv; subclasses decide how the groups' outputs are fused.
    """

    config: TrunkConfig
    body: nn.Sequential

    def __init__(self, config: TrunkConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.mean_shift:
            if c.n_colors != len(DIV2K_RGB_MEAN):
                raise ValueError(f"mean_shift needs {len(DIV2K_RGB_MEAN)} colour channels, not {c.n_colors}")
            self.sub_mean = MeanShift(c.rgb_range, sign=-1)
            self.add_mean = MeanShift(c.rgb_range, sign=1)
        self.head = nn.Sequential(conv3x3(c.n_colors, c.n_feats))
        self.body = nn.Sequential(
            *[
                ResidualGroup(c.n_feats, c.n_resblocks, reduction=c.reduction, res_scale=c.res_scale)
                for _ in range(c.n_resgroups)
            ],
            conv3x3(c.n_feats, c.n_feats),
        )
        self.tail = nn.Sequential(Upsampler(c.scale, c.n_feats), conv3x3(c.n_feats, c.n_colors))


class RCAN(RCANTrunk):
    """Residual channel attention network: ``(B, C, H, W)`` in ``[0, 1]`` to ``(B, C, sH, sW)``."""

    config: RCANConfig

    def __init__(self, config: RCANConfig) -> None:
        super().__init__(config)


def has_rcan_trunk(state_dict: Mapping[str, Tensor]) -> bool:
    """The keys of an RCAN-style trunk (also present in HAN checkpoints)."""
    return all(
        k in state_dict
        for k in (
            "head.0.weight",
            "body.0.body.0.body.0.weight",
            "body.0.body.0.body.2.weight",
            "body.0.body.0.body.3.conv_du.0.weight",
            "body.0.body.0.body.3.conv_du.2.weight",
            "tail.1.weight",
        )
    )


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    return has_rcan_trunk(state_dict) and not any(k.startswith(HAN_ONLY_PREFIXES) for k in state_dict)


def _mean_shift_range(state_dict: Mapping[str, Tensor]) -> float:
    """The ``rgb_range`` that ``sub_mean``'s stored bias was built with (255 for the authors' weights)."""
    weight, bias = state_dict["sub_mean.weight"], state_dict["sub_mean.bias"]
    scale = float(weight[0, 0, 0, 0])  # 1 / std
    value = -float(bias[0]) / (scale * DIV2K_RGB_MEAN[0]) if scale else math.nan
    if not math.isfinite(value) or value <= 0:
        return 255.0
    return float(round(value)) if abs(value - round(value)) < 1e-3 else value


def infer_config(state_dict: Mapping[str, Tensor]) -> RCANConfig:
    """Hyper-parameters of an RCAN-style trunk (also HAN's), read from key names and tensor shapes."""
    head = state_dict["head.0.weight"]
    n_feats, n_colors = int(head.shape[0]), int(head.shape[1])
    tail = {k: v for k, v in state_dict.items() if k.startswith("tail.0.")}
    mean_shift = "sub_mean.weight" in state_dict
    return RCANConfig(
        scale=upsampler_scale(tail, "tail.0", n_feats),
        n_resgroups=seq_len(state_dict, "body") - 1,
        n_resblocks=seq_len(state_dict, "body.0.body") - 1,
        n_feats=n_feats,
        reduction=n_feats // int(state_dict["body.0.body.0.body.3.conv_du.0.weight"].shape[0]),
        res_scale=1.0,  # undetectable, and unused by the authors' code
        n_colors=n_colors,
        rgb_range=_mean_shift_range(state_dict) if mean_shift else 1.0,
        mean_shift=mean_shift,
    )


# An RCAB's parameter: ``body.{g}.body.{b}.body.{conv}`` or its attention ``...body.3.conv_du.{ca}``.
_RCAB_KEY = re.compile(
    r"body\.\d+\.body\.\d+\.body\.(?P<conv>\d+)\.(?:conv_du\.(?P<ca>\d+)\.)?(?:weight|bias)"
)


def export_spandrel(state_dict: Mapping[str, Tensor], config: RCANConfig) -> StateDict:
    """These weights in the layout and input convention of spandrel's RCAN (the authors' code, with
    ``res_scale`` ignored): ``rgb_range`` 255 with ``sub_mean``/``add_mean``, or 1 without them.

    A network of another ``rgb_range`` (or ``res_scale``) is the same function once its features are
    rescaled: by ``k = target / rgb_range`` every bias of the feature path is multiplied by ``k`` (the
    ReLUs and pixel shuffles commute with a positive scale), each channel attention's first conv weight is
    divided by ``k`` (its input grew by ``k``; the attention itself must not change), and ``res_scale`` is
    folded into each block's second conv (and divided out of its attention's first conv).
    """
    k = (255.0 if config.mean_shift else 1.0) / config.rgb_range
    s = config.res_scale
    out: StateDict = {}
    for key, value in state_dict.items():
        value = value.detach().clone()
        bias = key.endswith(".bias")
        rcab = _RCAB_KEY.fullmatch(key)
        if rcab is not None and rcab.group("ca") is not None:  # channel attention: scale-free
            if rcab.group("ca") == "0" and not bias and s > 0:
                value = value / (k * s)
        elif rcab is not None and rcab.group("conv") == "2":
            value = value * (k * s if bias else s)
        elif bias:
            value = value * k
        out[key] = value
    return out


SPEC = ArchSpec(
    name="rcan",
    config_cls=RCANConfig,
    model_cls=RCAN,
    paper="Zhang et al., RCAN, ECCV 2018",
    detect=detect,
    infer_config=infer_config,
    supports_fp16=False,  # features on [0, 255] overflow float16 (spandrel marks RCAN the same)
)

VARIANTS = (
    Variant(
        "rcan",
        "rcan",
        {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16, "res_scale": 1.0},
        "RCAN, 10 groups x 20 RCABs x 64",
    ),
)
