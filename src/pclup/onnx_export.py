"""Export a model to ONNX (the optional ``pclup[onnx]`` extra: onnx, onnxscript, onnxruntime).

The exported graph takes ``input``, float32 NCHW ``(N, C, H, W)`` in ``[0, 1]`` (RGB, or grey for
one-channel models), of any height and width (and batch; batch 1 for SwinIR), and returns ``output``,
``(N, C, H*s, W*s)`` clamped to ``[0, 1]``, as pclup's :class:`~pclup.inference.upscale.Upscaler` does
(without tiling). Sizes the network needs to be
a multiple of something (SwinIR's windows, RRDBNet x1/x2's pixel-unshuffle) are padded by reflection inside
the graph and the output cropped, as pclup does; such models need sides of at least that multiple.

torch's dynamo exporter (``torch.export``) is tried first, then the older TorchScript exporter. NLSN is
refused: its hashing draws a seeded random rotation whose shape depends on the image size (the number of
buckets), which no fixed graph can hold.

Imports torch, onnx and onnxscript only when called; weights are reached through :mod:`pclup.weights`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fs import atomic_write
from ._version import __version__
from .errors import PclupError, UsageError

if TYPE_CHECKING:
    from torch import Tensor, nn

#: The ONNX opset written by default (what torch's dynamo exporter targets; 17 or later also works).
DEFAULT_OPSET = 18
INSTALL_HINT = "pip install 'pclup[onnx]'"
#: Architectures that cannot become a graph for every image size, and why.
UNSUPPORTED = {
    "nlsn": "NLSN's hashing draws a random rotation whose shape depends on the image size",
}
#: Architectures exported with batch 1 (torch.export cannot keep SwinIR's batch free of its window count).
_BATCH_ONE = {"swinir"}
# The example input's size (rounded up to the padding multiple, where there is one): non-square.
_EXAMPLE_HW = (27, 22)
_CHECK_HW = (19, 33)  # the size the optional check runs at: different from the example
_MAX_SIDE = 32768  # torch.export wants bounded sizes for padded models; ONNX Runtime does not check it
_TOLERANCE = 1e-3  # the check's largest accepted |onnxruntime - PyTorch| (float32 sums in another order)


class ExportError(PclupError):
    """A model that cannot be exported to ONNX, or a missing extra."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    architecture: str
    scale: int
    opset: int
    exporter: str  # "dynamo" or "torchscript"
    batch: str  # "dynamic" or "1"
    max_diff: float | None  # onnxruntime vs PyTorch on a check input, if onnxruntime is installed


def missing_extra() -> str | None:
    """The one-line message when the exporter's packages are not installed, else None."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"pclup export needs {' and '.join(missing)}: {INSTALL_HINT}"


def _pad_multiple(arch: str, config: Any) -> int:
    """The multiple the network's input sides must have (padded inside the graph), 1 if none."""
    if arch == "swinir":
        return int(config.window_size)
    if arch == "rrdbnet" and getattr(config, "unshuffle", False) and config.scale in (1, 2):
        return 4 // int(config.scale)
    return 1


def _channels(config: Any) -> int:
    return int(getattr(config, "n_colors", getattr(config, "in_chans", 3)))


def _graph_module(model: nn.Module, multiple: int, scale: int) -> nn.Module:
    """``model`` with the padding its forward decides in Python done in tensors, and the clamp to [0, 1]."""
    import torch.nn.functional as F
    from torch import nn

    class Exportable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: Tensor) -> Tensor:
            if multiple == 1:
                return self.net(x).clamp(0, 1)
            h, w = x.shape[2], x.shape[3]
            # always padded (by 0 where the size already fits): no branch on the size in the graph
            x = F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple),
                      mode="reflect")
            return self.net(x)[:, :, : h * scale, : w * scale].clamp(0, 1)

    return Exportable().eval()


def _export_dynamo(module: nn.Module, example: Tensor, opset: int, multiple: int, batch: bool) -> Any:
    import torch
    from torch.export import Dim

    low = max(multiple, 2)
    dims = {2: Dim("height", min=low, max=_MAX_SIDE), 3: Dim("width", min=low, max=_MAX_SIDE)}
    if batch:
        dims[0] = Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        module, (example,), dynamo=True, opset_version=opset, input_names=["input"],
        output_names=["output"], dynamic_shapes={"x": dims}, external_data=False, verbose=False,
    )
    assert program is not None  # only None when dynamo=False
    return program.model_proto


def _export_torchscript(module: nn.Module, example: Tensor, opset: int) -> Any:
    import onnx
    import torch

    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 2: "out_height", 3: "out_width"}
    torch.onnx.export(
        module, (example,), buffer,  # type: ignore[arg-type]  # a file object works too
        dynamo=False, opset_version=opset, input_names=["input"],
        output_names=["output"], dynamic_axes={"input": axes, "output": out_axes},
    )
    return onnx.load_from_string(buffer.getvalue())


