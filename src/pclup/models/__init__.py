"""Architectures and their registry (the built-in pretrained models are in :mod:`pclup.weights`).

Every architecture module is imported and registered here by name. The order is the order in which
third-party checkpoints are matched: an architecture whose key layout contains another's (HAN contains
RCAN's, NLSN contains EDSR's) comes first.
"""

from __future__ import annotations

from . import compact, edsr, han, nlsn, rcan, rrdbnet, swinir
from .registry import (
    ArchSpec,
    StateDict,
    Variant,
    arch_of,
    count_parameters,
    create_model,
    get_arch,
    get_variant,
    list_archs,
    list_variants,
    register_arch,
)

for _module in (han, rcan, nlsn, edsr, swinir, compact, rrdbnet):
    register_arch(_module.SPEC, _module.VARIANTS)

__all__ = [
    "ArchSpec",
    "StateDict",
    "Variant",
    "arch_of",
    "count_parameters",
    "create_model",
    "get_arch",
    "get_variant",
    "list_archs",
    "list_variants",
    "register_arch",
]
