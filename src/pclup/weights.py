"""pclup's weights format, and safe reading of any weights file.

A model folder (or Hub repo) holds two files:

* ``config.json``: ``{"pclup_version", "architecture", "scale", "args", "metadata"}``; ``args`` are the
  architecture's constructor arguments (its config dataclass), ``metadata`` free-form strings;
* ``model.safetensors``: the network's state dict, float32 or float16 ("dtype" in metadata says which).

Loading is strict: a missing, unexpected or misshapen tensor is an error that names it. Nothing here
unpickles arbitrary objects: ``.safetensors`` files are read with safetensors, pickles with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._version import __version__
from .errors import IncompatibleCheckpointError, ModelFileError, UnsafeCheckpointError
from .models.registry import arch_of, get_arch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


# --- config.json -------------------------------------------------------------------------------------


def _tuples(value: Any) -> Any:
    # JSON has no tuples; config dataclasses are frozen and use tuples for sequences
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def config_to_dict(config: Any, arch: str, metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``config.json`` content for a network config of architecture ``arch``."""
    return {
        "pclup_version": __version__,
        "architecture": arch,
        "scale": config.scale,
        "args": dataclasses.asdict(config),
        "metadata": dict(metadata or {}),
    }


def config_from_dict(data: Mapping[str, Any], source: str = "config.json") -> Any:
    """The architecture's config dataclass from a ``config.json`` dict; errors name ``source``."""
    if not isinstance(data, Mapping) or "architecture" not in data or "args" not in data:
        raise IncompatibleCheckpointError(f"{source} is not a pclup model config (no 'architecture' and 'args')")
    spec = get_arch(str(data["architecture"]))
    args = {k: _tuples(v) for k, v in dict(data["args"]).items()}
    if "scale" in data and args.get("scale", data["scale"]) != data["scale"]:
        raise IncompatibleCheckpointError(f"{source} says scale {data['scale']} but its args say {args['scale']}")
    try:
        return spec.make_config(**args)
    except (TypeError, ValueError) as e:
        raise IncompatibleCheckpointError(f"{source}: bad arguments for '{spec.name}': {e}") from None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``config.json``; a missing or malformed file is a :class:`ModelFileError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: not a readable JSON config ({e})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not a JSON object")
    return data


# --- reading tensors safely --------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights file without executing code from it.

    Args:
        path: ``.safetensors``, or a PyTorch pickle (``.pt``, ``.pth``, ``.ckpt``, ``.bin``).

    Returns:
        What the file holds: a flat ``{name: Tensor}`` for safetensors; for a pickle whatever plain
        structure of dicts, lists and tensors it holds (``pclup.checkpoints.canonicalize`` unwraps it).

    Raises:
        ModelFileError: missing, empty, truncated or corrupt file, or an unknown kind of file.
        UnsafeCheckpointError: a pickle that would need arbitrary code (classes, functions) to load.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path}: empty file")
    with path.open("rb") as f:
        magic = f.read(8)
    if path.suffix == ".safetensors" or (not zipfile.is_zipfile(path) and _looks_like_safetensors(magic, size)):
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the outcome is what counts
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch reports the first global it refused, e.g. "GLOBAL os.system was not an allowed global"
        detail = str(e).split("Unsupported global:")[-1].split(".\n")[0].strip() if "Unsupported" in str(e) else ""
        why = f" ({detail.splitlines()[0]})" if detail else ""
        raise UnsafeCheckpointError(
            f"{path}: refused to load: the pickle needs code beyond plain tensors to load{why}; "
            "pclup never unpickles arbitrary objects (convert it to safetensors with a tool you trust)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: truncated or corrupt weights file ({first})") from None
    return data


def _looks_like_safetensors(magic: bytes, size: int) -> bool:
    if len(magic) < 8:
        return False
    header_len = int.from_bytes(magic, "little")
    return 2 <= header_len < min(size, 100_000_000)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError  # type: ignore[attr-defined]
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: truncated or corrupt safetensors file ({first})") from None


# --- strict loading ----------------------------------------------------------------------------------


def load_weights_strict(model: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """Copy ``state_dict`` into ``model``; any missing, unexpected or misshapen tensor is an error.

    The message names the architecture, the source and the first few offending keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} is {tuple(state_dict[k].shape)} in the file but {tuple(own[k].shape)} in the model"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        spec_name = getattr(arch_of(model), "name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:2])})")
        raise IncompatibleCheckpointError(
            f"{source}: weights do not fit {spec_name} x{model.config.scale}: " + ", ".join(parts)  # type: ignore[union-attr]
        )
    floats = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(floats, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


# --- save / load a model folder ----------------------------------------------------------------------


def save_pretrained(
    model: nn.Module,
    folder: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
    half: bool = False,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for a registered network.

    The folder is written next to its final place and renamed into it, so a crash never leaves a
    half-written model; an existing folder's two files are replaced (other files in it are kept).

    Args:
        model: A network built by :func:`pclup.models.create_model` (or loaded).
        folder: Destination folder; created if needed.
        metadata: Extra strings stored in ``config.json`` (recipe, dataset, ...).
        half: Store float16 tensors (half the size; loading converts back to float32).

    Returns:
        The folder's path.
    """
    from safetensors.torch import save_file

    spec = arch_of(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**dict(metadata or {}), "dtype": "float16" if half else "float32"}
    config = config_to_dict(model.config, spec.name, meta)  # type: ignore[arg-type]
    tensors = {
        k: (v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype)).contiguous()
        for k, v in model.state_dict().items()
    }
    tmp = Path(tempfile.mkdtemp(prefix=".pclup-save-", dir=folder))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "pclup_version": __version__})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        # weights first: a config.json is only ever next to complete weights
        os.replace(tmp / WEIGHTS_NAME, folder / WEIGHTS_NAME)
        os.replace(tmp / CONFIG_NAME, folder / CONFIG_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_from_files(config_path: str | os.PathLike[str], weights_path: str | os.PathLike[str]) -> nn.Module:
    """Build the network of ``config_path`` and load ``weights_path`` into it strictly (eval mode)."""
    config_path, weights_path = Path(config_path), Path(weights_path)
    data = read_config(config_path)
    config = config_from_dict(data, str(config_path))
    model = get_arch(str(data["architecture"])).build(config)
    state = read_state_dict(weights_path)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise IncompatibleCheckpointError(f"{weights_path}: not a flat dictionary of tensors")
    load_weights_strict(model, state, str(weights_path))
    return model.eval()


def load_pretrained(folder: str | os.PathLike[str]) -> nn.Module:
    """Load a model folder written by :func:`save_pretrained` (eval mode, float32, CPU).

    Raises:
        ModelFileError: a file is missing or unreadable.
        IncompatibleCheckpointError: the weights do not fit the config (the message names the keys).

    >>> import tempfile; from pclup.models import create_model
    >>> d = save_pretrained(create_model("edsr-s", scale=2), tempfile.mkdtemp())
    >>> load_pretrained(d).config.scale
    2
    """
    folder = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder}: not a pclup model folder (no {name})")
    return load_from_files(folder / CONFIG_NAME, folder / WEIGHTS_NAME)