def _reason(exc: BaseException) -> str:
    """The first line of the innermost cause (torch wraps the real reason in a page of advice)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0][:200]}"


@contextlib.contextmanager
def _hushed() -> Iterator[None]:
    """torch's and onnxscript's progress lines, warnings and logged tracebacks silenced."""
    roots = ("torch", "onnxscript", "onnx_ir")
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in roots]
    loggers = [logging.getLogger(n) for n in [*roots, *names]]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _quiet_export(
    module: nn.Module, example: Tensor, opset: int, multiple: int, batches: tuple[bool, ...]
) -> tuple[Any, str, str]:
    """The ONNX ModelProto, the exporter that made it and its batch ("dynamic" or "1").

    The dynamo exporter with a dynamic batch first (if ``True`` is in ``batches``), then with batch 1,
    then the TorchScript exporter (not for padded models: it would trace the padding of the example's
    size as constants)."""
    errors: list[str] = []
    with _hushed():
        for batch in batches:
            try:
                proto = _export_dynamo(module, example, opset, multiple, batch)
                return proto, "dynamo", "dynamic" if batch else "1"
            except Exception as exc:  # noqa: BLE001 - any exporter failure: try the next way
                errors.append(_reason(exc))
        if multiple > 1:
            raise ExportError(f"the dynamo exporter failed ({errors[0]})")
        try:
            return _export_torchscript(module, example, opset), "torchscript", "dynamic"
        except Exception as exc:  # noqa: BLE001
            errors.append(_reason(exc))
    raise ExportError(f"both exporters failed (dynamo: {errors[-2]}; torchscript: {errors[-1]})")


def _check(data: bytes, module: nn.Module, channels: int, multiple: int) -> float | None:
    """Max |onnxruntime - PyTorch| on a random input of another size than the example; None without ORT."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort
    import torch

    h, w = (max(s, multiple) for s in _CHECK_HW)
    x = torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = module(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    if got.shape != want.shape:
        raise ExportError(f"the exported graph gives {got.shape} for {tuple(x.shape)}, not {want.shape}")
    diff = float(abs(got - want).max())
    if not diff <= _TOLERANCE:
        raise ExportError(f"the exported graph differs from PyTorch by {diff:.2g} (over {_TOLERANCE})")
    return diff


def export_onnx(
    spec: str,
    output: Path,
    *,
    scale: int | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    overwrite: bool = False,
) -> ExportResult:
    """Load ``spec`` (anything :func:`pclup.weights.load_model` takes) and write it to ``output`` as ONNX.

    Dynamic height and width (and batch, but for SwinIR); float32 in and out, ``[0, 1]``.
    ``metadata_props`` holds the pclup version, architecture, scale, opset, the model's name and config.
    With ``check`` (and onnxruntime installed) the graph is run once on another size and compared with
    PyTorch before the file is written.

    Raises:
        ExportError: the extra is missing, the architecture cannot be exported, or the exporters failed.
        UsageError: ``opset`` out of range, or ``output`` exists and ``overwrite`` is false.
    """
    message = missing_extra()
    if message:
        raise ExportError(message)
    if not 17 <= opset <= 23:
        raise UsageError(f"--opset must be between 17 and 23, not {opset}")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} already exists; pass --overwrite to replace it")
    from .weights import load_model

    loaded = load_model(spec, scale=scale)
    arch = loaded.arch.name
    if arch in UNSUPPORTED:
        raise ExportError(f"{arch} cannot be exported to ONNX: {UNSUPPORTED[arch]}")
    import onnx
    import torch

    config = loaded.model.config
    multiple = _pad_multiple(arch, config)
    module = _graph_module(loaded.model.float().cpu().eval(), multiple, loaded.scale)
    h, w = (-(-side // multiple) * multiple for side in _EXAMPLE_HW)  # a multiple: torch.export needs it
    example = torch.rand(1, _channels(config), h, w, generator=torch.Generator().manual_seed(0))
    batches = (False,) if arch in _BATCH_ONE else (True, False)
    proto, exporter, batch = _quiet_export(module, example, opset, multiple, batches)
    props = {
        "pclup_version": __version__,
        "architecture": arch,
        "scale": str(loaded.scale),
        "opset": str(opset),
        "exporter": exporter,
        "batch": batch,
        "model": loaded.name,  # not the source: that may be a path on this computer
        "config": json.dumps(dataclasses.asdict(config)),
        "input": "float32 NCHW in [0, 1], any height and width",
        "output": f"float32 NCHW in [0, 1], height and width x{loaded.scale}",
        "min_side": str(multiple),
    }
    onnx.helper.set_model_props(proto, props)
    proto.producer_name, proto.producer_version = "pclup", __version__
    data = proto.SerializeToString()
    max_diff = _check(data, module, _channels(config), multiple) if check else None
    if not atomic_write(output, lambda fp: fp.write(data), overwrite=overwrite):
        raise UsageError(f"{output} already exists; pass --overwrite to replace it")
    return ExportResult(output, arch, loaded.scale, opset, exporter, batch, max_diff)
