"""Training data: the train set decoded into memory, deterministic patch batches.

See :mod:`pclup.data.patches`.
"""

from __future__ import annotations

from .patches import (
    SAMPLING,
    BatchPlan,
    PatchBatches,
    ScanStats,
    StepSampler,
    TrainImages,
    augment,
    default_workers,
    make_loader,
    rgb_uint8,
    step_generator,
    unaugment,
)

__all__ = [
    "SAMPLING",
    "BatchPlan",
    "PatchBatches",
    "ScanStats",
    "StepSampler",
    "TrainImages",
    "augment",
    "default_workers",
    "make_loader",
    "rgb_uint8",
    "step_generator",
    "unaugment",
]
