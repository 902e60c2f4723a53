"""The denoise dial: blending two trainings of one network, and the model families that -m names."""

from __future__ import annotations

import pytest
import torch

from pclup.errors import IncompatibleCheckpointError, UsageError
from pclup.models import create_model
from pclup.weights import FAMILIES, LoadedModel, blend_models, default_model_name, family_scale


def _loaded(seed: int, **args: int) -> LoadedModel:
    torch.manual_seed(seed)
    model = create_model("compact", scale=2, n_feats=8, n_convs=1, **args).eval()
    return LoadedModel(model, f"m{seed}", "test")


def test_blend_ends_are_the_two_models_and_the_middle_is_the_mean() -> None:
    a, b = _loaded(0), _loaded(1)
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(blend_models(a, b, 0.0).model(x), a.model(x))
        assert torch.equal(blend_models(a, b, 1.0).model(x), b.model(x))
    mid = blend_models(a, b, 0.5)
    for (k, v), va, vb in zip(mid.model.state_dict().items(), a.model.state_dict().values(),
                              b.model.state_dict().values(), strict=True):
        assert torch.allclose(v, (va + vb) / 2, atol=1e-7), k
    assert "0.5 x m0 + 0.5 x m1" in mid.metadata["blend"]
    assert all(torch.equal(v, before[k]) for k, v in a.model.state_dict().items())  # a is untouched


def test_blending_different_networks_is_refused() -> None:
    a = _loaded(0)
    torch.manual_seed(0)
    wider = LoadedModel(create_model("compact", scale=2, n_feats=16, n_convs=1).eval(), "wide", "test")
    with pytest.raises(IncompatibleCheckpointError, match="cannot blend m0 and wide"):
        blend_models(a, wider, 0.5)
    with pytest.raises(ValueError):
        blend_models(a, _loaded(1), 1.5)


def test_families_pick_the_scale_that_reaches_the_output() -> None:
    assert FAMILIES["photo"] == (2, 4)
    assert [family_scale("photo", s) for s in (None, 1.5, 2, 3, 4, 8)] == [4, 2, 2, 4, 4, 4]
    assert [default_model_name(s) for s in (None, 2, 2.5, 3, 4, 6)] == [
        "default-x4", "default-x2", "default-x3", "default-x3", "default-x4", "default-x4"]
    assert default_model_name(3, "photo") == "photo-x4"


def test_denoise_needs_the_default_or_photo_model_and_a_value_in_range(tmp_path) -> None:
    from pclup.inference.run import denoised_model

    with pytest.raises(UsageError, match="--denoise blends the default and photo models: drop -m edsr-s-x4"):
        denoised_model("edsr-s-x4", 4, 0.5)
    for bad in (-0.1, 1.2, float("nan")):
        with pytest.raises(UsageError, match="must be between 0"):
            denoised_model(None, 4, bad)


# ---- the shipped photo models ------------------------------------------------------------------------


def test_photo_models_ship_and_blend_with_the_defaults() -> None:
    from pclup.weights import load_model

    for s in FAMILIES["photo"]:
        clean, photo = load_model(f"default-x{s}"), load_model(f"photo-x{s}")
        assert photo.model.config == clean.model.config  # the same network: the blend is meaningful
        assert any(not torch.equal(a, b) for a, b in zip(clean.model.state_dict().values(),
                                                         photo.model.state_dict().values(), strict=True))
        with torch.no_grad():
            x = torch.rand(1, 3, 16, 12)
            assert torch.equal(blend_models(clean, photo, 0.0).model(x), clean.model(x))
            assert torch.equal(blend_models(clean, photo, 1.0).model(x), photo.model(x))


@pytest.mark.slow
def test_upscale_with_the_denoise_dial_and_the_photo_family(tmp_path) -> None:
    import json

    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from pclup.cli import app

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    runner = CliRunner()
    outputs = {}
    for name, args in {"default": [], "d0": ["--denoise", "0"], "d05": ["--denoise", "0.5"],
                       "d1": ["--denoise", "1"], "photo": ["-m", "photo"]}.items():
        out = tmp_path / f"{name}.png"
        run = runner.invoke(app, ["upscale", str(tmp_path / "in.png"), "-s", "4", "-o", str(out), "--json", *args])
        assert run.exit_code == 0, run.output
        summary = json.loads(run.stdout)
        outputs[name] = (np.asarray(Image.open(out)), summary["model"])
    assert outputs["default"][1] == "default-x4" and outputs["photo"][1] == "photo-x4"
    assert outputs["d05"][1] == "photo-x4 (denoise 0.5)"
    assert np.array_equal(outputs["d0"][0], outputs["default"][0])
    assert np.array_equal(outputs["d1"][0], outputs["photo"][0])
    assert not np.array_equal(outputs["d05"][0], outputs["d0"][0])
    assert not np.array_equal(outputs["d05"][0], outputs["d1"][0])
    # x3 runs the x4 pair and resizes
    run = runner.invoke(app, ["upscale", str(tmp_path / "in.png"), "-s", "3", "-o", str(tmp_path / "x3.png"),
                              "--denoise", "0.3", "--json"])
    assert run.exit_code == 0, run.output
    assert Image.open(tmp_path / "x3.png").size == (72, 60)
