"""pclup's networks out to other tools: one weights file in the layout spandrel (chaiNNer's loader) reads.

spandrel detects the architecture from the key names and reads the hyper-parameters from the shapes, so
the file holds only a flat state dict: ``.safetensors``, or ``.pth`` (``torch.save`` of a plain
``{name: Tensor}`` dict, no pickled classes). Per architecture:

* ``compact``: Real-ESRGAN's ``SRVGGNetCompact`` ``body.N`` layout (PReLU only: spandrel cannot tell the
  weightless activations apart and builds PReLU);
* ``rcan``: the authors' (EDSR-PyTorch) layout; other input ranges and ``res_scale`` are folded into the
  weights, since spandrel assumes ``[0, 255]`` with the mean shift (or ``[0, 1]`` without);
* ``swinir``: the official layout, with the buffers upstream stores (spandrel reads neither ``img_range``
  nor the head's ``num_feat``: it assumes 1, or 255 with 7-pixel windows, and 64);
* ``rrdbnet``: BasicSR's layout (pclup's own), which spandrel's ESRGAN loader reads (not x3, and only
  ``num_grow_ch`` 32: spandrel reads neither);
* ``edsr``, ``han``, ``nlsn``: spandrel has no such architecture (a :class:`~pclup.errors.UsageError`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._fs import atomic_write
from ..errors import UsageError
from ..models.registry import SRModel, StateDict, arch_of

SPANDREL_SUFFIXES = (".safetensors", ".pth")

# Why spandrel (0.4.2) cannot take an architecture: it has no loader for it.
_NO_SPANDREL = {
    "edsr": "spandrel (0.4) has no EDSR architecture: it detects none of EDSR's key layouts",
    "han": "spandrel (0.4) has no HAN architecture: its RCAN loader refuses HAN's extra attention layers",
    "nlsn": "spandrel (0.4) has no NLSN architecture: it detects none of NLSN's key layouts",
}


def _compact(state: StateDict, config: Any) -> StateDict:
    from ..models.compact import export_realesrgan

    if config.act_type != "prelu":
        raise UsageError(
            f"spandrel cannot load a compact model with act_type {config.act_type}: it always builds PReLU "
            "(use --layout pclup, or Real-ESRGAN's SRVGGNetCompact with act_type set)"
        )
    return export_realesrgan(state, config)


def _rcan(state: StateDict, config: Any) -> StateDict:
    from ..models.rcan import export_spandrel

    return export_spandrel(state, config)


def _swinir(state: StateDict, config: Any) -> StateDict:
    from ..models.swinir import export_official

    expected = 255.0 if config.window_size == 7 else 1.0  # spandrel's rule: it cannot read img_range
    if config.img_range != expected:
        raise UsageError(
            f"spandrel cannot load a SwinIR with img_range {config.img_range:g} and window_size "
            f"{config.window_size}: it assumes img_range {expected:g} for that window size"
        )
    if config.upsampler != "pixelshuffledirect" and config.num_feat != 64:
        raise UsageError(
            f"spandrel cannot load a SwinIR with num_feat {config.num_feat}: it always builds the "
            f"{config.upsampler} head with 64 channels"
        )
    return export_official(state, config)


def _rrdbnet(state: StateDict, config: Any) -> StateDict:
    if config.scale == 3:
        raise UsageError(
            "spandrel cannot load an x3 RRDBNet: its weights look like an x2 model's, which spandrel builds"
        )
    if config.num_grow_ch != 32:
        raise UsageError(
            f"spandrel cannot load an RRDBNet with num_grow_ch {config.num_grow_ch}: it always builds 32"
        )
    return state  # pclup's RRDBNet keys are BasicSR's, which spandrel's ESRGAN loader reads


_SPANDREL: dict[str, Callable[[StateDict, Any], StateDict]] = {
    "compact": _compact,
    "rcan": _rcan,
    "swinir": _swinir,
    "rrdbnet": _rrdbnet,
}


def spandrel_state_dict(model: SRModel) -> StateDict:
    """The network's weights in the layout spandrel loads with the same output (float32, on the CPU).

    Raises:
        UsageError: spandrel has no such architecture, or cannot express this configuration of it.
    """
    import torch

    name = arch_of(model).name
    exporter = _SPANDREL.get(name)
    if exporter is None:
        why = _NO_SPANDREL.get(name, f"pclup cannot write {name} in a layout spandrel reads")
        raise UsageError(f"cannot export {name} for spandrel: {why} (--layout pclup writes a pclup folder)")
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
        for k, v in model.state_dict().items()
    }
    return {k: v.contiguous() for k, v in exporter(state, model.config).items()}


def export_spandrel(
    model: SRModel,
    path: str | Path,
    *,
    half: bool = False,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the network as one weights file spandrel loads (see the module docstring).

    Args:
        model: A registered pclup network.
        path: ``.safetensors`` or ``.pth``; the file is written whole or not at all.
        half: Store float16 weights.
        overwrite: Replace an existing file (else an existing ``path`` is an error).
        metadata: Strings for the safetensors header (ignored for ``.pth``).

    Returns:
        ``path``.

    Raises:
        UsageError: another suffix, an existing file without ``overwrite``, or an architecture spandrel
            cannot load.
    """
    import torch

    path = Path(path)
    if path.suffix.lower() not in SPANDREL_SUFFIXES:
        raise UsageError(f"{path}: a spandrel weights file ends in .safetensors or .pth")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; name the weights file to write")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists; pass --overwrite to replace it")
    state = spandrel_state_dict(model)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save

        data = save(state, metadata=metadata)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()

    def write(fp: IO[bytes]) -> None:
        fp.write(data)

    if not atomic_write(path, write, overwrite=overwrite):
        raise UsageError(f"{path} already exists; pass --overwrite to replace it")
    return path
