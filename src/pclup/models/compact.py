"""Compact (Real-ESRGAN's SRVGGNetCompact): a plain stack of 3x3 convolutions with an activation (PReLU by
default) and a sub-pixel output.

Design after SRVGGNetCompact, the "compact" network of Real-ESRGAN (Wang et al., "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data", ICCV-W 2021, https://arxiv.org/abs/2107.10833;
upstream https://github.com/xinntao/Real-ESRGAN, BSD-3-Clause): no normalisation, no residual blocks, an
activation (PReLU; ReLU or LeakyReLU in some community models) after every convolution but the last,
``PixelShuffle`` to the output size, and the nearest-neighbour upscale of the input added, so the network
only predicts the residual. Independent code with its own key names;
Real-ESRGAN's ``body.N`` layout (``realesr-general-x4v3``, ``realesr-animevideov3`` and community models) is
mapped onto them on loading (:func:`import_realesrgan`) and back (:func:`export_realesrgan`).

Chosen on measured quality per CPU time over an FSRCNN-style net, a small residual (EDSR-like) net and
other widths/depths of this design within the same budget: see ``docs/compact-architecture.md`` and
``benchmarks/compact_selection.py``. The default (64 channels, 3 body convolutions) costs 119k / 128k / 140k
convolution MACs per LR pixel at x2 / x3 / x4, 11.5x / 12.2x / 14.2x fewer than EDSR-S at the same scale,
with 120k / 129k / 141k parameters.

State-dict layout (F = ``n_feats``, C = ``n_colors``, s = ``scale``)::

    entry.conv.weight (F,C,3,3), entry.conv.bias (F), entry.act.weight (F)      first conv + PReLU
    trunk.{i}.conv.weight (F,F,3,3), .conv.bias (F), .act.weight (F)            i < n_convs
    exit.weight (C*s*s,F,3,3), exit.bias (C*s*s)                                to sub-pixels

(``act.weight`` only with ``act_type="prelu"``; ReLU and LeakyReLU(0.1) have no weights.) Real-ESRGAN's
layout of the same network (N = ``n_convs``)::

    body.0.weight/bias         first conv          body.1.weight          its PReLU (if PReLU)
    body.{2i+2}.weight/bias    body conv i         body.{2i+3}.weight     its PReLU (if PReLU), i < N
    body.{2N+2}.weight/bias    last conv (C*s*s channels), then PixelShuffle

The names (``entry``/``trunk``/``exit``) are chosen not to collide with EDSR/RCAN/NLSN (``head``/``body``/
``tail``), SwinIR (``conv_first``/``layers``) or Real-ESRGAN (``body.N``) layouts. The activation of a ReLU or
LeakyReLU file cannot be told from its weights: such a file loads with :data:`DEFAULT_WEIGHTLESS_ACT`
unless ``act_type`` is given (a pclup ``config.json``, or ``overrides`` to ``load_foreign``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import seq_len
from .registry import ArchSpec, SRModel, StateDict, Variant, arg

Activation = Literal["prelu", "relu", "leakyrelu"]
# The activation of a state dict without activation weights (ReLU and LeakyReLU leave none). spandrel does
# not load such files at all (it needs ``body.1.weight``); ReLU is the plainest reading.
DEFAULT_WEIGHTLESS_ACT: Activation = "relu"
LEAKY_SLOPE = 0.1  # Real-ESRGAN's LeakyReLU


@dataclass(frozen=True)
class CompactConfig:
    scale: int = 4
    n_feats: int = arg(64, 1, 4096)
    n_convs: int = arg(3, 0, 128)  # 3x3 F->F convolutions between the entry and the exit convolution
    n_colors: int = arg(3, 1, 4)
    act_type: Activation = "prelu"  # Real-ESRGAN's name; older config.json files omit it (PReLU)


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU()
    if kind == "leakyrelu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    raise ValueError(f"unknown activation {kind!r} (prelu, relu or leakyrelu)")


class _ConvAct(nn.Module):
    """A 3x3 'same' convolution followed by the activation. Keys: ``conv.*``, ``act.weight`` (PReLU)."""

    def __init__(self, in_channels: int, out_channels: int, act_type: str = "prelu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act = _activation(act_type, out_channels)

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
        self.entry = _ConvAct(c.n_colors, c.n_feats, c.act_type)
        self.trunk = nn.Sequential(*[_ConvAct(c.n_feats, c.n_feats, c.act_type) for _ in range(c.n_convs)])
        self.exit = nn.Conv2d(c.n_feats, c.n_colors * c.scale * c.scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(c.scale)

    def forward(self, x: Tensor) -> Tensor:
        s = self.config.scale
        out = self.shuffle(self.exit(self.trunk(self.entry(x))))
        return out + F.interpolate(x, scale_factor=s, mode="nearest")


def deepen(model: Compact, n_convs: int) -> Compact:
    """The same function as ``model`` with ``n_convs`` trunk convolutions: the extra ones, appended after its
    own, are identities (3x3 kernels with the identity at the centre, zero bias, PReLU slope 1; after a ReLU
    its inputs are never negative), so the deeper network starts where ``model`` is and can learn more.

    Raises:
        ValueError: ``n_convs`` below ``model``'s, or a LeakyReLU model (its negative inputs would change).
    """
    import torch

    c = model.config
    if n_convs < c.n_convs:
        raise ValueError(f"deepen: {n_convs} convolutions is fewer than the model's {c.n_convs}")
    if c.act_type == "leakyrelu":
        raise ValueError("deepen: a LeakyReLU network has no identity layer (its slope is fixed)")
    deeper = Compact(CompactConfig(scale=c.scale, n_feats=c.n_feats, n_convs=n_convs, n_colors=c.n_colors,
                                   act_type=c.act_type))
    state = dict(model.state_dict())
    with torch.no_grad():
        for i in range(c.n_convs, n_convs):
            weight = torch.zeros(c.n_feats, c.n_feats, 3, 3)
            weight[:, :, 1, 1] = torch.eye(c.n_feats)
            state[f"trunk.{i}.conv.weight"] = weight
            state[f"trunk.{i}.conv.bias"] = torch.zeros(c.n_feats)
            if c.act_type == "prelu":
                state[f"trunk.{i}.act.weight"] = torch.ones(c.n_feats)
    deeper.load_state_dict(state)
    return deeper.to(next(model.parameters()).device)


_MAX_CONVS = int(next(f for f in fields(CompactConfig) if f.name == "n_convs").metadata["range"][1])
_BODY_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")


def _is_realesrgan(state_dict: Mapping[str, Tensor]) -> bool:
    """Every key is ``body.N.weight``/``bias`` and ``body.0.weight`` is a 3x3 convolution."""
    first = state_dict.get("body.0.weight")
    if first is None or first.dim() != 4 or tuple(first.shape[2:]) != (3, 3):
        return False
    return all(_BODY_KEY.match(k) for k in state_dict)


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    """pclup's own layout (``entry``/``trunk``/``exit``) or Real-ESRGAN's (``body.N`` only)."""
    if all(k in state_dict for k in ("entry.conv.weight", "exit.weight")):
        return True
    return _is_realesrgan(state_dict)


def _scale_of(out: int, n_colors: int) -> int:
    scale = math.isqrt(out // n_colors)
    if scale < 1 or scale * scale * n_colors != out:
        raise ValueError(f"last conv has {out} channels: not {n_colors} x scale^2")
    return scale


def _realesrgan_config(state_dict: Mapping[str, Tensor]) -> CompactConfig:
    first = state_dict["body.0.weight"]
    n_feats, n_colors = int(first.shape[0]), int(first.shape[1])
    indices = sorted({int(m.group(1)) for k in state_dict if (m := _BODY_KEY.match(k))})
    last = indices[-1]
    most = 2 * _MAX_CONVS + 2
    if last > most:  # checked before any list of that length is made
        raise ValueError(f"last layer is body.{last}: more than {_MAX_CONVS} body convolutions (body.{most})")
    if last < 2 or last % 2:
        raise ValueError(f"last layer is body.{last}: expected an even index of at least 2")
    if "body.1.weight" in state_dict:
        act: Activation = "prelu"
        expected = list(range(last + 1))
    else:
        act = DEFAULT_WEIGHTLESS_ACT
        expected = list(range(0, last + 1, 2))
    if indices != expected:
        missing = sorted(set(expected) - set(indices)) or sorted(set(indices) - set(expected))
        raise ValueError(f"body layers are not consecutive conv/activation pairs (at body.{missing[0]})")
    scale = _scale_of(int(state_dict[f"body.{last}.weight"].shape[0]), n_colors)
    n_convs = (last - 2) // 2
    return CompactConfig(scale=scale, n_feats=n_feats, n_convs=n_convs, n_colors=n_colors, act_type=act)


def infer_config(state_dict: Mapping[str, Tensor]) -> CompactConfig:
    if "entry.conv.weight" not in state_dict:
        return _realesrgan_config(state_dict)
    entry = state_dict["entry.conv.weight"]
    n_feats, n_colors = int(entry.shape[0]), int(entry.shape[1])
    scale = _scale_of(int(state_dict["exit.weight"].shape[0]), n_colors)
    n_convs = seq_len(state_dict, "trunk")
    act: Activation = "prelu" if "entry.act.weight" in state_dict else DEFAULT_WEIGHTLESS_ACT
    return CompactConfig(scale=scale, n_feats=n_feats, n_convs=n_convs, n_colors=n_colors, act_type=act)


def _layout_names(config: CompactConfig) -> dict[str, str]:
    """Real-ESRGAN's layer name -> pclup's, for this config (weights and biases alike)."""
    names = {"body.0": "entry.conv"}
    if config.act_type == "prelu":
        names["body.1"] = "entry.act"
    for i in range(config.n_convs):
        names[f"body.{2 * i + 2}"] = f"trunk.{i}.conv"
        if config.act_type == "prelu":
            names[f"body.{2 * i + 3}"] = f"trunk.{i}.act"
    names[f"body.{2 * config.n_convs + 2}"] = "exit"
    return names


def import_realesrgan(state_dict: StateDict, config: CompactConfig) -> StateDict:
    """Real-ESRGAN's ``body.N`` keys renamed to pclup's (pclup's own keys and unknown keys pass unchanged,
    so that the strict load names whatever does not fit)."""
    names = _layout_names(config)
    out: StateDict = {}
    for key, value in state_dict.items():
        layer, _, kind = key.rpartition(".")
        out[f"{names[layer]}.{kind}" if layer in names else key] = value
    return out


def export_realesrgan(state_dict: Mapping[str, Tensor], config: CompactConfig) -> StateDict:
    """pclup's keys renamed to Real-ESRGAN's ``body.N`` layout (what its ``SRVGGNetCompact`` and spandrel
    load, with ``num_feat=n_feats``, ``num_conv=n_convs``, ``upscale=scale``, ``act_type``)."""
    names = {ours: theirs for theirs, ours in _layout_names(config).items()}
    out: StateDict = {}
    for key, value in state_dict.items():
        layer, _, kind = key.rpartition(".")
        out[f"{names[layer]}.{kind}" if layer in names else key] = value
    return out


SPEC = ArchSpec(
    name="compact",
    config_cls=CompactConfig,
    model_cls=Compact,
    paper="Wang et al., Real-ESRGAN (SRVGGNetCompact design), ICCV-W 2021",
    detect=detect,
    infer_config=infer_config,
    import_foreign=import_realesrgan,
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
