"""Learning-rate schedules as pure functions of the step (nanoGPT's ``get_lr``)."""

from __future__ import annotations

import math

from ..config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, base: float | None = None) -> float:
    """The learning rate for ``step`` (0-based): linear warm-up, then cosine / multistep / constant."""
    base = cfg.lr if base is None else base
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return base * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return base
    if cfg.schedule == "multistep":
        return base * cfg.gamma ** sum(step >= m for m in cfg.milestones)
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (base - cfg.min_lr) * (1 + math.cos(math.pi * progress))
