"""HAN: Niu et al., "Single Image Super-Resolution via a Holistic Attention Network", ECCV 2020.

An RCAN trunk (see :mod:`pclup.models.rcan`) whose intermediate features are fused by two extra modules:

* the layer attention module (LAM) weighs the outputs of every residual group and of the trunk's closing
  conv against each other (an ``N x N`` attention over the ``N = n_resgroups + 1`` feature maps), and a
  3x3 conv (``last_conv``) folds the ``N * n_feats`` channels back to ``n_feats``;
* the channel-spatial attention module (CSAM) rescales the trunk's last feature map with a sigmoid gate
  computed by one 3x3x3 convolution over (channel, height, width);
* ``last`` fuses the two (``2 * n_feats`` to ``n_feats``) before RCAN's long shortcut and upsampler.

Both attentions start as the identity (their ``gamma`` is initialised to zero). Paper model: 10 groups x
20 RCABs x 64 channels, reduction 16 (about 16.07 M parameters at x4).

Our own implementation. Key names and shapes follow the authors' code, HAN (github.com/wwlCape/HAN, built
on EDSR-PyTorch, MIT licence), which super-image's ``HanModel`` reproduces: the RCAN keys plus
``la.gamma``, ``csa.gamma``, ``csa.conv.{weight,bias}``, ``last_conv.{weight,bias}``, ``last.{weight,bias}``.
The authors hard-code ``last_conv`` to ``11 * n_feats`` inputs (10 groups); here it follows
``n_resgroups``.

Input conventions are RCAN's: the authors compute on ``[0, 255]`` (``rgb_range=255, mean_shift=True``).
super-image's ``HanModel`` feeds its ``[0, 1]`` input straight into ``sub_mean``, so its behaviour is
``rgb_range=1, mean_shift=True`` here, with whatever bias the loaded ``sub_mean`` holds;
:func:`infer_config` cannot tell that from the state dict and assumes the authors' convention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import rcan
from .rcan import RCANTrunk
from .registry import ArchSpec, Variant


@dataclass(frozen=True)
class HANConfig(rcan.RCANConfig):
    """HAN's hyper-parameters are RCAN's: the same trunk, with layer and channel-spatial attention on top."""


class LayerAttention(nn.Module):
    """LAM: self-attention across ``N`` stacked feature maps ``(B, N, C, H, W)``; returns ``(B, N*C, H, W)``.

    The attention of layer ``i`` to layer ``j`` is ``softmax_j(max_k E_ik - E_ij)`` with ``E`` the Gram
    matrix of the flattened maps, as in the authors' code. The Gram matrix of features on ``[0, 255]`` is
    large, so it is computed in float32 whatever the input dtype or autocast state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.reshape(b, n, c * h * w).float()
            energy = torch.bmm(flat, flat.transpose(1, 2))
            energy = energy.amax(dim=-1, keepdim=True) - energy
            attention = torch.softmax(energy, dim=-1)
            out = torch.bmm(attention, flat).to(x.dtype)
        out = self.gamma * out.view(b, n, c, h, w) + x
        return out.reshape(b, n * c, h, w)


class ChannelSpatialAttention(nn.Module):
    """CSAM: ``x * (1 + gamma * sigmoid(conv3d(x)))``, one 3x3x3 conv over (channel, height, width)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, kernel_size=3, padding=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.conv(x.unsqueeze(1))).squeeze(1)
        return x + x * (self.gamma * gate)


class HAN(RCANTrunk):
    """Holistic attention network. ``model(x)``: ``(B, C, H, W)`` in ``[0, 1]`` to ``(B, C, sH, sW)``."""

    config: HANConfig

    def __init__(self, config: HANConfig) -> None:
        super().__init__(config)
        n_feats, n_layers = config.n_feats, config.n_resgroups + 1
        self.csa = ChannelSpatialAttention()
        self.la = LayerAttention()
        self.last_conv = nn.Conv2d(n_feats * n_layers, n_feats, 3, padding=1)
        self.last = nn.Conv2d(n_feats * 2, n_feats, 3, padding=1)

    def trunk(self, x: Tensor) -> Tensor:
        layers = []
        for module in self.body:
            x = module(x)
            layers.append(x)
        # the authors stack the newest map first: index 0 is the closing conv's output
        stacked = torch.stack(layers[::-1], dim=1)
        fused_layers = self.last_conv(self.la(stacked))
        return self.last(torch.cat([self.csa(x), fused_layers], dim=1))


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    return rcan.has_rcan_trunk(state_dict) and all(
        k in state_dict
        for k in ("la.gamma", "csa.gamma", "csa.conv.weight", "last_conv.weight", "last.weight")
    )


def infer_config(state_dict: Mapping[str, Tensor]) -> HANConfig:
    trunk = rcan.infer_config(state_dict)
    layers_in = int(state_dict["last_conv.weight"].shape[1]) // trunk.n_feats
    if layers_in != trunk.n_resgroups + 1:
        raise ValueError(
            f"HAN checkpoint: last_conv fuses {layers_in} layers, but the trunk has "
            f"{trunk.n_resgroups} groups + 1 conv"
        )
    return HANConfig(**dataclasses.asdict(trunk))


SPEC = ArchSpec(
    name="han",
    config_cls=HANConfig,
    model_cls=HAN,
    paper="Niu et al., HAN, ECCV 2020",
    detect=detect,
    infer_config=infer_config,
    supports_fp16=False,  # the RCAN trunk on [0, 255] overflows float16
)

VARIANTS = (
    Variant(
        "han",
        "han",
        {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16, "res_scale": 1.0},
        "HAN, RCAN trunk 10 groups x 20 RCABs x 64 + layer and channel-spatial attention",
    ),
)
