"""Learning-rate schedules as pure functions of the step (nanoGPT's ``get_lr``)."""

from __future__ import annotations

import math

from ..config import OptimConfig


def lr_at(step: int, optim: OptimConfig) -> float:
    """The learning rate for ``step`` (0-based): linear warm-up, then cosine / multistep / constant."""
    base = optim.lr
    if optim.warmup_steps and step < optim.warmup_steps:
        return base * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return base
    if optim.schedule == "multistep":
        return base * optim.gamma ** sum(step >= m for m in optim.milestones)
    span = max(1, optim.steps - optim.warmup_steps)
    progress = min(1.0, (step - optim.warmup_steps) / span)
    return optim.min_lr + 0.5 * (base - optim.min_lr) * (1 + math.cos(math.pi * progress))
