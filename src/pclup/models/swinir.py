"""SwinIR: residual Swin Transformer blocks for image super-resolution.

Paper: J. Liang, J. Cao, G. Sun, K. Zhang, L. Van Gool, R. Timofte, "SwinIR: Image Restoration Using Swin
Transformer", ICCV Workshops 2021 (arXiv:2108.10257).
Layout source: https://github.com/JingyunLiang/SwinIR (``models/network_swinir.py``), Apache-2.0. This is a
separate implementation; only the module names and tensor shapes follow upstream, so that the released
``.pth`` files load with ``strict=True`` after :func:`import_official`.

Official checkpoints also carry two buffers that this module recomputes instead of storing:

* ``*.attn.relative_position_index``: a constant index table (a non-persistent buffer here);
* ``*.attn_mask`` (shifted blocks only): the shifted-window mask for a ``img_size`` x ``img_size`` input.
  Upstream itself recomputes the mask whenever the input size differs; here it is always computed for
  the padded input size, once per forward pass.

:func:`import_official` drops both; :func:`export_official` adds them back so that weights trained here load
in the upstream code and in spandrel. Only the super-resolution heads are supported (``pixelshuffle``,
``pixelshuffledirect``, ``nearest+conv``); the denoising / JPEG models (no upsampler) are not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import IncompatibleCheckpointError
from .registry import ArchSpec, SRModel, StateDict, Variant, arg

Upsampler = Literal["pixelshuffle", "pixelshuffledirect", "nearest+conv"]
ResiConnection = Literal["1conv", "3conv"]

_UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")
_RESI_CONNECTIONS = ("1conv", "3conv")
_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as upstream


@dataclass(frozen=True, kw_only=True)
class SwinIRConfig:
    """Hyper-parameters of :class:`SwinIR`; the defaults are classical SwinIR-M (paper Table 2).

    Attributes:
        scale: Upscaling factor (``pixelshuffle``: 2^n or 3; ``nearest+conv``: 2, 4 or 8).
        in_chans: Image channels in and out (3 for RGB, 1 for grey).
        img_size: Training LR patch size. It sets no weight shape; upstream stores a shifted-window mask
            of this size in its checkpoints, which :func:`export_official` reproduces.
        window_size: Side of the attention windows; inputs are padded to a multiple of it.
        img_range: Pixel range the body works in (1.0 for every SR checkpoint upstream).
        depths: Swin Transformer layers in each residual Swin Transformer block (RSTB).
        embed_dim: Feature channels of the body.
        num_heads: Attention heads in each RSTB; ``embed_dim`` must divide by each.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        upsampler: Reconstruction head: ``pixelshuffle`` (classical), ``pixelshuffledirect``
            (lightweight, one conv + pixel shuffle), ``nearest+conv`` (real-world models).
        resi_connection: Conv at the end of each RSTB and of the body: ``1conv`` (3x3) or ``3conv``
            (3x3 -> 1x1 -> 3x3 at a quarter of the width, used by the real-world SwinIR-L).
        num_feat: Width of the ``pixelshuffle`` / ``nearest+conv`` head (64 upstream).
        drop_path_rate: Stochastic depth rate at the last layer (linear from 0); training only.
    """

    scale: int = 4
    in_chans: int = arg(3, 1, 4)
    img_size: int = arg(48, 2, 4096)
    window_size: int = arg(8, 1, 64)
    img_range: float = arg(1.0, 0.01, 65535.0)
    depths: tuple[int, ...] = arg((6, 6, 6, 6, 6, 6), 1, 32, max_len=16)
    embed_dim: int = arg(180, 1, 4096)
    num_heads: tuple[int, ...] = arg((6, 6, 6, 6, 6, 6), 1, 256, max_len=16)
    mlp_ratio: float = arg(2.0, 0.01, 16.0)
    upsampler: Upsampler = "pixelshuffle"
    resi_connection: ResiConnection = "1conv"
    num_feat: int = arg(64, 1, 4096)
    drop_path_rate: float = arg(0.1, 0.0, 0.99)

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare and hash alike.
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        if len(self.depths) != len(self.num_heads) or not self.depths:
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} need the same length")
        if any(self.embed_dim % h for h in self.num_heads):
            raise ValueError(f"embed_dim {self.embed_dim} does not divide by num_heads {self.num_heads}")
        if self.upsampler not in _UPSAMPLERS:
            raise ValueError(f"upsampler '{self.upsampler}' is not one of {', '.join(_UPSAMPLERS)}")
        if self.resi_connection not in _RESI_CONNECTIONS:
            raise ValueError(f"resi_connection '{self.resi_connection}' is not one of 1conv, 3conv")
        if self.upsampler == "pixelshuffle" and not (self.scale == 3 or _is_power_of_two(self.scale)):
            raise ValueError(f"pixelshuffle supports scale 2^n or 3, not {self.scale}")
        if self.upsampler == "nearest+conv" and self.scale not in (2, 4, 8):
            raise ValueError(f"nearest+conv supports scale 2, 4 or 8, not {self.scale}")
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, not {self.scale}")
        # Upstream silently turns off shifted windows when img_size <= window_size; not reproduced here.
        if self.img_size <= self.window_size:
            raise ValueError(f"img_size {self.img_size} must exceed window_size {self.window_size}")


def _is_power_of_two(n: int) -> bool:
    return n >= 2 and n & (n - 1) == 0


# --------------------------------------------------------------------------- window helpers


def _to_windows(x: Tensor, window: int) -> Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, window**2, C)``, windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def _from_windows(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`_to_windows`: ``(B * nW, window**2, C)`` -> ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> Tensor:
    """``(window**2, window**2)`` index into the ``(2*window-1)**2`` relative position bias table."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack((rows.flatten(), cols.flatten()))  # 2, N
    delta = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2, N, N; each in [0, 2*window-2]
    return delta[0] * (2 * window - 1) + delta[1]


