"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder::

    config.json         the SR network's config (pclup's weights format)
    model.safetensors   the SR network
    ema.safetensors     its exponential moving average (when EMA is on)
    disc.safetensors    the embedding/discriminator network (PCL runs)
    trainer_state.pt    step, optimiser states, RNG states, the run's configuration (TOML text)

``trainer_state.pt`` holds only tensors, numbers, strings and containers, and is read back with
``torch.load(weights_only=True)``. A checkpoint is written into a temporary sibling folder and swapped into
place, so an interruption leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._version import __version__
from ..errors import ModelFileError
from ..models.registry import arch_of
from ..weights import CONFIG_NAME, config_to_dict, read_state_dict

STATE_NAME = "trainer_state.pt"
TENSOR_FILES = {"model": "model.safetensors", "ema": "ema.safetensors", "disc": "disc.safetensors"}


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: state dicts and the trainer state (None where absent)."""

    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    disc: dict[str, Tensor] | None
    state: dict[str, Any]
    model_config: dict[str, Any]


def _tensors(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    folder: Path, *, model: nn.Module, ema: nn.Module | None, disc: nn.Module | None, state: dict[str, Any]
) -> Path:
    """Write a checkpoint folder atomically (see the module docstring)."""
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        spec = arch_of(model)
        (tmp / CONFIG_NAME).write_text(json.dumps(config_to_dict(model.config, spec.name), indent=2))  # type: ignore[arg-type]
        for key, module in (("model", model), ("ema", ema), ("disc", disc)):
            if module is not None:
                save_file(_tensors(module), str(tmp / TENSOR_FILES[key]), metadata={"pclup_version": __version__})
        torch.save(state, tmp / STATE_NAME)
        old = folder.parent / f".{folder.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint`.

    Raises:
        ModelFileError: not a checkpoint folder (names what is missing), or a damaged file.
    """
    folder = Path(folder)
    if (folder / "checkpoint" / STATE_NAME).is_file():  # the run folder was given
        folder = folder / "checkpoint"
    missing = [n for n in (CONFIG_NAME, TENSOR_FILES["model"], STATE_NAME) if not (folder / n).is_file()]
    if missing:
        raise ModelFileError(f"{folder}: not a pclup training checkpoint (no {', '.join(missing)})")
    try:
        state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is a damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{folder / STATE_NAME}: damaged or not a pclup trainer state ({first})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ModelFileError(f"{folder / STATE_NAME}: not a pclup trainer state")

    def tensors(key: str) -> dict[str, Tensor] | None:
        path = folder / TENSOR_FILES[key]
        return read_state_dict(path) if path.is_file() else None  # type: ignore[return-value]

    model = tensors("model")
    assert model is not None
    try:
        model_config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{folder / CONFIG_NAME}: damaged ({e})") from None
    return Checkpoint(model, tensors("ema"), tensors("disc"), state, model_config)
