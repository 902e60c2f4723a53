"""``pclup export``: ONNX files of every exportable architecture, run with onnxruntime at a new size."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY

ort = pytest.importorskip("onnxruntime")

from pclup.cli import app  # noqa: E402
from pclup.errors import UsageError  # noqa: E402
from pclup.models import get_arch  # noqa: E402
from pclup.onnx_export import DEFAULT_OPSET, ExportError, export_onnx  # noqa: E402
from pclup.weights import save_pretrained  # noqa: E402

runner = CliRunner()

# (architecture, scale, config overrides): every exportable architecture, the Real-ESRGAN activations of
# compact (SRVGGNetCompact), and RRDBNet with and without its pixel-unshuffle (x2 pads odd sizes).
CASES = [
    ("compact", 2, {}),
    ("compact", 4, {"act_type": "relu"}),
    ("compact", 3, {"act_type": "leakyrelu"}),
    ("edsr", 2, {}),
    ("rcan", 3, {}),
    ("han", 2, {}),
    ("rrdbnet", 2, {}),
    ("rrdbnet", 4, {}),
    ("swinir", 2, {}),
]
SIZE = (21, 34)  # non-square, odd, and neither the export's example size nor its check size


def _model(arch: str, scale: int, overrides: dict[str, object]) -> torch.nn.Module:
    spec = get_arch(arch)
    torch.manual_seed(0)
    return spec.build(spec.make_config(scale=scale, **{**TINY[arch], **overrides})).eval()


def _folder(tmp_path: Path, arch: str, scale: int = 2, **overrides: object) -> tuple[Path, torch.nn.Module]:
    model = _model(arch, scale, overrides)
    save_pretrained(model, tmp_path / "model")
    return tmp_path / "model", model


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "scale", "overrides"), CASES, ids=[f"{a}-x{s}-{o}" for a, s, o in CASES])
def test_export_matches_pytorch(tmp_path: Path, arch: str, scale: int, overrides: dict[str, object]) -> None:
    import onnx

    folder, model = _folder(tmp_path, arch, scale, **overrides)
    out = tmp_path / "model.onnx"
    result = export_onnx(str(folder), out)
    assert result.exporter == "dynamo" and result.max_diff is not None and result.max_diff < 1e-4

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).clamp(0, 1).numpy()
    assert got.shape == (1, 3, SIZE[0] * scale, SIZE[1] * scale)
    assert float(np.abs(got - want).max()) < 1e-4

    proto = onnx.load(str(out))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["architecture"] == arch and props["scale"] == str(scale)
    assert props["opset"] == str(DEFAULT_OPSET) and props["pclup_version"]
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [DEFAULT_OPSET]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["height", "width"]  # any size


@pytest.mark.slow
def test_export_dynamic_batch_and_upscaler(tmp_path: Path) -> None:
    """A batch of two at once, and the same pixels as pclup's Upscaler."""
    from pclup.inference.upscale import Upscaler
    from pclup.weights import load_model

    folder, _ = _folder(tmp_path, "edsr")
    out = tmp_path / "edsr.onnx"
    assert export_onnx(str(folder), out, check=False).batch == "dynamic"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    got = session.run(None, {"input": x.numpy()})[0]
    upscaler = Upscaler(load_model(str(folder)), device="cpu", precision="fp32", tile=0)
    for i in range(2):
        want = upscaler.upscale_tensor(x[i : i + 1]).numpy()
        assert float(np.abs(got[i : i + 1] - want).max()) < 1e-4


@pytest.mark.slow
def test_cli_export(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, "compact")
    result = runner.invoke(app, ["export", str(folder), str(tmp_path / "c.onnx")])
    assert result.exit_code == 0, result.output
    assert "compact x2, opset 18" in result.output and (tmp_path / "c.onnx").stat().st_size > 0


def test_cli_export_without_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # find_spec answers None: not installed
    result = runner.invoke(app, ["export", "default-x2", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'pclup[onnx]'" in lines[0]
    assert not (tmp_path / "x.onnx").exists()


def test_nlsn_is_refused_in_one_line(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path, "nlsn")
    with pytest.raises(ExportError, match="nlsn cannot be exported to ONNX: .*hashing"):
        export_onnx(str(folder), tmp_path / "n.onnx")
    assert not (tmp_path / "n.onnx").exists()


def test_existing_output_and_bad_opset(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"keep")
    with pytest.raises(UsageError, match="--overwrite"):
        export_onnx("default-x2", tmp_path / "a.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == b"keep"
    with pytest.raises(UsageError, match="opset"):
        export_onnx("default-x2", tmp_path / "b.onnx", opset=9)


@pytest.mark.slow
def test_torchscript_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the dynamo exporter fails, the TorchScript exporter's file also takes any size."""
    from pclup import onnx_export

    def fail(*args: object) -> None:
        raise RuntimeError("no dynamo today")

    monkeypatch.setattr(onnx_export, "_export_dynamo", fail)
    folder, model = _folder(tmp_path, "rcan")
    result = export_onnx(str(folder), tmp_path / "r.onnx")
    assert result.exporter == "torchscript" and result.max_diff is not None and result.max_diff < 1e-4
    session = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, *SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model(x).clamp(0, 1).numpy()
    assert float(np.abs(session.run(None, {"input": x.numpy()})[0] - want).max()) < 1e-4


def test_padded_models_never_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchScript would bake the example's padding into the graph: a padded model fails in one line."""
    from pclup import onnx_export

    def fail(*args: object) -> None:
        raise RuntimeError("no dynamo today")

    monkeypatch.setattr(onnx_export, "_export_dynamo", fail)
    folder, _ = _folder(tmp_path, "rrdbnet")
    with pytest.raises(ExportError, match="dynamo exporter failed .*no dynamo today"):
        export_onnx(str(folder), tmp_path / "r.onnx")
