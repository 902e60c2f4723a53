"""Precision by measured quality: the rule, the record beside each packaged model, and the float32 layers
inside a bfloat16 run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pclup.inference.precision import auto_precision, decide_bf16, keep_fp32, passes_rule, recorded_bf16
from pclup.weights import (
    PRECISION_FILE,
    MeasuredPrecision,
    list_pretrained,
    load_model,
    read_measured_precision,
)

PACKAGED = [p for p in list_pretrained() if p.packaged]


def test_the_rule_on_hand_made_numbers() -> None:
    assert passes_rule(0.9995, [0.004, -0.009])
    assert passes_rule(0.999, [0.01, -0.01])
    assert not passes_rule(0.9989, [0.0, 0.0])  # 0.11% of values more than 1 level off
    assert not passes_rule(1.0, [0.0, 0.011])  # Set14 moved by more than 0.01 dB
    assert not passes_rule(1.0, [-0.02, 0.0])  # either way


def test_auto_follows_the_verdict() -> None:
    passing = MeasuredPrecision("bf16", True, ("tail.1", "add_mean"), "0" * 64)
    failing = MeasuredPrecision("bf16", False, (), "0" * 64)
    assert decide_bf16(passing) == (torch.bfloat16, ("tail.1", "add_mean"))
    assert decide_bf16(failing) == (torch.float32, ())
    assert decide_bf16(None) == (torch.float32, ())  # never measured: float32


@pytest.mark.parametrize("pretrained", PACKAGED, ids=lambda p: p.name)
def test_every_packaged_model_has_a_current_record(pretrained) -> None:  # type: ignore[no-untyped-def]
    """Each shipped model is measured, the record is of the weights shipped (re-shipping without
    re-measuring fails here), and its float32 layers are submodules of the network."""
    folder = pretrained.folder()
    verdict = read_measured_precision(folder / PRECISION_FILE)
    assert verdict is not None
    assert verdict.weights_sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    doc = json.loads((folder / PRECISION_FILE).read_text())
    chosen = [c for c in doc["bf16"]["candidates"] if c["passes"]]
    assert verdict.passes == bool(chosen)
    if chosen:  # the record follows the rule from its own figures
        c = chosen[0]
        assert list(verdict.fp32_layers) == c["fp32_layers"]
        assert passes_rule(c["within_one_level"], [c["sets"][s]["psnr_delta"] for s in ("Set5", "Set14")])
    model = load_model(pretrained.name).model
    for name in verdict.fp32_layers:
        model.get_submodule(name)
    assert recorded_bf16(load_model(pretrained.name)) == verdict


def test_a_copy_of_a_packaged_model_is_not_trusted(tmp_path: Path) -> None:
    """The record belongs to the package: the same files in a user's folder stay float32 under auto."""
    import shutil

    folder = PACKAGED[0].folder()
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    loaded = load_model(str(copy))
    assert recorded_bf16(loaded) is None
    assert auto_precision("auto", torch.device("cpu"), loaded) == (torch.float32, ())


@pytest.mark.parametrize("content", [
    b"", b"not json", b"[]", b'{"bf16": {}}',
    b'{"weights_sha256": "x", "bf16": {"passes": "yes", "fp32_layers": []}}',
    b'{"weights_sha256": "x", "bf16": {"passes": true, "fp32_layers": [1]}}',
    b'{"weights_sha256": 5, "bf16": {"passes": true, "fp32_layers": []}}', b"\xff\xfe",
])
def test_a_malformed_record_counts_as_unmeasured(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / PRECISION_FILE
    path.write_bytes(content)
    assert read_measured_precision(path) is None
    assert read_measured_precision(tmp_path / "missing.json") is None


def test_an_oversized_record_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / PRECISION_FILE
    path.write_text('{"weights_sha256": "x", "bf16": {"passes": true, "fp32_layers": []}, "pad": "'
                    + "x" * (1 << 20) + '"}')
    assert read_measured_precision(path) is None


def test_keep_fp32_runs_the_layer_in_float32_under_autocast() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert net(x).dtype == torch.bfloat16
        keep_fp32(net, ["2"])
        keep_fp32(net, ["2"])  # idempotent
        assert net(x).equal(reference)  # float32 outside autocast: unchanged
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    assert y.dtype == torch.float32
    assert (y - reference).abs().max() < 0.05  # only the first layer rounded to bf16
    with pytest.raises(AttributeError):
        keep_fp32(net, ["9"])
