"""NLSN: Mei, Fan, Zhou, "Image Super-Resolution with Non-Local Sparse Attention", CVPR 2021.

Paper: https://openaccess.thecvf.com/content/CVPR2021/html/Mei_Image_Super-Resolution_With_Non-Local_Sparse_Attention_CVPR_2021_paper.html
Upstream: https://github.com/HarukiYqM/Non-Local-Sparse-Attention (built on EDSR-PyTorch, MIT licence). This
is an independent implementation; only the module structure (and so the state-dict key names) follows the
authors' ``src/model/nlsn.py`` and ``src/model/attention.py``, so their published checkpoints
(``model_x2.pt``, ``model_x3.pt``, ``model_x4.pt``) and PCL-SR's NLSN fine-tunes load strictly.

Network: an EDSR trunk (32 ResBlocks x 256 channels, residual scaling 0.1) with a Non-Local Sparse Attention
(NLSA) module at the start of the body and after every 8th ResBlock (5 in total for 32 blocks).

State-dict layout (``n_resblocks=32``, ``n_feats=F=256``, ``reduction=4``, ``n_colors=3``)::

    sub_mean.weight (3,3,1,1), sub_mean.bias (3)          MeanShift, fixed (bias = -rgb_range * DIV2K mean)
    add_mean.weight (3,3,1,1), add_mean.bias (3)
    head.0.weight (F,3,3,3), head.0.bias (F)
    body.{0,9,18,27,36}.conv_match.0.weight (F/4,F,3,3), .bias (F/4)    NLSA: embedding that is hashed
    body.{0,9,18,27,36}.conv_assembly.0.weight (F,F,1,1), .bias (F)     NLSA: embedding that is assembled
    body.{1..8,10..17,19..26,28..35}.body.{0,2}.weight (F,F,3,3), .bias  ResBlocks (conv, ReLU, conv)
    body.37.weight (F,F,3,3), body.37.bias (F)                           conv closing the trunk
    tail.0.{0,2,...}.weight (4F,F,3,3), .bias (4F)                       Upsampler: one at x2, two at x4
    tail.0.0.weight (9F,F,3,3), .bias (9F)                               (Upsampler at x3)
    tail.1.weight (3,F,3,3), tail.1.bias (3)

The body is ``[NLSA] + for i in range(n_resblocks): [ResBlock] + ([NLSA] if (i + 1) % 8 == 0) + [conv]``
(upstream ``nlsn.py``), so the conv's index is ``n_resblocks + n_resblocks // 8 + 1``. ``conv_match`` and
``conv_assembly`` are EDSR-PyTorch ``BasicBlock``s without norm and activation, hence the ``.0``.

Differences from upstream, on purpose:

* **Deterministic hashing at inference.** Upstream draws the LSH random rotations with ``torch.randn`` at
  every forward pass, so two runs on the same image differ slightly. Here, in ``eval()`` mode, each NLSA
  draws them from its own ``torch.Generator`` (on the CPU, then moved to the device) seeded with
  ``config.hash_seed`` plus the module's position: every call, process and device uses the same rotations,
  so repeated calls give identical outputs, and one image's output does not depend on the rest of its batch
  (upstream already shares the rotations across the batch). The rotations depend on the input size through
  the bucket count (and so do the chunks), hence tiled inference with other tile sizes gives slightly
  different outputs. In ``train()`` mode the rotations are random at every call, as upstream (the global
  RNG).
* **Hashing in float32.** The rotation einsum and argmax run with autocast off, so bf16/fp16 autocast does
  not change bucket assignments.
* **Small inputs.** Upstream fails when a feature map has fewer than ``chunk_size`` pixels (zero buckets,
  and a padding longer than the sequence); here the bucket count is at least 2 and the padding wraps around.
  For every input upstream accepts, the computation is the same (``tests/models/test_nlsn.py`` checks it
  against a step-by-step transcription of upstream's forward).

``rgb_range``: the network computes on ``[0, rgb_range]``. NLSN's own training recipe and PCL-SR's NLSN script
use ``--rgb_range 1`` (EDSR-PyTorch's option default is 255); the upstream README trains the published
checkpoints with ``--rgb_range 1`` and PCL-SR fine-tunes them at 1. Attention scores are not scale-invariant,
so the range matters; the default here is 1.0, and :func:`infer_config` reads it back from ``sub_mean.bias``
(``-rgb_range * mean``), which a checkpoint stores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    DIV2K_RGB_MEAN,
    MeanShift,
    MeanShiftedSR,
    ResBlock,
    Upsampler,
    conv3x3,
    seq_len,
    upsampler_scale,
)
from .rcan import check_reduction
from .registry import ArchSpec, Variant, arg

ATTENTION_EVERY = 8
"""Upstream places an NLSA after every 8th ResBlock (hard-coded in ``nlsn.py``)."""


@dataclass(frozen=True)
class NLSNConfig:
    scale: int = 4
    n_resblocks: int = arg(32, 1, 128)
    n_feats: int = arg(256, 1, 4096)
    res_scale: float = arg(0.1, 0.0, 10.0)  # residual scaling of ResBlocks and NLSA modules
    n_hashes: int = arg(4, 1, 64)  # hashing rounds of each NLSA
    chunk_size: int = arg(144, 1, 65536)  # attention span: each query attends to its chunk and the 2 adjacent
    reduction: int = arg(4, 1, 4096)  # conv_match has n_feats // reduction channels
    n_colors: int = arg(3, 1, 4)
    rgb_range: float = arg(1.0, 0.01, 65535.0)  # NLSN's recipe and PCL-SR's script (EDSR-PyTorch: 255)
    mean_shift: bool = True  # subtract the DIV2K mean at the input, add it back at the output
    hash_seed: int = arg(0, 0, 2**63 - 1)  # seeds the LSH rotations in eval mode (not part of upstream)

    def __post_init__(self) -> None:
        check_reduction(self.n_feats, self.reduction)


def _batched_index_select(values: Tensor, indices: Tensor) -> Tensor:
    """``values[b, indices[b, i], :]`` for (B, L, C) values and (B, M) indices."""
    return values.gather(1, indices[:, :, None].expand(-1, -1, values.shape[-1]))


def _adjacent(x: Tensor) -> Tensor:
    """Concatenate each chunk with its previous and next chunk (cyclic) along the key axis (dim 3)."""
    back = torch.cat([x[:, :, -1:], x[:, :, :-1]], dim=2)
    forward = torch.cat([x[:, :, 1:], x[:, :, :1]], dim=2)
    return torch.cat([x, back, forward], dim=3)


class _Embed(nn.Sequential):
    """EDSR-PyTorch's ``BasicBlock`` without norm or activation: a Sequential of one conv (keys ``.0.*``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(conv3x3(in_channels, out_channels, kernel_size))


