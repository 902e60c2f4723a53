"""What ``pclup models`` says about each architecture variant, without importing torch.

The registry (:mod:`pclup.models`) builds networks and needs torch, which takes 1.5 s or more to import;
listing models (and describing the models shipped in the package) should answer at once. These tables
repeat the registry's names, scales, descriptions, papers, parameter counts and configuration defaults;
``tests/test_archinfo.py`` checks them against the registry, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VariantInfo:
    """One variant: its name, architecture, scales, one-line description, paper, parameters per scale."""

    name: str
    arch: str
    scales: tuple[int, ...]
    description: str
    paper: str
    parameters: dict[int, int]


VARIANTS: tuple[VariantInfo, ...] = (
    VariantInfo(
        "han",
        "han",
        (2, 3, 4),
        "HAN, RCAN trunk 10 groups x 20 RCABs x 64 + layer and channel-spatial attention",
        "Niu et al., HAN, ECCV 2020",
        {2: 15924057, 3: 16108697, 4: 16071769},
    ),
    VariantInfo(
        "rcan",
        "rcan",
        (2, 3, 4),
        "RCAN, 10 groups x 20 RCABs x 64",
        "Zhang et al., RCAN, ECCV 2018",
        {2: 15444667, 3: 15629307, 4: 15592379},
    ),
    VariantInfo(
        "nlsn",
        "nlsn",
        (2, 3, 4),
        "NLSN, EDSR 32 blocks x 256 + 5 non-local sparse attentions",
        "Mei et al., NLSN, CVPR 2021",
        {2: 41796187, 3: 44746587, 4: 44156507},
    ),
    VariantInfo(
        "edsr-s",
        "edsr",
        (2, 3, 4),
        "EDSR baseline, 16 blocks x 64",
        "Lim et al., EDSR, CVPR-W 2017",
        {2: 1369883, 3: 1554523, 4: 1517595},
    ),
    VariantInfo(
        "edsr-l",
        "edsr",
        (2, 3, 4),
        "EDSR, 32 blocks x 256",
        "Lim et al., EDSR, CVPR-W 2017",
        {2: 40729627, 3: 43680027, 4: 43089947},
    ),
    VariantInfo(
        "swinir-m",
        "swinir",
        (2, 3, 4, 8),
        "SwinIR-M, classical SR: 6 RSTB x 6 layers, 180 channels (11.9M params at x4)",
        "SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCV-W 2021)",
        {2: 11752487, 3: 11937127, 4: 11900199, 8: 12047911},
    ),
    VariantInfo(
        "swinir-light",
        "swinir",
        (2, 3, 4),
        "SwinIR-S, lightweight SR: 4 RSTB x 6 layers, 60 channels (930K params at x4)",
        "SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCV-W 2021)",
        {2: 910152, 3: 918267, 4: 929628},
    ),
    VariantInfo(
        "compact",
        "compact",
        (2, 3, 4),
        "plain 3x3 convs + PReLU, 64 ch, 5 convs, for CPUs (>10x fewer MACs than EDSR-S)",
        "Wang et al., Real-ESRGAN (SRVGGNetCompact design), ICCV-W 2021",
        {2: 119756, 3: 128411, 4: 140528},
    ),
    VariantInfo(
        "rrdbnet",
        "rrdbnet",
        (1, 2, 3, 4, 8),
        "ESRGAN / Real-ESRGAN generator, 23 RRDBs x 64",
        "Wang et al., ESRGAN, ECCV-W 2018 (Real-ESRGAN's RRDBNet)",
        {1: 16723907, 2: 16703171, 3: 16661059, 4: 16697987, 8: 16734915},
    ),
    VariantInfo(
        "rrdbnet-6b",
        "rrdbnet",
        (1, 2, 3, 4, 8),
        "RRDBNet with 6 blocks (RealESRGAN_x4plus_anime_6B)",
        "Wang et al., ESRGAN, ECCV-W 2018 (Real-ESRGAN's RRDBNet)",
        {1: 4493699, 2: 4472963, 3: 4430851, 4: 4467779, 8: 4504707},
    ),
)


@dataclass(frozen=True)
class ArchInfo:
    """One architecture: its paper, whether it runs in float16 / bfloat16, its configuration's defaults (in
    the configuration's field order)."""

    name: str
    paper: str
    supports_fp16: bool
    supports_bf16: bool
    defaults: dict[str, Any]


