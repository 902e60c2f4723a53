"""Which device and which precision to run on.

Devices are tried in the order CUDA, Apple MPS, CPU. Precision ``auto`` picks, per device and
architecture:

* for upscaling, float16 on GPUs (CUDA, MPS) for architectures marked ``supports_fp16`` (measured at most
  0.36/255 from float32), float32 everywhere else. :func:`pclup.inference.precision.auto_precision` adds
  the measured rule on top: a packaged model whose recorded bf16 measurement passed (8-bit output within 1
  level of float32 on 99.9% of values, Set5/Set14 PSNR within 0.01 dB) runs in bfloat16 where the device
  computes it natively; ``--precision bf16`` runs any model in it on request.
* for training, bfloat16 autocast where the device computes it natively (CUDA GPUs from Ampere on, not
  those that only emulate it; CPUs with AMX or AVX512-BF16) and the architecture is marked
  ``supports_bf16``, float32 otherwise. float16 training would need loss scaling, which the trainer does
  not do, so it is refused.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import TypeVar

import torch

from .errors import UsageError
from .models.registry import ArchSpec

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(name: str | None = None) -> torch.device:
    """``auto``/None: CUDA, then MPS, then CPU. Otherwise the named device, checked to exist."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device '{name}' is not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                "--device cuda: no CUDA device is available (this torch build or machine has none)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise UsageError("--device mps: Apple MPS is not available on this machine")
    elif device.type != "cpu":
        raise UsageError(f"--device '{name}' is not supported (use auto, cpu, cuda, cuda:N or mps)")
    return device


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX-BF16 or AVX512-BF16 instructions (read from /proc/cpuinfo on Linux)."""
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware. GPUs before Ampere (V100, T4, RTX 20xx) only
    emulate it, slowly and without bfloat16 convolutions, which ``is_bf16_supported()`` counts unless told
    not to."""
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.4 has no such argument
            return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def pick_precision(
    precision: str, device: torch.device, arch: ArchSpec, *, training: bool = False
) -> torch.dtype:
    """The compute dtype for ``precision`` (one of :data:`PRECISIONS`) on ``device`` for ``arch``; the rules
    of ``auto`` differ between upscaling and ``training`` (see the module's docstring)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if training:
            return torch.bfloat16 if arch.supports_bf16 and native_bf16(device) else torch.float32
        if arch.supports_fp16 and device.type in ("cuda", "mps"):
            return torch.float16
        return torch.float32
    if precision == "fp16" and training:
        raise UsageError(
            "--precision fp16 is not supported for training (it needs loss scaling); use bf16 or fp32"
        )
    if precision == "fp16" and device.type == "cpu":
        raise UsageError(
            "--precision fp16 needs a GPU (CPUs compute float16 slowly or not at all); use bf16 or fp32"
        )
    if precision == "fp16" and not arch.supports_fp16:
        raise UsageError(
            f"--precision fp16: {arch.name} is not safe in float16 (it overflows); use bf16 or fp32"
        )
    if precision == "bf16" and device.type == "mps":
        raise UsageError("--precision bf16 is not supported on MPS; use fp16 or fp32")
    return DTYPES[precision]


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def to_channels_last(model: ModuleT) -> ModuleT:
    """Put every 2-D convolution's weights in channels-last layout (other parameters, such as HAN's 3-D
    convolution, keep theirs: ``model.to(memory_format=...)`` refuses tensors that are not 4-D)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            # Module.to takes memory_format, but torch's annotations of it leave that keyword out
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
