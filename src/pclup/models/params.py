"""Parameter counts of architecture variants, without allocating their weights."""

from __future__ import annotations

import torch

from .registry import count_parameters, create_model


def variant_parameters(variant: str, scale: int) -> int:
    """The parameter count of ``variant`` at ``scale``, built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        return count_parameters(create_model(variant, scale=scale))
