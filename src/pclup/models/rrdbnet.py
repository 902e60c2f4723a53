"""RRDBNet: the ESRGAN generator (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
Networks", ECCV-W 2018), as Real-ESRGAN uses it (Wang et al., ICCV-W 2021): RealESRGAN_x4plus / x2plus,
anime_6B, BSRGAN, 4x-UltraSharp and the many community ESRGAN models.

Residual-in-residual dense blocks (three 5-conv dense blocks, each scaled by 0.2, inside a 0.2-scaled
residual), a long skip, then per factor 2 a nearest upscale + conv + LeakyReLU(0.2). As in Real-ESRGAN,
``scale`` 2 and 1 (with ``unshuffle``) pixel-unshuffle the input by 2 and 4 and run the x4 network; odd
sizes are padded (reflect) and the output cropped. ``unshuffle=False`` gives old ESRGAN x2 / x1 models,
with one / no upsampling conv. ``scale`` 3 upsamples once by 3 (nearest) before its one conv, as old
ESRGAN's x3 option did; its weights look like an x2 model's, so a third-party file is always read as x2.

pclup's own key layout is BasicSR's (F = ``num_feat``, G = ``num_grow_ch``, C = ``n_colors``)::

    conv_first (F, C*u*u, 3, 3)            u = 4 / scale when unshuffling, else 1
    body.{i}.rdb{1,2,3}.conv{1..5}         conv k: (G, F+(k-1)G) for k < 5, conv5: (F, F+4G)
    conv_body (F, F), conv_up{1..n} (F, F), conv_hr (F, F), conv_last (C, F)

The other published layouts are converted to it on import: old ESRGAN (``model.0``, ``model.1.sub.N.RDB1.
conv1.0``, upsampling convs at ``model.3``, ``model.6``, ...; the loader strips the common ``model.``
prefix) and BSRGAN / RealSR (``RRDB_trunk.N.RDB1.conv1``, ``trunk_conv``, ``upconv1``, ``HRconv``).
ESRGAN+ (``conv1x1``) is not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import seq_len
from .registry import ArchSpec, SRModel, StateDict, Variant, arg


@dataclass(frozen=True)
class RRDBNetConfig:
    scale: int = 4
    num_feat: int = arg(64, 1, 1024)
    num_block: int = arg(23, 1, 128)
    num_grow_ch: int = arg(32, 1, 1024)
    n_colors: int = arg(3, 1, 4)
    # x2 / x1 as Real-ESRGAN: pixel-unshuffle the input, then the x4 network (False: old ESRGAN x2/x1)
    unshuffle: bool = True


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class _DenseBlock(nn.Module):
    """Five densely connected convs; the last one's output, scaled by 0.2, added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = _conv(f, g)
        self.conv2 = _conv(f + g, g)
        self.conv3 = _conv(f + 2 * g, g)
        self.conv4 = _conv(f + 3 * g, g)
        self.conv5 = _conv(f + 4 * g, f)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + self.conv5(torch.cat(feats, 1)) * 0.2


class _RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = _DenseBlock(num_feat, num_grow_ch)
        self.rdb2 = _DenseBlock(num_feat, num_grow_ch)
        self.rdb3 = _DenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.rdb3(self.rdb2(self.rdb1(x))) * 0.2


def _geometry(config: RRDBNetConfig) -> tuple[int, int]:
    """(pixel-unshuffle factor, number of x2 upsampling convs) of a config."""
    if config.unshuffle and config.scale in (1, 2):
        return 4 // config.scale, 2
    if config.scale == 3:
        return 1, 1
    return 1, config.scale.bit_length() - 1


