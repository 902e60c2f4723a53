"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder::

    config.json         the SR network's config (pclup's weights format)
    model.safetensors   the SR network
    ema.safetensors     its exponential moving average (when EMA is on)
    disc.safetensors    the embedding/discriminator network (PCL runs)
    trainer_state.pt    step, optimiser states, RNG states, the run's configuration (TOML text)

``trainer_state.pt`` holds only tensors, numbers, strings and containers, and is read back with
``torch.load(weights_only=True)``. A checkpoint is written into a temporary sibling folder and swapped into
place, so an interruption or a full disk leaves either the previous checkpoint or the new one, never half of
one. Files and folders get the usual permissions (0666 and 0777 less the umask).
"""

from __future__ import annotations

import io
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(path: Path, data: bytes) -> None:
    """Write and flush a whole file (mode 0666 less the umask, as any file a program creates)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def checkpoint_folder(path: str | Path) -> Path:
    """The checkpoint folder that ``path`` means: a run folder's ``checkpoint/`` or ``path`` itself. A
    checkpoint still under its previous name (a save stopped between its two renames) is found too."""
    path = Path(path)
    for candidate in (path / "checkpoint", path):
        if (candidate / STATE_NAME).is_file():
            return candidate
        old = _old(candidate)
        if not candidate.exists() and (old / STATE_NAME).is_file():
            return old
    return path


def _old(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def checkpoint_step(path: str | Path) -> int | None:
    """The step of the checkpoint at ``path`` (a run or checkpoint folder), None where there is none."""
    try:
        state = torch.load(checkpoint_folder(path) / STATE_NAME, map_location="cpu", weights_only=True)
        return int(state["step"])
    except Exception:  # noqa: BLE001 - no readable checkpoint: nothing to report
        return None


def save_checkpoint(
    folder: Path, *, model: nn.Module, ema: nn.Module | None, disc: nn.Module | None, state: dict[str, Any]
) -> Path:
    """Write a checkpoint folder atomically (see the module docstring): the previous checkpoint is
    replaced only once the new one is complete, so a failure (a full disk) leaves it as it was.

    Raises:
        ModelFileError: ``cannot write checkpoint FOLDER: cause``; the previous checkpoint is untouched.
    """
    from safetensors.torch import save as safetensors_bytes

    folder = Path(folder)
    old = _old(folder)
    tmp: Path | None = None
    try:
        if not folder.exists() and (old / STATE_NAME).is_file():
            os.replace(old, folder)  # an earlier save stopped between its two renames
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        spec = arch_of(model)
        config = config_to_dict(model.config, spec.name)  # type: ignore[arg-type]
        _write(tmp / CONFIG_NAME, json.dumps(config, indent=2).encode())
        for key, module in (("model", model), ("ema", ema), ("disc", disc)):
            if module is not None:
                data = safetensors_bytes(_tensors(module), metadata={"pclup_version": __version__})
                _write(tmp / TENSOR_FILES[key], data)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        _write(tmp / STATE_NAME, buffer.getvalue())
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:
            if old.exists() and not folder.exists():
                os.replace(old, folder)
            raise
    except OSError as e:
        raise ModelFileError(f"cannot write checkpoint {folder}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint`.

    Raises:
        ModelFileError: not a checkpoint folder (names what is missing), or a damaged file.
    """
    folder = checkpoint_folder(folder)  # the run folder may be given
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
