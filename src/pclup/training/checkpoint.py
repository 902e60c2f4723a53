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

During a run, :class:`Checkpoints` writes them and remembers the newest complete one (error messages name
it); :func:`resume` loads one back into a run's networks, optimisers and random state.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._fs import umask
from .._version import __version__
from ..errors import IncompatibleCheckpointError, ModelFileError, PclupError, first_line
from ..models.registry import SRModel, arch_of
from ..weights import CONFIG_NAME, config_from_dict, config_to_dict, load_weights_strict, read_state_dict

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
    folder: Path, *, model: SRModel, ema: SRModel | None, disc: nn.Module | None, state: dict[str, Any]
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
        os.chmod(tmp, 0o777 & ~(umask() or 0))  # mkdtemp makes it private
        spec = arch_of(model)
        config = config_to_dict(model.config, spec.name)
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
        raise ModelFileError(
            f"{folder / STATE_NAME}: damaged or not a pclup trainer state ({first_line(e)})"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise ModelFileError(f"{folder / STATE_NAME}: not a pclup trainer state")

    def tensors(key: str) -> dict[str, Tensor] | None:
        path = folder / TENSOR_FILES[key]
        return read_state_dict(path) if path.is_file() else None

    model = tensors("model")
    assert model is not None
    try:
        model_config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{folder / CONFIG_NAME}: damaged ({e})") from None
    return Checkpoint(model, tensors("ema"), tensors("disc"), state, model_config)


def resume(
    path: str | Path | None, *, model: SRModel, ema: SRModel | None, disc: nn.Module | None,
    g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer | None, scale: int,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[int, float, Path | None]:
    """Load the checkpoint at ``path`` (a run or checkpoint folder) into a run: its networks, optimisers and
    the global random state; ``extra`` receives the trainer state (what :class:`Checkpoints`' ``extra`` added
    to it). Returns the step, the wall seconds of the run's earlier sessions and the
    checkpoint folder; ``(0, 0.0, None)`` without a ``path`` (a new run).

    Raises:
        ModelFileError: not a checkpoint, or a damaged one.
        IncompatibleCheckpointError: a checkpoint of another network, scale or loss.
    """
    if not path:
        return 0, 0.0, None
    ckpt = load_checkpoint(path)
    config_from_dict(ckpt.model_config, str(path))  # a foreign config fails here
    name, saved_scale = ckpt.model_config.get("architecture"), ckpt.model_config.get("scale")
    if name != arch_of(model).name or saved_scale != scale:
        raise IncompatibleCheckpointError(
            f"--resume {path}: holds {name} x{saved_scale}, this run trains {arch_of(model).name} x{scale}"
        )
    load_weights_strict(model, ckpt.model, str(path))
    if ema is not None and ckpt.ema is not None:
        load_weights_strict(ema, ckpt.ema, str(path))
    if disc is not None:
        if ckpt.disc is None:
            raise IncompatibleCheckpointError(f"--resume {path}: an L1 checkpoint cannot resume a PCL run")
        disc.load_state_dict(ckpt.disc)
    try:
        g_opt.load_state_dict(ckpt.state["g_opt"])
        if d_opt is not None:
            d_opt.load_state_dict(ckpt.state["d_opt"])
    except (KeyError, ValueError) as e:
        raise IncompatibleCheckpointError(
            f"--resume {path}: optimiser state does not fit this run ({e})"
        ) from None
    torch.set_rng_state(ckpt.state["torch_rng"])
    if extra is not None:
        extra(ckpt.state)
    return int(ckpt.state["step"]), float(ckpt.state.get("elapsed", 0.0)), checkpoint_folder(path)


class Checkpoints:
    """A run's ``checkpoint/`` folder: :meth:`save` writes it (on the process that writes, ``enabled``),
    :meth:`kept` says where the newest complete checkpoint is, for the messages of later failures.

    Args:
        recipe: the run's configuration as TOML, kept in the trainer state.
        last_good: ``(step, folder)`` of the checkpoint the run resumed, if any.
        extra: more trainer state to keep (plain values), asked for at each save.
    """

    def __init__(
        self, folder: Path, *, model: SRModel, ema: SRModel | None, disc: nn.Module | None,
        g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer | None, recipe: str, enabled: bool,
        last_good: tuple[int, Path] | None = None, extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.folder, self.model, self.ema, self.disc = folder, model, ema, disc
        self.g_opt, self.d_opt, self.recipe, self.enabled = g_opt, d_opt, recipe, enabled
        self.last_good = last_good
        self.extra = extra

    def save(self, step: int, elapsed: float) -> None:
        """Write the checkpoint of ``step`` (once) after ``elapsed`` wall seconds of the run."""
        if not self.enabled or self.last_good == (step, self.folder):
            return
        state = {
            "step": step,
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict() if self.d_opt else {},
            "torch_rng": torch.get_rng_state(),
            "config_toml": self.recipe,
            "pclup_version": __version__,
            "elapsed": elapsed,
            **(self.extra() if self.extra else {}),
        }
        try:
            save_checkpoint(self.folder, model=self.model, ema=self.ema, disc=self.disc, state=state)
        except PclupError as e:
            raise PclupError(f"{e}; {self.kept()}") from None
        self.last_good = (step, self.folder)

    def kept(self) -> str:
        if self.last_good is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint (step {self.last_good[0]}) is at {self.last_good[1]}"