class RRDBNet(SRModel):
    config: RRDBNetConfig

    def __init__(self, config: RRDBNetConfig) -> None:
        super().__init__()
        c = config
        if c.scale not in (1, 2, 3, 4, 8):
            raise ValueError(f"scale must be 1, 2, 3, 4 or 8, got {c.scale}")
        self.config = config
        factor, n_up = _geometry(c)
        self.conv_first = _conv(c.n_colors * factor * factor, c.num_feat)
        self.body = nn.Sequential(*[_RRDB(c.num_feat, c.num_grow_ch) for _ in range(c.num_block)])
        self.conv_body = _conv(c.num_feat, c.num_feat)
        for i in range(1, n_up + 1):
            self.add_module(f"conv_up{i}", _conv(c.num_feat, c.num_feat))
        self.conv_hr = _conv(c.num_feat, c.num_feat)
        self.conv_last = _conv(c.num_feat, c.n_colors)
        self._factor, self._n_up = factor, n_up
        self._up_factor = 3 if c.scale == 3 else 2

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if self._factor > 1:
            pad_h, pad_w = -h % self._factor, -w % self._factor
            if pad_h or pad_w:
                mode = "reflect" if pad_h < h and pad_w < w else "replicate"
                x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
            x = F.pixel_unshuffle(x, self._factor)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self._n_up + 1):
            up = getattr(self, f"conv_up{i}")
            feat = F.leaky_relu(up(F.interpolate(feat, scale_factor=self._up_factor, mode="nearest")), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        s = self.config.scale
        return out[..., : h * s, : w * s] if self._factor > 1 else out


# --- third-party layouts -------------------------------------------------------------------------------

_OLD_BLOCK = re.compile(r"^1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_BSRGAN_BLOCK = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")
_OLD_INDEX = re.compile(r"^(\d+)\.(weight|bias)$")
_BSRGAN_NAMES = {
    "trunk_conv": "conv_body",
    "HRconv": "conv_hr",
    "upconv1": "conv_up1",
    "upconv2": "conv_up2",
    "upconv3": "conv_up3",
}


def _from_old(state: Mapping[str, Tensor]) -> StateDict:
    """Old ESRGAN (``model.`` prefix already stripped) to the BasicSR layout."""
    n_block = seq_len(state, "1.sub") - 1
    indices = sorted({int(m.group(1)) for k in state if (m := _OLD_INDEX.match(k))})
    if n_block < 1 or not indices or indices[0] != 0:
        raise ValueError("not an old-ESRGAN layout")
    last = indices[-1]
    names = {0: "conv_first", last - 2: "conv_hr", last: "conv_last"}
    names.update({3 * i: f"conv_up{i}" for i in range(1, (last - 4) // 3 + 1)})
    out: StateDict = {}
    for key, value in state.items():
        if m := _OLD_BLOCK.match(key):
            i, j, k, kind = m.groups()
            out[f"body.{i}.rdb{j}.conv{k}.{kind}"] = value
        elif key.startswith(f"1.sub.{n_block}."):
            out["conv_body." + key.rsplit(".", 1)[1]] = value
        elif (m := _OLD_INDEX.match(key)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
        else:
            out[key] = value  # left as it is: the strict load names it
    return out


def _from_bsrgan(state: Mapping[str, Tensor]) -> StateDict:
    out: StateDict = {}
    for key, value in state.items():
        if m := _BSRGAN_BLOCK.match(key):
            i, j, k, kind = m.groups()
            out[f"body.{i}.rdb{j}.conv{k}.{kind}"] = value
        else:
            head, _, kind = key.rpartition(".")
            out[f"{_BSRGAN_NAMES.get(head, head)}.{kind}"] = value
    return out


def to_native(state: Mapping[str, Tensor]) -> StateDict:
    """Any of the three RRDBNet layouts as pclup's (BasicSR's) keys; other state dicts unchanged."""
    if all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    if "0.weight" in state and "1.sub.0.RDB1.conv1.0.weight" in state:
        return _from_old(state)
    if "conv_first.weight" in state and "RRDB_trunk.0.RDB1.conv1.weight" in state:
        return _from_bsrgan(state)
    return dict(state)


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    if any("conv1x1" in k for k in state_dict):  # ESRGAN+
        return False
    native = to_native(state_dict)
    return all(
        k in native
        for k in (
            "conv_first.weight",
            "body.0.rdb1.conv1.weight",
            "conv_body.weight",
            "conv_hr.weight",
            "conv_last.weight",
        )
    )


def infer_config(state_dict: Mapping[str, Tensor]) -> RRDBNetConfig:
    sd = to_native(state_dict)
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    if first.ndim != 4 or last.ndim != 4:
        raise ValueError("conv_first / conv_last are not convolutions")
    num_feat, in_ch, colours = int(first.shape[0]), int(first.shape[1]), int(last.shape[0])
    n_up = sum(f"conv_up{i}.weight" in sd for i in range(1, 4))
    if any(f"conv_up{i}.weight" not in sd for i in range(1, n_up + 1)):
        raise ValueError("the upsampling convs are not numbered 1, 2, ...")
    unshuffle, scale = True, 2**n_up
    if in_ch != colours:
        if n_up != 2 or in_ch not in (4 * colours, 16 * colours):
            raise ValueError(f"{in_ch} input channels for {colours} output channels")
        scale = 2 if in_ch == 4 * colours else 1
    elif scale < 4:
        unshuffle = False
    return RRDBNetConfig(
        scale=scale,
        num_feat=num_feat,
        num_block=seq_len(sd, "body"),
        num_grow_ch=int(sd["body.0.rdb1.conv1.weight"].shape[0]),
        n_colors=colours,
        unshuffle=unshuffle,
    )


def import_foreign(state_dict: StateDict, config: Any) -> StateDict:
    return to_native(state_dict)


SPEC = ArchSpec(
    name="rrdbnet",
    config_cls=RRDBNetConfig,
    model_cls=RRDBNet,
    paper="Wang et al., ESRGAN, ECCV-W 2018 (Real-ESRGAN's RRDBNet)",
    detect=detect,
    infer_config=infer_config,
    import_foreign=import_foreign,
    scales=(1, 2, 3, 4, 8),
)

VARIANTS = (
    Variant(
        "rrdbnet",
        "rrdbnet",
        {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
        "ESRGAN / Real-ESRGAN generator, 23 RRDBs x 64",
        scales=(1, 2, 3, 4, 8),
    ),
    Variant(
        "rrdbnet-6b",
        "rrdbnet",
        {"num_feat": 64, "num_block": 6, "num_grow_ch": 32},
        "RRDBNet with 6 blocks (RealESRGAN_x4plus_anime_6B)",
        scales=(1, 2, 3, 4, 8),
    ),
)
