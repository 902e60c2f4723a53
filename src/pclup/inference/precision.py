"""Reduced precision by measured quality: which precision ``--precision auto`` upscales a model in, and
how a few of its layers can stay in float32 inside a bfloat16 run.

The rule (docs/performance.md, "Precision by measured quality"): a reduced precision is allowed for a
model when its written 8-bit output equals float32's within 1 level on at least 99.9% of pixels and its
Set5 and Set14 PSNR are within 0.01 dB of float32's. ``benchmarks/precision_accuracy.py`` measures this
for each packaged model on a CPU with native bf16 and records the verdict beside the weights
(``precision.json``: passes or not, and the layers it keeps in float32). ``auto`` follows that record on
devices that compute bfloat16 natively; any other weights stay float32 under ``auto`` unless asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ..device import native_bf16, pick_precision
from ..weights import LoadedModel, MeasuredPrecision, measured_precision

#: The rule's thresholds.
MIN_WITHIN_ONE_LEVEL = 0.999
MAX_PSNR_DELTA_DB = 0.01
RULE_SETS = ("Set5", "Set14")


def passes_rule(within_one_level: float, psnr_deltas: Iterable[float]) -> bool:
    """Whether a reduced-precision run meets the rule: the share of 8-bit output values within 1 level of
    float32's is at least 99.9%, and every PSNR difference (Set5, Set14) is at most 0.01 dB either way."""
    return within_one_level >= MIN_WITHIN_ONE_LEVEL and all(abs(d) <= MAX_PSNR_DELTA_DB for d in psnr_deltas)


def auto_precision(
    precision: str, device: torch.device, loaded: LoadedModel
) -> tuple[torch.dtype, tuple[str, ...]]:
    """The dtype to upscale ``loaded`` in, and the layers kept in float32 inside it.

    ``auto``: float16 on GPUs for fp16-safe architectures (:func:`pclup.device.pick_precision`); otherwise
    bfloat16 where the device computes it natively and the model's recorded measurement passed (with the
    float32 layers recorded), else float32. An explicit precision is taken as given, without fp32 layers."""
    dtype = pick_precision(precision, device, loaded.arch)
    if precision != "auto" or dtype != torch.float32 or not native_bf16(device):
        return dtype, ()
    return decide_bf16(recorded_bf16(loaded))


def decide_bf16(verdict: MeasuredPrecision | None) -> tuple[torch.dtype, tuple[str, ...]]:
    """``auto``'s choice on a device with native bf16, where float16 does not apply: bfloat16 with the
    recorded float32 layers when the model's measurement passed the rule, float32 otherwise (also for
    weights never measured)."""
    if verdict is None or not verdict.passes:
        return torch.float32, ()
    return torch.bfloat16, verdict.fp32_layers


def recorded_bf16(loaded: LoadedModel) -> MeasuredPrecision | None:
    """The recorded bf16 verdict of a packaged model (None for any other weights)."""
    if not loaded.native:
        return None
    return measured_precision(loaded.source, "bf16")


def keep_fp32(model: nn.Module, names: Iterable[str]) -> None:
    """Run the named submodules of ``model`` in float32 even under autocast: their inputs are cast to
    float32 and autocast is off inside them. Idempotent; under plain float32 it changes nothing.

    Raises:
        AttributeError: a name that is not a submodule of ``model``.
    """
    for name in names:
        module = model.get_submodule(name)
        if getattr(module, "_pclup_fp32", False):
            continue
        forward = module.forward

        def fp32_forward(*args: Any, _forward: Any = forward, **kwargs: Any) -> Any:
            device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
            with torch.autocast(device, enabled=False):
                return _forward(*(_float(a) for a in args), **{k: _float(v) for k, v in kwargs.items()})

        module.forward = fp32_forward
        object.__setattr__(module, "_pclup_fp32", True)  # a plain attribute, not a buffer or submodule


def _float(x: Any) -> Any:
    return x.float() if isinstance(x, Tensor) and x.is_floating_point() else x
