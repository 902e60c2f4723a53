"""What ``pclup models`` says about each architecture variant, without importing torch.

The registry (:mod:`pclup.models`) builds networks and needs torch, which takes 1.5 s or more to import;
listing models should answer at once. This table repeats the registry's names, scales, descriptions,
papers and parameter counts; ``tests/test_archinfo.py`` checks it against the registry, so the two cannot
drift apart.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


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


def variant_info(name: str) -> VariantInfo | None:
    """The variant called ``name`` (any case), else None."""
    return next((v for v in VARIANTS if v.name == name.lower()), None)


def close_matches(name: str, candidates: list[str]) -> str:
    """``" (did you mean: a, b?)"`` for the candidates close to ``name``, or an empty string."""
    hits = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(hits)}?)" if hits else ""