ARCHS: dict[str, ArchInfo] = {
    "han": ArchInfo(
        "han",
        "Niu et al., HAN, ECCV 2020",
        False,
        True,
        {
            "scale": 4,
            "n_resgroups": 10,
            "n_resblocks": 20,
            "n_feats": 64,
            "reduction": 16,
            "res_scale": 1.0,
            "n_colors": 3,
            "rgb_range": 255.0,
            "mean_shift": True,
        },
    ),
    "rcan": ArchInfo(
        "rcan",
        "Zhang et al., RCAN, ECCV 2018",
        False,
        True,
        {
            "scale": 4,
            "n_resgroups": 10,
            "n_resblocks": 20,
            "n_feats": 64,
            "reduction": 16,
            "res_scale": 1.0,
            "n_colors": 3,
            "rgb_range": 255.0,
            "mean_shift": True,
        },
    ),
    "nlsn": ArchInfo(
        "nlsn",
        "Mei et al., NLSN, CVPR 2021",
        False,
        True,
        {
            "scale": 4,
            "n_resblocks": 32,
            "n_feats": 256,
            "res_scale": 0.1,
            "n_hashes": 4,
            "chunk_size": 144,
            "reduction": 4,
            "n_colors": 3,
            "rgb_range": 1.0,
            "mean_shift": True,
            "hash_seed": 0,
        },
    ),
    "edsr": ArchInfo(
        "edsr",
        "Lim et al., EDSR, CVPR-W 2017",
        True,
        True,
        {
            "scale": 4,
            "n_resblocks": 16,
            "n_feats": 64,
            "res_scale": 1.0,
            "n_colors": 3,
            "rgb_range": 255.0,
            "mean_shift": True,
        },
    ),
    "swinir": ArchInfo(
        "swinir",
        "SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCV-W 2021)",
        False,
        True,
        {
            "scale": 4,
            "in_chans": 3,
            "img_size": 48,
            "window_size": 8,
            "img_range": 1.0,
            "depths": (6, 6, 6, 6, 6, 6),
            "embed_dim": 180,
            "num_heads": (6, 6, 6, 6, 6, 6),
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffle",
            "resi_connection": "1conv",
            "num_feat": 64,
            "drop_path_rate": 0.1,
        },
    ),
    "compact": ArchInfo(
        "compact",
        "Wang et al., Real-ESRGAN (SRVGGNetCompact design), ICCV-W 2021",
        True,
        True,
        {"scale": 4, "n_feats": 64, "n_convs": 3, "n_colors": 3, "act_type": "prelu"},
    ),
    "rrdbnet": ArchInfo(
        "rrdbnet",
        "Wang et al., ESRGAN, ECCV-W 2018 (Real-ESRGAN's RRDBNet)",
        True,
        True,
        {"scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32, "n_colors": 3, "unshuffle": True},
    ),
}


def variant_info(name: str) -> VariantInfo | None:
    """The variant called ``name`` (any case), else None."""
    return next((v for v in VARIANTS if v.name == name.lower()), None)


def close_matches(name: str, candidates: list[str]) -> str:
    """``" (did you mean: a, b?)"`` for the candidates close to ``name``, or an empty string."""
    hits = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(hits)}?)" if hits else ""


def packaged_model_info(folder: Path, name: str, source: str) -> dict[str, Any]:
    """What ``pclup info`` shows for a model shipped in the package (trusted files), read from its
    ``config.json`` and the header of its ``model.safetensors``: no network is built, torch is not
    imported."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = ARCHS[config["architecture"]]
    with open(folder / "model.safetensors", "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    parameters = sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    settings = {**arch.defaults, **config.get("args", {}), "scale": config["scale"]}
    return {
        "name": name,
        "source": source,
        "architecture": arch.name,
        "scale": config["scale"],
        "parameters": parameters,
        "supports_fp16": arch.supports_fp16,
        "supports_bf16": arch.supports_bf16,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
    }
