"""Fine-tuning: :func:`train` from a model, with the fine-tuning recipe's defaults.

The recipe of the paper's released scripts (docs/method.md, "Fine-tuning a pretrained network"): a small
rate from pretrained weights; its 600k iterations scaled down to a user's own folder of images. Importing
this module does not import torch (the command line reads the defaults for its help).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig, load_config, read_settings, resolve_config

if TYPE_CHECKING:
    from .loop import RunStart, StepInfo

#: What fine-tuning changes from training's defaults (by flag name); a file or flags override them.
#: The loss is L1: in the PCL study (docs/results.md) no PCL fine-tune of the default models beat L1 on the
#: same batches. With ``--loss pcl``, the study's better PCL setting: the embedding network warmed up for 200
#: steps, lambda automatic at a contrastive gradient 0.05 times L1's.
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 5e-5, "steps": 20_000, "schedule": "cosine", "min_lr": 1e-7,
                                     "out": "runs/finetune", "loss": "l1", "pcl_grad_ratio": 0.05,
                                     "pcl_warmup_steps": 200}
FINETUNE_WARMUP = 500  # warm-up steps, at most a tenth of the run (a short run would never reach its rate)


def finetune_config(
    file: str | Path | None = None, settings: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The configuration of a fine-tuning run: :data:`FINETUNE_DEFAULTS`, then ``file`` (a TOML recipe),
    then ``settings`` (flat keys, the flags' names, or section tables). Unless one of them sets it, the
    warm-up is a tenth of the steps, at most :data:`FINETUNE_WARMUP`, and the model to start from
    (``init``) is the built-in default model of the scale. A model pclup loads through spandrel is refused
    (UsageError): pclup trains its own architectures only."""
    settings = settings or {}
    cfg = resolve_config(file, settings, base=FINETUNE_DEFAULTS)
    given = [read_settings(settings, "flags"), read_settings(load_config(file), str(file)) if file else {}]
    if not any("warmup_steps" in part.get("optim", {}) for part in given):
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(
            cfg.optim, warmup_steps=min(FINETUNE_WARMUP, cfg.optim.steps // 10)))
    if cfg.model.init is None:
        from ..weights import default_model_name

        model = dataclasses.replace(cfg.model, init=default_model_name(cfg.data.scale))
        cfg = dataclasses.replace(cfg, model=model)
    return cfg


def finetune(
    settings: Mapping[str, Any] | None = None,
    *,
    config: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_start: Callable[[RunStart], None] | None = None,
) -> Path:
    """Fine-tune a model on your own images; returns the folder of the new model.

    ``settings`` (e.g. ``{"data": ["my_images"], "init": "default-x4", "steps": 2000}``) and ``config`` (a
    TOML recipe) are read as by :func:`finetune_config`; the other arguments are :func:`train`'s.
    """
    from .loop import train

    cfg = finetune_config(config, settings)
    return train(cfg, resume=resume, overwrite=overwrite, on_step=on_step, on_start=on_start)

