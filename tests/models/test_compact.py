"""Compact: shapes, cost budget against EDSR-S, key layout detection, Real-ESRGAN's SRVGGNetCompact layout
(equal to spandrel's implementation)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from _peers import import_spandrel_arch
from pclup.errors import IncompatibleCheckpointError
from pclup.models import compact, edsr, nlsn
from pclup.models.compact import Compact, CompactConfig, export_realesrgan
from pclup.models.edsr import EDSR, EDSRConfig
from pclup.weights import load_model
from pclup.weights.foreign import detect_arch, model_from_state_dict

REPO = Path(__file__).resolve().parents[2]


def _flops() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pclup_bench_flops", REPO / "benchmarks" / "flops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (7, 9), (16, 13)])
def test_output_shape(scale: int, size: tuple[int, int]) -> None:
    model = Compact(CompactConfig(scale=scale)).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert y.dtype == torch.float32


def test_zero_residual_is_nearest_upscale() -> None:
    model = Compact(CompactConfig(scale=3)).eval()
    torch.nn.init.zeros_(model.exit.weight)
    torch.nn.init.zeros_(model.exit.bias)
    x = torch.rand(1, 3, 5, 4)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), x.repeat_interleave(3, 2).repeat_interleave(3, 3))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_macs_at_most_a_tenth_of_edsr_s(scale: int) -> None:
    flops = _flops()
    ours = flops.macs_per_pixel(Compact(CompactConfig(scale=scale)), size=16)
    ref = flops.macs_per_pixel(EDSR(EDSRConfig(scale=scale)), size=16)
    assert ours <= ref / 10, (ours, ref)
    if scale == 4:
        assert ref == pytest.approx(1.98e6, rel=0.01)  # EDSR-S x4: ~1.98M MACs per LR pixel
        assert ours == 139_968  # the candidate 'plain64x3' measured in docs/compact-architecture.md


def test_parameters() -> None:
    assert sum(p.numel() for p in Compact(CompactConfig(scale=4)).parameters()) == 140_528


@pytest.mark.parametrize(
    "config",
    [CompactConfig(), CompactConfig(scale=2, n_feats=16, n_convs=3, n_colors=1), CompactConfig(3, 24, 0)],
)
def test_detect_infer_config_round_trip(config: CompactConfig) -> None:
    sd = Compact(config).state_dict()
    assert compact.detect(sd)
    assert compact.infer_config(sd) == config
    model = Compact(compact.infer_config(sd))
    model.load_state_dict(sd, strict=True)


def test_no_collision_with_other_layouts() -> None:
    sd = Compact(CompactConfig()).state_dict()
    assert not edsr.detect(sd) and not nlsn.detect(sd)
    with torch.device("meta"):
        edsr_sd = EDSR(EDSRConfig()).state_dict()
    assert not compact.detect(edsr_sd)
    # Real-ESRGAN SRVGGNetCompact layout: body.0 conv, body.1 PReLU, ..., no 'entry'/'exit': compact too
    srvgg = {
        "body.0.weight": torch.zeros(64, 3, 3, 3),
        "body.1.weight": torch.zeros(64),
        "body.2.weight": torch.zeros(48, 64, 3, 3),
    }
    assert compact.detect(srvgg) and not edsr.detect(srvgg) and not nlsn.detect(srvgg)
    assert not compact.detect({**srvgg, "body.0.rdb1.conv1.weight": torch.zeros(1)})  # RRDBNet's body


def test_variant_and_spec() -> None:
    (variant,) = compact.VARIANTS
    assert variant.name == "compact" and variant.arch == compact.SPEC.name == "compact"
    config = compact.SPEC.make_config(scale=4, **dict(variant.args))
    assert isinstance(compact.SPEC.build(config), Compact)


# --- Real-ESRGAN's layout (SRVGGNetCompact), against spandrel's implementation ----------------------------


def _srvgg(**kwargs: object) -> torch.nn.Module:
    """spandrel's SRVGGNetCompact with random weights (PReLU slopes randomised too)."""
    module = import_spandrel_arch("Compact", "SRVGG")
    torch.manual_seed(0)
    net = module.SRVGGNetCompact(**kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net


def _max_diff(a: torch.nn.Module, b: torch.nn.Module, channels: int = 3) -> float:
    x = torch.rand(2, channels, 13, 11, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        return float((a(x) - b(x)).abs().max())


@pytest.mark.parametrize(
    ("scale", "num_feat", "num_conv", "in_ch"),
    [(2, 16, 3, 3), (4, 64, 16, 3), (4, 24, 0, 3), (1, 8, 2, 3), (3, 8, 4, 1)],
)
def test_realesrgan_prelu_layout_equals_spandrel(
    scale: int, num_feat: int, num_conv: int, in_ch: int
) -> None:
    ref = _srvgg(num_in_ch=in_ch, num_out_ch=in_ch, num_feat=num_feat, num_conv=num_conv, upscale=scale)
    sd = ref.state_dict()
    assert detect_arch(sd).name == "compact"
    ours = model_from_state_dict(sd)
    assert ours.config == CompactConfig(scale, num_feat, num_conv, in_ch, "prelu")
    assert _max_diff(ours, ref, in_ch) <= 1e-5


@pytest.mark.parametrize("act", ["relu", "leakyrelu"])
@pytest.mark.parametrize("scale", [2, 4])
def test_realesrgan_weightless_activations_equal_spandrel(act: str, scale: int) -> None:
    ref = _srvgg(num_feat=16, num_conv=4, upscale=scale, act_type=act)
    sd = ref.state_dict()
    assert "body.1.weight" not in sd and compact.infer_config(sd).act_type == compact.DEFAULT_WEIGHTLESS_ACT
    ours = model_from_state_dict(sd, overrides={"act_type": act})
    assert ours.config == CompactConfig(scale, 16, 4, 3, act)  # type: ignore[arg-type]
    assert _max_diff(ours, ref) <= 1e-5
    default = model_from_state_dict(sd)  # no name given: ReLU
    assert default.config.act_type == "relu"  # type: ignore[attr-defined]
    assert (_max_diff(default, ref) <= 1e-5) == (act == "relu")


@pytest.mark.parametrize("act", ["prelu", "relu", "leakyrelu"])
@pytest.mark.parametrize("scale", [2, 4])
def test_export_to_realesrgan_layout_gives_the_same_output(act: str, scale: int) -> None:
    torch.manual_seed(2)
    ours = Compact(CompactConfig(scale=scale, n_feats=12, n_convs=3, act_type=act)).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    ref = _srvgg(num_feat=12, num_conv=3, upscale=scale, act_type=act)
    ref.load_state_dict(export_realesrgan(ours.state_dict(), ours.config), strict=True)
    assert _max_diff(ours, ref) <= 1e-5
    back = compact.import_realesrgan(export_realesrgan(ours.state_dict(), ours.config), ours.config)
    assert back.keys() == ours.state_dict().keys()


def test_pclup_layout_without_activation_weights_is_detected() -> None:
    sd = Compact(CompactConfig(scale=2, n_feats=8, n_convs=2, act_type="leakyrelu")).state_dict()
    assert compact.detect(sd) and compact.infer_config(sd).act_type == "relu"
    assert model_from_state_dict(sd, overrides={"act_type": "leakyrelu"}).config.act_type == "leakyrelu"


def test_config_without_act_type_is_prelu() -> None:
    config = compact.SPEC.make_config(scale=2, n_feats=8, n_convs=1)
    assert config.act_type == "prelu"
    with pytest.raises(Exception, match="act_type must be one of prelu, relu, leakyrelu"):
        compact.SPEC.make_config(scale=2, act_type="gelu")


def _body(*indices: int, feat: int = 4, out: int = 12) -> dict[str, torch.Tensor]:
    sd = {}
    for i in indices:
        if i % 2:
            sd[f"body.{i}.weight"] = torch.zeros(feat)
        else:
            sd[f"body.{i}.weight"] = torch.zeros(feat, 3 if i == 0 else feat, 3, 3)
            sd[f"body.{i}.bias"] = torch.zeros(feat)
    last = max(indices)
    sd[f"body.{last}.weight"], sd[f"body.{last}.bias"] = torch.zeros(out, feat, 3, 3), torch.zeros(out)
    return sd


@pytest.mark.parametrize(
    ("sd", "message"),
    [
        (_body(0, 1, 2, 4), "not consecutive"),  # a PReLU missing
        (_body(0, 2, 3, 4), "not consecutive"),  # a PReLU where none are
        (_body(0, 1, 2, 3), "even index"),  # ends on an activation
        (_body(0, 1, 2, out=10), "not 3 x scale"),  # not 3 * s^2 channels
        (_body(0, 1, 2, feat=5000), "n_feats must be"),  # absurd width, refused before building
        ({**_body(0, 1, 2), "body.1000000000000.weight": torch.zeros(1)}, "more than 128 body convolutions"),
        ({**_body(0, 1, 2), "body.2.weight": torch.zeros(12, 7, 3, 3)}, "size mismatch|shape"),
    ],
)
def test_bad_realesrgan_layouts_are_refused(sd: dict[str, torch.Tensor], message: str) -> None:
    with pytest.raises(IncompatibleCheckpointError, match=message):
        model_from_state_dict(sd, "bad.pth")


def test_a_config_json_beside_a_pth_names_the_activation(tmp_path: Path) -> None:
    ref = _srvgg(num_feat=8, num_conv=2, upscale=2, act_type="leakyrelu")
    torch.save({"params": ref.state_dict()}, tmp_path / "model.pth")
    assert load_model(str(tmp_path / "model.pth")).model.config.act_type == "relu"  # type: ignore[attr-defined]
    leaky = {"args": {"act_type": "leakyrelu"}}
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "compact", **leaky}))
    loaded = load_model(str(tmp_path / "model.pth"))
    assert loaded.model.config.act_type == "leakyrelu"  # type: ignore[attr-defined]
    assert _max_diff(loaded.model, ref) <= 1e-5
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "edsr", **leaky}))  # not this one's
    assert load_model(str(tmp_path / "model.pth")).model.config.act_type == "relu"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_cli_info_upscale_finetune_on_a_realesrgan_file(tmp_path: Path) -> None:
    from PIL import Image

    ref = _srvgg(num_feat=8, num_conv=2, upscale=2)
    torch.save({"params_ema": ref.state_dict()}, tmp_path / "tiny.pth")
    data = tmp_path / "data"
    data.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        pixels = (torch.rand(40, 44, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(data / f"{i}.png")

    def pclup(*args: str) -> str:
        run = subprocess.run([sys.executable, "-m", "pclup", *args], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout

    info = pclup("info", str(tmp_path / "tiny.pth"))
    assert "compact" in info and "prelu" in info and "n_feats" in info
    pclup("upscale", "-m", str(tmp_path / "tiny.pth"), str(data / "0.png"), "-o", str(tmp_path / "up.png"))
    assert Image.open(tmp_path / "up.png").size == (88, 80)
    pclup("finetune", "--data", str(data), "-m", str(tmp_path / "tiny.pth"), "-s", "2", "--steps", "2",
          "--batch-size", "2", "--patch-size", "8", "--val-set", "none", "--out", str(tmp_path / "ft"))
    config = json.loads((tmp_path / "ft" / "model" / "config.json").read_text())
    assert config["architecture"] == "compact" and config["args"]["act_type"] == "prelu"
