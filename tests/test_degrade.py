"""The realistic degradation pipeline: each operation does what it should, seeds fix everything, files are checked."""

from __future__ import annotations

import hashlib
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from pclup.data.degrade import (
    KERNELS,
    Degradation,
    Stage,
    blur_kernel,
    degradation_from_mapping,
    filter2d,
    jpeg,
    load_degradation,
    sinc_kernel,
)
from pclup.errors import UsageError
from pclup.imresize import bicubic_downscale_uint8


def _photo(h: int = 96, w: int = 80, seed: int = 0) -> torch.Tensor:
    """A (3, h, w) float image with edges and texture (high-band energy to lose or gain)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    base = base + 0.15 * ((xx // 8 + yy // 8) % 2)
    img = np.stack([base, base * 0.8 + 0.1, 1 - base], 0) + rng.normal(0, 0.02, (3, h, w))
    return torch.from_numpy(np.clip(img, 0, 1)).float()


def _high_band(x: torch.Tensor) -> float:
    """Mean squared difference of neighbours: the energy of the highest frequencies."""
    x = x.double()
    return float(
        ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean()
    )


@pytest.mark.parametrize("kind", KERNELS)
def test_every_blur_kernel_is_normalised_and_lowers_high_band_energy(kind: str) -> None:
    k = blur_kernel(kind, 13, 2.0, 1.0, 0.7, beta=1.5)
    assert k.shape == (13, 13)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(k.min()) >= 0
    x = _photo().unsqueeze(0).double()
    assert _high_band(filter2d(x, k)) < 0.5 * _high_band(x)


def test_isotropic_kernels_are_rotation_symmetric_and_anisotropic_ones_are_not() -> None:
    iso = blur_kernel("iso", 11, 2.0, 0.5, 0.9)
    assert torch.allclose(iso, iso.T) and torch.allclose(iso, iso.flip(0))
    aniso = blur_kernel("aniso", 11, 3.0, 0.5, 0.0)
    assert not torch.allclose(aniso, aniso.T)  # wide along x, narrow along y
    assert float(aniso[5, :].sum()) > float(aniso[:, 5].sum())


def test_sinc_kernel_is_a_low_pass_with_the_asked_cutoff() -> None:
    k = sinc_kernel(21, math.pi / 3)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(k, k.T)
    response = torch.fft.fft2(torch.nn.functional.pad(k, (0, 43, 0, 43))).abs()
    assert float(response[0, 0]) == pytest.approx(1.0, abs=1e-9)
    # well above the cut-off (pi/3 of pi: a third of the band) almost nothing passes
    assert float(response[0, 40]) < 0.1


def test_gaussian_and_poisson_noise_raise_high_band_energy() -> None:
    x = _photo()
    quiet = Stage(
        blur_prob=0, resize={"keep": 1.0}, jpeg_prob=0, gaussian_noise_prob=1.0, noise_sigma=(20, 20)
    )
    poisson = Stage(
        blur_prob=0, resize={"keep": 1.0}, jpeg_prob=0, gaussian_noise_prob=0.0, poisson_scale=(2, 2)
    )
    for stage in (quiet, poisson):
        out = Degradation()._stage(x.unsqueeze(0).double(), stage, torch.Generator().manual_seed(0), None)
        assert out.shape == (1, 3, 96, 80)
        assert _high_band(out) > 1.5 * _high_band(x)


def test_grey_noise_is_the_same_in_every_channel() -> None:
    x = torch.full((1, 3, 32, 32), 0.5, dtype=torch.float64)
    stage = Stage(
        blur_prob=0, resize={"keep": 1.0}, jpeg_prob=0, gaussian_noise_prob=1.0, gray_noise_prob=1.0
    )
    out = Degradation()._stage(x, stage, torch.Generator().manual_seed(1), None)
    noise = out - x
    assert float(noise.abs().max()) > 0
    assert torch.equal(noise[:, 0], noise[:, 1]) and torch.equal(noise[:, 1], noise[:, 2])


@pytest.mark.parametrize("quality", [10, 30, 75, 95])
def test_jpeg_at_quality_q_is_pillows_encoder(quality: int) -> None:
    x = _photo(64, 48).unsqueeze(0)
    a = x[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    PILImage.fromarray(a).save(buf, format="JPEG", quality=quality)
    expected = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    out = jpeg(x, quality + 0.3)  # the drawn quality is rounded
    assert out.shape == x.shape
    got = out[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(got, expected)
    if quality < 95:
        assert not np.array_equal(got, a)


@pytest.mark.parametrize(("scale", "h", "w"), [(4, 128, 96), (2, 64, 64), (3, 99, 60), (4, 32, 32)])
def test_pipeline_output_has_the_lr_size_and_8_bit_levels(scale: int, h: int, w: int) -> None:
    hr = _photo(h, w)
    for seed in range(6):
        lr = Degradation().apply(hr, scale, torch.Generator().manual_seed(seed), dtype=torch.float32)
        assert lr.shape == (3, h // scale, w // scale)
        assert lr.dtype == torch.float32
        assert float(lr.min()) >= 0 and float(lr.max()) <= 1
        assert torch.equal(lr, lr.mul(255).round().div(255))


def test_same_seed_same_degradation_other_seed_other() -> None:
    hr = _photo()
    d = Degradation()
    a = d.apply(hr, 4, torch.Generator().manual_seed(7))
    b = d.apply(hr, 4, torch.Generator().manual_seed(7))
    c = d.apply(hr, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_uint8_input_is_the_same_as_its_float() -> None:
    hr8 = _photo().mul(255).round().to(torch.uint8)
    d = Degradation()
    assert torch.equal(
        d.apply(hr8, 4, torch.Generator().manual_seed(3)),
        d.apply(hr8.float() / 255, 4, torch.Generator().manual_seed(3)),
    )


def test_clean_probability_one_is_the_bicubic_downscale() -> None:
    hr8 = _photo().mul(255).round().to(torch.uint8)
    lr = Degradation(clean_prob=1.0).apply(hr8, 4, torch.Generator().manual_seed(0))
    expected = bicubic_downscale_uint8(hr8.permute(1, 2, 0).numpy(), 4)
    assert np.array_equal(lr.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)


def test_jpeg_only_samples_are_the_bicubic_downscale_as_a_pillow_jpeg() -> None:
    """jpeg_only_prob 1: the bicubic LR saved by Pillow at a quality drawn from jpeg_only_quality (a range
    of one value here, so the quality is known)."""
    hr8 = _photo().mul(255).round().to(torch.uint8)
    d = Degradation(jpeg_only_prob=1.0, jpeg_only_quality=(35.0, 35.0))
    lr = d.apply(hr8, 4, torch.Generator().manual_seed(0))
    bic = bicubic_downscale_uint8(hr8.permute(1, 2, 0).numpy(), 4)
    buf = io.BytesIO()
    PILImage.fromarray(bic).save(buf, format="JPEG", quality=35)
    expected = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal(lr.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)
    # a share of the samples: about that share are JPEG-only, each seeded
    mixed = Degradation(jpeg_only_prob=0.5)
    jpeg_only = sum(
        float((mixed.apply(hr8, 4, torch.Generator().manual_seed(s))
               - Degradation(jpeg_only_prob=1.0).apply(hr8, 4, torch.Generator().manual_seed(s))).abs().max())
        == 0.0 for s in range(40))
    assert 10 <= jpeg_only <= 30


def test_degraded_input_is_further_from_hr_than_bicubic() -> None:
    hr = _photo(128, 128)
    bic = torch.from_numpy(
        bicubic_downscale_uint8(hr.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy(), 4)
    )
    bic = bic.permute(2, 0, 1).float() / 255
    errs = [
        float((Degradation().apply(hr, 4, torch.Generator().manual_seed(s)) - bic).abs().mean())
        for s in range(8)
    ]
    assert np.mean(errs) > 2 / 255


def test_pinned_checksum_of_a_seeded_degradation() -> None:
    """A change to the pipeline that moves published figures must change this test deliberately."""
    hr = _photo(128, 96).mul(255).round().to(torch.uint8)
    lrs = [Degradation().apply(hr, 4, torch.Generator().manual_seed(s)) for s in range(4)]
    data = b"".join(lr.mul(255).round().to(torch.uint8).numpy().tobytes() for lr in lrs)
    assert hashlib.sha256(data).hexdigest()[:16] == PINNED


PINNED = "353e5b834d58fb41"


# ---- settings files ---------------------------------------------------------------------------------


def test_named_degradations() -> None:
    assert load_degradation("bicubic") is None
    assert load_degradation(None) is None
    d = load_degradation("realistic")
    assert d == Degradation()
    assert d is not None and d.first.noise_sigma == (1.0, 30.0) and d.second.blur_prob == 0.8


def test_toml_round_trip(tmp_path) -> None:
    d = Degradation(clean_prob=0.2, second=Stage(blur_prob=0.5, jpeg_quality=(40.0, 90.0)))
    f = tmp_path / "mine.toml"
    f.write_text(d.to_toml())
    back = load_degradation(f)
    assert back is not None
    assert back.first == d.first and back.second == d.second and back.final == d.final
    assert back.clean_prob == 0.2 and back.name == "mine"
    d = Degradation(jpeg_only_prob=0.3, jpeg_only_quality=(25.0, 60.0))
    f.write_text(d.to_toml())
    back = load_degradation(f)
    assert back is not None and back.jpeg_only_prob == 0.3 and back.jpeg_only_quality == (25.0, 60.0)


def test_a_partial_file_keeps_the_other_defaults(tmp_path) -> None:
    f = tmp_path / "light.toml"
    f.write_text("[degradation.first]\nnoise_sigma = [1, 10]\n")
    d = load_degradation(f)
    assert d is not None and d.first.noise_sigma == (1.0, 10.0) and d.first.blur_sigma == (0.2, 3.0)
    assert d.second == Degradation().second


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[degradation.first]\nnoise_sigmaa = [1, 2]\n", "unknown key(s) first.noise_sigmaa"),
        ("[degradation]\nfourth = 1\n", "unknown key(s) fourth"),
        ("[degradation.first]\nblur_prob = 1.5\n", "first.blur_prob must be in [0, 1]"),
        ("[degradation.second]\njpeg_quality = [90, 30]\n", "second.jpeg_quality must be [lo, hi]"),
        ("[degradation.first]\nnoise_sigma = 'loud'\n", "first.noise_sigma must be a [lo, hi] pair"),
        ("[degradation.first]\nkernels = { box = 1.0 }\n", "unknown kind(s) box"),
        ("[degradation.first]\nresize = { up = -1.0 }\n", "non-negative probabilities"),
        ("[degradation.first]\nkernel_size = [8, 8]\n", "no odd size"),
        ("[degradation.first]\nkernel_size = [7.5, 9]\n", "must be integers"),
        ("[degradation.first]\nblur_sigma = [0.2, nan]\n", "finite number"),
        ("[degradation.first\n", "not valid TOML"),
        ("[degradation]\njpeg_only_prob = 2\n", "jpeg_only_prob must be in [0, 1]"),
        ("[degradation]\njpeg_only_quality = [80, 20]\n", "jpeg_only_quality must be [lo, hi]"),
        ("[degradation]\njpeg_only_quality = 30\n", "jpeg_only_quality must be a [lo, hi] pair"),
    ],
)
def test_bad_degradation_files_are_refused_by_name(tmp_path, text: str, words: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UsageError, match=None) as e:
        load_degradation(f)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_huge_and_unnamed_files_are_refused(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_degradation(tmp_path / "none.toml")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(UsageError, match="larger than"):
        load_degradation(big)
    with pytest.raises(UsageError, match="bicubic, realistic or a .toml file"):
        load_degradation("gritty")


def test_degradation_from_mapping_checks_types() -> None:
    with pytest.raises(UsageError, match="must be a table"):
        degradation_from_mapping({"first": 3})
    with pytest.raises(UsageError, match="clean_prob must be a finite number"):
        degradation_from_mapping({"clean_prob": True})