class NonLocalSparseAttention(nn.Module):
    """Non-Local Sparse Attention: spherical LSH buckets, attention within a chunk and its two neighbours.

    Keys: ``conv_match.0.{weight,bias}`` (3x3, C -> C/reduction),
    ``conv_assembly.0.{weight,bias}`` (1x1, C -> C).
    """

    def __init__(
        self,
        channels: int,
        n_hashes: int = 4,
        chunk_size: int = 144,
        reduction: int = 4,
        res_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_hashes = n_hashes
        self.chunk_size = chunk_size
        self.reduction = reduction
        self.res_scale = res_scale
        self.seed = seed
        self.conv_match = _Embed(channels, channels // reduction, 3)
        self.conv_assembly = _Embed(channels, channels, 1)

    def _rotations(self, channels: int, buckets: int, like: Tensor) -> Tensor:
        shape = (1, channels, self.n_hashes, buckets // 2)
        if self.training:
            return torch.randn(shape, dtype=torch.float32, device=like.device)
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randn(shape, generator=gen, dtype=torch.float32).to(like.device)

    def _hash(self, x: Tensor, buckets: int) -> Tensor:
        """Bucket codes (N, n_hashes * L), offset per hashing round, of embeddings x (N, L, C)."""
        n = x.shape[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            rot = self._rotations(x.shape[-1], buckets, x).expand(n, -1, -1, -1)
            rotated = torch.einsum("btf,bfhi->bhti", x.float(), rot)  # (N, hashes, L, buckets/2)
            codes = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # (N, hashes, L)
        offsets = torch.arange(self.n_hashes, device=x.device).view(1, -1, 1) * buckets
        return (codes + offsets).reshape(n, -1)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - upstream's name
        n, _, h, w = input.shape
        x_embed = self.conv_match(input).flatten(2).transpose(1, 2)  # (N, L, C)
        y_embed = self.conv_assembly(input).flatten(2).transpose(1, 2)  # (N, L, C * reduction)
        length, c = x_embed.shape[-2:]
        cy = y_embed.shape[-1]
        chunk = self.chunk_size

        # upstream: min(L // chunk + (L // chunk) % 2, 128); at least 2 so that small inputs work
        buckets = max(min(length // chunk + (length // chunk) % 2, 128), 2)
        codes = self._hash(x_embed, buckets).detach()

        # group positions with the same code by sorting; undo_sort restores the order
        _, indices = codes.sort(dim=-1)
        _, undo_sort = indices.sort(dim=-1)
        mod_indices = indices % length
        x_sorted = _batched_index_select(x_embed, mod_indices).reshape(n, self.n_hashes, length, c)
        y_sorted = _batched_index_select(y_embed, mod_indices).reshape(n, self.n_hashes, length, cy)

        # pad each round to a multiple of the chunk size by repeating its last positions (wrapping if short)
        padding = (chunk - length % chunk) % chunk
        if padding:
            pad_idx = (torch.arange(padding, device=input.device) + length - padding) % length
            x_sorted = torch.cat([x_sorted, x_sorted[:, :, pad_idx]], dim=2)
            y_sorted = torch.cat([y_sorted, y_sorted[:, :, pad_idx]], dim=2)
        x_buckets = x_sorted.reshape(n, self.n_hashes, -1, chunk, c)
        y_buckets = y_sorted.reshape(n, self.n_hashes, -1, chunk, cy)

        # queries unnormalised, keys L2-normalised (upstream), each chunk also attends to its neighbours
        x_match = _adjacent(F.normalize(x_buckets, p=2, dim=-1, eps=5e-5))
        y_buckets = _adjacent(y_buckets)
        raw_score = torch.einsum("bhkie,bhkje->bhkij", x_buckets, x_match)
        bucket_score = torch.logsumexp(raw_score, dim=-1, keepdim=True)
        score = torch.exp(raw_score - bucket_score)
        ret = torch.einsum("bukij,bukje->bukie", score, y_buckets).reshape(n, self.n_hashes, -1, cy)
        bucket_score = bucket_score.reshape(n, self.n_hashes, -1)
        if padding:
            ret = ret[:, :, :-padding]
            bucket_score = bucket_score[:, :, :-padding]

        # back to the original order, then weight the hashing rounds by their softmax-normalised scores
        ret = _batched_index_select(ret.reshape(n, -1, cy), undo_sort).reshape(n, self.n_hashes, length, cy)
        bucket_score = bucket_score.reshape(n, -1).gather(1, undo_sort).reshape(n, self.n_hashes, length, 1)
        ret = (ret * torch.softmax(bucket_score, dim=1)).sum(dim=1)
        return ret.transpose(1, 2).reshape(n, cy, h, w) * self.res_scale + input


class NLSN(MeanShiftedSR):
    config: NLSNConfig

    def __init__(self, config: NLSNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.n_feats % c.reduction:
            raise ValueError(f"n_feats {c.n_feats} is not a multiple of reduction {c.reduction}")
        self.sub_mean = MeanShift(c.rgb_range, sign=-1)
        self.add_mean = MeanShift(c.rgb_range, sign=1)
        self.head = nn.Sequential(conv3x3(c.n_colors, c.n_feats))
        n_attention = 0

        def attention() -> NonLocalSparseAttention:
            nonlocal n_attention
            n_attention += 1
            return NonLocalSparseAttention(
                c.n_feats,
                c.n_hashes,
                c.chunk_size,
                c.reduction,
                c.res_scale,
                seed=c.hash_seed + n_attention - 1,
            )

        body: list[nn.Module] = [attention()]
        for i in range(c.n_resblocks):
            body.append(ResBlock(c.n_feats, res_scale=c.res_scale))
            if (i + 1) % ATTENTION_EVERY == 0:
                body.append(attention())
        body.append(conv3x3(c.n_feats, c.n_feats))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(Upsampler(c.scale, c.n_feats), conv3x3(c.n_feats, c.n_colors))


def detect(state_dict: Mapping[str, Tensor]) -> bool:
    """NLSN's layout: an EDSR trunk whose body starts with an NLSA (``body.0.conv_match``), ResBlock next."""
    return (
        "head.0.weight" in state_dict
        and "body.0.conv_match.0.weight" in state_dict
        and "body.0.conv_assembly.0.weight" in state_dict
        and "body.1.body.0.weight" in state_dict
        and "body.1.body.2.weight" in state_dict
        and "tail.1.weight" in state_dict
    )


def _rgb_range(state_dict: Mapping[str, Tensor], default: float) -> float:
    """``rgb_range`` (1 or 255) from the MeanShift bias, ``-rgb_range * DIV2K mean``; else ``default``."""
    bias = state_dict.get("sub_mean.bias")
    if bias is None or bias.is_meta or bias.numel() < 1:
        return default
    value = -float(bias.flatten()[0]) / DIV2K_RGB_MEAN[0]
    if not math.isfinite(value) or value <= 0:
        return default
    return 255.0 if abs(value - 255.0) < abs(value - 1.0) else 1.0


def infer_config(state_dict: Mapping[str, Tensor]) -> NLSNConfig:
    """Hyper-parameters from key names and shapes; ``n_hashes``/``chunk_size``/``res_scale`` are not stored.

    Those three take the paper's values (4, 144, 0.1 for 256 channels; 1.0 for narrower trunks, like EDSR).
    """
    head = state_dict["head.0.weight"]
    n_feats, n_colors = int(head.shape[0]), int(head.shape[1])
    body_len = seq_len(state_dict, "body")
    blocks = sum(1 for i in range(body_len) if f"body.{i}.body.0.weight" in state_dict)
    attentions = [i for i in range(body_len) if f"body.{i}.conv_match.0.weight" in state_dict]
    if len(attentions) != 1 + blocks // ATTENTION_EVERY or body_len != blocks + len(attentions) + 1:
        raise ValueError(
            f"unexpected NLSN body: {blocks} ResBlocks, NLSA at {attentions}, {body_len} entries"
        )
    reduction = n_feats // int(state_dict["body.0.conv_match.0.weight"].shape[0])
    tail = {k: v for k, v in state_dict.items() if k.startswith("tail.0.")}
    scale = upsampler_scale(tail, "tail.0", n_feats)
    defaults = NLSNConfig()
    return NLSNConfig(
        scale=scale,
        n_resblocks=blocks,
        n_feats=n_feats,
        res_scale=0.1 if n_feats >= 256 else 1.0,
        reduction=reduction,
        n_colors=n_colors,
        rgb_range=_rgb_range(state_dict, defaults.rgb_range),
    )


SPEC = ArchSpec(
    name="nlsn",
    config_cls=NLSNConfig,
    model_cls=NLSN,
    paper="Mei et al., NLSN, CVPR 2021",
    detect=detect,
    infer_config=infer_config,
    supports_fp16=False,  # unverified: upstream ran fp32 only; EDSR-L-sized activations, attention logits
    supports_bf16=True,
)

VARIANTS = (
    Variant(
        "nlsn",
        "nlsn",
        {
            "n_resblocks": 32,
            "n_feats": 256,
            "res_scale": 0.1,
            "n_hashes": 4,
            "chunk_size": 144,
            "reduction": 4,
            "rgb_range": 1.0,
        },
        "NLSN, EDSR 32 blocks x 256 + 5 non-local sparse attentions",
    ),
)
