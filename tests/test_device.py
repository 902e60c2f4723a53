"""Device detection and the precision rules of --precision auto."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pclup import device as dev
from pclup.errors import UsageError
from pclup.models import get_arch


def test_cpu_is_always_available_and_bad_names_are_usage_errors() -> None:
    assert dev.pick_device("cpu").type == "cpu"
    assert dev.pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="not a device"):
        dev.pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            dev.pick_device("cuda")


def test_auto_precision_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    edsr, rcan, compact = get_arch("edsr"), get_arch("rcan"), get_arch("compact")
    for native in (False, True):  # upscaling never picks bf16 on its own (outputs over 0.5/255 from fp32)
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda native=native: native)
        assert dev.pick_precision("auto", cpu, edsr) == torch.float32
        assert dev.pick_precision("auto", cpu, compact) == torch.float32
    assert dev.pick_precision("auto", mps, edsr) == torch.float16
    assert dev.pick_precision("auto", mps, rcan) == torch.float32  # RCAN overflows float16
    for bf16_gpu in (False, True):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16_gpu=bf16_gpu: bf16_gpu)
        assert dev.pick_precision("auto", cuda, edsr) == torch.float16
        assert dev.pick_precision("auto", cuda, rcan) == torch.float32


def test_auto_precision_for_training(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    edsr, rcan = get_arch("edsr"), get_arch("rcan")
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.pick_precision("auto", cpu, edsr, training=True) == torch.float32  # emulated bf16 is slower
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.pick_precision("auto", cpu, edsr, training=True) == torch.bfloat16
    assert dev.pick_precision("auto", cpu, dataclasses.replace(edsr, supports_bf16=False), training=True) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: False)
    assert dev.pick_precision("auto", cuda, edsr, training=True) == torch.float32  # never fp16: no loss scaling
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: True)
    assert dev.pick_precision("auto", cuda, rcan, training=True) == torch.bfloat16
    with pytest.raises(UsageError, match="not supported for training"):
        dev.pick_precision("fp16", cuda, edsr, training=True)


def test_explicit_precisions_are_checked() -> None:
    cpu = torch.device("cpu")
    assert dev.pick_precision("fp32", cpu, get_arch("rcan")) == torch.float32
    assert dev.pick_precision("bf16", cpu, get_arch("rcan")) == torch.bfloat16
    with pytest.raises(UsageError, match="needs a GPU"):
        dev.pick_precision("fp16", cpu, get_arch("edsr"))
    with pytest.raises(UsageError, match="not safe in float16"):
        dev.pick_precision("fp16", torch.device("cuda"), get_arch("rcan"))
    with pytest.raises(UsageError, match="not one of"):
        dev.pick_precision("int8", cpu, get_arch("edsr"))