def shifted_window_mask(
    h: int, w: int, window: int, shift: int, device: torch.device | str | None = None
) -> Tensor:
    """``(nW, window**2, window**2)`` additive mask (0 or -100, as upstream) for shifted windows.

    After the cyclic shift, windows on the bottom/right edges hold pixels from up to three regions that
    were not adjacent in the image; tokens may only attend to tokens of their own region.
    """

    def regions(n: int) -> Tensor:
        idx = torch.arange(n, device=device)
        return (idx >= n - window).long() + (idx >= n - shift).long()

    label = (regions(h)[:, None] * 3 + regions(w)[None, :]).float()
    label = _to_windows(label[None, :, :, None], window).squeeze(-1)  # nW, N
    differ = label[:, None, :] != label[:, :, None]
    return torch.zeros(differ.shape, device=device).masked_fill(differ, -100.0)


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


# --------------------------------------------------------------------------- layers


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window x window`` windows, with relative position bias."""

    relative_position_index: Tensor

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x``: ``(B * nW, N, C)``; ``mask``: ``(nW, N, N)`` or None."""
        bw, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # B*nW, heads, N, N
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, heads).permute(2, 0, 1)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, heads, n, n) + mask[None, :, None]).view(bw, heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    """Two linear layers with a GELU between them."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual connection."""

    def __init__(
        self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor) -> Tensor:
        """``x``: ``(B, H*W, C)`` tokens of an ``size = (H, W)`` map; ``mask`` is used if shifted."""
        h, w = size
        b, length, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_to_windows(y, self.window), mask if self.shift else None)
        y = _from_windows(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + _drop_path(y.reshape(b, length, c), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class _BlockGroup(nn.Module):
    """The Swin Transformer layers of one RSTB (upstream ``BasicLayer``; holds ``blocks``)."""

    def __init__(self, blocks: list[SwinTransformerBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, size, mask)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    quarter = dim // 4
    return nn.Sequential(
        nn.Conv2d(dim, quarter, 3, 1, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(quarter, quarter, 1, 1, 0),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(quarter, dim, 3, 1, 1),
    )


def _tokens(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
    return x.flatten(2).transpose(1, 2)


def _feature_map(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)``."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *size)


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin layers, a conv, and a skip over both."""

    def __init__(self, config: SwinIRConfig, depth: int, num_heads: int, drop_path: list[float]) -> None:
        super().__init__()
        window = config.window_size
        self.residual_group = _BlockGroup(
            [
                SwinTransformerBlock(
                    config.embed_dim,
                    num_heads,
                    window,
                    0 if i % 2 == 0 else window // 2,
                    config.mlp_ratio,
                    drop_path[i],
                )
                for i in range(depth)
            ]
        )
        self.conv = _resi_conv(config.embed_dim, config.resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor) -> Tensor:
        y = _feature_map(self.residual_group(x, size, mask), size)
        return _tokens(self.conv(y)) + x


class PatchEmbed(nn.Module):
    """Feature map to tokens, then LayerNorm (upstream's ``patch_embed`` with patch size 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(_tokens(x))


def _pixelshuffle_upsample(scale: int, channels: int) -> nn.Sequential:
    """Conv + PixelShuffle(2) per factor 2, or one conv + PixelShuffle(3) for scale 3."""
    factors = [3] if scale == 3 else [2] * int(math.log2(scale))
    layers: list[nn.Module] = []
    for r in factors:
        layers += [nn.Conv2d(channels, r * r * channels, 3, 1, 1), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- network


class SwinIR(SRModel):
    """SwinIR for super-resolution.

    ``forward(x)`` takes ``(B, C, H, W)`` in ``[0, 1]`` of any size (padded internally, by reflection, to a
    multiple of ``window_size``) and returns ``(B, C, H*scale, W*scale)``, not clamped.
    """

    config: SwinIRConfig
    mean: Tensor

    def __init__(self, config: SwinIRConfig) -> None:
        super().__init__()
        self.config = config
        dim, chans = config.embed_dim, config.in_chans
        mean = torch.tensor(_RGB_MEAN) if chans == 3 else torch.zeros(1)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)

        # 1. shallow features
        self.conv_first = nn.Conv2d(chans, dim, 3, 1, 1)

        # 2. deep features
        self.patch_embed = PatchEmbed(dim)
        n_blocks = sum(config.depths)  # stochastic depth grows linearly from 0 (plain floats: meta-safe)
        rates = [config.drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.layers = nn.ModuleList()
        start = 0
        for depth, heads in zip(config.depths, config.num_heads, strict=True):
            self.layers.append(RSTB(config, depth, heads, rates[start : start + depth]))
            start += depth
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = _resi_conv(dim, config.resi_connection)

        # 3. reconstruction
        feat = config.num_feat
        if config.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(dim, config.scale**2 * chans, 3, 1, 1), nn.PixelShuffle(config.scale)
            )
        else:
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(dim, feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            if config.upsampler == "pixelshuffle":
                self.upsample = _pixelshuffle_upsample(config.scale, feat)
            else:  # nearest+conv: one conv per nearest x2 step
                self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
                if config.scale >= 4:
                    self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
                if config.scale == 8:
                    self.conv_up3 = nn.Conv2d(feat, feat, 3, 1, 1)
                self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
                self.lrelu = nn.LeakyReLU(0.2, inplace=True)
            self.conv_last = nn.Conv2d(feat, chans, 3, 1, 1)

        self.apply(_init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """The body without its last conv, ``(B, embed_dim, H, W)`` -> same; H, W multiples of the window."""
        size = (x.shape[2], x.shape[3])
        window = self.config.window_size
        mask = shifted_window_mask(*size, window, window // 2, device=x.device).to(x.dtype)
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, size, mask)
        return _feature_map(self.norm(tokens), size)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2], x.shape[3]
        x = _pad_to_multiple(x, self.config.window_size)
        x = (x - self.mean) * self.config.img_range

        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x

        if self.config.upsampler == "pixelshuffledirect":
            x = self.upsample(x)
        elif self.config.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.conv_before_upsample(x)
            for conv in (self.conv_up1, getattr(self, "conv_up2", None), getattr(self, "conv_up3", None)):
                if conv is not None:
                    x = self.lrelu(conv(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))

        x = x / self.config.img_range + self.mean
        s = self.config.scale
        return x[:, :, : h * s, : w * s]


def _init_weights(module: nn.Module) -> None:
    # As upstream: truncated normal linear weights, zero biases, unit LayerNorm; convs keep PyTorch's init.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad bottom/right to a multiple: reflection as upstream, replication where the image is too small."""
    h, w = x.shape[2], x.shape[3]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


# --------------------------------------------------------------------------- checkpoints

_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")
_BLOCK0 = "layers.0.residual_group.blocks.0."
_BLOCK_SUFFIXES = frozenset(
    f"{name}.{kind}"
    for name in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    for kind in ("weight", "bias")
) | {"attn.relative_position_bias_table", "attn.relative_position_index", "attn_mask"}
_DROPPED_SUFFIXES = (".attn.relative_position_index", ".attn_mask")


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    """True for SwinIR key layouts (upstream, spandrel, or this module's own).

    The block keys must be exactly SwinIR's, so that derived networks with the same prefixes (HAT's
    ``conv_block`` / ``overlap_attn``, Swin2SR's ``logit_scale`` / ``cpb_mlp``) are not taken for SwinIR.
    """
    required = (
        "conv_first.weight",
        "patch_embed.norm.weight",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.relative_position_bias_table",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "mlp.fc1.weight",
        "norm.weight",
    )
    if not all(key in state_dict for key in required):
        return False
    for key in state_dict:
        if key.startswith("layers.0."):
            rest = key[len("layers.0.") :]
            if rest.startswith("residual_group.blocks.0."):
                if rest[len("residual_group.blocks.0.") :] not in _BLOCK_SUFFIXES:
                    return False
            elif not rest.startswith(("residual_group.blocks.", "conv.")):
                return False
    return True


def infer_config(state_dict: Mapping[str, Tensor]) -> SwinIRConfig:
    """Read a SwinIR checkpoint's hyper-parameters from its key names and tensor shapes.

    ``img_size`` comes from the stored shifted-window mask when there is one (else 64, upstream's
    default); ``drop_path_rate`` cannot be read and keeps its default.

    Raises:
        IncompatibleCheckpointError: a SwinIR without an SR head (denoising, JPEG artefact removal).
    """
    conv_first = state_dict["conv_first.weight"]
    embed_dim, in_chans = int(conv_first.shape[0]), int(conv_first.shape[1])

    blocks: dict[int, int] = {}
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            layer, block = int(match.group(1)), int(match.group(2))
            blocks[layer] = max(blocks.get(layer, 0), block + 1)
    depths = tuple(blocks[i] for i in range(len(blocks)))
    num_heads = tuple(
        int(state_dict[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"].shape[1])
        for i in range(len(depths))
    )
    table = int(state_dict[_BLOCK0 + "attn.relative_position_bias_table"].shape[0])
    window_size = (math.isqrt(table) + 1) // 2
    mlp_ratio = state_dict[_BLOCK0 + "mlp.fc1.weight"].shape[0] / embed_dim

    img_size = 64
    masks = [key for key in state_dict if key.endswith(".attn_mask")]
    if masks:
        img_size = math.isqrt(int(state_dict[masks[0]].shape[0])) * window_size

    resi_connection: ResiConnection = "1conv" if "conv_after_body.weight" in state_dict else "3conv"

    num_feat = 64
    upsampler: Upsampler
    if "conv_before_upsample.0.weight" in state_dict:
        num_feat = int(state_dict["conv_before_upsample.0.weight"].shape[0])
        if "conv_up1.weight" in state_dict:
            upsampler = "nearest+conv"
            scale = 2 ** sum(f"conv_up{i}.weight" in state_dict for i in (1, 2, 3))
        else:
            upsampler = "pixelshuffle"
            scale = 1
            for key, tensor in state_dict.items():
                if re.fullmatch(r"upsample\.\d+\.weight", key):
                    scale *= math.isqrt(int(tensor.shape[0]) // num_feat)
    elif "upsample.0.weight" in state_dict:
        upsampler = "pixelshuffledirect"
        scale = math.isqrt(int(state_dict["upsample.0.weight"].shape[0]) // in_chans)
    else:
        raise IncompatibleCheckpointError(
            "this SwinIR checkpoint has no upsampler (a denoising or JPEG model); pclup supports the "
            "super-resolution SwinIR models only"
        )

    return SwinIRConfig(
        scale=scale,
        in_chans=in_chans,
        img_size=img_size,
        window_size=window_size,
        depths=depths,
        embed_dim=embed_dim,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        upsampler=upsampler,
        resi_connection=resi_connection,
        num_feat=num_feat,
    )


def import_official(state_dict: StateDict, config: SwinIRConfig) -> StateDict:
    """Upstream keys onto this module's: identical, minus the recomputed ``relative_position_index`` and
    ``attn_mask`` buffers."""
    return {k: v for k, v in state_dict.items() if not k.endswith(_DROPPED_SUFFIXES)}


def export_official(state_dict: StateDict, config: SwinIRConfig) -> StateDict:
    """This module's weights with upstream's buffers added back, for the upstream code or spandrel.

    Adds ``relative_position_index`` to every block and, to shifted blocks, the mask for an
    ``img_size`` x ``img_size`` input, exactly as upstream stores them.
    """
    out = dict(state_dict)
    window = config.window_size
    index = relative_position_index(window)
    mask = shifted_window_mask(config.img_size, config.img_size, window, window // 2)
    for layer, depth in enumerate(config.depths):
        for block in range(depth):
            prefix = f"layers.{layer}.residual_group.blocks.{block}."
            out[prefix + "attn.relative_position_index"] = index.clone()
            if block % 2:
                out[prefix + "attn_mask"] = mask.clone()
    return out


SPEC = ArchSpec(
    name="swinir",
    config_cls=SwinIRConfig,
    model_cls=SwinIR,
    paper="SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCV-W 2021)",
    detect=detect,
    infer_config=infer_config,
    import_foreign=import_official,
    supports_fp16=False,
    supports_bf16=True,
    size_multiple=1,
)

VARIANTS = (
    Variant(
        "swinir-m",
        "swinir",
        {
            "img_size": 48,
            "window_size": 8,
            "depths": (6, 6, 6, 6, 6, 6),
            "embed_dim": 180,
            "num_heads": (6, 6, 6, 6, 6, 6),
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffle",
            "resi_connection": "1conv",
        },
        "SwinIR-M, classical SR: 6 RSTB x 6 layers, 180 channels (11.9M params at x4)",
        scales=(2, 3, 4, 8),
    ),
    Variant(
        "swinir-light",
        "swinir",
        {
            "img_size": 64,
            "window_size": 8,
            "depths": (6, 6, 6, 6),
            "embed_dim": 60,
            "num_heads": (6, 6, 6, 6),
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffledirect",
            "resi_connection": "1conv",
        },
        "SwinIR-S, lightweight SR: 4 RSTB x 6 layers, 60 channels (930K params at x4)",
        scales=(2, 3, 4),
    ),
)
